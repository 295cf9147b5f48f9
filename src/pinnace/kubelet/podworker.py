"""One pod worker per pod bound to this node: the kubelet's ``SyncPod`` loop.

The worker owns everything about its pod: the sandbox, the containers, their
restarts and back-off, and the status it writes.  It wakes on a change of
the pod (from the informer), on a probe result, and every second to notice
container exits, and each time it compares what should run with what runs:

    sandbox → volumes → init containers, in order, each to success →
    containers (pull, create, start, postStart) → restart per restartPolicy
    with back-off (CrashLoopBackOff) → status.

Deletion (a deletionTimestamp) runs preStop hooks and stops the containers
within the grace period, then removes the pod from the API server for good.

A restarted kubelet hands each new worker what the runtime still has of its pod
(:class:`Adoptable`): the worker carries on with that sandbox and, per container,
the newest attempt (restartCount = its attempt label) and the one before it,
instead of starting everything afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..client.rest import ApiException
from .runtime import ocispec
from .runtime.base import (
    LABEL_ATTEMPT,
    LABEL_CONTAINER_NAME,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    ContainerConfig,
    ContainerStatus,
    Sandbox,
)
from .status import ContainerRecord, now_iso, pod_status

if TYPE_CHECKING:
    from .kubelet import Kubelet

log = logging.getLogger(__name__)

BACKOFF_RESET_AFTER = 600.0  # a container that ran this long starts its back-off afresh
DEFAULT_GRACE = 30
SANDBOX_RETRY_MAX = 30.0  # longest wait between attempts to create a sandbox that failed


_EPOCH = dt.datetime.min.replace(tzinfo=dt.UTC)


@dataclass
class Adoptable:
    """What the runtime still had of one pod when the kubelet started."""

    sandboxes: list[Sandbox] = field(default_factory=list)
    containers: list[ContainerStatus] = field(default_factory=list)


def attempt_of(status: ContainerStatus) -> int:
    try:
        return int(status.labels.get(LABEL_ATTEMPT, "0"))
    except ValueError:
        return 0


class ContainerConfigError(Exception):
    """The container cannot be configured (missing ConfigMap key, bad command...):
    reported as CreateContainerConfigError and retried."""


class PodWorker:
    def __init__(self, kubelet: Kubelet, pod: dict, adopt: Adoptable | None = None, *, arrival: int = 0):
        self.kubelet = kubelet
        self.pod = pod
        self.arrival = arrival  # the kubelet's count of pods seen before this one: its start slot order
        meta = pod["metadata"]
        self.uid, self.name, self.namespace = meta["uid"], meta["name"], meta.get("namespace", "default")
        spec = pod.get("spec") or {}
        # What a container waits for before it is created: PodInitializing for every container
        # of a pod with init containers, as the kubelet reports.
        self._creating = "PodInitializing" if spec.get("initContainers") else "ContainerCreating"
        self.inits = [ContainerRecord(c["name"], c.get("image", ""), init=True,
                                      sidecar=c.get("restartPolicy") == "Always", waiting_reason=self._creating)
                      for c in spec.get("initContainers") or []]
        self.containers = [ContainerRecord(c["name"], c.get("image", ""), waiting_reason=self._creating)
                           for c in spec.get("containers") or []]
        self.sandbox: Sandbox | None = None
        self._sandbox_problem: str | None = None  # why the last attempt to make the sandbox failed
        self._sandbox_retry: tuple[float, float] = (0.0, 0.0)  # (not before, delay) after a failure
        self.volume_dirs: dict[str, str] | None = None
        self.start_time = (pod.get("status") or {}).get("startTime") or now_iso()
        self._wake = asyncio.Event()
        self._backoff: dict[str, float] = {}  # container → current restart back-off delay
        self._pull_backoff: dict[str, tuple[float, float]] = {}  # container → (retry at, delay)
        self._written: dict | None = None
        self._terminal = False
        self._volumes_refreshed = time.monotonic()
        self.task: asyncio.Task[None] | None = None
        # Adoption (a restarted kubelet): what to remove, and what is left to do on the first pass.
        self._adopting = False
        self._discard: list[ContainerStatus] = []
        self._discard_sandboxes: list[Sandbox] = []
        if adopt is not None and (adopt.sandboxes or adopt.containers):
            self._take(adopt)

    # -- driving ---------------------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"pod-{self.namespace}/{self.name}")

    def update(self, pod: dict) -> None:
        self.pod = pod
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                if await self._sync():
                    return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pod %s/%s: sync failed", self.namespace, self.name)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._wake.wait()

    @property
    def pod_ip(self) -> str | None:
        return self.sandbox.ip if self.sandbox else None

    @property
    def records(self) -> list[ContainerRecord]:
        return [*self.inits, *self.containers]

    def _spec_of(self, rec: ContainerRecord) -> dict:
        key = "initContainers" if rec.init else "containers"
        return next(c for c in (self.pod.get("spec") or {}).get(key) or [] if c["name"] == rec.name)

    # -- adoption (a restarted kubelet) ---------------------------------------------------------

    def _take(self, found: Adoptable) -> None:
        """Carry on with what the runtime has of this pod: the newest ready sandbox (else the
        newest), and per container the newest attempt in it as ``current`` (restartCount =
        its attempt) and the exited one before as ``previous``.  Everything else (older
        attempts, other sandboxes and their containers) is removed on the first pass."""
        def created(x: Sandbox | ContainerStatus) -> dt.datetime:
            return x.created_at or _EPOCH

        ready = [s for s in found.sandboxes if s.ready]
        keep = max(ready or found.sandboxes, key=created, default=None)
        self.sandbox = keep
        self._discard_sandboxes = [s for s in found.sandboxes if s is not keep]
        records = {r.name: r for r in self.records}
        mine: dict[str, list[ContainerStatus]] = {}
        for c in found.containers:
            name = c.labels.get(LABEL_CONTAINER_NAME, "")
            elsewhere = c.sandbox_id is not None and (keep is None or c.sandbox_id != keep.id)
            if name in records and not elsewhere:
                mine.setdefault(name, []).append(c)
            else:
                self._discard.append(c)
        for name, found_attempts in mine.items():
            rec = records[name]
            attempts = sorted(found_attempts, key=lambda c: (attempt_of(c), created(c)))
            cur = attempts.pop()
            rec.restart_count = attempt_of(cur)
            if cur.state in ("running", "exited"):
                rec.current, rec.waiting_reason = cur, ""
            else:  # created but never started (the kubelet died in between): start this attempt afresh
                self._discard.append(cur)
            rec.previous = next((c for c in reversed(attempts)
                                 if c.state == "exited" and attempt_of(c) < rec.restart_count), None)
            self._discard += [c for c in attempts if c is not rec.previous]
        self._adopting = True
        log.info("pod %s/%s: adopting sandbox %s and containers %s", self.namespace, self.name,
                 keep.id[:12] if keep else None,
                 ", ".join(f"{r.name}#{r.restart_count}" for r in self.records if r.current) or "none")

    async def _finish_adoption(self) -> None:
        """Remove what was not adopted, replace a sandbox that is not ready any more, and pick
        up where the previous kubelet left: image IDs, probes of the running containers."""
        runtime = self.kubelet.runtime
        for c in self._discard:
            try:
                if c.state != "exited":
                    await runtime.stop_container(c.id, 0)
                await runtime.remove_container(c.id)
            except Exception as e:
                log.warning("pod %s/%s: removing container %s: %s", self.namespace, self.name, c.id[:12], e)
        for sb in self._discard_sandboxes:
            await self._remove_sandbox(sb)
        self._discard, self._discard_sandboxes = [], []
        deleting = bool((self.pod.get("metadata") or {}).get("deletionTimestamp"))
        check = getattr(runtime, "check_pod_sandbox_network", None)
        if self.sandbox is not None and self.sandbox.ready and not deleting and check is not None:
            # CNI CHECK: the pod's interface, address and rules are still what ADD made.
            problem = await check(self.sandbox)
            if problem:
                log.warning("pod %s/%s: the network of sandbox %s is broken: %s", self.namespace, self.name,
                            self.sandbox.id[:12], problem)
                self.sandbox.ready = False
        if self.sandbox is not None and not self.sandbox.ready and not deleting:
            await self._replace_sandbox()
        for rec in self.records:
            if rec.current is None:
                continue
            spec = self._spec_of(rec)
            with contextlib.suppress(Exception):
                rec.image_id = await self.kubelet.image_id(spec) or rec.image_id
            if rec.running and not deleting:
                self.kubelet.prober.start(self, rec, spec, started_at=rec.current.started_at)

    async def _remove_sandbox(self, sandbox: Sandbox) -> None:
        try:
            await self.kubelet.runtime.stop_pod_sandbox(sandbox)
            await self.kubelet.runtime.remove_pod_sandbox(sandbox)
        except Exception as e:
            log.warning("pod %s/%s: removing sandbox %s: %s", self.namespace, self.name, sandbox.id[:12], e)

    async def _replace_sandbox(self) -> None:
        """The adopted sandbox lost its namespaces (a reboot unpinned them): kill what still
        runs in it and, unless the pod must not restart, start the pod again in a new
        sandbox, its containers at their next attempt (``SandboxChanged``)."""
        assert self.sandbox is not None
        runtime = self.kubelet.runtime
        with contextlib.suppress(Exception):
            await runtime.stop_pod_sandbox(self.sandbox)
        policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        if policy == "Never" and any(r.current is not None for r in self.records):
            return  # the pod ran and must not run again: its exits decide its phase
        self.kubelet.event(self.pod, "Normal", "SandboxChanged",
                           "Pod sandbox changed, it will be killed and re-created.")
        for rec in self.records:
            if rec.current is None:
                continue
            with contextlib.suppress(Exception):
                rec.current = await runtime.container_status(rec.current.id)
            rec.previous = rec.current if rec.current.state == "exited" else rec.previous
            rec.current = None
            rec.restart_count += 1
            rec.ready = rec.started = False
        await self._remove_sandbox(self.sandbox)
        self.sandbox = None

    # -- one pass ----------------------------------------------------------------------------

    async def _sync(self) -> bool:
        """One reconciliation; True when the pod is gone for good."""
        if self._adopting:
            self._adopting = False
            await self._finish_adoption()
        if (self.pod.get("metadata") or {}).get("deletionTimestamp"):
            await self._terminate()
            return True
        await self._refresh()
        if self._terminal:
            # Finished: nothing runs; report the final state (sidecars stopped by _finish, once
            # written) and wait for the deletion.
            await self._write_status()
            return False
        if self.sandbox is None and not await self._create_sandbox():
            await self._write_status()
            return False
        if self.volume_dirs is None:
            try:
                self.volume_dirs = await self.kubelet.volumes.setup(self.pod)
            except Exception as e:
                self.kubelet.event(self.pod, "Warning", "FailedMount", f"Unable to mount volumes: {e}")
                for rec in self.records:
                    rec.waiting_reason, rec.waiting_message = self._creating, ""
                await self._write_status()
                return False
        await self._refresh_volumes()
        if await self._run_init_containers():
            for rec in self.containers:
                await self._ensure_running(rec)
        await self._write_status()
        if self._finished():
            await self._finish()
        return False

    async def _refresh_volumes(self) -> None:
        """ConfigMap/Secret/projected volumes follow their sources while the pod runs."""
        now = time.monotonic()
        if now - self._volumes_refreshed >= self.kubelet.volume_refresh_period:
            self._volumes_refreshed = now
            for problem in await self.kubelet.volumes.refresh(self.pod):
                log.warning("pod %s/%s: volume refresh: %s", self.namespace, self.name, problem)
        for warning in self.kubelet.volumes.pop_warnings(self.uid):
            self.kubelet.event(self.pod, "Warning", "FailedMount", warning)

    async def _refresh(self) -> None:
        """Ask the runtime how each current container is doing."""
        for rec in self.records:
            if rec.current is None:
                continue
            was_running = rec.running
            try:
                rec.current = await self.kubelet.runtime.container_status(rec.current.id)
            except Exception as e:
                log.warning("pod %s/%s: status of %s: %s", self.namespace, self.name, rec.name, e)
                continue
            if was_running and not rec.running:
                self.kubelet.prober.stop(self.uid, rec.name)
                rec.ready = rec.started = False
            if rec.running and self.kubelet.prober.has(self.uid, rec.name):
                self.kubelet.prober.sync_record(self.uid, rec)
            elif rec.running:
                # No probes: started and ready as soon as it runs (readiness without a probe).
                spec = self._spec_of(rec)
                rec.started = rec.started or not spec.get("startupProbe")
                rec.ready = rec.ready or (rec.started and not spec.get("readinessProbe"))

    async def _create_sandbox(self) -> bool:
        """Make the pod's sandbox; False when it cannot be made now (the pod network is not
        ready, or the runtime failed: an event says why, and a later pass retries, backing off
        from 1 s to 30 s)."""
        not_ready = self.kubelet.network_not_ready(self.pod)
        if not_ready:
            if self._sandbox_problem != not_ready:
                self.kubelet.event(self.pod, "Warning", "NetworkNotReady", not_ready)
            self._sandbox_problem = not_ready
            return False
        not_before, delay = self._sandbox_retry
        if time.monotonic() < not_before:
            return False
        try:
            config = self.kubelet.sandbox_config(self.pod)
            async with self.kubelet.start_slots.slot(self.arrival):
                self.sandbox = await self.kubelet.runtime.run_pod_sandbox(config)
        except Exception as e:
            delay = min(delay * 2, SANDBOX_RETRY_MAX) if delay else 1.0
            self._sandbox_retry = (time.monotonic() + delay, delay)
            self._sandbox_problem = f"Failed to create pod sandbox: {e}"
            self.kubelet.event(self.pod, "Warning", "FailedCreatePodSandBox", self._sandbox_problem)
            log.warning("pod %s/%s: %s", self.namespace, self.name, self._sandbox_problem)
            return False
        self._sandbox_problem, self._sandbox_retry = None, (0.0, 0.0)
        return True

    async def _run_init_containers(self) -> bool:
        """Start the next init container when the one before succeeded; True when all have
        (sidecars: started)."""
        policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        # A regular container that runs: initialized before, so a sidecar that restarts (or
        # waits out its back-off) holds nothing back (the kubelet's podHasInitialized).
        initialized = any(r.current is not None and r.current.state in ("created", "running")
                          for r in self.containers)
        for rec in self.inits:
            if rec.sidecar:
                await self._ensure_running(rec, restart_policy="Always")
                if not rec.started and not initialized:
                    return False
                continue
            if rec.succeeded:
                continue
            if rec.current is None:
                await self._start(rec)
                return False
            if rec.running:
                return False
            # Failed: the pod fails with restartPolicy Never, else the init container is retried.
            if policy != "Never":
                await self._restart_with_backoff(rec)
            return False
        return True

    async def _ensure_running(self, rec: ContainerRecord, restart_policy: str | None = None) -> None:
        policy = restart_policy or (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        if rec.current is None:
            await self._start(rec)
        elif rec.exited:
            code = rec.current.exit_code
            if policy == "Always" or (policy == "OnFailure" and code != 0):
                await self._restart_with_backoff(rec)

    def _finished(self) -> bool:
        st = self._written or {}
        return st.get("phase") in ("Succeeded", "Failed")

    async def _finish(self) -> None:
        """A pod that reached Succeeded/Failed: stop what still runs (sidecars) and its sandbox."""
        self._terminal = True
        await self._stop_all(grace=0)
        if self.sandbox is not None:
            await self.kubelet.runtime.stop_pod_sandbox(self.sandbox)

    # -- containers ---------------------------------------------------------------------------

    async def _restart_with_backoff(self, rec: ContainerRecord) -> None:
        """Restart an exited container, unless it is within its back-off (CrashLoopBackOff:
        10 s after the second exit, doubling to 5 min; reset after 10 min of running)."""
        cur = rec.current
        assert cur is not None
        base = self.kubelet.backoff_base
        delay = self._backoff.get(rec.name)
        ran = (cur.finished_at - cur.started_at).total_seconds() if cur.finished_at and cur.started_at else 0.0
        if ran >= BACKOFF_RESET_AFTER:
            delay = None
        finished = cur.finished_at.timestamp() if cur.finished_at else time.time()
        if delay is not None and time.time() - finished < delay:
            if rec.waiting_reason != "CrashLoopBackOff":
                self.kubelet.event(self.pod, "Warning", "BackOff", "Back-off restarting failed container "
                                   f"{rec.name} in pod {self.name}_{self.namespace}({self.uid})", field=rec.name)
            rec.waiting_reason = "CrashLoopBackOff"
            rec.waiting_message = (f"back-off {_duration(delay)} restarting failed container={rec.name} "
                                   f"pod={self.name}_{self.namespace}({self.uid})")
            return
        self._backoff[rec.name] = base if delay is None else min(delay * 2, self.kubelet.max_backoff)
        rec.restart_count += 1
        await self._start(rec)
        if rec.current is cur:
            # No new instance (the pull, the configuration or the create failed; the waiting
            # reason says why): not a restart, and the exited instance stays the current one.
            rec.restart_count -= 1
            return
        old = rec.previous
        rec.previous = cur
        if old is not None:
            with contextlib.suppress(Exception):
                await self.kubelet.runtime.remove_container(old.id)

    async def _start(self, rec: ContainerRecord) -> None:
        """Pull, configure, create and start one container; failures become its waiting reason."""
        assert self.sandbox is not None
        spec = self._spec_of(rec)
        rec.waiting_reason, rec.waiting_message = self._creating, ""
        image_name = spec.get("image", "")
        until, delay = self._pull_backoff.get(rec.name, (0.0, 0.0))
        if time.monotonic() < until:
            # Between failed pulls: ImagePullBackOff, 10 s doubling to 5 min, as the kubelet.
            rec.waiting_reason, rec.waiting_message = "ImagePullBackOff", f'Back-off pulling image "{image_name}"'
            return
        try:
            image = await self.kubelet.pull(self.pod, spec)
        except Exception as e:
            reason, message = self.kubelet.image_error(e)
            rec.waiting_reason, rec.waiting_message = reason, message
            delay = min(delay * 2, self.kubelet.max_backoff) if delay else self.kubelet.backoff_base
            self._pull_backoff[rec.name] = (time.monotonic() + delay, delay)
            self.kubelet.event(self.pod, "Warning", "Failed", f'Failed to pull image "{image_name}": {message}',
                               field=rec.name)
            return
        self._pull_backoff.pop(rec.name, None)
        rec.image_id = image.image_id
        try:
            config = await self._container_config(rec, spec, image)
        except ContainerConfigError as e:
            rec.waiting_reason, rec.waiting_message = "CreateContainerConfigError", str(e)
            self.kubelet.event(self.pod, "Warning", "Failed", f"Error: {e}", field=rec.name)
            return
        runtime = self.kubelet.runtime
        start_error: Exception | None = None
        async with self.kubelet.start_slots.slot(self.arrival):
            try:
                cid = await runtime.create_container(self.sandbox, config)
            except Exception as e:
                rec.waiting_reason, rec.waiting_message = "CreateContainerError", str(e)
                self.kubelet.event(self.pod, "Warning", "Failed", f"Error: {e}", field=rec.name)
                return
            try:
                await runtime.start_container(cid)
            except Exception as e:
                start_error = e
        self.kubelet.event(self.pod, "Normal", "Created", f"Created container {rec.name}", field=rec.name)
        if start_error is not None:
            self.kubelet.event(self.pod, "Warning", "Failed", f"Error: {start_error}", field=rec.name)
        rec.current = await runtime.container_status(cid)
        if start_error is None:  # (a quick container may already have exited again)
            self.kubelet.event(self.pod, "Normal", "Started", f"Started container {rec.name}", field=rec.name)
            rec.waiting_reason, rec.waiting_message = "", ""
        if rec.running:
            if not await self.kubelet.post_start(self, rec, spec):
                return
            self.kubelet.prober.start(self, rec, spec)

    async def _container_config(self, rec: ContainerRecord, spec: dict, image: Any) -> ContainerConfig:
        pod_ip = self.sandbox.ip if self.sandbox else None
        try:
            env = await self.kubelet.container_env(self.pod, spec, pod_ip)
            args = ocispec.container_args(spec, image.config, env)
            mounts = self.kubelet.volumes.mounts_for(self.pod, spec, self.volume_dirs or {}, env)
        except ContainerConfigError:
            raise
        except (ValueError, LookupError) as e:
            raise ContainerConfigError(str(e)) from e
        cfg = ocispec.runtime_config(image.config)
        image_env = dict(kv.split("=", 1) for kv in cfg.get("Env") or [] if "=" in kv)
        return ContainerConfig(
            name=rec.name, image=spec.get("image", ""), args=args, env={**image_env, **env},
            log_path=self.log_path(rec.name, rec.restart_count),
            working_dir=spec.get("workingDir") or cfg.get("WorkingDir") or None, mounts=mounts,
            image_ref=image.ref, image_config=dict(cfg),
            security_context=spec.get("securityContext") or {},
            pod_security_context=(self.pod.get("spec") or {}).get("securityContext") or {},
            resources=spec.get("resources") or {}, tty=bool(spec.get("tty")), stdin=bool(spec.get("stdin")),
            stdin_once=bool(spec.get("stdinOnce")),
            labels={LABEL_POD_UID: self.uid, LABEL_POD_NAME: self.name, LABEL_POD_NAMESPACE: self.namespace,
                    LABEL_CONTAINER_NAME: rec.name, LABEL_ATTEMPT: str(rec.restart_count)})

    def log_path(self, container: str, attempt: int) -> Path:
        """The kubelet's layout: /var/log/pods/<ns>_<pod>_<uid>/<container>/<restartCount>.log"""
        d = self.kubelet.logs_dir / f"{self.namespace}_{self.name}_{self.uid}" / container
        d.mkdir(parents=True, exist_ok=True)
        return d / f"{attempt}.log"

    async def kill(self, rec: ContainerRecord, reason: str, message: str) -> None:
        """Stop one container (a failed liveness probe or postStart hook); the next pass
        restarts it per restartPolicy."""
        if rec.current is None or not rec.running:
            return
        self.kubelet.event(self.pod, "Normal", "Killing", message, field=rec.name)
        grace = int((self.pod.get("spec") or {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE))
        self.kubelet.prober.stop(self.uid, rec.name)
        await self.kubelet.run_pre_stop(self, rec, self._spec_of(rec), time.monotonic() + grace)
        await self.kubelet.runtime.stop_container(rec.current.id, grace)
        rec.current = await self.kubelet.runtime.container_status(rec.current.id)
        if reason and rec.current.reason in ("", "Error", "Completed") and rec.current.exit_code not in (None, 0):
            rec.current.reason = "Error"
        self.wake()

    # -- termination ------------------------------------------------------------------------------

    def _grace(self) -> int:
        meta, spec = self.pod.get("metadata") or {}, self.pod.get("spec") or {}
        grace = meta.get("deletionGracePeriodSeconds")
        return int(spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE) if grace is None else grace)

    async def _stop_all(self, grace: int) -> None:
        deadline = time.monotonic() + grace
        running = [r for r in self.records if r.running]

        async def stop(rec: ContainerRecord) -> None:
            assert rec.current is not None
            self.kubelet.prober.stop(self.uid, rec.name)
            if grace > 0:
                await self.kubelet.run_pre_stop(self, rec, self._spec_of(rec), deadline)
            await self.kubelet.runtime.stop_container(rec.current.id, max(0.0, deadline - time.monotonic()))

        await asyncio.gather(*(stop(r) for r in running), return_exceptions=True)
        await self._refresh()

    async def stop_everything(self) -> None:
        """Kill the pod's containers and sandbox without touching the API (the kubelet exits)."""
        await self._stop_all(grace=0)
        if self.sandbox is not None:
            with contextlib.suppress(Exception):
                await self.kubelet.runtime.stop_pod_sandbox(self.sandbox)

    async def _terminate(self) -> None:
        """The pod is being deleted: stop everything within its grace period, report the
        final status, release the sandbox and volumes, and remove the pod object."""
        if not self._terminal:
            for rec in self.records:
                if rec.running:
                    self.kubelet.event(self.pod, "Normal", "Killing", f"Stopping container {rec.name}",
                                       field=rec.name)
            await self._refresh()
            await self._stop_all(self._grace())
            with contextlib.suppress(Exception):
                await self._write_status(pod_is_terminal=True)
        if self.sandbox is not None:
            with contextlib.suppress(Exception):
                await self.kubelet.runtime.stop_pod_sandbox(self.sandbox)
                await self.kubelet.runtime.remove_pod_sandbox(self.sandbox)
        await self.kubelet.prober.close(self.uid)
        with contextlib.suppress(Exception):
            await self.kubelet.volumes.teardown(self.uid)
        try:
            await self.kubelet.client.delete("v1", "pods", self.name, self.namespace, gracePeriodSeconds=0,
                                             preconditions={"uid": self.uid})
        except ApiException as e:
            if e.status not in (404, 409):
                raise

    # -- status -----------------------------------------------------------------------------------

    async def _write_status(self, terminal_reason: str | None = None, pod_is_terminal: bool = False) -> None:
        pod = self.pod
        if self._written is not None:
            # Conditions keep their lastTransitionTime from what we last wrote, not from the
            # informer's copy, which may not have caught up yet (the kubelet's status manager).
            pod = {**pod, "status": {**(pod.get("status") or {}), "conditions": self._written["conditions"]}}
        status = pod_status(pod, inits=self.inits, containers=self.containers,
                            runtime=self.kubelet.runtime.name, host_ip=self.kubelet.host_ip,
                            pod_ip=self.sandbox.ip if self.sandbox else None, start_time=self.start_time,
                            sandbox_ready=self.sandbox is not None, terminal_reason=terminal_reason,
                            pod_is_terminal=pod_is_terminal)
        if status == self._written:
            return
        try:
            await self.kubelet.client.patch("v1", "pods", self.name, {"status": status}, self.namespace,
                                            sub="status")
        except ApiException as e:
            if e.status == 404:
                return
            raise
        self._written = status


def _duration(seconds: float) -> str:
    """Go's time.Duration formatting for whole seconds: 10s, 1m20s, 5m0s."""
    s = int(seconds)
    return f"{s // 60}m{s % 60}s" if s >= 60 else f"{s}s"


__all__ = ["Adoptable", "ContainerConfigError", "PodWorker", "attempt_of"]
