"""Docker: the engine's CLI, with docker's GPU flag and docker's error hints."""

from am.backends.engine import Engine
from am.errors import AmError

TOOLKIT_HINT = ("install the NVIDIA Container Toolkit, run 'sudo nvidia-ctk runtime configure "
                "--runtime=docker' and restart docker; or leave out --gpus")


class Docker(Engine):
    runtime = "docker"
    title = "Docker"
    install_hint = "install it, e.g. 'apt-get install docker.io'"
    daemon_hint = "start it: 'sudo systemctl start docker' (or run dockerd)"
    permission_hint = "add yourself to the docker group: 'sudo usermod -aG docker $USER', " \
                      "then log in again"

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
            return AmError("Docker has no GPU support configured (no NVIDIA device driver in "
                           "the daemon)", TOOLKIT_HINT)
        if "nvidia-container-cli" in low or "nvml" in low:
            line = next((ln for ln in text.splitlines()
                         if "nvidia" in ln.lower() or "nvml" in ln.lower()), "")
            return AmError(f"Docker could not give the container a GPU: {line.strip()}",
                           "check the NVIDIA driver with 'nvidia-smi' on the host")
        return None
