"""What podman's spawn reads of this host's configuration without asking podman (pure reads
of files written here): containers.conf's keys, and the seccomp profile's content name."""

import hashlib

import pytest

from am import files
from am.backends import podman

CONF = b"""# containers.conf
[containers]
# seccomp_profile = "/usr/share/containers/seccomp.json"
log_driver = "k8s-file"
"""


def test_a_key_named_only_in_comments_is_not_set():
    assert not podman.may_set(CONF, "seccomp_profile")
    assert podman.may_set(CONF + b'  seccomp_profile = "/x.json"\n', "seccomp_profile")
    assert podman.may_set(b'[containers]\n"seccomp_profile" = "/x"\n', "seccomp_profile")
    # a quoted key may spell it with an escape, which tomllib reads as the same key
    escaped = b'[containers]\n"seccomp\\u005fprofile" = "/x"\n'
    assert podman.may_set(escaped, "seccomp_profile")
    import tomllib

    assert tomllib.loads(escaped.decode())["containers"]["seccomp_profile"] == "/x"


@pytest.mark.parametrize(
    "text, value",
    [
        (CONF, None),  # only in a comment: not parsed at all, the defaults hold
        (CONF + b'seccomp_profile = "/custom.json"\n', "/custom.json"),
        (b'[containers]\nseccomp_profile = "/a.json" # here\n', "/a.json"),
        (b'[engine]\nseccomp_profile = "/wrong-section.json"\n', None),
    ],
)
def test_the_conf_value_is_toml_s_when_a_line_may_set_it(tmp_path, monkeypatch, text, value):
    conf = tmp_path / "containers.conf"
    conf.write_bytes(text)
    monkeypatch.setenv("CONTAINERS_CONF", str(conf))
    monkeypatch.setenv("HOME", str(tmp_path))  # no user's file
    got = podman._conf_value("containers", "seccomp_profile")
    if value is not None:
        assert got == value
    else:  # the system's files may still name one; never this file's wrong section
        assert got != "/wrong-section.json"


def test_a_broken_conf_is_passed_over(tmp_path, monkeypatch):
    conf = tmp_path / "containers.conf"
    conf.write_bytes(b"[containers]\nseccomp_profile = \n")
    monkeypatch.setenv("CONTAINERS_CONF", str(conf))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert podman._conf_value("containers", "seccomp_profile") != ""


def test_cdi_dirs_from_a_conf_that_lists_them(tmp_path, monkeypatch):
    conf = tmp_path / "containers.conf"
    conf.write_bytes(b'[engine]\ncdi_spec_dirs = ["/my/cdi"]\n')
    monkeypatch.setenv("CONTAINERS_CONF", str(conf))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert [str(d) for d in podman.cdi_dirs()] == ["/my/cdi"]
    conf.write_bytes(b'[engine]\n# cdi_spec_dirs = ["/my/cdi"]\n')
    assert [str(d) for d in podman.cdi_dirs()] != ["/my/cdi"]


def test_sha256_is_hashlib_s():
    for data in (b"", b"abc", bytes(range(256)) * 300):
        assert files.sha256_hex(data) == hashlib.sha256(data).hexdigest()
