"""Leader election on a ``coordination.k8s.io/v1`` Lease (client-go's
``leaderelection`` with a ``LeaseLock``).

Candidates race to write themselves into the Lease's ``holderIdentity``.  Every
write is a PUT carrying the resourceVersion that was read, so of two
candidates reading the same expired lease only one write succeeds (the other
gets 409 Conflict): two candidates never both win.  The leader renews every
``retry_period``; if it cannot renew for ``renew_deadline`` (which must be
shorter than ``lease_duration``, so it gives up before anyone may take over)
it stops leading and :meth:`LeaderElector.run` returns.  A process should
then exit, or call ``run()`` again to rejoin the election.

Expiry is judged from the lease's ``renewTime`` against this host's clock, so
candidates' clocks must agree to well within ``lease_duration``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any

from ..api.times import format_micro_time
from ..api.times import parse_time as parse_micro_time
from .rest import ApiException, RestClient

log = logging.getLogger(__name__)

API_VERSION = "coordination.k8s.io/v1"
PLURAL = "leases"


class LeaderElector:
    def __init__(self, client: RestClient, namespace: str, name: str, identity: str, lease_duration: float = 15.0,
                 renew_deadline: float = 10.0, retry_period: float = 2.0,
                 on_started_leading: Callable[[], Awaitable[Any]] | None = None,
                 on_stopped_leading: Callable[[], Any] | None = None, release_on_cancel: bool = True):
        if not identity:
            raise ValueError("identity must not be empty")
        if not lease_duration > renew_deadline > retry_period > 0:
            raise ValueError("need lease_duration > renew_deadline > retry_period > 0")
        self.client = client
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_duration, self.renew_deadline, self.retry_period = lease_duration, renew_deadline, retry_period
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.release_on_cancel = release_on_cancel
        self.clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
        self._leading = False
        self._stop = asyncio.Event()
        self.observed: dict | None = None  # the last Lease we read or wrote

    @property
    def is_leader(self) -> bool:
        return self._leading

    @property
    def leader(self) -> str:
        """The holder according to the lease as last observed ("" when none)."""
        return ((self.observed or {}).get("spec") or {}).get("holderIdentity") or ""

    # -- one attempt -----------------------------------------------------------------

    def _lease_seconds(self) -> int:
        return max(1, math.ceil(self.lease_duration))  # leaseDurationSeconds is a whole int32 > 0

    async def try_acquire_or_renew(self) -> bool:
        """One attempt to take or renew the lease; True when we hold it afterwards."""
        now = self.clock()
        stamp = format_micro_time(now)
        try:
            lease = await self.client.get(API_VERSION, PLURAL, self.name, self.namespace)
        except ApiException as e:
            if e.status != 404:
                raise
            body = {"apiVersion": API_VERSION, "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": self._lease_seconds(),
                             "acquireTime": stamp, "renewTime": stamp, "leaseTransitions": 0}}
            try:
                self.observed = await self.client.create(API_VERSION, PLURAL, body, self.namespace)
            except ApiException as e2:
                if e2.status == 409:
                    return False  # another candidate created it first
                raise
            return True
        self.observed = lease
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.identity and not self._expired(spec, now):
            return False
        new_spec = dict(spec)
        if holder != self.identity:
            new_spec["acquireTime"] = stamp
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        new_spec.update(holderIdentity=self.identity, leaseDurationSeconds=self._lease_seconds(), renewTime=stamp)
        # The read resourceVersion rides along: a concurrent writer makes this a 409.
        updated = {**lease, "spec": new_spec}
        try:
            self.observed = await self.client.update(API_VERSION, PLURAL, updated, self.namespace)
        except ApiException as e:
            if e.status == 409:
                return False
            raise
        return True

    @staticmethod
    def _expired(spec: dict, now: dt.datetime) -> bool:
        renewed = parse_micro_time(spec.get("renewTime")) or parse_micro_time(spec.get("acquireTime"))
        if renewed is None:
            return True
        duration = float(spec.get("leaseDurationSeconds") or 0)
        return renewed + dt.timedelta(seconds=duration) < now

    async def _attempt(self, timeout: float) -> bool:
        # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation
        # that arrives as the attempt completes, and the candidate would never stop.
        try:
            async with asyncio.timeout(timeout):
                return await self.try_acquire_or_renew()
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            log.warning("lease %s/%s: attempt timed out after %.2fs", self.namespace, self.name, timeout)
            return False
        except Exception as e:
            log.warning("lease %s/%s: attempt failed: %s: %s", self.namespace, self.name, type(e).__name__, e)
            return False

    def _held_by_other(self) -> bool:
        return self.leader not in ("", self.identity)

    # -- the loop ------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to step down (releasing the lease) and return.  Called
        before ``run()`` got going, it makes that ``run()`` return at once."""
        self._stop.set()

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped; True when stop() was called."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()
        return self._stop.is_set()

    async def run(self) -> None:
        """Acquire, lead, renew; return when leadership is lost or :meth:`stop` is
        called.  Cancelling ``run()`` also steps down (and releases the lease when
        ``release_on_cancel``).  ``on_stopped_leading`` runs only if we led.
        ``run()`` may be called again afterwards to rejoin the election."""
        try:
            await self._run()
        finally:
            self._stop.clear()  # consumed: a later run() starts afresh

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        # Acquire (with jitter, so candidates don't retry in lockstep).
        while not self._stop.is_set():
            if await self._attempt(self.retry_period):
                break
            if await self._sleep(self.retry_period * (1 + 0.2 * random.random())):
                return
        else:
            return
        self._leading = True
        log.info("lease %s/%s: %s became leader", self.namespace, self.name, self.identity)
        task: asyncio.Task[Any] | None = None
        if self.on_started_leading is not None:
            task = asyncio.create_task(self._lead(self.on_started_leading), name=f"leading-{self.name}")
        release = False
        try:
            last_renew = loop.time()
            while True:
                stop = await self._wait_stop_or_task(task, self.retry_period)
                if stop:
                    release = True
                    break
                if task is not None and task.done():
                    log.info("lease %s/%s: leading work finished; stepping down", self.namespace, self.name)
                    release = True
                    break
                remaining = last_renew + self.renew_deadline - loop.time()
                if remaining > 0 and await self._attempt(remaining):
                    last_renew = loop.time()
                    continue
                if self._held_by_other():
                    # Someone else holds a live lease: we are not the leader any more.
                    log.warning("lease %s/%s: taken over by %s", self.namespace, self.name, self.leader)
                    break
                if loop.time() - last_renew >= self.renew_deadline:
                    log.warning("lease %s/%s: could not renew within %.1fs", self.namespace, self.name,
                                self.renew_deadline)
                    break
        except asyncio.CancelledError:
            release = self.release_on_cancel
            raise
        finally:
            self._leading = False
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if release:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self.renew_deadline):
                        await self.release()
            if self.on_stopped_leading is not None:
                try:
                    self.on_stopped_leading()
                except Exception:
                    log.exception("on_stopped_leading failed")
            log.info("lease %s/%s: %s stopped leading", self.namespace, self.name, self.identity)

    async def _lead(self, fn: Callable[[], Awaitable[Any]]) -> None:
        try:
            await fn()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("lease %s/%s: on_started_leading failed", self.namespace, self.name)

    async def _wait_stop_or_task(self, task: asyncio.Task[Any] | None, seconds: float) -> bool:
        """Wait ``seconds``, or less if stopped or the leading task ends; True when stopped."""
        stop_wait = asyncio.ensure_future(self._stop.wait())
        waits: set[asyncio.Future[Any]] = {stop_wait}
        if task is not None:
            waits.add(task)
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_wait.cancel()
        return self._stop.is_set()

    async def release(self) -> bool:
        """Give the lease up if we hold it: empty holder and a 1s duration, so the
        next candidate takes over at its next attempt instead of waiting out the
        lease.  True when released."""
        try:
            lease = await self.client.get(API_VERSION, PLURAL, self.name, self.namespace)
        except ApiException:
            return False
        spec = lease.get("spec") or {}
        if spec.get("holderIdentity") != self.identity:
            return False
        stamp = format_micro_time(self.clock())
        new_spec = {**spec, "holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": stamp,
                    "acquireTime": stamp}
        try:
            self.observed = await self.client.update(API_VERSION, PLURAL, {**lease, "spec": new_spec},
                                                     self.namespace)
        except ApiException as e:
            log.warning("lease %s/%s: release failed: %s", self.namespace, self.name, e)
            return False
        self._leading = False
        return True


__all__ = ["LeaderElector", "format_micro_time", "parse_micro_time"]
