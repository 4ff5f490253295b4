"""The keeper's pure parts: engine endpoints, the log formats, what `am send` types."""

import os
import socket
import subprocess
import sys
import threading

import pytest
from helpers import wait_for

from am import engineapi, hostos, keeper, keepersock, runfiles
from am.errors import AmError


def test_docker_endpoint_follows_the_cli(tmp_path):
    assert engineapi.docker_endpoint({}).url == engineapi.DEFAULT_DOCKER
    ep = engineapi.docker_endpoint({"DOCKER_HOST": "tcp://127.0.0.1:2399"})
    assert (ep.scheme, ep.host, ep.port, ep.local, ep.tls) == (
        "tcp",
        "127.0.0.1",
        2399,
        False,
        None,
    )
    tls = engineapi.docker_endpoint(
        {"DOCKER_HOST": "tcp://h:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/certs"}
    ).tls
    assert tls == {
        "ca": "/certs/ca.pem",
        "cert": "/certs/cert.pem",
        "key": "/certs/key.pem",
        "verify": True,
    }
    # DOCKER_TLS alone: TLS that does not check the daemon, with the folder's files that exist
    certs = tmp_path
    (certs / "ca.pem").write_text("")
    tls = engineapi.docker_endpoint(
        {"DOCKER_HOST": "tcp://h:2376", "DOCKER_TLS": "1", "DOCKER_CERT_PATH": str(certs)}
    ).tls
    assert tls == {"ca": str(certs / "ca.pem"), "verify": False}
    # a context other than the default is asked of the CLI, and only then
    asked = []
    ep = engineapi.docker_endpoint(
        {"DOCKER_CONTEXT": "far"}, lambda name: asked.append(name) or "unix:///far.sock"
    )
    assert (asked, ep.url, ep.local) == (["far"], "unix:///far.sock", True)
    engineapi.docker_endpoint({"DOCKER_CONTEXT": "default"}, lambda n: asked.append(n))
    assert asked == ["far"]
    with pytest.raises(AmError, match="only unix:// and tcp://"):
        engineapi.docker_endpoint({"DOCKER_HOST": "ssh://me@far"})


def test_podman_endpoint_is_remote_only_with_a_host():
    assert engineapi.podman_endpoint({}) is None
    assert engineapi.podman_endpoint({"CONTAINER_HOST": "unix:///run/p.sock"}).path == "/run/p.sock"


def test_engine_side_fallback_is_forced_by_one_switch(monkeypatch):
    monkeypatch.delenv("AM_PORTABLE", raising=False)
    assert hostos.local_engine(None) and hostos.local_engine({"url": "unix:///x"})
    assert not hostos.local_engine({"url": "tcp://127.0.0.1:1"})
    monkeypatch.setenv("AM_PORTABLE", "1")
    assert not hostos.linux() and not hostos.local_engine(None)


def test_chunked_body_and_http_head():
    assert engineapi._unchunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n") == b"abcde"
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: x\r\n\r\nfirst bytes")
        status, head, rest = engineapi._read_head(b)
    assert (status, rest) == (101, b"first bytes")


def test_typed_bytes_as_tmux_pastes():
    assert keeper.typed("a\nb", True, False) == b"a\rb\r"
    assert keeper.typed("a", False, True) == b"\x1b[200~a\x1b[201~"
    assert keeper.typed("", True, True) == b"\r"


def test_rotation_note():
    note = runfiles.rotation_note(1000)
    assert note.startswith(b"\r\n[am:") and b"1000 bytes" in note and note.endswith(b"\r\n")


def gaps(tmp_path, monkeypatch, rotate) -> list[str]:
    """The file-system calls ROTATE made while the log's name named no file."""
    log = tmp_path / "a.log"
    log.write_bytes(b"old\n")
    missing = []
    for name in ("open", "link", "replace", "rename", "unlink", "write"):
        real = getattr(os, name)

        def spy(*a, _real=real, _name=name, **k):
            if not log.exists():
                missing.append(_name)
            return _real(*a, **k)

        monkeypatch.setattr(os, name, spy)
    fd = rotate(str(log))
    monkeypatch.undo()
    os.close(fd)
    return missing


def test_a_rotated_log_is_never_missing(tmp_path, monkeypatch):
    """``am logs`` opens the log while the keeper rotates it: its name always names a file,
    which once failed CI with 'no log for agent'."""
    assert gaps(tmp_path, monkeypatch, lambda p: runfiles.rotate_written(p, 1000)) == []
    log = tmp_path / "a.log"
    assert (tmp_path / "a.log.1").read_bytes() == b"old\n"
    assert log.read_bytes() == runfiles.rotation_note(1000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.log", "a.log.1"]


def test_without_hard_links_a_log_still_rotates(tmp_path, monkeypatch):
    log = tmp_path / "a.log"
    log.write_bytes(b"old\n")

    def refuse(*_):
        raise PermissionError("no hard links here")

    monkeypatch.setattr(os, "link", refuse)
    os.close(runfiles.rotate_written(str(log), 1000))
    assert (tmp_path / "a.log.1").read_bytes() == b"old\n"
    assert log.read_bytes() == runfiles.rotation_note(1000)


def test_the_rename_first_rotation_leaves_a_gap(tmp_path, monkeypatch):
    """The positive control: the rotation as it was (rename, then create) has a moment
    without the log, and the spy sees it."""

    def rename_first(path):
        os.replace(path, path + ".1")
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    assert gaps(tmp_path, monkeypatch, rename_first) == ["open"]


@pytest.mark.parametrize("portable", ["0", "1"])
def test_a_long_socket_path_is_reached_through_its_folder(tmp_path, monkeypatch, portable):
    """Linux: through a descriptor of its folder; elsewhere (forced): a short name in a private
    folder of the user's under the temp folder."""
    monkeypatch.setenv("AM_PORTABLE", portable)
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = deep / "keeper.sock"
    assert len(str(path)) > 108
    addr, fd = keepersock.address(str(path))
    assert addr.startswith("/proc/self/fd/") == (portable == "0")
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(addr)
    finally:
        if fd is not None:
            os.close(fd)
    server.listen(1)
    got = []
    t = threading.Thread(target=lambda: got.append(server.accept()[0].recv(5)))
    t.start()

    with keepersock.connect(str(deep), 5) as c:
        c.sendall(b"hello")
    t.join(5)
    server.close()
    if portable == "1":
        os.unlink(addr)
    assert got == [b"hello"]


def test_render_fills_a_format_as_the_docker_cli_does():
    doc = {"Id": "abc", "State": {"Pid": 42, "OOMKilled": False, "ExitCode": 0, "Status": "x"}}
    fmt = "{{.State.ExitCode}} {{.State.OOMKilled}} {{.State.Status}}"
    assert keeper.render(fmt, doc) == "0 false x"
    assert keeper.render("{{.State.Pid}}\t{{.Id}}", doc) == "42\tabc"
    assert keeper.render("{{.State.Nope}}", doc) == "<no value>"


def test_a_watch_tells_its_process_from_one_that_took_its_pid(tmp_path):
    """alive() reads /proc, no engine: the process the engine named, while it runs; never
    another process that has its pid later (another start time)."""
    import subprocess

    from am.launchspec import ContainerSpec, LaunchSpec

    spec = LaunchSpec(
        argv=["x"], cwd="/", env={}, log=str(tmp_path / "l"),
        container=ContainerSpec(engine="docker", name="am-x"),
    )  # fmt: skip
    w = keeper.Watch(None, "x", spec)
    assert w.alive() is None  # nothing named yet
    child = subprocess.Popen(["sleep", "60"])
    try:
        # every process's cgroup file has a ':' (a stand-in for the container's id)
        w.seen(child.pid, ":")
        assert w.alive() is True
        born = w.born
        w.born = [str(int(born[0]) + 1)]  # what a later process with the same pid would show
        assert w.alive() is None
        w.born = born  # the positive control: the same process again
        assert w.alive() is True
        w.seen(child.pid, "no-such-container-id")
        assert w.alive() is None  # a cgroup that does not name the container
    finally:
        child.kill()
        child.wait()
    w.seen(child.pid, ":")
    assert w.alive() is False  # gone (reaped): no process has its pid now


def test_the_stats_request_answers_for_the_watches_it_holds(tmp_path):
    """``{"op": "stats"}``: figures for each id asked that the keeper watches with cgroups
    (here folders written as the kernel writes them), none for the rest: an id it does not
    watch, one whose cgroups it has not found, one that ended, one whose cgroup is gone."""
    from am.cgroupstats import Cgroups
    from am.launchspec import ContainerSpec, LaunchSpec

    def folder(name, usage):
        d = tmp_path / name
        d.mkdir()
        (d / "memory.usage_in_bytes").write_text(f"{usage}\n")
        (d / "memory.limit_in_bytes").write_text("1073741824\n")
        (d / "memory.stat").write_text("total_inactive_file 1000\n")
        (d / "cpuacct.usage").write_text("5000000000\n")
        (d / "pids.current").write_text("3\n")
        return Cgroups((d, 1), (d, 1), d)

    k = keeper.Keeper(type("L", (), {"run": tmp_path})())
    for agent, engine, usage in (
        ("p1", "podman", 5000),
        ("d1", "docker", 5000),
        ("none", "podman", 1),
    ):
        spec = LaunchSpec(
            argv=["x"], cwd="/", env={}, log=str(tmp_path / f"{agent}.log"),
            container=ContainerSpec(engine=engine, name=f"am-{agent}"),
        )  # fmt: skip
        w = keeper.Watch(k, agent, spec)
        w.cgroups = folder(agent, usage) if agent != "none" else None
        k.watches[agent] = w
    ended = keeper.Watch(k, "ended", k.watches["p1"].spec)
    ended.cgroups, ended.done = folder("ended", 7), True
    k.watches["ended"] = ended
    gone = keeper.Watch(k, "gone", k.watches["p1"].spec)
    gone.cgroups = folder("gone", 7)
    (tmp_path / "gone" / "memory.usage_in_bytes").unlink()
    k.watches["gone"] = gone

    answer = k.handle({"op": "stats", "ids": ["p1", "d1", "none", "ended", "gone", "zz", 5]})
    assert answer["ok"] and set(answer["figures"]) == {"p1", "d1"}, answer
    p1, d1 = answer["figures"]["p1"], answer["figures"]["d1"]
    assert (p1["memory"], d1["memory"]) == (5000, 4000)  # docker: without inactive files
    assert p1["memory_limit"] == 1 << 30 and p1["pids"] == 3
    assert k.handle({"op": "stats", "ids": "p1"}) == {"ok": True, "figures": {}}
    assert k.handle({"op": "stats"}) == {"ok": True, "figures": {}}


def test_a_program_runs_only_once_the_shells_on_its_way_have_found_it(tmp_path):
    """The start window ends early only when a process below the container's first is none
    of its init, gate or shells: a shell still reading, or one that cannot find its command,
    does not end it."""

    def is_a_shell(pid):  # exec'd from Python's fork
        return open(f"/proc/{pid}/comm").read() == "sh\n"

    fifo = tmp_path / "gate"
    os.mkfifo(fifo)
    # The gate's shape: a shell holding at a FIFO, then its command a shell of its own.
    held = subprocess.Popen(
        ["sh", "-c", f'read -r _ < {fifo} && exec "$@"', "g", "sh", "-c", "sleep 30; true"]
    )
    try:
        wait_for(lambda: is_a_shell(held.pid), "the gate's shell")
        assert not keeper.runs_a_program(held.pid)  # only a shell, blocked on its FIFO
        with open(fifo, "w") as f:
            f.write("go\n")
        # Positive control of the walk: the sleep, two shells down, is found.
        wait_for(lambda: keeper.runs_a_program(held.pid), "the sleep to be seen")
    finally:
        held.kill()
        held.wait()
    missing = subprocess.Popen(
        ["sh", "-c", "read -r _; /nonexistent-am-program"], stdin=subprocess.PIPE
    )
    try:
        wait_for(lambda: is_a_shell(missing.pid), "the shell")
        assert not keeper.runs_a_program(missing.pid)
        missing.communicate(b"go\n")
        assert missing.returncode == 127  # it never ran a program, and never was seen to
    finally:
        missing.kill()
    assert not keeper.runs_a_program(missing.pid)  # gone: nothing runs


def test_a_process_name_that_is_no_text_is_still_read():
    """An agent names its processes as it likes (prctl), bytes that are no UTF-8 included:
    the keeper's reads of /proc neither fail on them nor take them for a shell."""
    named = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import ctypes, sys, time\n"
            "ctypes.CDLL(None).prctl(15, b'\\xff\\xfe(x) ', 0, 0, 0)\n"
            "print('named', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert named.stdout.readline() == b"named\n"
        with open(f"/proc/{named.pid}/comm", "rb") as f:
            assert f.read().startswith(b"\xff\xfe")  # positive control: not UTF-8
        assert keeper.stat_fields(named.pid)[0] in ("S", "R")
        assert keeper.runs_a_program(named.pid)
    finally:
        named.kill()
        named.wait()


def test_listening_again_leaves_the_umask_of_the_keepers_other_threads_alone(tmp_path):
    """The keeper listens again while its watches make files in other threads: the umask is
    the process's, so a turn of it there gave their folders mode 0600. Control: the same
    loop over the code that turned it made dozens of such folders."""
    import fcntl
    import itertools
    import stat

    run = tmp_path / "run"
    run.mkdir()
    lock = os.open(run / "keeper.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    old = os.umask(0o022)
    listener = keeper.Listener(run / "keeper.sock", lock, 1.0)
    wrong, stop = [], threading.Event()

    def make_folders():
        for i in itertools.count():
            if stop.is_set():
                return
            d = tmp_path / f"d{i % 4}"
            d.mkdir()
            if stat.S_IMODE(d.stat().st_mode) != 0o755:
                wrong.append(d)
            d.rmdir()

    t = threading.Thread(target=make_folders)
    try:
        listener.open()
        t.start()
        for _ in range(2000):
            (run / "keeper.sock").unlink()
            listener.looked = 0  # as a second later
            listener.heal()
            assert stat.S_IMODE((run / "keeper.sock").stat().st_mode) == 0o600
    finally:
        stop.set()
        if t.is_alive():
            t.join()
        listener.close()
        os.close(lock)
        os.umask(old)
    assert wrong == []
