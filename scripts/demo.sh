#!/usr/bin/env bash
# The main job on a fresh machine: a container agent at work on a sample repository.
# Needs no API key and no image registry (the image is built offline on first use).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
am="$here/.venv/bin/am"
# One per user: another user's sample (root's, say) is not yours to clone or change.
sample="${AM_DEMO_REPO:-${TMPDIR:-/tmp}/am-demo-repo-$(id -u)}"

# Just added to the docker group by 'sudo make setup' (it takes effect at the next login):
# run the demo with that group now.
if [ "$(id -u)" != 0 ] && [ -z "${AM_DEMO_SG:-}" ] && command -v docker >/dev/null &&
        ! docker info >/dev/null 2>&1 && ! id -nG | tr ' ' '\n' | grep -qx docker &&
        id -nG "$(id -un)" | tr ' ' '\n' | grep -qx docker; then
    echo "Using your new docker group membership for this demo (log in again to have it" \
         "everywhere)" >&2
    # sg makes docker the primary group; the inner sg takes yours back (docker stays a
    # supplementary one), which rootless tools such as newuidmap insist on.
    inner=$(printf '%q ' bash "$0" "$@")
    exec env AM_DEMO_SG=1 sg docker -c "sg $(id -gn) -c $(printf '%q' "$inner")"
fi

if [ ! -d "$sample/.git" ]; then
    echo "Creating a sample repository in $sample" >&2
    mkdir -p "$sample"
    git -C "$sample" init -q -b main
    printf 'def add(a, b):\n    return a + b\n' > "$sample/calc.py"
    git -C "$sample" add calc.py
    git -C "$sample" -c user.name=demo -c user.email=demo@localhost commit -qm "sample project"
fi

# A stand-in agent that needs no API key: it edits and commits on its branch, then keeps
# working. Replace --cmd with --agent claude (and a key) for a real one.
agent='i=0; while true; do i=$((i+1)); echo "# note $i from the agent" >> NOTES.md;
git add NOTES.md; git -c user.name=agent -c user.email=agent@localhost commit -qm "note $i";
echo "agent: committed note $i"; sleep 10; done'
id=$("$am" spawn "$sample" --container --cmd "$agent" | tail -n 1)
sleep 2
"$am" list
echo >&2
echo "Agent $id is running in a container. Try:" >&2
echo "  $am logs -f $id      # its output (Ctrl-C stops following)" >&2
echo "  $am attach $id       # its terminal (detach: Ctrl-b d)" >&2
echo "  $am diff $id         # its work so far" >&2
echo "  $am stop $id         # stop it; the workspace stays" >&2
