"""An image's labels, remembered while a local podman's image store is unchanged.

Every container spawn checks the image's labels (which agent CLIs it holds) before anything
is made. A podman client costs 40-50 ms of CPU here, and 50 agents spawned at once pay it 50
times. Podman keeps every image's names and metadata in one file, ``<graphroot>/<driver>-
images/images.json``, which it rewrites whenever an image is built, pulled, tagged, untagged
or removed. So a label read once stays true while that file's stamp (device, inode, size,
modification time) is the one taken before the read; any change asks podman again.

The file's place is podman's default, confirmed by an answer of podman's own
(``.GraphDriver``: an overlay layer's ``<graphroot>/overlay/<layer>/diff``), or else learnt
from that answer. Stale labels could only cost a check's message (the engine runs the image
it has, or reports that it has none): no decision about what an agent may reach is taken from
here.
"""

import json
import os
from pathlib import Path

from am import files

# The fields of os.stat that change when podman rewrites its image file (in place or not).
STAMP_FIELDS = ("st_dev", "st_ino", "st_size", "st_mtime_ns")
INSPECT_FORMAT = "{{json .Config.Labels}}\t{{json .GraphDriver}}"


def store_file(graph_driver: object) -> str | None:
    """Podman's image file for the store an image's GRAPH_DRIVER (``.GraphDriver``) names;
    None for a driver or shape not known here."""
    if not isinstance(graph_driver, dict) or graph_driver.get("Name") != "overlay":
        return None
    data = graph_driver.get("Data")
    upper = data.get("UpperDir") if isinstance(data, dict) else None
    if not isinstance(upper, str) or not upper.startswith("/"):
        return None
    diff = Path(upper)
    if diff.name != "diff" or diff.parent.parent.name != "overlay":
        return None
    return str(diff.parent.parent.parent / "overlay-images" / "images.json")


def default_store() -> str:
    """Where podman keeps its image file unless storage.conf says otherwise: a first guess,
    which the first answer confirms (``LabelCache.put``) before any label is kept under it."""
    if os.getuid() == 0:
        root = "/var/lib/containers/storage"
    else:
        data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
        root = os.path.join(data, "containers", "storage")
    return os.path.join(root, "overlay-images", "images.json")


def storage_confs() -> list[str]:
    """The storage.conf files podman reads for this user, the first found winning."""
    home = os.path.expanduser("~")
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    return [
        *filter(None, [os.environ.get("CONTAINERS_STORAGE_CONF")]),
        os.path.join(config, "containers", "storage.conf"),
        "/etc/containers/storage.conf",
        "/usr/share/containers/storage.conf",
    ]


def context() -> list:
    """What decides where podman keeps its images for this call: the user, the variables that
    move the store, and the stamps of the storage.conf files. A cache kept under another
    context is not read (a shared AM_HOME, an edited graphroot)."""
    names = ("CONTAINERS_STORAGE_CONF", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "HOME")
    return [
        os.getuid(),
        [os.environ.get(n) for n in names],
        [stamp(conf) for conf in storage_confs()],
    ]


def stamp(path: str) -> list[int] | None:
    """PATH's stamp, None when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [getattr(st, f) for f in STAMP_FIELDS]


def parse(text: str) -> tuple[dict, str | None]:
    """An inspect's answer in INSPECT_FORMAT: the labels ({} for none) and the store file."""
    labels_text, _, driver_text = text.strip().partition("\t")
    try:
        labels = json.loads(labels_text) or {}
    except ValueError:
        labels = {}
    try:
        driver = json.loads(driver_text) if driver_text else None
    except ValueError:
        driver = None
    return (labels if isinstance(labels, dict) else {}), store_file(driver)


def text_labels(labels: object) -> bool:
    """Whether LABELS are labels as an engine gives them: text names, text values."""
    return isinstance(labels, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    )


class LabelCache:
    """Labels per image reference in FILE, with the store file and its stamp they hold for."""

    def __init__(self, file: Path):
        self.file = file
        self.context = context()
        data = files.read_json_dict(file) or {}
        self.data = data if data.get("context") == self.context else {}
        store = self.data.get("store")
        images = self.data.get("images")
        self.images = images if isinstance(images, dict) else {}
        self.store = store if isinstance(store, str) else default_store()
        # Taken before podman is asked, so a change during the call is never hidden.
        self.before = stamp(self.store) if self.store else None

    def get(self, image: str) -> dict | None:
        """IMAGE's labels when they were read under the store's present stamp."""
        entry = self.images.get(image)
        if self.before is None or not isinstance(entry, dict):
            return None
        labels = entry.get("labels")
        return labels if entry.get("stamp") == self.before and text_labels(labels) else None

    def put(self, image: str, labels: dict, store: str | None) -> None:
        """Remember LABELS of IMAGE, read from podman after this cache was opened, when STORE
        is the file whose stamp was taken then; else learn STORE for the next time."""
        if store is None:
            return
        if store != self.store or self.before is None or not text_labels(labels):
            data = {"context": self.context, "store": store, "images": {}}
        else:
            images = {
                k: v
                for k, v in self.images.items()
                if isinstance(v, dict) and v.get("stamp") == self.before
            }
            data = {
                "context": self.context,
                "store": store,
                "images": {**images, image: {"stamp": self.before, "labels": labels}},
            }
        files.write_cache(self.file, json.dumps(data))
