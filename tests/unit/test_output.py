"""am/output.py's pure rendering: the MODE column and the documented JSON shape."""

from am import output


def test_the_mode_column():
    assert output.mode_text({"mode": "tmux"}) == "tmux"
    view = {"mode": "container", "runtime": "podman", "isolation": "gvisor"}
    assert output.mode_text(view) == "container/podman/gvisor"
    # a container agent's restored snapshot runs in a container at its first start: the
    # column never says it will run on the host
    restored = {"mode": "tmux", "snapshot_mode": "container", "runtime": None}
    assert output.mode_text(restored) == "container"
    assert output.mode_text({"mode": "tmux", "snapshot_mode": "tmux"}) == "tmux"


def test_a_detached_agents_session_is_null():
    view = {"mode": "container", "runtime": "docker", "session": "am-x"}
    assert output.public(view)["session"] is None
    kube = {"mode": "container", "runtime": "kubernetes", "session": "am-x"}
    assert output.public(kube)["session"] == "am-x"  # its kubectl attach runs in it
    assert output.public({"mode": "tmux", "session": "am-x"})["session"] == "am-x"
