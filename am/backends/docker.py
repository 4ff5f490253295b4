"""Docker: the engine's CLI, with docker's GPU flag and docker's error hints."""

from am.backends.engine import Engine
from am.errors import AmError

TOOLKIT_HINT = (
    "install the NVIDIA Container Toolkit, run 'sudo nvidia-ctk runtime configure "
    "--runtime=docker' and restart docker; or leave out --gpus"
)


GVISOR_HINT = (
    "as root, run scripts/engines-up.sh of am's source: it registers runsc in "
    "/etc/docker/daemon.json and reloads dockerd (apt-get install runsc first); "
    "see 'Kernel isolation' in docs/security.md"
)


class Docker(Engine):
    runtime = "docker"
    title = "Docker"
    install_hint = "install it, e.g. 'apt-get install docker.io'"
    host_vars = ("DOCKER_HOST", "DOCKER_CONTEXT")
    local_daemon_hint = "start it: 'sudo systemctl start docker' (or run dockerd)"

    permission_hint = (
        "add yourself to the docker group: 'sudo usermod -aG docker $USER', then log in again"
    )
    _runtimes = None  # dockerd's registered runtimes, asked once

    def find_api(self, env):
        from am import engineapi

        def context_host(name: str) -> str | None:
            res = self.call(
                "context", "inspect", "--format", "{{.Endpoints.docker.Host}}", name, timeout=30
            )
            return res.out.strip() if res.ok else None

        return engineapi.docker_endpoint(env, context_host)

    limits_hint = (
        "run a rootful Docker daemon, or rootless Docker on a cgroup v2 host; or use "
        "--runtime podman as root"
    )

    def api_get(self, path: str) -> tuple[int, object] | None:
        """Status and JSON body of GET PATH on the daemon's API, the endpoint the CLI uses: a
        socket call, no client process (tens of ms of CPU each, which 50 concurrent spawns
        pay 50 times). None when it cannot be reached: the CLI, asked instead, says why."""
        import json

        from am import engineapi

        try:
            api = self.api
            if api is None:
                return None
            status, body = engineapi.call(api, "GET", path, timeout=30)
            return status, json.loads(body or b"null")
        except (OSError, ValueError, AmError):
            return None

    def find_limits_problem(self) -> str | None:
        from am import proc

        if proc.which(self.runtime) is None:  # the API answers, but 'create' needs the CLI
            raise AmError(f"{self.title} not found in PATH", self.install_hint)
        got = self.api_get("/info")
        if got and got[0] == 200 and isinstance(got[1], dict):
            info = got[1]
            flags = (info.get("MemoryLimit"), info.get("CpuCfsQuota"), info.get("PidsLimit"))
            return limits_verdict(" ".join(str(f is True).lower() for f in flags))
        res = self.call(
            "info", "--format", "{{.MemoryLimit}} {{.CPUCfsQuota}} {{.PidsLimit}}", timeout=30
        )
        if not res.ok:
            # A daemon that does not answer makes docker 20.10's 'info --format' print only a
            # template error; 'docker version' names the real cause.
            self.check()
            raise self.explain(res.err or res.out)
        return limits_verdict(res.out)

    def image_labels(self, image: str) -> dict | None:
        from urllib.parse import quote

        got = self.api_get(f"/images/{quote(image, safe='')}/json")
        if got and got[0] == 200 and isinstance(got[1], dict):
            return (got[1].get("Config") or {}).get("Labels") or {}
        if got and got[0] == 404:
            return None
        return super().image_labels(image)  # the CLI's own words for any other trouble

    def container_running(self, name: str) -> bool:
        from urllib.parse import quote

        got = self.api_get(f"/containers/{quote(name, safe='')}/json")
        if got and got[0] in (200, 404):
            doc = got[1] if got[0] == 200 and isinstance(got[1], dict) else {}
            return (doc.get("State") or {}).get("Running") is True
        return super().container_running(name)

    def start_container(self, name: str, options: list[str]):
        from urllib.parse import quote

        from am import engineapi, proc

        api = None if options else self.api  # options (none for docker today): the CLI's
        if api is not None:
            try:
                status, body = engineapi.call(
                    api, "POST", f"/containers/{quote(name, safe='')}/start", timeout=300
                )
            except OSError:
                pass
            else:
                if status in (204, 304):
                    return proc.Result(0, "", "")
                message = api_message(body, strict=True)
                if message is not None:  # docker's own refusal; anything else: ask the CLI
                    return proc.Result(1, "", message)
        return super().start_container(name, options)

    def gpu_args(self, gpus: str | None) -> list[str]:
        if not gpus:
            return []
        if gpus == "all" or gpus.isdigit():
            return ["--gpus", gpus]
        ids = gpus.removeprefix("device=")
        # docker reads --gpus as CSV: the quotes keep a list of ids one field.
        return ["--gpus", f'"device={ids}"']

    def gpu_error(self, text: str) -> AmError | None:
        # The daemon registers its GPU device driver only when it finds the NVIDIA hook at
        # start-up; whether it did cannot be asked (and the daemon may be remote), so the
        # run's own failure is translated instead of guessed at beforehand.
        low = text.lower()
        if "could not select device driver" in low:
            return AmError(
                "Docker has no GPU support configured (no NVIDIA device driver in the daemon)",
                TOOLKIT_HINT,
            )
        if "nvidia-container-cli" in low or "nvml" in low:
            line = next(
                (ln for ln in text.splitlines() if "nvidia" in ln.lower() or "nvml" in ln.lower()),
                "",
            )
            return AmError(
                f"Docker could not give the container a GPU: {line.strip()}",
                "check the NVIDIA driver with 'nvidia-smi' on the host",
            )
        return None

    def gvisor_problem(self, network: str) -> AmError | None:
        import json

        from am import isolation

        name = isolation.docker_runtime(network)
        if self._runtimes is None:
            res = self.call("info", "--format", "{{json .Runtimes}}", timeout=60)
            if not res.ok:
                return self.explain(res.err or res.out)
            try:
                self._runtimes = json.loads(res.out)
            except ValueError:
                self._runtimes = {}
        have = self._runtimes.get(name) if isinstance(self._runtimes, dict) else None
        if not isinstance(have, dict):
            return AmError(f"Docker has no gVisor runtime {name!r}", GVISOR_HINT)
        want = [f"--{f}" for f in isolation.RUNSC_FLAGS[network]]
        if sorted(have.get("runtimeArgs") or []) != sorted(want):
            return AmError(
                f"Docker's runtime {name!r} has runtimeArgs "
                f"{have.get('runtimeArgs') or []}, not {want}",
                GVISOR_HINT,
            )
        return None


def api_message(body: bytes, strict: bool = False) -> str | None:
    """The error message of a docker API answer (``{"message": ...}``), else its text; with
    STRICT, None for an answer that is not docker's (a TLS port spoken to in plain HTTP, a
    proxy's page), whose caller then asks the CLI."""
    import json

    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        return doc["message"]
    return None if strict else body.decode(errors="replace").strip()


def limits_verdict(info: str) -> str | None:
    """Why the daemon would ignore limits, from ``docker info``'s MemoryLimit, CPUCfsQuota and
    PidsLimit; None when it enforces all three (pure)."""
    flags = info.split()
    missing = [
        what
        for what, flag in zip(("memory", "CPU", "process"), flags, strict=False)
        if flag != "true"
    ]
    if len(flags) == 3 and not missing:
        return None
    return (
        f"the Docker daemon ignores {', '.join(missing) or 'the'} limits here "
        "('docker info' reports no support for them)"
    )
