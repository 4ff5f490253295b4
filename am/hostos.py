"""The one place am asks whether it may use what only a Linux host next to its engine has.

Linux-only calls — ``/proc/<pid>/cgroup`` and the cgroup files (the OOM and process-limit
watch), ``os.eventfd``, ``/proc/self/fd/N/...`` paths (sockets and files reached through a
folder's descriptor) — run only where ``linux()`` says so; elsewhere (macOS, where the engine
lives in a VM) and for an engine on another machine (``local_engine``), am takes what the
engine itself reports: ``inspect``, ``stats``, ``events``. ``AM_PORTABLE=1`` forces that
engine-side way on Linux too, which is how the tests cover it (docs/scale.md).
"""

import os
import sys


def linux() -> bool:
    """Whether the Linux-only calls are allowed here."""
    return sys.platform.startswith("linux") and os.environ.get("AM_PORTABLE") != "1"


def local_engine(api: dict | None) -> bool:
    """Whether an engine reached at API (``engineapi.Endpoint.to_json()``; None: a local
    podman) runs its containers on this host, so their cgroups and processes are visible
    here. A unix socket is taken as local; tcp as remote, even on loopback."""
    if not linux():
        return False
    return api is None or str(api.get("url", "")).startswith("unix://")
