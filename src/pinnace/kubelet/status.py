"""A pod's status as the kubelet reports it, from what it knows of each container.

Pure functions: the pod worker keeps a :class:`ContainerRecord` per container
(current runtime status, the previous instance, readiness, why it is waiting)
and asks this module for the ``status`` to write.  Field names, reasons and
phase rules follow the kubelet (``generateAPIPodStatus``, ``getPhase``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ..api.times import format_time
from ..api.times import now_time as now_iso
from .runtime.base import ContainerStatus


def iso(t: dt.datetime | None) -> str | None:
    return None if t is None else format_time(t)


def pod_condition(ctype: str, status: str, now: str, old: list[dict], reason: str | None = None,
                  message: str | None = None) -> dict[str, Any]:
    """A pod condition keeping its lastTransitionTime while its status is unchanged."""
    prev = next((c for c in old if c.get("type") == ctype), None)
    since = prev.get("lastTransitionTime") if prev and prev.get("status") == status else None
    cond: dict[str, Any] = {"type": ctype, "status": status, "lastProbeTime": None,
                            "lastTransitionTime": since or now}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


@dataclass
class ContainerRecord:
    """What the pod worker knows of one container of the pod."""

    name: str
    image: str
    init: bool = False
    sidecar: bool = False  # an init container with restartPolicy Always
    current: ContainerStatus | None = None  # the runtime's view of the current instance
    previous: ContainerStatus | None = None  # the instance before the last restart
    restart_count: int = 0
    image_id: str = ""
    ready: bool = False
    started: bool = False  # startup probe passed (or none) while running
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""

    @property
    def running(self) -> bool:
        return self.current is not None and self.current.state == "running"

    @property
    def exited(self) -> bool:
        return self.current is not None and self.current.state == "exited"

    @property
    def succeeded(self) -> bool:
        return self.exited and self.current is not None and self.current.exit_code == 0


def _container_id(runtime: str, status: ContainerStatus) -> str:
    return f"{runtime}://{status.id}"


def _terminated(runtime: str, s: ContainerStatus) -> dict[str, Any]:
    out: dict[str, Any] = {"exitCode": s.exit_code if s.exit_code is not None else -1,
                           "reason": s.reason or ("Completed" if s.exit_code == 0 else "Error"),
                           "startedAt": iso(s.started_at), "finishedAt": iso(s.finished_at),
                           "containerID": _container_id(runtime, s)}
    if s.message:
        out["message"] = s.message
    return out


def container_status(rec: ContainerRecord, runtime: str) -> dict[str, Any]:
    """One entry of ``containerStatuses`` / ``initContainerStatuses``."""
    cur = rec.current
    waiting = {"waiting": {"reason": rec.waiting_reason, **(
        {"message": rec.waiting_message} if rec.waiting_message else {})}}
    state: dict[str, Any]
    last: dict[str, Any] = {}
    if cur is None or cur.state in ("created", "unknown"):
        state = waiting
    elif cur.state == "running":
        state = {"running": {"startedAt": iso(cur.started_at)}}
    elif rec.waiting_reason not in ("", "ContainerCreating", "PodInitializing"):
        # Exited and waiting for its restart (CrashLoopBackOff, or a restart that could not pull
        # or create the new instance: ErrImagePull...): the exit is lastState.
        state, last = waiting, {"terminated": _terminated(runtime, cur)}
    else:
        state = {"terminated": _terminated(runtime, cur)}
    if not last and rec.previous is not None and rec.previous.state == "exited":
        last = {"terminated": _terminated(runtime, rec.previous)}
    out: dict[str, Any] = {"name": rec.name, "image": rec.image, "imageID": rec.image_id,
                           "ready": rec.ready and rec.running, "restartCount": rec.restart_count,
                           "started": rec.started and rec.running, "state": state, "lastState": last}
    if cur is not None:
        out["containerID"] = _container_id(runtime, cur)
    return out


def phase(pod: dict, inits: list[ContainerRecord], containers: list[ContainerRecord],
          initialized: bool, pod_is_terminal: bool = False) -> str:
    """``getPhase``: Pending until initialized and every container has started once; then
    Running while one runs or will be restarted; Succeeded/Failed when all have exited for good
    (``pod_is_terminal``: stopped for deletion, so whatever the restartPolicy)."""
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    if not initialized:
        failed_init = any(r.exited and not r.succeeded for r in inits if not r.sidecar)
        return "Failed" if failed_init and policy == "Never" else "Pending"
    if any(r.current is None and r.restart_count == 0 for r in containers):
        return "Pending"
    if any(r.running for r in containers):
        return "Running"
    if all(r.exited for r in containers):
        if pod_is_terminal:
            return "Succeeded" if all(r.succeeded for r in containers) else "Failed"
        if policy == "Always":
            return "Running"  # about to be restarted
        if all(r.succeeded for r in containers):
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"  # OnFailure restarts the failed ones
    return "Pending"


def pod_status(pod: dict, *, inits: list[ContainerRecord], containers: list[ContainerRecord], runtime: str,
               host_ip: str, pod_ip: str | None, start_time: str, sandbox_ready: bool,
               terminal_reason: str | None = None, pod_is_terminal: bool = False) -> dict[str, Any]:
    """The ``status`` to write for ``pod`` (``pod_is_terminal``: its containers were stopped
    for good, as for a deletion: the phase becomes Succeeded or Failed)."""
    now = now_iso()
    old = (pod.get("status") or {}).get("conditions") or []
    # Initialized once every init container has succeeded (sidecars: started), and for good once
    # a regular container has started: a restarting sidecar does not un-initialize the pod
    # (HasAnyRegularContainerStarted).
    initialized = (all(r.succeeded or (r.sidecar and r.started) for r in inits)
                   or any(r.current is not None or r.restart_count > 0 for r in containers))
    ph = phase(pod, inits, containers, initialized, pod_is_terminal)
    if terminal_reason is not None and ph not in ("Succeeded", "Failed"):
        ph = "Failed"
    # Sidecars count for readiness as regular containers do (GenerateContainersReadyCondition).
    sidecars = [r for r in inits if r.sidecar]
    not_ready = [r.name for r in [*sidecars, *containers] if not (r.ready and r.running)]
    terminal = ph in ("Succeeded", "Failed")
    conditions = [pod_condition("PodReadyToStartContainers", "True" if sandbox_ready and not terminal else "False",
                                now, old)]
    if initialized:
        conditions.append(pod_condition("Initialized", "True", now, old,
                                        "PodCompleted" if ph == "Succeeded" else None))
    else:
        pending = [r.name for r in inits if not (r.succeeded or (r.sidecar and r.started))]
        conditions.append(pod_condition("Initialized", "False", now, old, "ContainersNotInitialized",
                                        f"containers with incomplete status: [{' '.join(pending)}]"))
    if terminal:
        why = "PodCompleted" if ph == "Succeeded" else "PodFailed"
        ready = [pod_condition(t, "False", now, old, why) for t in ("Ready", "ContainersReady")]
    elif not_ready:
        msg = f"containers with unready status: [{' '.join(not_ready)}]"
        ready = [pod_condition(t, "False", now, old, "ContainersNotReady", msg) for t in ("Ready", "ContainersReady")]
    else:
        ready = [pod_condition(t, "True", now, old) for t in ("Ready", "ContainersReady")]
    conditions += [*ready, pod_condition("PodScheduled", "True", now, old)]
    host_network = bool((pod.get("spec") or {}).get("hostNetwork"))
    ip = host_ip if host_network else pod_ip
    status: dict[str, Any] = {"phase": ph, "conditions": conditions, "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
                              "startTime": start_time,
                              "containerStatuses": [container_status(r, runtime) for r in containers],
                              "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort")}
    if ip:
        status["podIP"], status["podIPs"] = ip, [{"ip": ip}]
    if inits:
        status["initContainerStatuses"] = [container_status(r, runtime) for r in inits]
    if terminal_reason:
        status["reason"] = terminal_reason
    return status


__all__ = ["ContainerRecord", "container_status", "now_iso", "phase", "pod_condition", "pod_status"]
