"""Pure parts of the agent image: CLI names, labels, the credential copy, the build files."""

import json
import subprocess

import pytest

from am import config, image
from am.backends.docker import Docker
from am.backends.engine import CONFIG_STAGE, with_config_copies
from am.backends.podman import Podman
from am.errors import AmError


def test_known_clis_are_the_locked_folders():
    assert image.known_clis() == ["aider", "claude", "codex", "gemini"]
    for cli in ("claude", "codex", "gemini"):
        assert (image.data_root() / "scripts/agent-clis" / cli / "package-lock.json").is_file()
    assert (image.data_root() / "scripts/agent-clis/aider/requirements.txt").is_file()


def test_parse_clis_sorts_dedupes_and_refuses_unknown_names():
    assert image.parse_clis("gemini,claude claude") == ["claude", "gemini"]
    assert image.parse_clis("") == []
    with pytest.raises(AmError) as e:
        image.parse_clis("claude,cursor", "AM_AGENT_CLIS")
    assert "AM_AGENT_CLIS" in e.value.message and "cursor" in e.value.message
    assert "aider, claude, codex, gemini" in e.value.hint


def test_extra_cli_dirs_are_searched(tmp_path, monkeypatch):
    (tmp_path / "mycli").mkdir()
    monkeypatch.setenv("AM_AGENT_CLI_DIRS", str(tmp_path))
    assert "mycli" in image.known_clis() and image.parse_clis("mycli") == ["mycli"]


def test_labels_say_which_clis_an_image_holds():
    assert image.clis_of({"am.agent-clis": "codex,claude"}) == ["claude", "codex"]
    assert image.clis_of({"am.agent-clis": ""}) == []
    assert image.clis_of({"other": "x"}) is None and image.clis_of(None) is None


def test_needed_cli_is_the_profiles_known_command():
    assert image.needed_cli(["codex", "--x"]) == "codex"
    assert image.needed_cli(["sh", "-c", "codex"]) is None  # --cmd: not ours to check
    assert image.needed_cli(["my-agent"]) is None and image.needed_cli([]) is None


def test_agent_clis_setting_accepts_a_list_or_a_comma_string(tmp_path):
    from am.paths import Layout

    layout = Layout(tmp_path, tmp_path / "s", tmp_path / "a", tmp_path / "d", tmp_path)
    cfg = config.load(layout, {"AM_AGENT_CLIS": "codex,claude"})
    assert cfg.resolve()["agent_clis"].value == ["claude", "codex"]
    (tmp_path / "config.toml").write_text('agent_clis = ["gemini"]\n')
    assert config.load(layout, {}).resolve()["agent_clis"].value == ["gemini"]
    (tmp_path / "config.toml").write_text('agent_clis = ["Bad Name"]\n')
    with pytest.raises(AmError):
        config.load(layout, {})


def test_credential_copy_runs_the_command_after_the_files(tmp_path):
    argv = with_config_copies([".claude/.credentials.json"], ["claude", "--x"])
    assert argv[:2] == ["sh", "-c"] and argv[3:] == [
        "am-config",
        "1",
        ".claude/.credentials.json",
        "claude",
        "--x",
    ]
    assert with_config_copies([], ["claude"]) == ["claude"]
    # The script, run by a real sh with the stage elsewhere: copies into HOME (0600), says
    # what it could not copy, then runs the command (whose arguments may look like options).
    stage, home = tmp_path / "stage", tmp_path / "home"
    (stage / ".c").mkdir(parents=True)
    (stage / ".c" / "cred").write_text("TOKEN")
    home.mkdir()
    argv = with_config_copies(
        [".c/cred", ".missing"], ["sh", "-c", 'cat "$HOME/.c/cred"; echo " $1"', "x", "--"]
    )
    script = argv[2].replace(CONFIG_STAGE, str(stage))
    out = subprocess.run(
        [*argv[:2], script, *argv[3:]],
        capture_output=True,
        text=True,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout == "TOKEN --\n", out
    assert "cannot copy ~/.missing" in out.stderr
    assert (home / ".c" / "cred").stat().st_mode & 0o777 == 0o600


def test_agent_home_belongs_to_the_agent():
    assert "uid=2000000000,gid=2000000000" in Docker().home_owner(0, 0)  # as root: no account
    assert "uid=1234,gid=99" in Docker().home_owner(1234, 99)
    assert Podman().home_owner(0, 0).endswith(",U")


def test_podmans_image_file_is_found_only_from_an_overlay_layer():
    from am.imagecache import parse, store_file

    layer = "/var/lib/containers/storage/overlay/0a1b/diff"
    want = "/var/lib/containers/storage/overlay-images/images.json"
    assert store_file({"Name": "overlay", "Data": {"UpperDir": layer}}) == want
    for odd in (
        None,
        {"Name": "vfs", "Data": {"UpperDir": layer}},
        {"Name": "overlay", "Data": {}},
        {"Name": "overlay", "Data": {"UpperDir": "relative/overlay/0a1b/diff"}},
        {"Name": "overlay", "Data": {"UpperDir": "/s/elsewhere/0a1b/diff"}},
    ):
        assert store_file(odd) is None, odd
    driver = json.dumps({"Name": "overlay", "Data": {"UpperDir": layer}})
    assert parse('{"a":"b"}\t' + driver) == ({"a": "b"}, want)
    assert parse("null\t" + driver) == ({}, want)
    assert parse("not json") == ({}, None)


def test_a_guessed_image_file_holds_no_label_until_podman_confirms_it(tmp_path):
    from am.imagecache import LabelCache, default_store

    real = tmp_path / "images.json"
    real.write_text("[]")
    cache = LabelCache(tmp_path / "labels.json")
    assert cache.store == default_store()
    cache.put("img", {"a": "1"}, str(real))  # podman's answer names another file
    again = LabelCache(tmp_path / "labels.json")
    assert again.store == str(real) and again.get("img") is None  # learnt, nothing kept
    again.put("img", {"a": "1"}, str(real))
    assert LabelCache(tmp_path / "labels.json").get("img") == {"a": "1"}
    real.write_text("[{}]")  # podman changed its images
    assert LabelCache(tmp_path / "labels.json").get("img") is None


def test_a_label_cache_of_another_shape_or_context_is_not_read(tmp_path, monkeypatch):
    from am.imagecache import LabelCache, context, parse, stamp

    real = tmp_path / "images.json"
    real.write_text("[]")
    file = tmp_path / "labels.json"
    cache = LabelCache(file)
    cache.store = str(real)
    cache.before = stamp(str(real))
    cache.put("img", {"a": "1"}, str(real))
    kept = json.loads(file.read_text())
    assert kept["context"] == context() and LabelCache(file).get("img") == {"a": "1"}  # control
    for shape in ([1], "x", {"img": {"stamp": [1], "labels": {"a": 5}}}, {"img": 3}):
        file.write_text(json.dumps({**kept, "images": shape}))
        assert LabelCache(file).get("img") is None, shape  # no traceback, no labels
    file.write_text(json.dumps(kept))
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(tmp_path / "other.conf"))
    assert LabelCache(file).store != str(real)  # another store is named: start over
    assert parse('{"a":"b"}\t{"Name":"overlay","Data":"x"}') == ({"a": "b"}, None)
