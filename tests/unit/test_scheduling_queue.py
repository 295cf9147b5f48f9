"""The scheduling queue's sub-queues, ordering and backoff (fake clock, no sleeping)."""

from __future__ import annotations

from pinnace.scheduler.queue import INITIAL_BACKOFF, MAX_BACKOFF, MAX_UNSCHEDULABLE_AGE, SchedulingQueue


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pod(name: str, priority: int = 0) -> dict:
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": {"priority": priority}}


def test_highest_priority_first_then_oldest():
    clock = Clock()
    q = SchedulingQueue(clock)
    q.add(pod("low-old", 0))
    clock.now += 1
    q.add(pod("high", 100))
    clock.now += 1
    q.add(pod("low-new", 0))
    assert [q.pop_nowait().key for _ in range(3)] == ["ns/high", "ns/low-old", "ns/low-new"]
    assert q.pop_nowait() is None


def test_unschedulable_pods_wait_for_a_cluster_event():
    clock = Clock()
    q = SchedulingQueue(clock)
    q.add(pod("a"))
    qp = q.pop_nowait()
    q.unschedulable(qp.key)
    clock.now += 60
    assert q.pop_nowait() is None  # not polled
    assert q.stats()["unschedulable"] == 1
    assert q.move_all_to_active("NodeAdd") == 1
    assert q.pop_nowait().key == "ns/a"  # its 1 s backoff has long passed


def test_backoff_doubles_and_is_capped():
    clock = Clock()
    q = SchedulingQueue(clock)
    q.add(pod("a"))
    qp = q.pop_nowait()
    waits = []
    for _ in range(6):
        q.retry(qp.key)
        start = clock.now
        while (qp := q.pop_nowait()) is None:
            clock.now += 0.25
        waits.append(clock.now - start)
    assert waits[:4] == [INITIAL_BACKOFF, 2 * INITIAL_BACKOFF, 4 * INITIAL_BACKOFF, 8 * INITIAL_BACKOFF]
    assert waits[-1] == MAX_BACKOFF


def test_stale_unschedulable_pods_are_flushed():
    clock = Clock()
    q = SchedulingQueue(clock)
    q.add(pod("a"))
    q.unschedulable(q.pop_nowait().key)
    clock.now += MAX_UNSCHEDULABLE_AGE + 1
    assert q.pop_nowait().key == "ns/a"


def test_update_of_unschedulable_pod_requeues_it_and_delete_forgets():
    clock = Clock()
    q = SchedulingQueue(clock)
    q.add(pod("a"))
    q.unschedulable(q.pop_nowait().key)
    clock.now += 5
    q.add(pod("a", priority=5))  # e.g. its requests were lowered
    assert q.pop_nowait().priority == 5
    q.add(pod("b"))
    q.delete(pod("b"))
    assert q.pop_nowait() is None and len(q) == 1
    q.done("ns/a")
    assert len(q) == 0
