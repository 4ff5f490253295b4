"""GPUs: the composed engine arguments, and what happens on this host when an agent asks."""

import shutil
import subprocess

import pytest
from containers import ENGINES, engine_ready, remove_containers
from helpers import agent_files

from am import plan
from am.backends.docker import Docker
from am.backends.podman import Podman, has_gpu_cdi_spec
from am.errors import AmError


@pytest.mark.parametrize(
    ("gpus", "docker", "podman"),
    [
        (None, [], []),
        ("all", ["--gpus", "all"], ["--device", "nvidia.com/gpu=all"]),
        ("2", ["--gpus", "2"], ["--device", "nvidia.com/gpu=0", "--device", "nvidia.com/gpu=1"]),
        (
            "0,1",
            ["--gpus", '"device=0,1"'],
            ["--device", "nvidia.com/gpu=0", "--device", "nvidia.com/gpu=1"],
        ),
        ("device=3", ["--gpus", '"device=3"'], ["--device", "nvidia.com/gpu=3"]),
        (
            "GPU-3a4b-c5d6",
            ["--gpus", '"device=GPU-3a4b-c5d6"'],
            ["--device", "nvidia.com/gpu=GPU-3a4b-c5d6"],
        ),
    ],
)
def test_gpu_args(gpus, docker, podman):
    if gpus:
        assert plan.check_gpus(gpus) == gpus
    assert Docker().gpu_args(gpus) == docker
    assert Podman().gpu_args(gpus) == podman


def test_gpu_args_land_before_the_image():
    class P:
        id, container, network, network_name, image = "x", "am-x", "none", "none", "img"
        limits = {"memory": "1g", "cpus": "1", "pids": 10}
        workspace, extra_mounts, env_names, command = "/w", [], [], ["true"]
        config_copies = []
        gpus, env, publish, isolation = "all", {}, [], "runc"
        volume = None  # a local engine's workspace is a host folder

        @staticmethod
        def agent_argv():
            return ["true"]

    for eng, arg in ((Docker(), "--gpus"), (Podman(), "--device")):
        argv = eng.run_argv(P, "/h", 1000, 1000)
        assert argv.index(arg) < argv.index("--") < argv.index("img")


@pytest.mark.parametrize("bad", ["0", "", "all,1", "-1", "1 2", "device=", "a;b", "0,,1"])
def test_bad_gpus_refused(bad):
    with pytest.raises(AmError, match="--gpus"):
        plan.check_gpus(bad)


def test_cdi_spec_detection(tmp_path):
    assert not has_gpu_cdi_spec([tmp_path / "none", tmp_path])
    (tmp_path / "other.yaml").write_text("kind: example.com/fpga\n")
    assert not has_gpu_cdi_spec([tmp_path])
    (tmp_path / "nvidia.yaml").write_text('cdiVersion: "0.5.0"\nkind: nvidia.com/gpu\n')
    assert has_gpu_cdi_spec([tmp_path])


def test_gpu_failure_texts_are_translated():
    d = Docker().gpu_error(
        'docker: Error response from daemon: could not select device driver ""'
        " with capabilities: [[gpu]].\n\nRun 'docker run --help'\n"
    )
    assert d and "Docker has no GPU support configured" in d.message and "nvidia-ctk" in d.hint
    p = Podman().gpu_error(
        "Error: setting up CDI devices: unresolvable CDI devices nvidia.com/gpu=all\n"
    )
    assert p and "Podman has no GPU support configured" in p.message
    assert Docker().gpu_error("some other failure") is None
    assert Podman().gpu_error("some other failure") is None


def host_has_gpu() -> bool:
    nvsmi = shutil.which("nvidia-smi")
    return bool(nvsmi) and subprocess.run([nvsmi, "-L"], capture_output=True).returncode == 0


@pytest.mark.container
@pytest.mark.parametrize("engine", ENGINES)
def test_gpu_agent_on_this_host(am, repo, engine):
    """With a GPU (nvidia-smi works) the agent sees it; without one, this host has no GPU
    support in the engine, and am must refuse with its clear error, leaving nothing behind."""
    engine_ready(engine)
    try:
        res = am(
            "spawn",
            repo,
            "--container",
            "--runtime",
            engine,
            "--gpus",
            "all",
            "--cmd",
            "nvidia-smi -L; echo GPU-DONE; sleep 300",
            check=False,
        )
        if host_has_gpu():
            assert res.returncode == 0, res.stderr
            agent = res.stdout.split()[-1]
            log = am.wait_log(agent, "GPU-DONE")
            assert "GPU 0" in log
            am("stop", agent)
            return
        print(f"no GPU on this host: checking that {engine} refuses clearly")
        assert res.returncode != 0 and "Traceback" not in res.stderr
        errors = [ln for ln in res.stderr.splitlines() if ln.startswith("am: error:")]
        assert len(errors) == 1, res.stderr
        title = {"docker": "Docker", "podman": "Podman"}[engine]
        assert f"{title} has no GPU support configured" in errors[0], errors[0]
        assert "nvidia-ctk" in errors[0]
        agents = am.home / "agents"
        assert not agents.exists() or not any(agents.iterdir())
        assert am.list() == []
        assert agent_files(am.home) == set()  # docker fails after the session started
    finally:
        remove_containers(engine, str(am.home))


@pytest.mark.container
@pytest.mark.parametrize("engine", ENGINES)
def test_engine_own_gpu_failure_is_recognised(engine):
    """The engine run directly with am's GPU arguments (podman's CDI check in am would
    otherwise answer first): where it refuses, gpu_error recognises the refusal."""
    engine_ready(engine)
    eng = {"docker": Docker, "podman": Podman}[engine]()
    res = subprocess.run(
        [
            engine,
            "run",
            "--rm",
            "--pull",
            "never",
            "--network",
            "none",
            *eng.gpu_args("all"),
            "am-agent:latest",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if host_has_gpu():
        assert res.returncode == 0, res.stderr  # and then there is nothing to translate
        return
    assert res.returncode != 0
    err = eng.gpu_error(res.stderr)
    assert err is not None, res.stderr
    assert "has no GPU support configured" in err.message
