"""Agent records, checked before any command acts on what they name.

No agent can write the state file, but hand edits and corrupt files happen, and a command that
deletes, kills, prints or reads what a record names must not take its word for it: every path
must be the one the layout gives the record's id, every name the id's own. These checks compare
strings only (no system call), so they cost nothing; what must be asked of the world — that a
container carries this AM_HOME's ``am.home`` label, that a tmux session carries its ``@am_home``
— is asked right before the action (``Engine.remove_owned``, ``session.kill_own``); a
Kubernetes agent's objects are deleted only by a label selector that names this AM_HOME, so the
cluster itself skips any object without the label.
``am list`` only shows records and checks none; ``am info`` shows one, reads nothing an invalid
one names, and fails with what is wrong.
"""

import os

from am import ids, validate
from am.errors import AmError
from am.record import Mode

OID = validate.OID_RE


class Invalid(AmError):
    """A record that names something other than what am made for its id."""


def _same(path, expected) -> bool:
    return isinstance(path, str) and os.path.normpath(path) == os.path.normpath(str(expected))


def problems(record: dict, layout, key: str | None = None) -> list[str]:
    """What is wrong with RECORD, filed under KEY in the state file, under LAYOUT (empty when
    nothing is)."""
    agent_id = record.get("id")
    if not isinstance(agent_id, str) or not ids.NAME_RE.fullmatch(agent_id) or ".." in agent_id:
        return [f"its id {agent_id!r} is not a valid agent name"]
    found = [] if key in (None, agent_id) else [f"it is filed under {key!r}, not its id"]
    if not _same(record.get("workspace"), layout.workspace(agent_id)):
        found.append(
            f"its workspace {record.get('workspace')!r} is not {layout.workspace(agent_id)}"
        )
    if not _same(record.get("log"), layout.log_file(agent_id)):
        found.append(f"its log {record.get('log')!r} is not {layout.log_file(agent_id)}")
    if record.get("network_log") is not None and not _same(
        record["network_log"], layout.logs / f"{agent_id}.network.log"
    ):
        found.append(f"its network log {record['network_log']!r} is not under {layout.logs}")
    name = ids.session_name(agent_id)
    # am-<id> as well: what am recorded before a '.' in a name became ',' in its session's
    if record.get("session") not in (name, ids.container_name(agent_id)):
        found.append(f"its session {record.get('session')!r} is not {name}")
    mode = record.get("mode")
    if mode not in Mode.ALL:
        found.append(f"its mode {mode!r} is neither tmux nor container")
    if mode == Mode.CONTAINER:
        if record.get("container") != ids.container_name(agent_id):
            found.append(
                f"its container {record.get('container')!r} is not {ids.container_name(agent_id)}"
            )
        if record.get("runtime") not in ("docker", "podman", "kubernetes"):
            found.append(
                f"its runtime {record.get('runtime')!r} is not docker, podman or kubernetes"
            )
        elif record["runtime"] == "kubernetes":
            found += kubernetes_problems(agent_id, record.get("kubernetes"))
    elif record.get("container") is not None:
        found.append("a tmux agent's record names a container")
    if record.get("volume") is not None:
        if mode != "container" or record["volume"] != ids.volume_name(agent_id):
            found.append(
                f"its workspace volume {record['volume']!r} is not {ids.volume_name(agent_id)}"
            )
    if record.get("isolation") not in (None, "runc", "gvisor"):
        found.append(f"its isolation {record.get('isolation')!r} is neither runc nor gvisor")
    mirror = record.get("mirror")
    if mirror is not None and not (
        isinstance(mirror, str)
        and mirror.endswith(".git")
        and _same(os.path.dirname(mirror), layout.cache / "mirrors")
    ):
        found.append(f"its cache mirror {mirror!r} is not in {layout.cache / 'mirrors'}")
    for key in ("base_commit",):
        if record.get(key) is not None and not (
            isinstance(record[key], str) and OID.match(record[key])
        ):
            found.append(f"its {key} {record[key]!r} is not a commit id")
    pushed = record.get("pushed")
    if pushed is not None and not (
        isinstance(pushed, list) and all(isinstance(o, str) and OID.match(o) for o in pushed)
    ):
        found.append(f"its pushed commits {pushed!r} are not commit ids")
    if record.get("worktree"):
        source = record.get("source")
        if not isinstance(source, str) or not os.path.isabs(source):
            found.append(f"its worktree source {source!r} is not an absolute path")
        elif os.path.normpath(source).startswith(os.path.normpath(str(layout.workspaces)) + os.sep):
            found.append(f"its worktree source {source} is an agent's workspace")
    return found


def kubernetes_problems(agent_id: str, k) -> list[str]:
    """What is wrong with a Kubernetes agent's recorded place in its cluster."""
    from am import kube

    if not isinstance(k, dict):
        return ["its Kubernetes settings are missing"]
    found = []
    for check, value in (
        (kube.check_name, agent_id),
        (kube.check_namespace, k.get("namespace")),
        (kube.check_context, k.get("context")),
    ):
        try:
            check(str(value))
        except kube.Invalid as e:
            found.append(str(e))
    if k.get("storage") not in kube.STORAGES:
        found.append(f"its workspace storage {k.get('storage')!r} is neither pvc nor emptydir")
    if k.get("kubeconfig") is not None and not (
        isinstance(k["kubeconfig"], str) and os.path.isabs(k["kubeconfig"])
    ):
        found.append(f"its kubeconfig {k['kubeconfig']!r} is not an absolute path")
    return found


def check(record: dict, layout, key: str | None = None) -> dict:
    """RECORD, or Invalid naming what is wrong, before any command acts on it."""
    found = problems(record, layout, key)
    if found:
        raise Invalid(
            f"the record of agent {record.get('id')!r} in {layout.state_file} is "
            f"invalid: {'; '.join(found)}",
            "am acts on nothing it names; 'am rm --force "
            f"{key or record.get('id')}' removes only the record",
        )
    return record
