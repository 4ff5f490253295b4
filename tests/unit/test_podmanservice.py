"""The caller digest that names a podman service's socket, and the detached start."""

import os
import subprocess
import sys
import time
from pathlib import Path

from am import podmanservice, proc

PODMAN = sys.executable  # any program file: the digest reads its path and identity


def test_the_digest_follows_the_environment_but_not_where_the_shell_was():
    env = {"PATH": "/usr/bin", "HOME": "/home/a", "PWD": "/x", "SHLVL": "1"}
    one = podmanservice.caller_digest(env, PODMAN)
    assert one and len(one) == 16
    same = {**env, "PWD": "/y", "OLDPWD": "/z", "AM_DEBUG": "1"}
    assert podmanservice.caller_digest(same, PODMAN) == one
    for changed in (
        {**env, "CONTAINERS_CONF": "/other.conf"},
        {**env, "HOME": "/home/b"},
        {k: v for k, v in env.items() if k != "PATH"},
    ):
        assert podmanservice.caller_digest(changed, PODMAN) != one


def test_the_digest_follows_the_podman_program(tmp_path):
    env = {"PATH": "/usr/bin"}
    prog = tmp_path / "podman"
    prog.write_text("#!/bin/sh\n")
    before = podmanservice.caller_digest(env, str(prog))
    prog.write_text("#!/bin/sh\n# upgraded\n")
    assert podmanservice.caller_digest(env, str(prog)) != before
    assert podmanservice.caller_digest(env, str(tmp_path / "none")) is None


def test_the_digest_follows_what_a_process_passes_on_to_conmon():
    """Umask, limits, nice, I/O priority and CPUs, read in a child that changes them (this
    process's own stay as they are): conmon, and so the container, inherits each."""
    code = (
        "import os, resource, sys; from am import podmanservice as p; "
        "os.umask(int(sys.argv[1], 8)); "
        "resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[2]), "
        "resource.getrlimit(resource.RLIMIT_NOFILE)[1])); "
        "os.nice(int(sys.argv[3])); "
        "import signal; signal.signal(signal.SIGHUP, signal.SIG_IGN) if sys.argv[4:] else 0; "
        "print(p.caller_digest({'PATH': '/usr/bin'}, sys.executable))"
    )

    def digest(umask: str, nofile: int, nice: int, *wrap: str, nohup=()) -> str:
        return subprocess.run(
            [*wrap, sys.executable, "-c", code, umask, str(nofile), str(nice), *nohup],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip

    base = digest("077", 256, 0)
    assert len(base) == 16 and digest("077", 256, 0) == base
    assert digest("022", 256, 0) != base
    assert digest("077", 128, 0) != base
    assert digest("077", 256, 5) != base
    assert digest("077", 256, 0, "ionice", "-c3") != base
    assert digest("077", 256, 0, "taskset", "-c", "0") != base or os.cpu_count() == 1
    assert digest("077", 256, 0, nohup=("ign",)) != base


def test_the_digest_follows_an_edit_of_podmans_configuration(tmp_path):
    conf = tmp_path / "containers.conf"
    conf.write_text("[containers]\n")
    env = {"PATH": "/usr/bin", "CONTAINERS_CONF": str(conf)}
    before = podmanservice.caller_digest(env, PODMAN)
    conf.write_text('[containers]\nenv = ["X=1"]\n')
    assert podmanservice.caller_digest(env, PODMAN) != before


def test_names_podman_reads_as_its_own_settings():
    for name in ("CONTAINERS_CONF", "XDG_RUNTIME_DIR", "TMPDIR", "HOME", "PODMAN_USERNS"):
        assert podmanservice.podman_reads(name)
    for name in ("ANTHROPIC_API_KEY", "AM_PROMPT", "SECRET"):
        assert not podmanservice.podman_reads(name)


def test_a_socket_path_too_long_or_not_plain_is_not_used(tmp_path):
    """A path podman would read cut short (a '#' starts a URL's fragment) or that no unix
    address holds: no service, and nothing started for it."""
    podman = tmp_path / "podman"
    podman.write_text("#!/bin/sh\nexit 1\n")
    podman.chmod(0o755)
    env = {"PATH": str(tmp_path)}
    for run in (tmp_path / ("d" * 120), tmp_path / "a#b", tmp_path / "a?b", tmp_path / "a%2"):
        run.mkdir()
        assert podmanservice.served_argv(["podman", "run", "x"], str(run), env) is None
        assert os.listdir(run) == []
    plain = tmp_path / "plain"
    plain.mkdir()  # the control: a plain path gets a service started (this podman fails)
    assert podmanservice.served_argv(["podman", "run", "x"], str(plain), env) is None
    assert sorted(os.listdir(plain / "podman"))[-1].endswith(".started")


def test_trouble_with_the_service_leaves_the_run_to_podman(tmp_path):
    """``served_argv`` never raises: here its folder cannot be made (a file is in the way)."""
    podman = tmp_path / "podman"
    podman.write_text("#!/bin/sh\nexit 1\n")
    podman.chmod(0o755)
    run = tmp_path / "run"
    run.mkdir()
    (run / "podman").write_text("in the way\n")
    assert (
        podmanservice.served_argv(["podman", "run", "x"], str(run), {"PATH": str(tmp_path)}) is None
    )


def test_prune_removes_only_what_no_one_starts_or_uses(tmp_path):
    import fcntl

    where = tmp_path / "podman"
    where.mkdir()
    old = time.time() - podmanservice.STALE - 60

    def service(digest: str, age: float) -> str:
        base = str(where / digest)
        for end in (".started", ".err", ".lock"):
            Path(base + end).write_text("1\n")
            os.utime(base + end, (age, age))
        (where / f"{digest}.d").mkdir()
        return base

    gone = service("a" * 16, old)
    own = service("b" * 16, old)
    starting = service("c" * 16, old)
    recent = service("d" * 16, time.time())
    held = os.open(starting + ".lock", os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        podmanservice._prune(str(where), own)
    finally:
        os.close(held)
    assert not os.path.exists(gone + ".started") and not os.path.exists(gone + ".d")
    assert os.path.exists(gone + ".lock")  # a lock file stays: one may be held by now
    for kept in (own, starting, recent):
        assert os.path.exists(kept + ".started") and os.path.exists(kept + ".d")


def test_start_detached_leaves_in_a_session_of_its_own(tmp_path):
    err = tmp_path / "err"
    out = tmp_path / "out"
    pid = proc.start_detached(
        ["sh", "-c", f'echo "$(pwd) $(ps -o sid= -p $$)" > {out}; echo oops >&2'],
        {"PATH": os.environ["PATH"]},
        str(err),
        str(tmp_path),
    )
    deadline = time.monotonic() + 30
    while not (out.exists() and out.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.waitpid(pid, 0)
    where, sid = out.read_text().split()
    assert where == str(tmp_path) and int(sid) == pid != os.getsid(0)
    assert err.read_text() == "oops\n"
