"""A small cluster in the test process: simulated nodes, controllers and a scheduler
against the in-process API server of ``tests/integration/conftest.py``; and the real
``kubectl`` driven asynchronously against it.

``running(api, ...)`` starts, in this order, a :class:`NodeSimulator`, a client, a
:class:`SharedInformerFactory`, an :class:`EventRecorder`, the controllers asked for and
(optionally) a :class:`Scheduler`, and stops them in the reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pinnace.client.events import EventRecorder
from pinnace.client.informer import SharedInformerFactory
from pinnace.client.rest import RestClient
from pinnace.scheduler.scheduler import Scheduler
from pinnace.simulate import NodeSimulator

#: Builds a controller (anything with ``start()`` and ``async stop()``) from the shared
#: client, informer factory and event recorder; a controller class itself is one.
ControllerFactory = Callable[[RestClient, SharedInformerFactory, EventRecorder], Any]

#: Every simulated node starts its pods quickly in these tests.
SIMULATOR_DEFAULTS: Mapping[str, Any] = {"start_delay": 0.05}


@dataclass
class Cluster:
    api: Any
    client: RestClient
    factory: SharedInformerFactory
    recorder: EventRecorder
    controllers: list[Any] = field(default_factory=list)
    simulators: list[NodeSimulator] = field(default_factory=list)
    scheduler_task: asyncio.Task[None] | None = None

    @property
    def simulator(self) -> NodeSimulator:
        """The first simulator (the one ``running`` started with ``nodes``)."""
        return self.simulators[0]

    async def add_nodes(self, count: int, **simulator_kwargs: Any) -> list[str]:
        """Start ``count`` more simulated nodes (stopped with the cluster); their names."""
        sim = NodeSimulator(kubeconfig=self.api.kubeconfig, **{**SIMULATOR_DEFAULTS, **simulator_kwargs},
                            count=count)
        await sim.start()
        self.simulators.append(sim)
        return sim.node_names

    async def stop_scheduler(self) -> None:
        if self.scheduler_task is not None:
            self.scheduler_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.scheduler_task
            self.scheduler_task = None


@contextlib.asynccontextmanager
async def running(api: Any, *, nodes: int = 3, controllers: Sequence[ControllerFactory] = (),
                  scheduler: bool = True, component: str = "controller-manager",
                  simulator_kwargs: Mapping[str, Any] | None = None,
                  make_client: Callable[[Path], RestClient] | None = None) -> AsyncIterator[Cluster]:
    """A cluster of ``nodes`` simulated nodes (none for 0; ``simulator_kwargs`` go to the
    :class:`NodeSimulator`), the ``controllers`` sharing one client, informer factory and
    recorder (events from ``component``), and a scheduler (seed 7) unless ``scheduler`` is
    false.  ``make_client`` builds the controllers' client from the kubeconfig; the
    scheduler then gets a plain client of its own."""
    stack = contextlib.AsyncExitStack()
    async with stack:
        client = (make_client or RestClient.from_kubeconfig)(api.kubeconfig)
        stack.push_async_callback(client.close)
        factory = SharedInformerFactory(client)
        recorder = EventRecorder(client, component)
        cluster = Cluster(api, client, factory, recorder)
        if nodes:
            await cluster.add_nodes(nodes, **(simulator_kwargs or {}))

        async def stop_simulators() -> None:
            for sim in reversed(cluster.simulators):
                await sim.stop()
        stack.push_async_callback(stop_simulators)

        recorder.start()
        stack.push_async_callback(factory.stop)
        stack.push_async_callback(recorder.stop)
        for make in controllers:
            ctrl = make(client, factory, recorder)
            cluster.controllers.append(ctrl)
        factory.start()
        for ctrl in cluster.controllers:
            ctrl.start()
            stack.push_async_callback(ctrl.stop)
        if scheduler:
            sched_client = client
            if make_client is not None:
                sched_client = RestClient.from_kubeconfig(api.kubeconfig)
                stack.push_async_callback(sched_client.close)
            cluster.scheduler_task = asyncio.create_task(Scheduler(sched_client, seed=7).run())
        stack.push_async_callback(cluster.stop_scheduler)
        yield cluster


class PodSamples:
    """The pods of one app as a watch (from ``pod_list``'s resourceVersion) sees them, in the
    order the API server committed the changes: ``samples`` holds ``sample()`` (a subclass
    says what it measures) taken at the start and after every change."""

    def __init__(self, client: RestClient, app: str, pod_list: dict):
        self.pods: dict[str, dict] = {p["metadata"]["name"]: p for p in pod_list["items"]
                                      if p["metadata"]["labels"].get("app") == app}
        self.samples: list[Any] = [self.sample()]
        self._task = asyncio.create_task(self._run(client, app, pod_list["metadata"]["resourceVersion"]))

    async def _run(self, client: RestClient, app: str, rv: str) -> None:
        async for ev in client.watch("v1", "pods", "default", labelSelector=f"app={app}", resourceVersion=rv):
            pod = ev["object"]
            if ev["type"] == "DELETED":
                self.pods.pop(pod["metadata"]["name"], None)
            elif ev["type"] in ("ADDED", "MODIFIED"):
                self.pods[pod["metadata"]["name"]] = pod
            else:
                continue
            self.samples.append(self.sample())

    def sample(self) -> Any:
        raise NotImplementedError

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


# -- kubectl -------------------------------------------------------------------------------------


class KubectlProcess:
    """A running kubectl (stdout and stderr together) whose output lines are collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.lines.append(line.decode(errors="replace"))

    @property
    def output(self) -> str:
        """Everything it printed so far, as printed."""
        return "".join(self.lines)

    async def wait_for_line(self, text: str, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not any(text in line for line in self.lines):
                if self.proc.returncode is not None:
                    raise AssertionError(f"kubectl exited before printing {text!r}:\n{self.output}")
                await asyncio.sleep(0.05)

    async def wait(self, timeout: float) -> int:
        async with asyncio.timeout(timeout):
            rc = await self.proc.wait()
            await self._reader
        return rc

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


async def start_kubectl(api: Any, *args: str) -> KubectlProcess:
    """Start ``kubectl args...`` against ``api`` (its kubeconfig) without waiting for it."""
    proc = await asyncio.create_subprocess_exec(
        "kubectl", f"--kubeconfig={api.kubeconfig}", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env={**os.environ, "KUBECONFIG": str(api.kubeconfig)})
    return KubectlProcess(proc)


async def kubectl(api: Any, *args: str, timeout: float = 30) -> tuple[int, str]:
    """Run ``kubectl args...`` against ``api``: its exit code and its output (stdout and
    stderr together); killed, and TimeoutError raised, after ``timeout`` s."""
    k = await start_kubectl(api, *args)
    try:
        rc = await k.wait(timeout)
    finally:
        await k.kill()
    return rc, k.output


__all__ = ["Cluster", "ControllerFactory", "KubectlProcess", "PodSamples", "kubectl", "running", "start_kubectl"]
