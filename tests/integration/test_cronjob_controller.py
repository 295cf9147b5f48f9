"""The CronJob controller (with the Job controller, a scheduler and simulated nodes)
against an in-process API server.  Most tests move the controller's clock instead
of waiting for minutes to pass; one lets a schedule fire through the requeue timer.

Conformance (/work/shared/reference/conformance.yaml) behaviours covered:
"CronJob Suspend", "CronJob ForbidConcurrent", "CronJob ReplaceConcurrent",
"CronJob AllowConcurrent".
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pinnace.controllers import controller_utils as cu
from pinnace.controllers.cronjob import CronJobController
from pinnace.controllers.job import JobController
from tests.support.cluster import kubectl, running
from tests.support.waiting import eventually, get_ok

from .test_job_controller import JOBS, NODES, PODS, create, event_reasons, finished, patch

CRONJOBS = "/apis/batch/v1/namespaces/default/cronjobs"


class Clock:
    """Real time plus an adjustable offset."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.offset)

    def jump(self, seconds: float) -> None:
        self.offset += seconds

    def to_next_minute(self, plus: float = 1.0) -> dt.datetime:
        """Move to ``plus`` seconds past the next minute boundary; returns that boundary."""
        now = self()
        boundary = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        self.jump((boundary - now).total_seconds() + plus)
        return boundary


@contextlib.asynccontextmanager
async def cluster(api) -> AsyncIterator[tuple[CronJobController, Clock]]:
    """The CronJob controller, on a clock of its own, and the Job controller."""
    clock = Clock()
    controllers = (functools.partial(CronJobController, clock=clock, default_tz=dt.UTC),
                   functools.partial(JobController, backoff_base=0.2))
    async with running(api, nodes=2, controllers=controllers, component="cronjob-controller",
                       simulator_kwargs=NODES) as c:
        yield c.controllers[0], clock


def cronjob(name: str, schedule: str = "* * * * *", *, exit_after: float = 60, exit_code: int = 0,
            **spec: Any) -> dict:
    ann = {"sim.pinnace.io/exit-after": str(exit_after)}
    if exit_code:
        ann["sim.pinnace.io/exit-code"] = str(exit_code)
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": schedule, **spec, "jobTemplate": {
                "metadata": {"labels": {"cron": name}},
                "spec": {"backoffLimit": 0, "template": {"metadata": {"annotations": ann}, "spec": {
                    "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox",
                                                              "resources": {"requests": {"cpu": "10m"}}}]}}}}}}


async def cron_jobs(api, name: str) -> list[dict]:
    items = (await get_ok(api, f"{JOBS}?labelSelector=cron%3D{name}"))["items"]
    return sorted((j for j in items if not j["metadata"].get("deletionTimestamp")),
                  key=lambda j: j["metadata"]["name"])


def active_names(cj: dict) -> list[str]:
    return [a["name"] for a in (cj.get("status") or {}).get("active") or []]


def minutes(t: dt.datetime) -> int:
    return int(t.timestamp()) // 60


async def tick(cjc: CronJobController, clock: Clock, name: str) -> dt.datetime:
    """One schedule period passes: the clock moves past the next minute and the
    CronJob is synced."""
    boundary = clock.to_next_minute()
    cjc.queue.add(f"default/{name}")
    return boundary


async def finish_pods(api, job_name: str) -> None:
    for p in (await get_ok(api, f"{PODS}?labelSelector=batch.kubernetes.io%2Fjob-name%3D{job_name}"))["items"]:
        if p["status"].get("phase") == "Running":
            await patch(api, f"{PODS}/{p['metadata']['name']}/status", {"status": {"phase": "Succeeded"}})


async def test_forbid_skips_while_the_last_run_runs(api):
    """Conformance "CronJob ForbidConcurrent"; also the Job's name, annotation (in the
    CronJob's time zone) and the CronJob's status."""
    async with cluster(api) as (cjc, clock):
        cj = await create(api, CRONJOBS, cronjob("forbid", concurrencyPolicy="Forbid", timeZone="Asia/Kolkata"))
        first = await tick(cjc, clock, "forbid")
        [j1] = await eventually(lambda: cron_jobs(api, "forbid"), lambda js: len(js) == 1)
        assert j1["metadata"]["name"] == f"forbid-{minutes(first)}"
        assert j1["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] == (
            first.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))).isoformat())
        assert cu.controller_ref(j1)["uid"] == cj["metadata"]["uid"]
        status = (await eventually(lambda: get_ok(api, f"{CRONJOBS}/forbid"),
                                   lambda c: len(active_names(c)) == 1))["status"]
        assert status["lastScheduleTime"] == first.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert status["active"][0] | {"resourceVersion": ""} == {
            "kind": "Job", "apiVersion": "batch/v1", "namespace": "default", "name": j1["metadata"]["name"],
            "uid": j1["metadata"]["uid"], "resourceVersion": ""}

        second = await tick(cjc, clock, "forbid")
        await eventually(lambda: event_reasons(api, "forbid"), lambda r: "JobAlreadyActive" in r)
        assert len(await cron_jobs(api, "forbid")) == 1

        # Once the run finishes, the skipped schedule time (still unmet, and within no
        # starting deadline) starts at last.
        async def finish_first() -> dict:
            await finish_pods(api, j1["metadata"]["name"])
            return await get_ok(api, f"{JOBS}/{j1['metadata']['name']}")

        done1 = await eventually(finish_first, finished("Complete"))
        js = await eventually(lambda: cron_jobs(api, "forbid"), lambda js: len(js) == 2)
        assert js[1]["metadata"]["name"] == f"forbid-{minutes(second)}"
        c = await eventually(lambda: get_ok(api, f"{CRONJOBS}/forbid"),
                             lambda c: [a["name"] for a in c["status"].get("active") or []]
                             == [js[1]["metadata"]["name"]] and c["status"].get("lastSuccessfulTime"))
        assert c["status"]["lastScheduleTime"] == second.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert c["status"]["lastSuccessfulTime"] == done1["status"]["completionTime"]
        assert "SawCompletedJob" in await event_reasons(api, "forbid")


async def test_replace_replaces_the_running_job(api):
    """Conformance "CronJob ReplaceConcurrent"."""
    async with cluster(api) as (cjc, clock):
        await create(api, CRONJOBS, cronjob("repl", concurrencyPolicy="Replace"))
        await tick(cjc, clock, "repl")
        [j1] = await eventually(lambda: cron_jobs(api, "repl"), lambda js: len(js) == 1)
        await eventually(lambda: get_ok(api, f"{CRONJOBS}/repl"), lambda c: c.get("status", {}).get("active"))
        second = await tick(cjc, clock, "repl")
        [j2] = await eventually(lambda: cron_jobs(api, "repl"),
                                lambda js: [j["metadata"]["name"] for j in js] == [f"repl-{minutes(second)}"])
        c = await eventually(lambda: get_ok(api, f"{CRONJOBS}/repl"),
                             lambda c: active_names(c) == [j2["metadata"]["name"]])
        assert c["status"]["active"][0]["uid"] == j2["metadata"]["uid"]
        assert "SuccessfulDelete" in await event_reasons(api, "repl")


async def test_allow_runs_jobs_concurrently(api):
    """Conformance "CronJob AllowConcurrent"."""
    async with cluster(api) as (cjc, clock):
        await create(api, CRONJOBS, cronjob("allow"))
        await tick(cjc, clock, "allow")
        await eventually(lambda: get_ok(api, f"{CRONJOBS}/allow"), lambda c: len(active_names(c)) == 1)
        await tick(cjc, clock, "allow")
        await eventually(lambda: get_ok(api, f"{CRONJOBS}/allow"), lambda c: len(active_names(c)) == 2)
        assert len(await cron_jobs(api, "allow")) == 2


async def test_history_limits_prune_old_jobs(api):
    async with cluster(api) as (cjc, clock):
        await create(api, CRONJOBS, cronjob("hist", exit_after=0.1, successfulJobsHistoryLimit=1))
        await create(api, CRONJOBS, cronjob("histf", exit_after=0.1, exit_code=1, failedJobsHistoryLimit=1))
        names: list[str] = []
        for _ in range(3):
            boundary = clock.to_next_minute()
            names.append(f"hist-{minutes(boundary)}")
            cjc.queue.add("default/hist")
            cjc.queue.add("default/histf")
            for name in ("hist", "histf"):
                await eventually(lambda n=name: get_ok(api, f"{CRONJOBS}/{n}"),
                                 lambda c, b=boundary: c.get("status", {}).get("lastScheduleTime") == b.strftime(
                                     "%Y-%m-%dT%H:%M:%SZ") and not c.get("status", {}).get("active"))
        # Only the newest finished Job of each kind is kept.
        ok = await eventually(lambda: cron_jobs(api, "hist"), lambda js: len(js) == 1)
        assert ok[0]["metadata"]["name"] == names[-1] and finished("Complete")(ok[0])
        bad = await eventually(lambda: cron_jobs(api, "histf"), lambda js: len(js) == 1)
        assert finished("Failed")(bad[0]) and bad[0]["metadata"]["name"].endswith(names[-1].split("-")[1])
        assert "SuccessfulDelete" in await event_reasons(api, "hist")


async def test_missed_schedules_start_only_the_most_recent(api):
    async with cluster(api) as (cjc, clock):
        await create(api, CRONJOBS, cronjob("missed"))
        await create(api, CRONJOBS, cronjob("late", startingDeadlineSeconds=10))
        # The controller was "down" for ten minutes.
        latest = clock.to_next_minute(plus=30) + dt.timedelta(minutes=9)
        clock.jump(9 * 60)
        cjc.queue.add("default/missed")
        cjc.queue.add("default/late")
        [j] = await eventually(lambda: cron_jobs(api, "missed"), lambda js: len(js) == 1)
        assert j["metadata"]["name"] == f"missed-{minutes(latest)}"
        # 30 s late is past a 10 s starting deadline: nothing starts.
        await asyncio.sleep(0.5)
        assert await cron_jobs(api, "late") == []
        assert (await get_ok(api, f"{CRONJOBS}/late")).get("status", {}).get("lastScheduleTime") is None

        # Down for more than 100 schedule times: still one Job, and a warning.
        clock.jump(200 * 60)
        latest = clock().replace(second=0, microsecond=0)
        cjc.queue.add("default/missed")
        js = await eventually(lambda: cron_jobs(api, "missed"), lambda js: len(js) == 2)
        assert js[1]["metadata"]["name"] == f"missed-{minutes(latest)}"
        await eventually(lambda: event_reasons(api, "missed"), lambda r: "TooManyMissedTimes" in r)


async def test_suspend_and_bad_time_zone_stop_scheduling(api):
    """Conformance "CronJob Suspend"."""
    async with cluster(api) as (cjc, clock):
        await create(api, CRONJOBS, cronjob("sus", suspend=True))
        await create(api, CRONJOBS, cronjob("tz", timeZone="Mars/Olympus_Mons"))
        await tick(cjc, clock, "sus")
        cjc.queue.add("default/tz")
        await eventually(lambda: event_reasons(api, "tz"), lambda r: "UnknownTimeZone" in r)
        await asyncio.sleep(0.3)
        assert await cron_jobs(api, "sus") == [] and await cron_jobs(api, "tz") == []
        await patch(api, f"{CRONJOBS}/sus", {"spec": {"suspend": False}})
        boundary = await tick(cjc, clock, "sus")
        [j] = await eventually(lambda: cron_jobs(api, "sus"), lambda js: len(js) == 1)
        assert j["metadata"]["name"] == f"sus-{minutes(boundary)}"


async def test_a_real_schedule_fires(api):
    """No manual sync: the controller requeues itself for the next schedule time, which
    (the clock set 1.5 s before a minute boundary) fires for real."""
    async with cluster(api) as (cjc, clock):
        now = clock()
        if now.second >= 55:  # creation and the fake "now" must share a minute
            await asyncio.sleep(61 - now.second)
            now = clock()
        clock.jump(58.5 - (now.second + now.microsecond / 1e6))
        boundary = clock().replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        await create(api, CRONJOBS, cronjob("real", exit_after=0.1))
        await asyncio.sleep(0.5)
        assert await cron_jobs(api, "real") == []  # not before its time
        [j] = await eventually(lambda: cron_jobs(api, "real"), lambda js: len(js) == 1, timeout=5)
        assert j["metadata"]["name"] == f"real-{minutes(boundary)}"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
async def test_kubectl_create_job_from_cronjob(api):
    async with cluster(api):
        cj = await create(api, CRONJOBS, cronjob("kc", "@daily", exit_after=0.2))
        rc, out = await kubectl(api, "create", "job", "manual-run", "--from=cronjob/kc")
        assert rc == 0 and "job.batch/manual-run created" in out, out
        rc, out = await kubectl(api, "wait", "--for=condition=complete", "job/manual-run", "--timeout=20s")
        assert rc == 0 and "condition met" in out, out
        j = await get_ok(api, f"{JOBS}/manual-run")
        assert cu.controller_ref(j)["uid"] == cj["metadata"]["uid"]
        assert j["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
        assert j["metadata"]["labels"]["cron"] == "kc"
