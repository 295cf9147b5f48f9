"""The client library's upper layers against an in-process API server:
configuration, watch semantics, informers (list+watch, relist on 410, indexes,
sharing), and Lease-based leader election."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from pinnace.client import informer as informer_mod
from pinnace.client.informer import Informer, SharedInformerFactory
from pinnace.client.leaderelection import LeaderElector, format_micro_time
from pinnace.client.rest import ApiException, ClientConfig, ConfigError, RestClient
from pinnace.pki import server_pki

CM = "/api/v1/namespaces/default/configmaps"
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture
async def client(api) -> AsyncIterator[RestClient]:
    c = RestClient.from_kubeconfig(api.kubeconfig, user_agent="client-library-test")
    yield c
    await c.close()


async def eventually(pred: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def cm(name: str, data: dict | None = None, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels or {}},
            "data": data or {}}


class Recorder:
    """Event handlers that log what they were called with."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_add(self, obj: dict) -> None:
        self.events.append(("add", obj["metadata"]["name"], obj["metadata"]["resourceVersion"]))

    def on_update(self, old: dict, new: dict) -> None:
        self.events.append(("update", new["metadata"]["name"], old["metadata"]["resourceVersion"],
                            new["metadata"]["resourceVersion"]))

    def on_delete(self, obj: dict) -> None:
        self.events.append(("delete", obj["metadata"]["name"]))

    def register(self, inf: Informer) -> None:
        inf.add_event_handler(self.on_add, self.on_update, self.on_delete)

    def kinds(self, name: str | None = None) -> list[tuple[str, str]]:
        return [(e[0], e[1]) for e in self.events if name is None or e[1] == name]


# -- configuration ------------------------------------------------------------------------


def _service_account(tmp_path: Path, pki_dir: Path, token: str) -> Path:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text(token + "\n")
    shutil.copy(server_pki(pki_dir, "10.43.0.1").ca.cert_path, sa / "ca.crt")
    (sa / "namespace").write_text("kube-system")
    return sa


async def test_in_cluster_config_and_token_rotation(api, tmp_path, pki_dir):
    sa = _service_account(tmp_path, pki_dir, "secret-token")
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(api.server.port)}
    cfg = ClientConfig.in_cluster(sa, env)
    assert cfg.server == f"https://127.0.0.1:{api.server.port}"
    assert cfg.namespace == "kube-system" and cfg.bearer_token() == "secret-token"
    client = RestClient(cfg)
    try:
        # The server accepts the service-account token...
        assert (await client.get("v1", "namespaces", "default"))["metadata"]["name"] == "default"
        # ...and a rotated token file is picked up on the next request.
        (sa / "token").write_text("rotated-and-unknown")
        st = (sa / "token").stat()
        os.utime(sa / "token", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        with pytest.raises(ApiException) as e:
            await client.get("v1", "namespaces", "default")
        assert e.value.status == 401
        assert cfg.bearer_token() == "rotated-and-unknown"
    finally:
        await client.close()


def test_in_cluster_config_ipv6_and_missing(tmp_path, pki_dir):
    sa = _service_account(tmp_path, pki_dir, "t")
    cfg = ClientConfig.in_cluster(sa, {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"})
    assert cfg.server == "https://[fd00::1]:443"
    with pytest.raises(ConfigError):
        ClientConfig.in_cluster(sa, {})
    with pytest.raises(ConfigError):
        ClientConfig.in_cluster(tmp_path / "absent", {"KUBERNETES_SERVICE_HOST": "h", "KUBERNETES_SERVICE_PORT": "1"})


def test_load_resolution_order(api, monkeypatch):
    expected = f"https://127.0.0.1:{api.server.port}"
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert ClientConfig.load(api.kubeconfig).server == expected
    monkeypatch.setenv("KUBECONFIG", f"{api.kubeconfig}{os.pathsep}/nonexistent")
    assert ClientConfig.load().server == expected
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConfigError):
        ClientConfig.load()  # no kubeconfig, not in a pod


# -- watch semantics ----------------------------------------------------------------------


async def test_watch_yields_bookmarks(api, client):
    api.server.handlers.bookmark_interval = 0.05
    created = await client.create("v1", "configmaps", cm("bm"), "default")
    rv = created["metadata"]["resourceVersion"]
    seen: list[str] = []
    async for event in client.watch("v1", "configmaps", "default", resourceVersion=rv, allowWatchBookmarks=True,
                                    timeoutSeconds=2):
        seen.append(event["type"])
        if event["type"] == "BOOKMARK":
            assert int(event["object"]["metadata"]["resourceVersion"]) >= int(rv)
            break
    assert "BOOKMARK" in seen


async def test_watch_raises_expired_on_410_error_event(api, client):
    first = await client.create("v1", "configmaps", cm("old"), "default")
    await client.create("v1", "configmaps", cm("newer"), "default")
    api.server.cache.forget_before(api.server.cache.revision)
    with pytest.raises(ApiException) as e:
        async for _ in client.watch("v1", "configmaps", "default",
                                    resourceVersion=first["metadata"]["resourceVersion"], timeoutSeconds=5):
            pass
    assert e.value.status == 410 and e.value.reason == "Expired"


# -- informers ----------------------------------------------------------------------------


async def test_informer_list_then_watch_delivers_events_in_order(api, client, monkeypatch):
    monkeypatch.setattr(informer_mod, "LIST_PAGE_SIZE", 2)  # exercise continue tokens in the initial list
    for i in range(5):
        await client.create("v1", "configmaps", cm(f"pre-{i}"), "default")
    inf = Informer(client, "v1", "configmaps", namespace="default")
    rec = Recorder()
    rec.register(inf)
    inf.start()
    try:
        assert await inf.wait_for_sync(5)
        assert inf.has_synced
        assert sorted(rec.kinds()) == [("add", f"pre-{i}") for i in range(5)]
        assert int(inf.last_sync_resource_version) > 0
        assert inf.lister.get("pre-3", "default")["kind"] == "ConfigMap"
        rec.events.clear()

        a = await client.create("v1", "configmaps", cm("a", {"k": "1"}), "default")
        a2 = await client.patch("v1", "configmaps", "a", {"data": {"k": "2"}}, "default")
        await client.delete("v1", "configmaps", "pre-0", "default")
        await client.delete("v1", "configmaps", "a", "default")
        await eventually(lambda: len(rec.events) == 4, what="four events")
        assert rec.events == [
            ("add", "a", a["metadata"]["resourceVersion"]),
            ("update", "a", a["metadata"]["resourceVersion"], a2["metadata"]["resourceVersion"]),
            ("delete", "pre-0"),
            ("delete", "a"),
        ]
        assert sorted(inf.indexer.keys()) == [f"default/pre-{i}" for i in range(1, 5)]
        assert int(inf.last_sync_resource_version) > int(a2["metadata"]["resourceVersion"])
        assert inf.relists == 1
    finally:
        await inf.stop()
    assert not inf.running


async def test_informer_relists_after_410_and_delivers_missed_changes(api, client):
    api.server.handlers.bookmark_interval = 3600  # no bookmark may paper over the gap
    for name in ("keep", "doomed", "changed"):
        await client.create("v1", "configmaps", cm(name, {"v": "1"}), "default")
    inf = Informer(client, "v1", "configmaps", namespace="default")
    inf.initial_backoff = 0.01
    rec = Recorder()
    rec.register(inf)
    deleted: list[dict] = []
    inf.add_event_handler(on_delete=deleted.append)
    inf.start()
    try:
        assert await inf.wait_for_sync(5)
        cache = api.server.cache
        await eventually(lambda: any(cache._watchers.values()), what="the informer's watch")
        # Blind the informer: detach its server-side watcher without ending the stream.
        blinded = [w for ws in cache._watchers.values() for w in list(ws)]
        for w in blinded:
            cache.unwatch(w)
        last_seen = inf.last_sync_resource_version
        await client.delete("v1", "configmaps", "doomed", "default")
        await client.patch("v1", "configmaps", "changed", {"data": {"v": "2"}}, "default")
        await client.create("v1", "configmaps", cm("born", {"v": "1"}), "default")
        await asyncio.sleep(0.1)
        assert ("delete", "doomed") not in rec.kinds()  # really missed
        assert inf.last_sync_resource_version == last_seen
        # Compaction moves history past what the informer saw; then its watch ends.
        cache.forget_before(cache.revision)
        rec.events.clear()
        for w in blinded:
            w.queue.put_nowait(None)
        await eventually(lambda: inf.relists == 2, what="a relist")
        await eventually(lambda: len(rec.events) == 3, what="the relist's events")
        assert sorted(rec.kinds()) == [("add", "born"), ("delete", "doomed"), ("update", "changed")]
        # The delete carries the last state the informer knew.
        assert deleted[-1]["metadata"]["name"] == "doomed" and deleted[-1]["data"] == {"v": "1"}
        assert sorted(inf.indexer.keys()) == ["default/born", "default/changed", "default/keep"]
        # And it is watching again from the relist's version.
        rec.events.clear()
        await client.delete("v1", "configmaps", "keep", "default")
        await eventually(lambda: rec.kinds() == [("delete", "keep")], what="the post-relist watch")
    finally:
        await inf.stop()


async def test_informer_rewatches_after_server_closes_watch(api, client):
    inf = Informer(client, "v1", "configmaps", namespace="default")
    inf.initial_backoff = 0.01
    rec = Recorder()
    rec.register(inf)
    inf.start()
    try:
        assert await inf.wait_for_sync(5)
        await client.create("v1", "configmaps", cm("one"), "default")
        await eventually(lambda: rec.kinds() == [("add", "one")])
        api.server.cache.close_watchers()  # what a server shutdown or overload does
        await asyncio.sleep(0.05)
        await client.create("v1", "configmaps", cm("two"), "default")
        await eventually(lambda: rec.kinds() == [("add", "one"), ("add", "two")], what="the re-watch")
        assert inf.relists == 1  # resumed from its resourceVersion, no relist
    finally:
        await inf.stop()


async def test_informer_bookmarks_advance_resource_version(api, client):
    api.server.handlers.bookmark_interval = 0.05
    inf = Informer(client, "v1", "secrets", namespace="default")
    inf.start()
    try:
        assert await inf.wait_for_sync(5)
        before = int(inf.last_sync_resource_version)
        other = await client.create("v1", "configmaps", cm("unrelated"), "default")
        target = int(other["metadata"]["resourceVersion"])
        await eventually(lambda: int(inf.last_sync_resource_version) >= target, what="a bookmark")
        assert target > before
    finally:
        await inf.stop()


async def test_handler_added_after_sync_gets_existing_objects(api, client):
    for name in ("x", "y"):
        await client.create("v1", "configmaps", cm(name), "default")
    inf = Informer(client, "v1", "configmaps", namespace="default")
    inf.start()
    try:
        assert await inf.wait_for_sync(5)
        late = Recorder()
        late.register(inf)
        assert sorted(late.kinds()) == [("add", "x"), ("add", "y")]
        await client.create("v1", "configmaps", cm("z"), "default")
        await eventually(lambda: ("add", "z") in late.kinds())
    finally:
        await inf.stop()


async def test_resync_redelivers_updates(api, client):
    await client.create("v1", "configmaps", cm("r"), "default")
    inf = Informer(client, "v1", "configmaps", namespace="default", resync_period=0.1)
    updates: list[tuple[dict, dict]] = []
    inf.add_event_handler(on_update=lambda old, new: updates.append((old, new)))
    inf.start()
    try:
        assert await inf.wait_for_sync(5)
        await eventually(lambda: len(updates) >= 2, what="two resyncs")
        old, new = updates[0]
        assert old is new and new["metadata"]["name"] == "r"
    finally:
        await inf.stop()


async def test_faulty_handler_does_not_stop_others(api, client):
    inf = Informer(client, "v1", "configmaps", namespace="default")

    def boom(obj: dict) -> None:
        raise RuntimeError("handler bug")

    inf.add_event_handler(on_add=boom)
    rec = Recorder()
    rec.register(inf)
    inf.start()
    try:
        assert await inf.wait_for_sync(5)
        await client.create("v1", "configmaps", cm("still"), "default")
        await eventually(lambda: ("add", "still") in rec.kinds())
    finally:
        await inf.stop()


async def test_informer_indexes_and_selectors(api, client):
    for ns in ("team-a", "team-b"):
        await client.create("v1", "namespaces", {"metadata": {"name": ns}})
    await client.create("v1", "configmaps", cm("a1", labels={"app": "web", "owner": "x"}), "team-a")
    await client.create("v1", "configmaps", cm("a2", labels={"app": "db", "owner": "y"}), "team-a")
    await client.create("v1", "configmaps", cm("b1", labels={"app": "web", "owner": "x"}), "team-b")
    await client.create("v1", "configmaps", cm("b2", labels={"other": "1"}), "team-b")
    inf = Informer(client, "v1", "configmaps", label_selector="app")  # all namespaces, only labelled "app"
    inf.add_index("owner", lambda o: [v for k, v in (o["metadata"].get("labels") or {}).items() if k == "owner"])
    inf.start()
    try:
        assert await inf.wait_for_sync(5)

        def names(objs: list[dict]) -> list[str]:
            return [o["metadata"]["name"] for o in objs]

        assert names(inf.indexer.by_index("namespace", "team-a")) == ["a1", "a2"]
        assert names(inf.indexer.by_index("namespace", "team-b")) == ["b1"]  # b2 is filtered by the selector
        assert names(inf.indexer.by_index("owner", "x")) == ["a1", "b1"]
        assert names(inf.lister.list("team-a", "app=web")) == ["a1"]
        assert names(inf.lister.list(selector="app=web")) == ["a1", "b1"]
        # Index maintenance follows watch events.
        await client.patch("v1", "configmaps", "a2", {"metadata": {"labels": {"owner": "x"}}}, "team-a")
        await eventually(lambda: names(inf.indexer.by_index("owner", "x")) == ["a1", "a2", "b1"])
        assert inf.indexer.by_index("owner", "y") == []
        # Losing the selected label is a delete to this informer.
        await client.patch("v1", "configmaps", "b1", {"metadata": {"labels": {"app": None}}}, "team-b")
        await eventually(lambda: inf.indexer.by_index("namespace", "team-b") == [])
    finally:
        await inf.stop()


async def test_shared_informer_factory(api, client):
    await client.create("v1", "configmaps", cm("f"), "default")
    factory = SharedInformerFactory(client)
    a = factory.informer("v1", "configmaps")
    b = factory.informer("v1", "configmaps")
    scoped = factory.informer("v1", "configmaps", namespace="default")
    selected = factory.informer("v1", "configmaps", label_selector="app=x")
    assert a is b
    assert len({id(a), id(scoped), id(selected)}) == 3
    rec_a, rec_b = Recorder(), Recorder()
    rec_a.register(a)
    rec_b.register(b)
    factory.start()
    try:
        assert await factory.wait_for_sync(5)
        assert all(inf.has_synced for inf in factory.informers)
        # Requested after start: started at once.
        late = factory.informer("v1", "secrets")
        assert late.running
        assert await late.wait_for_sync(5)
        await client.create("v1", "configmaps", cm("g"), "default")
        await eventually(lambda: ("add", "g") in rec_a.kinds() and ("add", "g") in rec_b.kinds())
        assert rec_a.events == rec_b.events
        assert a.relists == 1  # one list served both handlers
        # One client for everything: its watches hold connections from a pool without a limit,
        # so they never starve its requests, which share a small bounded pool.
        assert all(inf.client is client for inf in factory.informers)
        assert client.watch_session.connector is not None and client.watch_session.connector.limit == 0
        assert client.session.connector is not None and client.session.connector.limit == client.max_connections
        assert await client.get("v1", "configmaps", "g", "default")  # a request while every watch is open
    finally:
        await factory.stop()
    assert not any(inf.running for inf in factory.informers)


# -- leader election ----------------------------------------------------------------------

FAST = {"lease_duration": 1.0, "renew_deadline": 0.8, "retry_period": 0.2}


class Candidate:
    def __init__(self, client: RestClient, identity: str, lease: str = "test-lock", **kw) -> None:
        self.started = 0
        self.stopped = 0
        self.leading_cancelled = False
        self.elector = LeaderElector(client, "default", lease, identity, on_started_leading=self._lead,
                                     on_stopped_leading=self._stopped, **{**FAST, **kw})
        self.task: asyncio.Task[None] | None = None

    async def _lead(self) -> None:
        self.started += 1
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.leading_cancelled = True
            raise

    def _stopped(self) -> None:
        self.stopped += 1

    def run(self) -> asyncio.Task[None]:
        self.task = asyncio.create_task(self.elector.run())
        return self.task

    async def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def _lease(client: RestClient, name: str = "test-lock") -> dict:
    return await client.get("coordination.k8s.io/v1", "leases", name, "default")


async def test_exactly_one_of_many_candidates_leads(api, client):
    cands = [Candidate(client, f"c{i}") for i in range(5)]
    for c in cands:
        c.run()
    try:
        await eventually(lambda: any(c.elector.is_leader for c in cands), what="a leader")
        loop = asyncio.get_running_loop()
        end = loop.time() + 1.5  # longer than a lease: renewals keep the same leader
        while loop.time() < end:
            assert sum(c.elector.is_leader for c in cands) == 1
            await asyncio.sleep(0.02)
        leader = next(c for c in cands if c.elector.is_leader)
        assert leader.started == 1 and sum(c.started for c in cands) == 1
        lease = await _lease(client)
        spec = lease["spec"]
        assert spec["holderIdentity"] == leader.elector.identity
        assert spec["leaseDurationSeconds"] == 1
        assert MICRO_TIME.match(spec["renewTime"]) and MICRO_TIME.match(spec["acquireTime"])
        assert spec["renewTime"] > spec["acquireTime"]  # renewed since acquisition
    finally:
        for c in cands:
            await c.cancel()


async def test_released_lease_is_taken_over_quickly(api, client):
    a, b = Candidate(client, "a"), Candidate(client, "b")
    a.run()
    await eventually(lambda: a.elector.is_leader, what="a leads")
    b.run()
    await asyncio.sleep(0.3)
    assert not b.elector.is_leader
    transitions = (await _lease(client))["spec"]["leaseTransitions"]
    loop = asyncio.get_running_loop()
    try:
        a.elector.stop()
        await asyncio.wait_for(a.task, 2)  # run() returns after stepping down
        released = loop.time()
        assert a.leading_cancelled and a.stopped == 1 and not a.elector.is_leader
        assert (await _lease(client))["spec"]["holderIdentity"] in ("", "b")  # released (or already taken)
        await eventually(lambda: b.elector.is_leader, timeout=2, what="b takes over")
        assert loop.time() - released < 0.8  # at b's next retry, not after the lease ran out
        spec = (await _lease(client))["spec"]
        assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == transitions + 1
        # Cancelling the leader also releases (release_on_cancel).
        c = Candidate(client, "c")
        c.run()
        await asyncio.sleep(0.1)
        await b.cancel()
        assert b.stopped == 1
        await eventually(lambda: c.elector.is_leader, timeout=2, what="c takes over")
        await c.cancel()
    finally:
        for cand in (a, b):
            await cand.cancel()


async def test_dead_leader_is_replaced_after_lease_expiry(api, client):
    a = Candidate(client, "a", release_on_cancel=False)
    b = Candidate(client, "b")
    a.run()
    await eventually(lambda: a.elector.is_leader)
    b.run()
    try:
        await a.cancel()  # crashes: no release
        assert (await _lease(client))["spec"]["holderIdentity"] == "a"
        loop = asyncio.get_running_loop()
        start = loop.time()
        await eventually(lambda: b.elector.is_leader, timeout=3, what="b takes the expired lease")
        assert loop.time() - start > 0.5  # it had to wait for the lease to run out
    finally:
        await b.cancel()


async def test_leader_that_cannot_renew_stops_leading(api, client):
    a = Candidate(client, "a")
    a.run()
    await eventually(lambda: a.elector.is_leader and a.started == 1)
    # Another process overwrites the lease with itself as holder and a long lease.
    lease = await _lease(client)
    lease["spec"].update(holderIdentity="usurper", leaseDurationSeconds=60,
                         renewTime=format_micro_time(dt.datetime.now(dt.UTC)))
    await client.update("coordination.k8s.io/v1", "leases", lease, "default")
    await asyncio.wait_for(a.task, 2)  # run() returns
    assert not a.elector.is_leader and a.leading_cancelled and a.stopped == 1
    assert (await _lease(client))["spec"]["holderIdentity"] == "usurper"  # not released: not ours


async def test_leader_stops_when_api_unreachable(api, client):
    a = Candidate(client, "a")
    a.run()
    await eventually(lambda: a.elector.is_leader)
    # Point the elector at a dead address: renewals fail until the deadline.
    dead = RestClient(ClientConfig(server="https://127.0.0.1:9", ssl=False))
    a.elector.client = dead
    try:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.wait_for(a.task, 3)
        assert 0.4 < loop.time() - start < 2.0  # about renew_deadline
        assert not a.elector.is_leader and a.leading_cancelled and a.stopped == 1
    finally:
        await dead.close()


def test_elector_rejects_inconsistent_timing():
    client = RestClient(ClientConfig(server="https://127.0.0.1:9", ssl=False))
    with pytest.raises(ValueError):
        LeaderElector(client, "default", "l", "me", lease_duration=1.0, renew_deadline=2.0, retry_period=0.2)
    with pytest.raises(ValueError):
        LeaderElector(client, "default", "l", "", **FAST)


class _BarrierClient:
    """Delegates to a RestClient, but holds every GET at a shared barrier so two
    candidates are sure to read the same lease version before either writes."""

    def __init__(self, inner: RestClient, barrier: asyncio.Barrier) -> None:
        self.inner, self.barrier = inner, barrier

    async def get(self, *args, **kw):
        result = await self.inner.get(*args, **kw)
        await self.barrier.wait()
        return result

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


async def test_optimistic_concurrency_lets_one_of_two_racers_win(api, client):
    expired = format_micro_time(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60))
    await client.create("coordination.k8s.io/v1", "leases", {
        "metadata": {"name": "race"},
        "spec": {"holderIdentity": "gone", "leaseDurationSeconds": 1, "acquireTime": expired, "renewTime": expired,
                 "leaseTransitions": 3}}, "default")
    barrier = asyncio.Barrier(2)
    a = LeaderElector(_BarrierClient(client, barrier), "default", "race", "a", **FAST)  # type: ignore[arg-type]
    b = LeaderElector(_BarrierClient(client, barrier), "default", "race", "b", **FAST)  # type: ignore[arg-type]
    results = await asyncio.gather(a.try_acquire_or_renew(), b.try_acquire_or_renew())
    assert sorted(results) == [False, True]
    spec = (await _lease(client, "race"))["spec"]
    assert spec["holderIdentity"] == ("a" if results[0] else "b")
    assert spec["leaseTransitions"] == 4


async def test_stop_before_run_returns_at_once(api, client):
    c = Candidate(client, "early")
    c.elector.stop()
    await asyncio.wait_for(c.run(), 1)
    assert c.started == 0 and not c.elector.is_leader
