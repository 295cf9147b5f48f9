"""The storage contract (ARCHITECTURE §3), run against every backend.

memory and sqlite always run; etcd runs against a real etcd started on
loopback by the session fixture in ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio

import pytest

from pinnace.storage.base import (
    Compacted,
    Event,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    RevisionMismatch,
    Store,
)


async def next_events(watch, n: int, timeout: float = 5.0) -> list[Event]:
    out = []
    for _ in range(n):
        out.append(await asyncio.wait_for(watch.__anext__(), timeout))
    return out


async def test_create_get_and_revisions_increase(store: Store):
    r0 = await store.current_revision()
    r1 = await store.create("/registry/pods/default/a", b"a1")
    r2 = await store.create("/registry/pods/default/b", b"b1")
    assert r0 < r1 < r2
    assert await store.current_revision() == r2
    kv = await store.get("/registry/pods/default/a")
    assert kv is not None and kv.value == b"a1"
    assert kv.create_revision == kv.mod_revision == r1
    assert await store.get("/registry/pods/default/missing") is None


async def test_create_if_absent(store: Store):
    await store.create("/k/x", b"1")
    with pytest.raises(KeyExists):
        await store.create("/k/x", b"2")
    assert (await store.get("/k/x")).value == b"1"


async def test_update_guarded_by_revision(store: Store):
    r1 = await store.create("/k/x", b"1")
    r2 = await store.update("/k/x", b"2", r1)
    assert r2 > r1
    with pytest.raises(RevisionMismatch):
        await store.update("/k/x", b"3", r1)
    kv = await store.get("/k/x")
    assert kv.value == b"2" and kv.mod_revision == r2 and kv.create_revision == r1
    with pytest.raises(KeyNotFound):
        await store.update("/k/nothing", b"1", r1)


async def test_delete_guarded_by_revision_and_recreate(store: Store):
    r1 = await store.create("/k/x", b"1")
    with pytest.raises(RevisionMismatch):
        await store.delete("/k/x", r1 + 100)
    rev, prev = await store.delete("/k/x", r1)
    assert rev > r1 and prev.value == b"1"
    assert await store.get("/k/x") is None
    with pytest.raises(KeyNotFound):
        await store.delete("/k/x")
    r3 = await store.create("/k/x", b"again")
    kv = await store.get("/k/x")
    assert kv.create_revision == r3 and kv.value == b"again"


async def test_range_prefix_order_limit_and_continue(store: Store):
    for name in ["c", "a", "b", "d"]:
        await store.create(f"/registry/cm/ns1/{name}", name.encode())
    await store.create("/registry/cm/ns2/z", b"z")
    await store.create("/registry/cmx/other", b"no")

    everything = await store.range("/registry/cm/")
    assert [kv.key.rsplit("/", 1)[1] for kv in everything.kvs] == ["a", "b", "c", "d", "z"]
    assert not everything.more

    page1 = await store.range("/registry/cm/", limit=2)
    assert [kv.value for kv in page1.kvs] == [b"a", b"b"] and page1.more
    page2 = await store.range("/registry/cm/", limit=2, start_after=page1.kvs[-1].key, revision=page1.revision)
    assert [kv.value for kv in page2.kvs] == [b"c", b"d"] and page2.more
    page3 = await store.range("/registry/cm/", limit=2, start_after=page2.kvs[-1].key, revision=page1.revision)
    assert [kv.value for kv in page3.kvs] == [b"z"] and not page3.more


async def test_range_at_past_revision_is_a_snapshot(store: Store):
    r1 = await store.create("/s/a", b"a1")
    await store.create("/s/b", b"b1")
    snapshot = await store.current_revision()
    await store.update("/s/a", b"a2", r1)
    await store.delete("/s/b")
    await store.create("/s/c", b"c1")

    now = await store.range("/s/")
    assert [(kv.key, kv.value) for kv in now.kvs] == [("/s/a", b"a2"), ("/s/c", b"c1")]
    then = await store.range("/s/", revision=snapshot)
    assert [(kv.key, kv.value) for kv in then.kvs] == [("/s/a", b"a1"), ("/s/b", b"b1")]
    assert then.revision == snapshot
    with pytest.raises(FutureRevision):
        await store.range("/s/", revision=now.revision + 1000)


async def test_watch_replays_history_then_live_in_order(store: Store):
    r1 = await store.create("/w/a", b"1")
    r2 = await store.update("/w/a", b"2", r1)
    await store.create("/other/x", b"ignored")
    watch = aiter(store.watch("/w/", r1 - 1))
    try:
        first = await next_events(watch, 2)
        assert [(e.type, e.kv.value, e.revision) for e in first] == [("PUT", b"1", r1), ("PUT", b"2", r2)]
        assert first[0].created and not first[1].created
        assert first[1].prev is not None and first[1].prev.value == b"1"

        r3 = await store.create("/w/b", b"b")
        r4, _ = await store.delete("/w/a")
        live = await next_events(watch, 2)
        assert [(e.type, e.kv.key, e.revision) for e in live] == [("PUT", "/w/b", r3), ("DELETE", "/w/a", r4)]
        assert live[1].kv.value == b"2"  # a delete carries the last value
    finally:
        await watch.aclose()


async def test_watch_from_current_revision_sees_only_new_events(store: Store):
    await store.create("/w/old", b"old")
    rev = await store.current_revision()
    watch = aiter(store.watch("/w/", rev))
    try:
        await asyncio.sleep(0.1)
        r = await store.create("/w/new", b"new")
        (event,) = await next_events(watch, 1)
        assert event.kv.key == "/w/new" and event.revision == r
    finally:
        await watch.aclose()


async def test_many_watchers_see_the_same_sequence(store: Store):
    base = await store.current_revision()
    watches = [aiter(store.watch("/m/", base)) for _ in range(5)]
    try:
        revs = [await store.create(f"/m/{i}", b"x") for i in range(10)]
        for w in watches:
            assert [e.revision for e in await next_events(w, 10)] == revs
    finally:
        for w in watches:
            await w.aclose()


async def test_compaction_makes_old_revisions_too_old(store: Store):
    r1 = await store.create("/c/a", b"1")
    r2 = await store.update("/c/a", b"2", r1)
    await store.create("/c/b", b"1")
    r4 = await store.update("/c/a", b"3", r2)
    await store.compact(r4)
    assert await store.compacted_revision() == r4

    with pytest.raises(Compacted):
        watch = aiter(store.watch("/c/", r1))
        await asyncio.wait_for(watch.__anext__(), 5)
    with pytest.raises(Compacted):
        await store.range("/c/", revision=r2)
    # current state is untouched by compaction
    now = await store.range("/c/")
    assert [(kv.key, kv.value) for kv in now.kvs] == [("/c/a", b"3"), ("/c/b", b"1")]
    # and watching from the compaction point onwards works
    watch = aiter(store.watch("/c/", r4))
    try:
        r5 = await store.create("/c/c", b"1")
        (event,) = await next_events(watch, 1)
        assert event.revision == r5
    finally:
        await watch.aclose()
