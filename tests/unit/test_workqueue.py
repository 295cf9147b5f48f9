"""The rate-limited work queue: dedup, one worker per key, backoff, delays, shutdown."""

from __future__ import annotations

import asyncio
import collections

import pytest

from pinnace.client.workqueue import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    RateLimitingQueue,
    ShutDown,
    run_workers,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def test_dedups_queued_keys() -> None:
    q: RateLimitingQueue[str] = RateLimitingQueue("t")
    for key in ["a", "b", "a", "a", "c", "b"]:
        q.add(key)
    assert q.len() == len(q) == 3
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]
    assert q.len() == 0


async def test_key_added_while_processing_is_requeued_after_done() -> None:
    q: RateLimitingQueue[str] = RateLimitingQueue("t")
    q.add("a")
    key = await q.get()
    q.add("a")
    q.add("a")
    assert q.len() == 0  # not handed out again while a worker holds it
    q.done(key)
    assert q.len() == 1
    assert await q.get() == "a"
    q.done("a")
    assert q.len() == 0


async def test_done_without_readd_does_not_requeue() -> None:
    q: RateLimitingQueue[str] = RateLimitingQueue("t")
    q.add("a")
    q.done(await q.get())
    assert q.len() == 0


async def test_key_never_handed_to_two_workers() -> None:
    q: RateLimitingQueue[str] = RateLimitingQueue("t")
    active: collections.Counter[str] = collections.Counter()
    worst = 0
    syncs = 0

    async def sync(key: str) -> None:
        nonlocal worst, syncs
        active[key] += 1
        worst = max(worst, active[key])
        syncs += 1
        for other in ("k0", "k1", "k2"):
            q.add(other)  # re-add, including the key being processed
        await asyncio.sleep(0.001)
        active[key] -= 1
        if syncs > 200:
            q.shutdown()

    for k in ("k0", "k1", "k2"):
        q.add(k)
    await asyncio.wait_for(run_workers(q, 8, sync, "t"), 10)
    assert syncs > 200
    assert worst == 1


async def test_waiting_getters_are_woken_in_turn() -> None:
    q: RateLimitingQueue[str] = RateLimitingQueue("t")
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    await asyncio.sleep(0)
    q.add("a")
    q.add("b")
    await asyncio.sleep(0)
    done = [g for g in getters if g.done()]
    assert sorted(g.result() for g in done) == ["a", "b"]
    q.shutdown()
    pending = [g for g in getters if g not in done]
    with pytest.raises(ShutDown):
        await pending[0]


async def test_cancelled_getter_passes_its_wakeup_on() -> None:
    q: RateLimitingQueue[str] = RateLimitingQueue("t")
    first = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    second = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.add("a")  # wakes `first`...
    first.cancel()  # ...which is cancelled before it runs
    assert await asyncio.wait_for(second, 1) == "a"


async def test_exponential_backoff_per_item_capped() -> None:
    clock = FakeClock()
    q: RateLimitingQueue[str] = RateLimitingQueue("t", base_delay=0.005, max_delay=1.0, qps=0, clock=clock)
    delays = [q.add_rate_limited("x") for _ in range(10)]
    assert delays == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0, 1.0])
    assert q.num_requeues("x") == 10
    assert q.add_rate_limited("y") == pytest.approx(0.005)  # per item
    q.forget("x")
    assert q.num_requeues("x") == 0
    assert q.add_rate_limited("x") == pytest.approx(0.005)


def test_item_limiter_huge_failure_count_stays_at_cap() -> None:
    lim = ItemExponentialFailureRateLimiter(0.005, 1000.0)
    assert [lim.when("a") for _ in range(200)][-1] == 1000.0


def test_token_bucket_spreads_a_storm() -> None:
    clock = FakeClock()
    lim = BucketRateLimiter(qps=10.0, burst=3, clock=clock)
    assert [lim.when(i) for i in range(5)] == pytest.approx([0, 0, 0, 0.1, 0.2])
    clock.advance(0.2)  # pays back the two borrowed tokens
    assert lim.when("x") == pytest.approx(0.1)
    clock.advance(10)  # refills, but never beyond the burst
    assert [lim.when(i) for i in range(4)] == pytest.approx([0, 0, 0, 0.1])


async def test_backoff_is_max_of_item_and_bucket() -> None:
    clock = FakeClock()
    q: RateLimitingQueue[str] = RateLimitingQueue("t", base_delay=0.005, max_delay=1000.0, qps=10.0, burst=2,
                                                  clock=clock)
    assert q.when("a") == pytest.approx(0.005)  # item wins (bucket has tokens)
    assert q.when("b") == pytest.approx(0.005)
    assert q.when("c") == pytest.approx(0.1)  # bucket empty: its 0.1s wins
    clock.advance(10)
    for _ in range(9):
        q.when("a")
    # The a's 11th failure: 0.005 * 2**10 = 5.12s beats the bucket.
    assert q.when("a") == pytest.approx(5.12)


async def test_add_rate_limited_delivers_after_the_delay() -> None:
    clock = FakeClock()
    q: RateLimitingQueue[str] = RateLimitingQueue("t", base_delay=1.0, max_delay=60.0, clock=clock)
    assert q.add_rate_limited("a") == pytest.approx(1.0)
    assert q.len() == 0
    clock.advance(0.999)
    assert q.len() == 0
    clock.advance(0.001)
    assert q.len() == 1
    assert await q.get() == "a"


async def test_add_after_keeps_earliest_and_dedups() -> None:
    clock = FakeClock()
    q: RateLimitingQueue[str] = RateLimitingQueue("t", clock=clock)
    q.add_after("a", 10)
    q.add_after("a", 5)
    q.add_after("a", 20)
    q.add_after("b", 7)
    clock.advance(5)
    assert q.len() == 1
    assert await q.get() == "a"
    q.done("a")
    clock.advance(100)
    assert q.len() == 1  # b only; a's stale 10s/20s entries did not add it again
    assert await q.get() == "b"
    q.add_after("c", 0)  # no delay: at once
    assert q.len() == 1


async def test_add_after_real_timer_wakes_a_getter() -> None:
    q: RateLimitingQueue[str] = RateLimitingQueue("t")
    loop = asyncio.get_running_loop()
    start = loop.time()
    q.add_after("a", 0.05)
    assert await asyncio.wait_for(q.get(), 2) == "a"
    assert loop.time() - start >= 0.04


async def test_shutdown_drains_then_raises() -> None:
    q: RateLimitingQueue[str] = RateLimitingQueue("t")
    q.add("a")
    q.add_after("later", 0.01)
    q.shutdown()
    q.add("b")  # refused
    assert await q.get() == "a"
    with pytest.raises(ShutDown):
        await q.get()
    assert q.shutting_down


async def test_run_workers_retries_with_backoff_then_forgets() -> None:
    q: RateLimitingQueue[str] = RateLimitingQueue("t", base_delay=0.001, max_delay=0.01)
    attempts: collections.Counter[str] = collections.Counter()
    requeues_seen: list[int] = []

    async def sync(key: str) -> None:
        attempts[key] += 1
        requeues_seen.append(q.num_requeues(key))
        if attempts[key] < 4:
            raise RuntimeError("not yet")
        q.shutdown()

    q.add("k")
    await asyncio.wait_for(run_workers(q, 2, sync, "retry"), 5)
    assert attempts["k"] == 4
    assert requeues_seen == [0, 1, 2, 3]
    assert q.num_requeues("k") == 0  # forgotten after the success


async def test_run_workers_cancellation_stops_workers() -> None:
    q: RateLimitingQueue[str] = RateLimitingQueue("t")
    started = asyncio.Event()

    async def sync(key: str) -> None:
        started.set()
        await asyncio.sleep(3600)

    q.add("k")
    runner = asyncio.create_task(run_workers(q, 3, sync))
    await asyncio.wait_for(started.wait(), 1)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    q.add("k")
    assert q.len() == 1  # done() ran for the cancelled sync, so k is free again
