"""The kubelet's pure status functions (``pinnace.kubelet.status``) against Kubernetes'
semantics: ``getPhase`` and ``generateAPIPodStatus`` in pkg/kubelet/kubelet_pods.go, the
condition generators in pkg/kubelet/status/generate.go, and the Pod lifecycle docs."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from pinnace.kubelet import status as st
from pinnace.kubelet.runtime.base import ContainerStatus
from pinnace.kubelet.status import ContainerRecord, container_status, phase, pod_condition, pod_status

T0 = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
T0_ISO = "2024-05-01T12:00:00Z"
HOST_IP = "192.168.1.10"
POD_IP = "10.42.0.7"


# ---------------------------------------------------------------------------------------- helpers


def running(cid: str = "c1", at: dt.datetime = T0) -> ContainerStatus:
    return ContainerStatus(id=cid, state="running", created_at=at, started_at=at)


def exited(code: int, cid: str = "c1", reason: str = "", message: str = "", ran: float = 5.0) -> ContainerStatus:
    return ContainerStatus(id=cid, state="exited", exit_code=code, reason=reason, message=message,
                           created_at=T0, started_at=T0, finished_at=T0 + dt.timedelta(seconds=ran))


def rec(name: str, cur: ContainerStatus | None = None, *, ready: bool | None = None, started: bool | None = None,
        init: bool = False, sidecar: bool = False, restarts: int = 0, **kw: Any) -> ContainerRecord:
    """A record as the pod worker keeps it: a running container without probes is started and ready."""
    r = ContainerRecord(name, f"img/{name}:1", init=init or sidecar, sidecar=sidecar, current=cur,
                        restart_count=restarts, **kw)
    is_running = cur is not None and cur.state == "running"
    r.started = is_running if started is None else started
    r.ready = is_running if ready is None else ready
    if cur is not None and cur.state == "running":
        r.waiting_reason = ""
    return r


def make_pod(policy: str | None = None, *, host_network: bool = False, conditions: list[dict] | None = None,
             **status: Any) -> dict:
    spec: dict[str, Any] = {"containers": []}
    if policy is not None:
        spec["restartPolicy"] = policy
    if host_network:
        spec["hostNetwork"] = True
    pod: dict[str, Any] = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "spec": spec}
    if conditions is not None or status:
        pod["status"] = {**status, **({"conditions": conditions} if conditions is not None else {})}
    return pod


def status_of(pod: dict, containers: list[ContainerRecord], inits: list[ContainerRecord] | None = None,
              **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"runtime": "fake", "host_ip": HOST_IP, "pod_ip": POD_IP, "start_time": T0_ISO,
                            "sandbox_ready": True}
    args.update(kw)
    return pod_status(pod, inits=inits or [], containers=containers, **args)


def cond(status: dict, ctype: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == ctype)


def initialized(inits: list[ContainerRecord]) -> bool:
    return all(r.succeeded or (r.sidecar and r.started) for r in inits)


# ------------------------------------------------------------------------------------------ phase

# getPhase: once every container has started, the phase follows the restart policy.
PHASES = [
    # policy,      container states,            phase
    ("Always", ["running"], "Running"),
    ("Always", [0], "Running"),  # all exited: about to be restarted
    ("Always", [1], "Running"),
    ("OnFailure", ["running"], "Running"),
    ("OnFailure", [0], "Succeeded"),
    ("OnFailure", [1], "Running"),  # restarted
    ("OnFailure", [0, 1], "Running"),
    ("Never", ["running"], "Running"),
    ("Never", [0], "Succeeded"),
    ("Never", [1], "Failed"),
    ("Never", [0, 1], "Failed"),
    ("Never", [0, 0], "Succeeded"),
    ("Never", ["running", 1], "Running"),  # one still runs
    ("Never", ["running", 0], "Running"),
    (None, [0], "Running"),  # restartPolicy defaults to Always
]


@pytest.mark.parametrize(("policy", "states", "expected"), PHASES)
def test_phase_follows_restart_policy(policy: str | None, states: list[Any], expected: str) -> None:
    containers = [rec(f"c{i}", running(f"id{i}") if s == "running" else exited(s, f"id{i}"))
                  for i, s in enumerate(states)]
    assert phase(make_pod(policy), [], containers, initialized=True) == expected


@pytest.mark.parametrize("policy", ["Always", "OnFailure", "Never"])
def test_phase_pending_until_every_container_started(policy: str) -> None:
    pod = make_pod(policy)
    assert phase(pod, [], [rec("a"), rec("b")], initialized=True) == "Pending"
    # One runs, the other still waits (pulling its image, say): Pending ("waiting > 0").
    assert phase(pod, [], [rec("a", running()), rec("b")], initialized=True) == "Pending"
    # Even one that already exited for good does not make the pod terminal while another waits.
    assert phase(pod, [], [rec("a", exited(1)), rec("b")], initialized=True) == "Pending"


def test_phase_restarting_container_is_not_pending() -> None:
    """A container between restarts (no current instance yet, restartCount > 0) has run:
    the pod stays Running."""
    containers = [rec("a", running("id-a")), rec("b", None, restarts=2)]
    assert phase(make_pod("Always"), [], containers, initialized=True) == "Running"


@pytest.mark.parametrize("policy", ["Always", "OnFailure", "Never"])
def test_phase_pending_while_init_containers_run(policy: str) -> None:
    pod = make_pod(policy)
    main = [rec("app")]
    for inits in ([rec("i1", init=True), rec("i2", init=True)],  # none started
                  [rec("i1", running(), init=True), rec("i2", init=True)],  # first runs
                  [rec("i1", exited(0), init=True), rec("i2", init=True)]):  # first done, second not started
        assert not initialized(inits)
        assert phase(pod, inits, main, initialized(inits)) == "Pending"


@pytest.mark.parametrize(("policy", "expected"), [("Always", "Pending"), ("OnFailure", "Pending"),
                                                  ("Never", "Failed")])
def test_phase_failed_init_container(policy: str, expected: str) -> None:
    """A failed init container is retried unless restartPolicy is Never, which fails the pod."""
    inits = [rec("i1", exited(0, "i1"), init=True), rec("i2", exited(3, "i2"), init=True), rec("i3", init=True)]
    assert phase(make_pod(policy), inits, [rec("app")], initialized(inits)) == expected


def test_phase_sidecar_init_containers() -> None:
    """Restartable init containers (restartPolicy Always) count once started and never fail the pod."""
    pod = make_pod("Never")
    not_started = [rec("init", exited(0, "i"), init=True), rec("side", running("s"), sidecar=True, started=False)]
    assert phase(pod, not_started, [rec("app")], initialized(not_started)) == "Pending"
    started = [rec("init", exited(0, "i"), init=True), rec("side", running("s"), sidecar=True)]
    assert initialized(started)
    assert phase(pod, started, [rec("app", running("a"))], True) == "Running"
    # A sidecar that exited before initialization finished does not fail a Never pod.
    crashed = [rec("side", exited(1, "s"), sidecar=True, started=False)]
    assert phase(pod, crashed, [rec("app")], initialized(crashed)) == "Pending"
    # A stopped sidecar is ignored: the regular containers decide the terminal phase.
    stopped = [rec("side", exited(137, "s"), sidecar=True, started=False)]
    assert phase(pod, stopped, [rec("app", exited(0, "a"))], True) == "Succeeded"
    assert phase(pod, stopped, [rec("app", exited(1, "a"))], True) == "Failed"


def test_sidecar_restart_after_initialization_keeps_pod_initialized_and_running() -> None:
    """Once a regular container has started the pod stays initialized while a sidecar restarts
    (GeneratePodInitializedCondition / getPhase: HasAnyRegularContainerStarted): it does not
    go back to Pending."""
    sidecar = rec("side", exited(1, "s"), sidecar=True, started=False, restarts=1, waiting_reason="CrashLoopBackOff")
    s = status_of(make_pod("Always"), [rec("app", running("a"))], inits=[sidecar])
    assert s["phase"] == "Running"
    assert cond(s, "Initialized")["status"] == "True"


@pytest.mark.parametrize(("policy", "codes", "expected"), [
    ("Always", [143], "Failed"), ("Always", [0], "Succeeded"), ("OnFailure", [0, 137], "Failed"),
    ("Never", [0, 0], "Succeeded")])
def test_phase_of_a_pod_stopped_for_good(policy: str, codes: list[int], expected: str) -> None:
    """getPhase(podIsTerminal): containers stopped for a deletion are not restarted whatever
    the restartPolicy, so the phase is terminal."""
    containers = [rec(f"c{i}", exited(c, f"id{i}")) for i, c in enumerate(codes)]
    assert phase(make_pod(policy), [], containers, True, pod_is_terminal=True) == expected
    s = status_of(make_pod(policy), containers, pod_is_terminal=True)
    assert s["phase"] == expected
    # Still running (the stop failed) or never started: not terminal.
    assert phase(make_pod(policy), [], [rec("a", running())], True, pod_is_terminal=True) == "Running"
    assert phase(make_pod(policy), [], [rec("a")], True, pod_is_terminal=True) == "Pending"


# ------------------------------------------------------------------------------------- conditions


def test_conditions_while_initializing() -> None:
    inits = [rec("i1", exited(0, "i1"), init=True), rec("i2", running("i2"), init=True), rec("i3", init=True)]
    s = status_of(make_pod("Always"), [rec("a", waiting_reason="PodInitializing"),
                                       rec("b", waiting_reason="PodInitializing")], inits)
    assert s["phase"] == "Pending"
    init = cond(s, "Initialized")
    assert (init["status"], init["reason"]) == ("False", "ContainersNotInitialized")
    assert init["message"] == "containers with incomplete status: [i2 i3]"
    for ctype in ("Ready", "ContainersReady"):
        c = cond(s, ctype)
        assert (c["status"], c["reason"]) == ("False", "ContainersNotReady")
        assert c["message"] == "containers with unready status: [a b]"
    assert cond(s, "PodScheduled")["status"] == "True"
    assert cond(s, "PodReadyToStartContainers")["status"] == "True"
    assert [c["type"] for c in s["conditions"]] == ["PodReadyToStartContainers", "Initialized", "Ready",
                                                    "ContainersReady", "PodScheduled"]
    assert all(c["lastProbeTime"] is None for c in s["conditions"])


def test_conditions_ready_only_when_all_containers_ready() -> None:
    pod = make_pod("Always")
    s = status_of(pod, [rec("a", running("a")), rec("b", running("b"), ready=False)])
    assert s["phase"] == "Running"
    assert cond(s, "Initialized")["status"] == "True" and "reason" not in cond(s, "Initialized")
    assert cond(s, "Ready")["message"] == "containers with unready status: [b]"
    s = status_of(pod, [rec("a", running("a")), rec("b", running("b"))])
    for ctype in ("Ready", "ContainersReady"):
        assert cond(s, ctype)["status"] == "True"
        assert "reason" not in cond(s, ctype) and "message" not in cond(s, ctype)


def test_ready_counts_unready_sidecars() -> None:
    """GenerateContainersReadyCondition lists restartable init containers that are not ready
    (a sidecar whose readiness probe fails keeps the pod out of Service endpoints)."""
    sidecar = rec("side", running("s"), sidecar=True, started=True, ready=False)
    s = status_of(make_pod("Always"), [rec("app", running("a"))], inits=[sidecar])
    assert s["phase"] == "Running"
    for ctype in ("Ready", "ContainersReady"):
        c = cond(s, ctype)
        assert (c["status"], c["reason"]) == ("False", "ContainersNotReady")
        assert c["message"] == "containers with unready status: [side]"


def test_conditions_when_succeeded() -> None:
    inits = [rec("i", exited(0, "i"), init=True)]
    s = status_of(make_pod("Never"), [rec("a", exited(0, "a"))], inits)
    assert s["phase"] == "Succeeded"
    assert (cond(s, "Initialized")["status"], cond(s, "Initialized")["reason"]) == ("True", "PodCompleted")
    for ctype in ("Ready", "ContainersReady"):
        c = cond(s, ctype)
        assert (c["status"], c["reason"]) == ("False", "PodCompleted")
        assert "message" not in c
    assert cond(s, "PodReadyToStartContainers")["status"] == "False"  # the sandbox goes away


def test_conditions_when_failed() -> None:
    """generateContainersReadyConditionForTerminalPhase: reason PodFailed for a Failed pod
    (PodCompleted is for Succeeded); Initialized carries PodCompleted only when Succeeded."""
    s = status_of(make_pod("Never"), [rec("a", exited(0, "a")), rec("b", exited(2, "b"))])
    assert s["phase"] == "Failed"
    for ctype in ("Ready", "ContainersReady"):
        c = cond(s, ctype)
        assert (c["status"], c["reason"]) == ("False", "PodFailed")
    assert cond(s, "Initialized")["status"] == "True"
    assert "reason" not in cond(s, "Initialized")


def test_terminal_reason_fails_the_pod() -> None:
    s = status_of(make_pod("Always"), [rec("a", running("a"))], terminal_reason="Evicted")
    assert s["phase"] == "Failed" and s["reason"] == "Evicted"
    assert cond(s, "Ready")["status"] == "False"
    # A pod already Succeeded keeps its phase.
    s = status_of(make_pod("Never"), [rec("a", exited(0, "a"))], terminal_reason="Evicted")
    assert s["phase"] == "Succeeded"


def test_last_transition_time_kept_while_status_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(st, "now_iso", lambda: "2024-05-01T12:05:00Z")
    old = [{"type": "Ready", "status": "False", "lastTransitionTime": "2024-05-01T12:00:01Z"},
           {"type": "ContainersReady", "status": "True", "lastTransitionTime": "2024-05-01T12:00:02Z"},
           {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2024-05-01T11:59:00Z"}]
    s = status_of(make_pod("Always", conditions=old), [rec("a", running("a"), ready=False)])
    assert cond(s, "Ready")["lastTransitionTime"] == "2024-05-01T12:00:01Z"  # still False: kept
    assert cond(s, "ContainersReady")["lastTransitionTime"] == "2024-05-01T12:05:00Z"  # True → False: now
    assert cond(s, "PodScheduled")["lastTransitionTime"] == "2024-05-01T11:59:00Z"
    assert cond(s, "Initialized")["lastTransitionTime"] == "2024-05-01T12:05:00Z"  # new


def test_pod_condition_helper() -> None:
    old = [{"type": "X", "status": "True", "lastTransitionTime": "then"}]
    assert pod_condition("X", "True", "now", old)["lastTransitionTime"] == "then"
    assert pod_condition("X", "False", "now", old, "Why", "because") == {
        "type": "X", "status": "False", "lastProbeTime": None, "lastTransitionTime": "now", "reason": "Why",
        "message": "because"}
    assert pod_condition("Y", "True", "now", old)["lastTransitionTime"] == "now"


# ------------------------------------------------------------------------------- container statuses


def test_container_status_waiting_container_creating() -> None:
    out = container_status(rec("web"), "fake")
    assert out == {"name": "web", "image": "img/web:1", "imageID": "", "ready": False, "restartCount": 0,
                   "started": False, "state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {}}
    assert "containerID" not in out


def test_container_status_waiting_with_message() -> None:
    r = rec("web", waiting_reason="ImagePullBackOff", waiting_message='Back-off pulling image "img/web:1"')
    assert container_status(r, "fake")["state"] == {
        "waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "img/web:1"'}}


def test_container_status_created_is_waiting() -> None:
    r = rec("web", ContainerStatus(id="abc", state="created", created_at=T0))
    out = container_status(r, "fake")
    assert out["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert out["containerID"] == "fake://abc"


def test_container_status_running() -> None:
    r = rec("web", running("abc"), image_id="sha256:feed")
    out = container_status(r, "runc")
    assert out["state"] == {"running": {"startedAt": T0_ISO}}
    assert out["containerID"] == "runc://abc"
    assert out["imageID"] == "sha256:feed"
    assert out["ready"] is True and out["started"] is True
    assert out["lastState"] == {}


def test_container_status_running_not_ready() -> None:
    out = container_status(rec("web", running(), ready=False, started=False), "fake")
    assert out["ready"] is False and out["started"] is False


@pytest.mark.parametrize(("code", "reason", "expected_reason"), [(0, "", "Completed"), (1, "", "Error"),
                                                                  (137, "OOMKilled", "OOMKilled")])
def test_container_status_terminated(code: int, reason: str, expected_reason: str) -> None:
    r = rec("job", exited(code, "xyz", reason=reason), ready=True, started=True)  # stale flags
    out = container_status(r, "fake")
    term = out["state"]["terminated"]
    assert term == {"exitCode": code, "reason": expected_reason, "startedAt": T0_ISO,
                    "finishedAt": "2024-05-01T12:00:05Z", "containerID": "fake://xyz"}
    assert out["containerID"] == "fake://xyz"
    assert out["ready"] is False and out["started"] is False  # only while running


def test_container_status_terminated_message_and_unknown_exit_code() -> None:
    s = exited(1, "xyz", message="boom")
    s.exit_code = None
    term = container_status(rec("job", s), "fake")["state"]["terminated"]
    assert term["exitCode"] == -1 and term["message"] == "boom"


def test_container_status_crash_loop_back_off() -> None:
    """Waiting out the back-off: state waiting CrashLoopBackOff, the exit in lastState."""
    msg = "back-off 10s restarting failed container=web pod=p_ns(u1)"
    r = rec("web", exited(2, "second"), restarts=1, waiting_reason="CrashLoopBackOff", waiting_message=msg,
            previous=exited(1, "first"))
    out = container_status(r, "fake")
    assert out["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": msg}}
    assert out["lastState"]["terminated"]["exitCode"] == 2
    assert out["lastState"]["terminated"]["containerID"] == "fake://second"
    assert out["restartCount"] == 1 and out["ready"] is False


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "CreateContainerError",
                                    "CreateContainerConfigError"])
def test_container_status_restart_that_could_not_create(reason: str) -> None:
    """The restart of an exited container failed before a new instance existed: waiting with
    why, the exit in lastState (not terminated, which would hide the reason)."""
    r = rec("web", exited(1, "first"), waiting_reason=reason, waiting_message="boom")
    out = container_status(r, "fake")
    assert out["state"] == {"waiting": {"reason": reason, "message": "boom"}}
    assert out["lastState"]["terminated"]["exitCode"] == 1


def test_container_status_after_restart_shows_previous_instance() -> None:
    r = rec("web", running("second"), restarts=3, previous=exited(137, "first", reason="OOMKilled"))
    out = container_status(r, "fake")
    assert out["state"] == {"running": {"startedAt": T0_ISO}}
    assert out["restartCount"] == 3
    assert out["lastState"]["terminated"]["reason"] == "OOMKilled"
    assert out["lastState"]["terminated"]["containerID"] == "fake://first"
    assert out["containerID"] == "fake://second"


# ---------------------------------------------------------------------------------------- pod_status


def test_pod_status_fields() -> None:
    inits = [rec("i", exited(0, "i"), init=True)]
    s = status_of(make_pod("Always", qosClass="Burstable"), [rec("a", running("a"))], inits)
    assert s["hostIP"] == HOST_IP and s["hostIPs"] == [{"ip": HOST_IP}]
    assert s["podIP"] == POD_IP and s["podIPs"] == [{"ip": POD_IP}]
    assert s["startTime"] == T0_ISO
    assert s["qosClass"] == "Burstable"
    assert [c["name"] for c in s["containerStatuses"]] == ["a"]
    assert [c["name"] for c in s["initContainerStatuses"]] == ["i"]
    assert s["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    assert "reason" not in s


def test_pod_status_without_inits_or_ip() -> None:
    s = status_of(make_pod("Always"), [rec("a")], pod_ip=None, sandbox_ready=False)
    assert "initContainerStatuses" not in s
    assert "podIP" not in s and "podIPs" not in s
    assert s["qosClass"] == "BestEffort"
    assert cond(s, "PodReadyToStartContainers")["status"] == "False"


def test_host_network_pod_ip_is_host_ip() -> None:
    s = status_of(make_pod("Always", host_network=True), [rec("a", running())], pod_ip=None)
    assert s["podIP"] == HOST_IP and s["podIPs"] == [{"ip": HOST_IP}]
    s = status_of(make_pod("Always", host_network=True), [rec("a", running())], pod_ip="10.1.1.1")
    assert s["podIP"] == HOST_IP
