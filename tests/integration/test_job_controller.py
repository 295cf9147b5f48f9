"""The Job and TTL-after-finished controllers with a scheduler and simulated nodes,
against an in-process API server.

Conformance (/work/shared/reference/conformance.yaml) behaviours covered:
"Jobs, completion after task failure" (replacement pods until completions succeed),
"Ensure Pods of an Indexed Job get a unique index",
"Verify Pod Failure policy allows to fail job early on exit code.",
"Ensure pod failure policy allows to ignore failure matching on the DisruptionTarget condition",
"Jobs, active pods, graceful termination", "Jobs, manage lifecycle" (suspended Jobs),
"Jobs, orphan pods, re-adoption".
"""

from __future__ import annotations

import asyncio
import functools
import shutil
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from pinnace.client.rest import RestClient
from pinnace.controllers import controller_utils as cu
from pinnace.controllers.garbagecollector import GarbageCollector
from pinnace.controllers.job import JobController
from pinnace.controllers.ttlafterfinished import TTLAfterFinishedController
from tests.support.cluster import Cluster, ControllerFactory, kubectl, running
from tests.support.waiting import eventually, get_ok, status_of

JOBS = "/apis/batch/v1/namespaces/default/jobs"
PODS = "/api/v1/namespaces/default/pods"
EVENTS = "/api/v1/namespaces/default/events"
FINALIZER = "batch.kubernetes.io/job-tracking"


def job(name: str, *, exit_after: float | None = 0.2, exit_code: int = 0, annotations: dict | None = None,
        **spec: Any) -> dict:
    ann = dict(annotations or {})
    if exit_after is not None:
        ann["sim.pinnace.io/exit-after"] = str(exit_after)
    if exit_code:
        ann["sim.pinnace.io/exit-code"] = str(exit_code)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"metadata": {"labels": {"app": name}, "annotations": ann},
                                  "spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "c", "image": "busybox",
                                                           "resources": {"requests": {"cpu": "10m"}}}]}},
                     **spec}}


async def create(api, path: str, obj: dict) -> dict:
    status, body = await api.call("POST", path, obj)
    assert status == 201, body
    return body


async def patch(api, path: str, body: dict, ctype: str = "application/merge-patch+json") -> dict:
    status, out = await api.call("PATCH", path, body, content_type=ctype)
    assert status == 200, out
    return out


def cond(obj: dict, ctype: str) -> dict:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == ctype), {})


def finished(ctype: str) -> Callable[[dict], bool]:
    return lambda j: cond(j, ctype).get("status") == "True"


async def job_pods(api, name: str) -> list[dict]:
    return (await get_ok(api, f"{PODS}?labelSelector=batch.kubernetes.io%2Fjob-name%3D{name}"))["items"]


async def events(api, name: str) -> list[dict]:
    return [e for e in (await get_ok(api, EVENTS))["items"] if e["involvedObject"]["name"] == name]


async def event_reasons(api, name: str) -> list[str]:
    return [e["reason"] for e in await events(api, name)]


#: Two roomy simulated nodes whose pods go quickly once deleted.
NODES = {"cpu": "8", "delete_grace_cap": 0.1}


def cluster(api, *, gc: bool = False, backoff_base: float = 0.2) -> AbstractAsyncContextManager[Cluster]:
    """The Job and TTL-after-finished controllers (and, with ``gc``, the garbage collector)."""
    controllers: list[ControllerFactory] = [functools.partial(JobController, backoff_base=backoff_base),
                                            lambda c, f, r: TTLAfterFinishedController(c, f, None)]
    if gc:
        controllers.append(lambda c, f, r: GarbageCollector(c, f, None, discovery_interval=0.5))
    return running(api, nodes=2, controllers=controllers, component="job-controller", simulator_kwargs=NODES)


class PodCounter:
    """Watches one Job's pods and records, after every event, how many were running
    (not terminal, not being deleted)."""

    def __init__(self, client: RestClient, name: str, rv: str):
        self.pods: dict[str, dict] = {}
        self.max_active = 0
        self._task = asyncio.create_task(self._run(client, name, rv))

    async def _run(self, client: RestClient, name: str, rv: str) -> None:
        async for ev in client.watch("v1", "pods", "default", labelSelector=f"batch.kubernetes.io/job-name={name}",
                                     resourceVersion=rv):
            pod = ev["object"]
            if ev["type"] == "DELETED":
                self.pods.pop(pod["metadata"]["name"], None)
            elif ev["type"] in ("ADDED", "MODIFIED"):
                self.pods[pod["metadata"]["name"]] = pod
            self.max_active = max(self.max_active, sum(1 for p in self.pods.values() if cu.is_pod_active(p)))

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def test_job_runs_to_completion_within_parallelism(api):
    """Conformance "Jobs, completion after task failure" (the counting part): a Job with
    completions 5 and parallelism 2 runs exactly 5 successful pods, never more than 2 at once."""
    async with cluster(api) as c:
        rv = (await get_ok(api, PODS))["metadata"]["resourceVersion"]
        counter = PodCounter(c.client, "par", rv)
        try:
            created = await create(api, JOBS, job("par", completions=5, parallelism=2, exit_after=0.3))
            done = await eventually(lambda: get_ok(api, f"{JOBS}/par"), finished("Complete"))
        finally:
            await counter.stop()
        uid = created["metadata"]["uid"]
        # The API server generated the selector and the pod labels.
        assert done["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        status = done["status"]
        assert status["succeeded"] == 5 and "failed" not in status and "active" not in status
        assert status["ready"] == 0 and status["terminating"] == 0 and status["uncountedTerminatedPods"] == {}
        assert status["startTime"] <= status["completionTime"]
        assert cond(done, "SuccessCriteriaMet")["status"] == "True"
        assert cond(done, "Complete")["reason"] == "CompletionsReached"
        assert 1 <= counter.max_active <= 2
        pods = await job_pods(api, "par")
        assert len(pods) == 5 and all(p["status"]["phase"] == "Succeeded" for p in pods)
        for p in pods:
            meta = p["metadata"]
            assert meta["name"].startswith("par-") and meta["generateName"] == "par-"
            assert meta["labels"]["batch.kubernetes.io/controller-uid"] == uid == meta["labels"]["controller-uid"]
            assert meta["labels"]["batch.kubernetes.io/job-name"] == "par" == meta["labels"]["job-name"]
            assert meta["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job", "name": "par", "uid": uid,
                                                "controller": True, "blockOwnerDeletion": True}]
            assert FINALIZER not in (meta.get("finalizers") or [])  # counted, then released
        reasons = await eventually(lambda: event_reasons(api, "par"), lambda r: "Completed" in r)
        assert reasons.count("SuccessfulCreate") >= 5


async def test_indexed_job_gives_each_pod_an_index(api):
    """Conformance "Ensure Pods of an Indexed Job get a unique index": completions 5,
    parallelism 3; each index 0-4 succeeds once, with annotation, label, hostname and
    JOB_COMPLETION_INDEX."""
    async with cluster(api):
        await create(api, JOBS, job("idx", completions=5, parallelism=3, completionMode="Indexed", exit_after=0.3))
        done = await eventually(lambda: get_ok(api, f"{JOBS}/idx"), finished("Complete"))
        assert done["status"]["completedIndexes"] == "0-4" and done["status"]["succeeded"] == 5
        pods = await job_pods(api, "idx")
        by_index: dict[int, list[dict]] = {}
        for p in pods:
            ix = int(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"])
            by_index.setdefault(ix, []).append(p)
            assert p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == str(ix)
            assert p["metadata"]["generateName"] == f"idx-{ix}-"
            assert p["spec"]["hostname"] == f"idx-{ix}"
            env = p["spec"]["containers"][0]["env"]
            assert {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
                "apiVersion": "v1", "fieldPath": "metadata.labels['batch.kubernetes.io/job-completion-index']"}}} in env
        assert sorted(by_index) == [0, 1, 2, 3, 4]
        assert all(len(v) == 1 and v[0]["status"]["phase"] == "Succeeded" for v in by_index.values())


async def test_backoff_limit_exceeded_fails_the_job(api):
    """A pod that always fails is replaced (after a back-off) until backoffLimit + 1
    failures; then the Job is Failed with reason BackoffLimitExceeded."""
    async with cluster(api):
        await create(api, JOBS, job("bad", backoffLimit=2, exit_after=0.1, exit_code=1))
        failed = await eventually(lambda: get_ok(api, f"{JOBS}/bad"), finished("Failed"))
        assert cond(failed, "Failed")["reason"] == "BackoffLimitExceeded"
        assert cond(failed, "Failed")["message"] == "Job has reached the specified backoff limit"
        assert cond(failed, "FailureTarget")["reason"] == "BackoffLimitExceeded"
        assert failed["status"]["failed"] == 3 and "succeeded" not in failed["status"]
        assert "completionTime" not in failed["status"]
        pods = await job_pods(api, "bad")
        assert len(pods) == 3 and all(p["status"]["phase"] == "Failed" for p in pods)
        await eventually(lambda: event_reasons(api, "bad"), lambda r: "BackoffLimitExceeded" in r)


async def test_job_recovers_from_a_failed_pod(api):
    """Conformance "Jobs, completion after task failure": a failed pod is replaced and the
    Job completes, counting the failure."""
    async with cluster(api):
        await create(api, JOBS, job("flaky", completions=2, parallelism=2, exit_after=5, backoffLimit=3))
        pods = await eventually(lambda: job_pods(api, "flaky"),
                                lambda ps: len(ps) == 2 and all(p["status"].get("phase") == "Running" for p in ps))
        # One pod's container fails (as its kubelet would report it); the other runs on.
        victim = pods[0]["metadata"]["name"]
        await patch(api, f"{PODS}/{victim}/status", {"status": {"phase": "Failed", "containerStatuses": [
            {"name": "c", "image": "busybox", "ready": False, "restartCount": 0, "imageID": "",
             "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}})
        await eventually(lambda: get_ok(api, f"{JOBS}/flaky"), lambda j: j["status"].get("failed") == 1)

        async def finish_running() -> dict:
            # The other pod and the replacement succeed as soon as they run.
            for p in await job_pods(api, "flaky"):
                if cu.is_pod_active(p) and p["status"].get("phase") == "Running":
                    await patch(api, f"{PODS}/{p['metadata']['name']}/status", {"status": {"phase": "Succeeded"}})
            return await get_ok(api, f"{JOBS}/flaky")

        done = await eventually(finish_running, finished("Complete"))
        assert done["status"]["succeeded"] == 2 and done["status"]["failed"] == 1


async def test_active_deadline_fails_the_job_and_deletes_its_pods(api):
    async with cluster(api):
        await create(api, JOBS, job("slow", parallelism=2, completions=4, exit_after=60, activeDeadlineSeconds=1))
        failed = await eventually(lambda: get_ok(api, f"{JOBS}/slow"), finished("Failed"))
        assert cond(failed, "Failed")["reason"] == "DeadlineExceeded"
        assert cond(failed, "Failed")["message"] == "Job was active longer than specified deadline"
        status = failed["status"]
        assert "active" not in status and status["terminating"] == 0 and status["failed"] == 2
        await eventually(lambda: job_pods(api, "slow"),
                         lambda ps: all(not cu.is_pod_active(p) for p in ps))
        await eventually(lambda: event_reasons(api, "slow"), lambda r: "DeadlineExceeded" in r
                         and "SuccessfulDelete" in r)


async def test_pod_failure_policy_fail_job_on_exit_code(api):
    """Conformance "Verify Pod Failure policy allows to fail job early on exit code.":
    one pod exiting 42 fails the Job at once despite a generous backoffLimit."""
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In",
                                                               "values": [42]}}]}
    async with cluster(api):
        await create(api, JOBS, job("pfp", backoffLimit=6, exit_after=0.1, exit_code=42, podFailurePolicy=policy))
        failed = await eventually(lambda: get_ok(api, f"{JOBS}/pfp"), finished("Failed"))
        [pod] = await job_pods(api, "pfp")
        assert cond(failed, "Failed")["reason"] == "PodFailurePolicy"
        assert cond(failed, "Failed")["message"] == (
            f"Container c for pod default/{pod['metadata']['name']} failed with exit code 42 matching FailJob rule "
            "at index 0")
        assert failed["status"]["failed"] == 1


async def test_pod_failure_policy_ignores_disruptions(api):
    """Conformance "Ensure pod failure policy allows to ignore failure matching on the
    DisruptionTarget condition": an evicted pod is replaced without counting against
    backoffLimit 0; an ordinary failure still counts."""
    policy = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                        {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [0]}}]}
    async with cluster(api):
        await create(api, JOBS, job("evict", backoffLimit=0, exit_after=60, podFailurePolicy=policy))
        [pod] = await eventually(lambda: job_pods(api, "evict"),
                                 lambda ps: len(ps) == 1 and ps[0]["status"].get("phase") == "Running")
        # Evicted by its kubelet (node pressure): Failed, with a DisruptionTarget condition.
        name = pod["metadata"]["name"]
        await patch(api, f"{PODS}/{name}/status", {"status": {"phase": "Failed", "conditions": [
            {"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet",
             "message": "The node was low on resource: memory."}], "containerStatuses": [
            {"name": "c", "image": "busybox", "ready": False, "restartCount": 0, "imageID": "",
             "state": {"terminated": {"exitCode": 137, "reason": "Error"}}}]}},
            ctype="application/strategic-merge-patch+json")
        pods = await eventually(lambda: job_pods(api, "evict"), lambda ps: len(ps) == 2)
        j = await get_ok(api, f"{JOBS}/evict")
        assert not finished("Failed")(j) and "failed" not in j["status"]
        replacement = next(p for p in pods if p["metadata"]["name"] != name)
        await eventually(lambda: get_ok(api, f"{PODS}/{replacement['metadata']['name']}"),
                         lambda p: p["status"].get("phase") == "Running")
        await patch(api, f"{PODS}/{replacement['metadata']['name']}/status", {"status": {"phase": "Succeeded"}})
        done = await eventually(lambda: get_ok(api, f"{JOBS}/evict"), finished("Complete"))
        assert done["status"]["succeeded"] == 1 and "failed" not in done["status"]


async def test_suspend_and_resume(api):
    """Conformance "Jobs, manage lifecycle": a Job created suspended runs no pods; resumed
    it runs; suspended again its pods are deleted without counting as failures; resumed
    (with a changed template, allowed while suspended) it completes."""
    async with cluster(api):
        await create(api, JOBS, job("sus", suspend=True, parallelism=2, completions=2, exit_after=60))
        j = await eventually(lambda: get_ok(api, f"{JOBS}/sus"), finished("Suspended"))
        assert cond(j, "Suspended")["reason"] == "JobSuspended" and "startTime" not in j["status"]
        assert await job_pods(api, "sus") == []

        await patch(api, f"{JOBS}/sus", {"spec": {"suspend": False}})
        j = await eventually(lambda: get_ok(api, f"{JOBS}/sus"),
                             lambda x: x["status"].get("ready") == 2 and cond(x, "Suspended").get("status") == "False")
        assert cond(j, "Suspended")["reason"] == "JobResumed"
        first_start = j["status"]["startTime"]

        await asyncio.sleep(1.0)  # startTime has one-second resolution
        await patch(api, f"{JOBS}/sus", {"spec": {"suspend": True}})
        j = await eventually(lambda: get_ok(api, f"{JOBS}/sus"),
                             lambda x: finished("Suspended")(x) and "active" not in x["status"])
        await eventually(lambda: job_pods(api, "sus"), lambda ps: ps == [])
        assert "failed" not in j["status"]

        await patch(api, f"{JOBS}/sus", {"spec": {"suspend": False, "template": {"metadata": {"annotations": {
            "sim.pinnace.io/exit-after": "0.2"}}}}})
        done = await eventually(lambda: get_ok(api, f"{JOBS}/sus"), finished("Complete"))
        assert done["status"]["startTime"] > first_start  # the deadline clock restarted
        assert done["status"]["succeeded"] == 2 and "failed" not in done["status"]
        await eventually(lambda: event_reasons(api, "sus"),
                         lambda r: {"Suspended", "Resumed", "SuccessfulDelete", "Completed"} <= set(r))


async def test_job_adopts_orphans_and_releases_relabelled_pods(api):
    """Conformance "Jobs, orphan pods, re-adoption"."""
    async with cluster(api):
        created = await create(api, JOBS, job("adopt", parallelism=2, completions=4, exit_after=60))
        pods = await eventually(lambda: job_pods(api, "adopt"), lambda ps: len(ps) == 2)
        orphan = pods[0]["metadata"]["name"]
        await patch(api, f"{PODS}/{orphan}", [{"op": "remove", "path": "/metadata/ownerReferences"}],
                    ctype="application/json-patch+json")
        # Adopted, and tracked again with the finalizer.
        await eventually(lambda: get_ok(api, f"{PODS}/{orphan}"),
                         lambda p: (cu.controller_ref(p) or {}).get("uid") == created["metadata"]["uid"]
                         and FINALIZER in (p["metadata"].get("finalizers") or []))
        await patch(api, f"{PODS}/{orphan}", {"metadata": {"labels": {
            "batch.kubernetes.io/controller-uid": "someone-else"}}})
        released = await eventually(lambda: get_ok(api, f"{PODS}/{orphan}"), lambda p: cu.controller_ref(p) is None)
        # Released pods keep no Job finalizer (nobody would remove it).
        await eventually(lambda: get_ok(api, f"{PODS}/{orphan}"),
                         lambda p: FINALIZER not in (p["metadata"].get("finalizers") or []))
        assert released["metadata"]["name"] == orphan
        # A replacement keeps the Job at its parallelism.
        await eventually(lambda: get_ok(api, f"{JOBS}/adopt"), lambda j: j["status"].get("active") == 2)


async def test_ttl_after_finished_deletes_the_job_and_its_pods(api):
    async with cluster(api, gc=True):
        await create(api, JOBS, job("ttl", exit_after=0.1, ttlSecondsAfterFinished=3))
        done = await eventually(lambda: get_ok(api, f"{JOBS}/ttl"), finished("Complete"))
        assert len(await job_pods(api, "ttl")) == 1

        await eventually(lambda: status_of(api, f"{JOBS}/ttl"), lambda s: s == 404)
        await eventually(lambda: job_pods(api, "ttl"), lambda ps: ps == [])
        assert done["status"]["completionTime"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
async def test_kubectl_wait_for_complete(api):
    async with cluster(api):
        await create(api, JOBS, job("kw", completions=2, exit_after=0.3))
        rc, out = await kubectl(api, "wait", "--for=condition=complete", "job/kw", "--timeout=20s")
        assert rc == 0 and "job.batch/kw condition met" in out, out
        rc, out = await kubectl(api, "get", "job", "kw")
        assert rc == 0 and "2/2" in out and "Complete" in out, out


async def test_backoff_limit_per_index(api):
    """Each index of an Indexed Job gets backoffLimitPerIndex retries of its own; the
    replacement carries the index's failure count; exhausted indexes are failed."""
    async with cluster(api):
        await create(api, JOBS, job("per", completions=3, parallelism=3, completionMode="Indexed",
                                    backoffLimitPerIndex=1, exit_after=0.1, exit_code=1))
        failed = await eventually(lambda: get_ok(api, f"{JOBS}/per"), finished("Failed"))
        assert cond(failed, "Failed")["reason"] == "FailedIndexes"
        assert failed["status"]["failedIndexes"] == "0-2" and failed["status"]["failed"] == 6
        assert failed["spec"]["backoffLimit"] == 2**31 - 1  # the global limit is off
        counts: dict[str, list[str]] = {}
        for p in await job_pods(api, "per"):
            ann = p["metadata"]["annotations"]
            counts.setdefault(ann["batch.kubernetes.io/job-completion-index"], []).append(
                ann["batch.kubernetes.io/job-index-failure-count"])
        assert {k: sorted(v) for k, v in counts.items()} == {"0": ["0", "1"], "1": ["0", "1"], "2": ["0", "1"]}
