#!/usr/bin/env bash
# The main job on a fresh machine: a container agent at work on a sample repository.
# Needs no API key and no image registry (the image is built offline on first use).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
am="$here/.venv/bin/am"
sample="${AM_DEMO_REPO:-${TMPDIR:-/tmp}/am-demo-repo}"

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
