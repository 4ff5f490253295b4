"""Docker: the engine's CLI, with docker's GPU flag and docker's error hints."""

from am.backends.engine import Engine


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
        value = gpus if gpus == "all" or gpus.isdigit() else f'"device={gpus}"'
        return ["--gpus", value]
