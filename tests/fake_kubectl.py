#!/usr/bin/env python3
"""A stand-in for kubectl that records every command line am sends (tests/test_kube_calls.py).

It is no cluster and claims nothing about one: it keeps the objects it was given in a JSON file
and answers just enough (a pod's status moving from its init container to its agent, and to the
agent's end when the test says so) for am's own code to go through each step. What a real API
server does with these commands is the cluster tier's to show (tests/cluster/).
"""

import fcntl
import json
import os
import re
import sys
import time

STATE = os.environ["FAKE_KUBE_STATE"]
PLURAL = {
    "Pod": "pods",
    "Service": "services",
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "NetworkPolicy": "networkpolicies",
    "PersistentVolumeClaim": "persistentvolumeclaims",
}


def locked(fn):
    with open(STATE + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(STATE) as f:
                state = json.load(f)
        except FileNotFoundError:
            state = {"calls": [], "objects": [], "delivered": 0, "ended": None}
        out = fn(state)
        with open(STATE + ".tmp", "w") as f:
            json.dump(state, f)
        os.replace(STATE + ".tmp", STATE)
        return out


def matches(labels: dict, selector: str) -> bool:
    for term in re.findall(r"[^,]+ in \([^)]*\)|[^,]+", selector):
        if " in (" in term:
            key, _, values = term.partition(" in (")
            if labels.get(key.strip()) not in values.rstrip(")").split(","):
                return False
        else:
            key, _, value = term.partition("=")
            if labels.get(key) != value:
                return False
    return True


def pod_json(obj: dict, state: dict) -> dict:
    name = obj["metadata"]["name"]
    init = obj["spec"].get("initContainers")
    status = {"containerStatuses": [], "initContainerStatuses": []}
    if init and state["delivered"] == 0:
        status["initContainerStatuses"] = [{"name": init[0]["name"], "state": {"running": {}}}]
    else:
        for c in obj["spec"]["containers"]:
            s = {"running": {}}
            if c["name"] == "agent" and state["ended"]:
                s = {"terminated": state["ended"]}
            status["containerStatuses"].append({"name": c["name"], "state": s})
    return {
        "kind": "Pod",
        "metadata": {"name": name, "labels": obj["metadata"]["labels"]},
        "status": status,
    }


def main(argv: list[str]) -> int:
    args = list(argv)
    while args and args[0] in ("--context", "--namespace"):
        args = args[2:]
    data = (
        sys.stdin.buffer.read()
        if ("create" in args[:1] or (args[:1] == ["exec"] and "--stdin" in args))
        else b""
    )
    locked(lambda s: s["calls"].append({"argv": argv, "stdin": len(data)}))
    cmd = args[:2]
    if cmd == ["config", "current-context"]:
        print("ctx-test")
    elif cmd == ["config", "view"]:
        print("team-a", end="")
    elif cmd == ["get", "pods"]:
        pass
    elif args[0] == "create":
        items = json.loads(data)["items"]

        def create(s):
            if s.get("refuse_create"):
                return False
            s["objects"] += items
            return True

        if not locked(create):
            print(
                f'Error from server (AlreadyExists): pods "{items[-1]["metadata"]["name"]}" '
                "already exists",
                file=sys.stderr,
            )
            return 1
        for o in items:
            print(f"{o['kind'].lower()}/{o['metadata']['name']}")
    elif cmd == ["get", "pod"]:

        def find(s):
            for o in s["objects"]:
                if o["kind"] == "Pod" and o["metadata"]["name"] == args[2]:
                    return pod_json(o, s)
            return None

        pod = locked(find)
        if pod:
            print(json.dumps(pod))
    elif args[0] == "exec":
        container = args[args.index("--container") + 1]
        if container == "am-seed":
            locked(lambda s: s.__setitem__("delivered", len(data)))
        elif "unsaved" in args:
            print(json.dumps({"changed": 0, "submodules": 0, "ahead": 0}))
    elif args[0] == "attach":
        pod = args[-3]
        while True:
            alive = locked(
                lambda s: (
                    not s["ended"]
                    and any(
                        o["kind"] == "Pod" and o["metadata"]["name"] == pod for o in s["objects"]
                    )
                )
            )
            if not alive:
                return 0
            time.sleep(0.1)
    elif args[0] == "delete":
        kinds = set(args[1].split(","))
        sel = args[args.index("--selector") + 1]

        def delete(s):
            s["objects"] = [
                o
                for o in s["objects"]
                if PLURAL[o["kind"]] not in kinds or not matches(o["metadata"]["labels"], sel)
            ]

        locked(delete)
    elif args[0] == "logs":
        pass
    else:
        print(f"fake kubectl: no answer for {args}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
