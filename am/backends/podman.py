"""Podman: the engine's CLI, with rootless user mapping, CDI GPUs and podman's error hints."""

from am.backends.engine import IMAGE_UID, Engine


class Podman(Engine):
    runtime = "podman"
    title = "Podman"
    install_hint = "install it, e.g. 'apt-get install podman runc'"
    daemon_hint = "start the Podman service or check CONTAINER_HOST / 'podman system connection'"
    permission_hint = "check the permissions of the Podman socket named by CONTAINER_HOST"

    def user_args(self, uid: int, gid: int) -> list[str]:
        if uid == 0:
            return ["--user", f"{IMAGE_UID}:{IMAGE_UID}"]
        # Rootless: map the caller to the same uid inside, so files in /workspace stay theirs.
        return ["--userns=keep-id", "--user", f"{uid}:{gid}"]

    def gpu_args(self, gpus: str | None) -> list[str]:
        if not gpus:
            return []
        if gpus == "all":
            ids = ["all"]
        elif gpus.isdigit():
            ids = [str(i) for i in range(int(gpus))]
        else:
            ids = [g.strip() for g in gpus.split(",") if g.strip()]
        return [a for i in ids for a in ("--device", f"nvidia.com/gpu={i}")]
