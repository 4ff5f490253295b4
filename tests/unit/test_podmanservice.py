"""The caller digest that names a podman service's socket, and the detached start."""

import os
import subprocess
import sys
import time

from am import podmanservice, proc

PODMAN = sys.executable  # any program file: the digest reads its path and identity


def test_the_digest_follows_the_environment_but_not_where_the_shell_was():
    env = {"PATH": "/usr/bin", "HOME": "/home/a", "PWD": "/x", "SHLVL": "1"}
    one = podmanservice.caller_digest(env, PODMAN)
    assert one and len(one) == 16
    assert podmanservice.caller_digest({**env, "PWD": "/y", "OLDPWD": "/z"}, PODMAN) == one
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


def test_the_digest_follows_the_umask_and_limits():
    """Read in a child that changes them: this process's own are not to be touched."""
    code = (
        "import os, resource, sys; from am import podmanservice as p; "
        "os.umask(int(sys.argv[1], 8)); "
        "resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[2]), "
        "resource.getrlimit(resource.RLIMIT_NOFILE)[1])); "
        "print(p.caller_digest({'PATH': '/usr/bin'}, sys.executable))"
    )

    def digest(umask: str, nofile: int) -> str:
        return subprocess.run(
            [sys.executable, "-c", code, umask, str(nofile)],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip

    base = digest("077", 256)
    assert digest("077", 256) == base
    assert digest("022", 256) != base
    assert digest("077", 128) != base


def test_a_socket_path_too_long_for_an_address_is_not_used(tmp_path):
    deep = tmp_path / ("d" * 120)
    deep.mkdir()
    argv = ["podman", "run", "x"]
    assert podmanservice.served_argv(argv, str(deep), {"PATH": os.environ["PATH"]}) is None
    assert os.listdir(deep) == []  # and nothing started for it


def test_start_detached_leaves_in_a_session_of_its_own(tmp_path):
    err = tmp_path / "err"
    out = tmp_path / "out"
    pid = proc.start_detached(
        ["sh", "-c", f'echo "$(pwd) $(ps -o sid= -p $$)" > {out}; echo oops >&2'],
        {"PATH": os.environ["PATH"]},
        str(err),
    )
    deadline = time.monotonic() + 30
    while not (out.exists() and out.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.waitpid(pid, 0)
    where, sid = out.read_text().split()
    assert where == "/" and int(sid) == pid != os.getsid(0)
    assert err.read_text() == "oops\n"
