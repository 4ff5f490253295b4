"""The config file and AM_* variables: precedence, errors, agent profiles, credential warnings."""

import json

import pytest
from helpers import assert_am_error, assert_nothing_made

from am import config, plan, profiles
from am.errors import AmError


def write_config(am, text: str):
    am.home.mkdir(parents=True, exist_ok=True)
    path = am.home / "config.toml"
    path.write_text(text)
    return path


def shown(am, *flags, env=None) -> dict:
    data = json.loads(am("config", "show", "--json", *flags, env=env).stdout)
    return {k: (v["value"], v["source"]) for k, v in data["settings"].items()}


def test_defaults_without_a_file(am):
    data = json.loads(am("config", "show", "--json").stdout)
    assert data["file"] == str(am.home / "config.toml") and data["file_exists"] is False
    s = {k: (v["value"], v["source"]) for k, v in data["settings"].items()}
    assert s["runtime"] == ("auto", "default")
    assert s["agent"] == ("claude", "default")
    assert s["image"] == ("am-agent:latest", "default")
    assert s["network"] == ("none", "default")
    assert s["isolation"] == ("runc", "default")
    assert s["limits.memory"] == ("2g", "default")
    assert s["limits.cpus"] == ("2", "default")
    assert s["limits.pids"] == (100, "default")
    assert s["idle_after"] == (600, "default")
    assert set(data["agents"]) >= {"claude", "codex", "aider", "gemini"}


def test_precedence_flag_over_env_over_file_over_default(am):
    write_config(am, 'runtime = "docker"\n[limits]\nmemory = "1g"\ncpus = 1.5\npids = 64\n')
    s = shown(am)
    assert s["runtime"] == ("docker", "file")
    assert s["limits.memory"] == ("1g", "file")
    assert s["limits.cpus"] == ("1.5", "file")
    assert s["limits.pids"] == (64, "file")
    assert s["image"] == ("am-agent:latest", "default")

    env = {"AM_RUNTIME": "podman", "AM_CPUS": "1", "AM_PIDS": "32"}
    s = shown(am, env=env)
    assert s["runtime"] == ("podman", "env")
    assert s["limits.cpus"] == ("1", "env") and s["limits.pids"] == (32, "env")
    assert s["limits.memory"] == ("1g", "file")

    s = shown(am, "--pids", "16", "--runtime", "docker", env=env)
    assert s["limits.pids"] == (16, "flag") and s["runtime"] == ("docker", "flag")

    write_config(am, 'isolation = "gvisor"\n')
    assert shown(am)["isolation"] == ("gvisor", "file")
    assert shown(am, env={"AM_ISOLATION": "runc"})["isolation"] == ("runc", "env")
    assert shown(am, "--isolation", "runc")["isolation"] == ("runc", "flag")
    assert s["limits.cpus"] == ("1", "env") and s["limits.memory"] == ("1g", "file")


def test_text_output_names_sources(am):
    path = write_config(am, '[limits]\nmemory = "3g"\n')
    out = am("config", "show", "--cpus", "1", env={"AM_PIDS": "7"}).stdout
    assert f"config file: {path}" in out
    lines = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip()}
    assert f"file ({path})" in lines["limits.memory"]
    assert "env (AM_PIDS)" in lines["limits.pids"]
    assert "flag (--cpus)" in lines["limits.cpus"]
    assert lines["runtime"].split()[-1] == "default"


@pytest.mark.parametrize(
    ("text", "key", "accepted"),
    [
        ('runtime = "dockr"', "runtime", "docker, podman, auto"),
        ('memroy = "2g"', "memroy", "limits"),
        ('[limits]\nmemory = "0"', "limits.memory", "512m"),
        ("[limits]\nmemory = 2", "limits.memory", "2g"),
        ("[limits]\ncpus = -1", "limits.cpus", "positive number"),
        ('[limits]\npids = "abc"', "limits.pids", "whole number"),
        ("[limits]\npids = true", "limits.pids", "whole number"),
        ('[limits]\nswap = "1g"', "limits.swap", "limits.memory"),
        ('network = "open"', "network", "none, limited, full"),
        ('isolation = "kata"', "isolation", "runc, gvisor"),
        ("idle_after = 0", "idle_after", "positive number of seconds"),
        ('allow_domains = ["not a domain"]', "allow_domains", "host names"),
        ('agent = "nobody"', "agent", "claude"),
        ('limits = "2g"', "limits", "memory, cpus, pids"),
        ('[agents.mine]\ncommand = "mine"', "agents.mine.command", "list of strings"),
        ('[agents.mine]\nenv_names = ["X"]', "agents.mine", "command"),
        ('[agents.mine]\ncommand = ["mine"]\ncolour = 1', "colour", "env_names"),
        (
            '[agents.mine]\ncommand = ["m"]\nenv_names = ["1X"]',
            "agents.mine.env_names",
            "variable names",
        ),
    ],
)
def test_bad_value_names_file_key_and_accepted_values(am, repo, text, key, accepted):
    path = write_config(am, text + "\n")
    for args in (["config", "show"], ["list"], ["spawn", repo, "--cmd", "true"]):
        res = am(*args, check=False)
        line = assert_am_error(res)
        assert str(path) in line and key in line and accepted in line, line
        assert len([ln for ln in res.stderr.splitlines() if ln.startswith("am: error:")]) == 1
    assert_nothing_made(am.home)


def test_toml_syntax_error(am, repo):
    path = write_config(am, 'runtime = "docker\n[limits\n')
    line = assert_am_error(am("config", "show", check=False))
    assert f"{path} is not valid TOML" in line and "line 1" in line
    assert_am_error(am("spawn", repo, "--cmd", "true", check=False))
    assert_nothing_made(am.home)


@pytest.mark.parametrize(
    ("var", "value", "accepted"),
    [
        ("AM_RUNTIME", "dockr", "docker, podman, auto"),
        ("AM_MEMORY", "0", "512m"),
        ("AM_CPUS", "many", "positive number"),
        ("AM_PIDS", "-3", "whole number"),
        ("AM_NETWORK", "open", "none, limited, full"),
        ("AM_IDLE_AFTER", "soon", "seconds"),
        ("AM_AGENT", "nobody", "claude"),
        ("AM_ISOLATION", "vm", "runc, gvisor"),
    ],
)
def test_bad_environment_variable(am, repo, var, value, accepted):
    line = assert_am_error(am("spawn", repo, "--cmd", "true", check=False, env={var: value}))
    assert var in line and accepted in line, line
    assert_nothing_made(am.home)


def test_config_limits_checked_before_anything_starts(am, repo):
    path = write_config(am, '[limits]\nmemory = "100000g"\n')
    line = assert_am_error(am("spawn", repo, "--container", "--cmd", "true", check=False))
    assert f"limits.memory in {path}" in line and "more than this host has" in line
    write_config(am, "[limits]\ncpus = 1\n")
    line = assert_am_error(
        am("spawn", repo, "--container", "--cmd", "true", check=False, env={"AM_CPUS": "4096"})
    )
    assert "AM_CPUS" in line and "more than this host has" in line
    assert_nothing_made(am.home)
    # a flag still wins over the file, and is itself checked
    line = assert_am_error(
        am("spawn", repo, "--container", "--memory", "0", "--cmd", "true", check=False)
    )
    assert "--memory" in line
    assert_nothing_made(am.home)


def test_container_settings_in_the_file_do_not_affect_tmux_agents(am, repo):
    write_config(
        am,
        'runtime = "docker"\nnetwork = "full"\nimage = "x:y"\n'
        'isolation = "gvisor"\n[limits]\nmemory = "1g"\n',
    )
    agent = am.spawn(repo, "--cmd", "sleep 30", env={"AM_PIDS": "10"})
    info = am.info(agent)
    assert info["mode"] == "tmux" and info["limits"] is None and info["runtime"] is None
    assert info["network"] is None and info["image"] is None and info["isolation"] is None
    am("stop", agent)


def test_agent_profile_from_the_file(am, repo):
    write_config(
        am,
        'agent = "greeter"\n[agents.greeter]\n'
        'command = ["sh", "-c", "echo hello from $0; sleep 30", "greeter"]\n'
        'skip_permissions_flag = "--yes"\nenv_names = ["GREETER_KEY"]\n',
    )
    res = am("spawn", repo, env={"GREETER_KEY": "k"})
    agent = res.stdout.strip().splitlines()[-1]
    assert "am: warning" not in res.stderr
    info = am.info(agent)
    assert info["agent"] == "greeter" and info["command"][:2] == ["sh", "-c"]
    assert info["env_names"] == ["GREETER_KEY"]  # passed by name, automatically
    am.wait_log(agent, "hello from greeter")
    am("stop", agent)


def test_credential_warning(am, repo):
    write_config(
        am,
        '[agents.keyed]\ncommand = ["sh", "-c", "sleep 30"]\nenv_names = ["KEYED_A", "KEYED_B"]\n',
    )
    res = am("spawn", repo, "--agent", "keyed")
    warnings = [ln for ln in res.stderr.splitlines() if ln.startswith("am: warning")]
    assert len(warnings) == 1 and "KEYED_A, KEYED_B" in warnings[0], res.stderr
    am("stop", res.stdout.split()[-1])
    res = am("spawn", repo, "--agent", "keyed", "--env", "KEYED_B=x")
    assert "am: warning" not in res.stderr
    am("stop", res.stdout.split()[-1])
    res = am("spawn", repo, "--agent", "keyed", "--cmd", "sleep 30")  # --cmd: no profile CLI
    assert "am: warning" not in res.stderr
    am("stop", res.stdout.split()[-1])


def test_mount_agent_config_is_refused_where_it_cannot_apply(am, repo, tmp_path):
    line = assert_am_error(am("spawn", repo, "--mount-agent-config", "--cmd", "true", check=False))
    assert "--mount-agent-config" in line and "container" in line
    line = assert_am_error(
        am("spawn", repo, "--container", "--mount-agent-config", "--cmd", "true", check=False)
    )
    assert "agent profile" in line
    line = assert_am_error(
        am(
            "spawn",
            repo,
            "--container",
            "--agent",
            "codex",
            "--mount-agent-config",
            "--cmd",
            "true",
            check=False,
            env={"HOME": str(tmp_path)},
        )
    )
    assert "~/.codex" in line
    assert_nothing_made(am.home)


# --- pure units -------------------------------------------------------------------------------


def load(tmp_path, text, environ=None):
    (tmp_path / "config.toml").write_text(text)

    class L:
        config_file = tmp_path / "config.toml"

    return config.load(L(), environ or {})


def test_file_profile_overrides_a_builtin_and_keeps_the_rest(tmp_path):
    cfg = load(tmp_path, '[agents.claude]\ncommand = ["claude", "--model", "opus"]\n')
    p = cfg.profile("claude")
    assert p.command == ("claude", "--model", "opus")
    assert p.env_names == profiles.BUILTIN["claude"].env_names
    assert p.skip_permissions_flag == "--dangerously-skip-permissions"


def test_allow_domains_are_normalised(tmp_path):
    cfg = load(tmp_path, 'allow_domains = ["PyPI.org", "*.Example.com"]\n')
    assert cfg.resolve()["allow_domains"].value == ["pypi.org", "*.example.com"]


def test_check_limits_labels_name_the_source():
    with pytest.raises(AmError, match=r"limits.memory in /c.toml '0'"):
        plan.check_limits("0", "1", "1", labels={"memory": "limits.memory in /c.toml"})
    with pytest.raises(AmError, match="AM_PIDS"):
        plan.check_limits("1g", "1", "0", labels={"pids": "AM_PIDS"})
    with pytest.raises(AmError, match="AM_CPUS '3' is more than this host has"):
        plan.check_limits("1g", "3", "1", host_cpus=2, labels={"cpus": "AM_CPUS"})
    with pytest.raises(AmError, match="invalid --cpus 'inf'"):
        plan.check_limits("1g", "inf", "1")


def test_logs_max_size_from_file_and_environment(tmp_path):
    assert load(tmp_path, "").resolve()["logs.max_size"].value == plan.DEFAULT_LOG_MAX_SIZE
    assert plan.memory_bytes(plan.DEFAULT_LOG_MAX_SIZE) == plan.DEFAULT_LOG_MAX
    cfg = load(tmp_path, '[logs]\nmax_size = "64M"\n')
    assert cfg.resolve()["logs.max_size"].value == "64m"
    cfg = load(tmp_path, "", {"AM_LOG_MAX_SIZE": "1g"})
    assert cfg.resolve()["logs.max_size"].source == "env"
    for bad in ('"10k"', "1000000", '"lots"'):
        with pytest.raises(AmError, match=r"invalid logs.max_size in .*config.toml") as e:
            load(tmp_path, f"[logs]\nmax_size = {bad}\n")
        assert "at least 64k" in e.value.hint
    with pytest.raises(AmError, match="AM_LOG_MAX_SIZE"):
        load(tmp_path, "", {"AM_LOG_MAX_SIZE": "1"})
