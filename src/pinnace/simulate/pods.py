"""Pod status as a kubelet would write it, for pods no container runtime runs.

Pure functions over plain dicts: :class:`~pinnace.simulate.nodes.NodeSimulator`
decides *when* a pod starts, restarts, exits or is deleted; this module decides
*what* its status then looks like.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..api.times import now_time as now_iso
from ..kubelet.status import pod_condition

ANNOTATION_PREFIX = "sim.pinnace.io/"
START_DELAY = ANNOTATION_PREFIX + "start-delay"
EXIT_AFTER = ANNOTATION_PREFIX + "exit-after"
EXIT_CODE = ANNOTATION_PREFIX + "exit-code"
READY = ANNOTATION_PREFIX + "ready"


def annotation_float(pod: dict, key: str, default: float | None) -> float | None:
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return default
    return value if value >= 0 else default


def exit_code(pod: dict) -> int:
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(EXIT_CODE, "0")
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 1  # a garbled exit code is a failure, not a silent success


def wants_ready(pod: dict) -> bool:
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(READY, "true")
    return str(raw).strip().lower() not in ("false", "0", "no")


def restarts_on(pod: dict, code: int) -> bool:
    """Whether the kubelet would restart a container that exited with ``code``."""
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    return policy == "Always" or (policy == "OnFailure" and code != 0)


def image_id(image: str) -> str:
    return "simulated://sha256:" + hashlib.sha256(image.encode()).hexdigest()


def container_id(uid: str, name: str, restarts: int = 0) -> str:
    # A restarted container is a new container: give it a new ID, as a runtime would.
    return f"simulated://{uid}-{name}" + (f"-{restarts}" if restarts else "")


def _init_statuses(pod: dict, uid: str, started_at: str, terminated: bool) -> list[dict]:
    out = []
    for c in (pod.get("spec") or {}).get("initContainers") or []:
        cid = container_id(uid, c["name"])
        base = {"name": c["name"], "image": c.get("image", ""), "imageID": image_id(c.get("image", "")),
                "containerID": cid, "restartCount": 0, "lastState": {}}
        if c.get("restartPolicy") == "Always" and not terminated:
            # A sidecar: an init container that keeps running next to the app containers.
            out.append({**base, "ready": True, "started": True, "state": {"running": {"startedAt": started_at}}})
        else:
            out.append({**base, "ready": True, "started": False, "state": {"terminated": {
                "exitCode": 0, "reason": "Completed", "startedAt": started_at, "finishedAt": started_at,
                "containerID": cid}}})
    return out


def _base(pod: dict, host_ip: str, pod_ip: str, start_time: str) -> dict[str, Any]:
    ip = host_ip if (pod.get("spec") or {}).get("hostNetwork") else pod_ip
    return {"hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": ip, "podIPs": [{"ip": ip}],
            "startTime": start_time}


def running_status(pod: dict, *, host_ip: str, pod_ip: str, start_time: str, started_at: str, ready: bool,
                   restarts: int = 0, last_exit: tuple[int, str, str] | None = None) -> dict[str, Any]:
    """Status of a pod whose containers all run; ``last_exit`` = (code, startedAt, finishedAt)
    of the previous container instance after a restart."""
    now = now_iso()
    meta = pod.get("metadata") or {}
    uid = meta.get("uid", "")
    old = (pod.get("status") or {}).get("conditions") or []
    containers = (pod.get("spec") or {}).get("containers") or []
    statuses = []
    for c in containers:
        last: dict[str, Any] = {}
        if last_exit is not None:
            code, began, ended = last_exit
            last = {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                   "startedAt": began, "finishedAt": ended,
                                   "containerID": container_id(uid, c["name"], restarts - 1)}}
        statuses.append({"name": c["name"], "image": c.get("image", ""), "imageID": image_id(c.get("image", "")),
                         "containerID": container_id(uid, c["name"], restarts), "ready": ready, "started": True,
                         "restartCount": restarts, "lastState": last,
                         "state": {"running": {"startedAt": started_at}}})
    if ready:
        ready_conds = [pod_condition("Ready", "True", now, old), pod_condition("ContainersReady", "True", now, old)]
    else:
        names = " ".join(c["name"] for c in containers)
        msg = f"containers with unready status: [{names}]"
        ready_conds = [pod_condition("Ready", "False", now, old, "ContainersNotReady", msg),
                       pod_condition("ContainersReady", "False", now, old, "ContainersNotReady", msg)]
    status: dict[str, Any] = {
        "phase": "Running",
        **_base(pod, host_ip, pod_ip, start_time),
        "conditions": [pod_condition("PodReadyToStartContainers", "True", now, old),
                       pod_condition("Initialized", "True", now, old), *ready_conds,
                       pod_condition("PodScheduled", "True", now, old)],
        "containerStatuses": statuses,
    }
    inits = _init_statuses(pod, uid, start_time, terminated=False)
    if inits:
        status["initContainerStatuses"] = inits
    return status


def terminal_status(pod: dict, *, host_ip: str, pod_ip: str, start_time: str, started_at: str, code: int,
                    restarts: int = 0) -> dict[str, Any]:
    """Status of a pod whose containers all exited with ``code``: Succeeded on 0, else Failed."""
    now = now_iso()
    meta = pod.get("metadata") or {}
    uid = meta.get("uid", "")
    old = (pod.get("status") or {}).get("conditions") or []
    reason = "Completed" if code == 0 else "Error"
    statuses = [{"name": c["name"], "image": c.get("image", ""), "imageID": image_id(c.get("image", "")),
                 "containerID": container_id(uid, c["name"], restarts), "ready": False, "started": False,
                 "restartCount": restarts, "lastState": {},
                 "state": {"terminated": {"exitCode": code, "reason": reason, "startedAt": started_at,
                                          "finishedAt": now, "containerID": container_id(uid, c["name"], restarts)}}}
                for c in (pod.get("spec") or {}).get("containers") or []]
    status: dict[str, Any] = {
        "phase": "Succeeded" if code == 0 else "Failed",
        **_base(pod, host_ip, pod_ip, start_time),
        "conditions": [pod_condition("PodReadyToStartContainers", "False", now, old),
                       pod_condition("Initialized", "True", now, old, "PodCompleted"),
                       pod_condition("Ready", "False", now, old, "PodCompleted"),
                       pod_condition("ContainersReady", "False", now, old, "PodCompleted"),
                       pod_condition("PodScheduled", "True", now, old)],
        "containerStatuses": statuses,
    }
    inits = _init_statuses(pod, uid, start_time, terminated=True)
    if inits:
        status["initContainerStatuses"] = inits
    return status
