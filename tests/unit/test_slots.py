"""The kubelet's start slots: a limit, and waiters served oldest pod first."""

from __future__ import annotations

import asyncio

import pytest

from pinnace.kubelet.slots import OrderedSlots


async def test_at_most_limit_holders_and_the_lowest_order_goes_first() -> None:
    slots = OrderedSlots(2)
    held, order_served = 0, []
    peak = 0
    gate = asyncio.Event()

    async def work(order: int) -> None:
        nonlocal held, peak
        async with slots.slot(order):
            held += 1
            peak = max(peak, held)
            order_served.append(order)
            await gate.wait()
            held -= 1

    first = [asyncio.create_task(work(o)) for o in (10, 11)]  # take both slots
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(work(o)) for o in (5, 3, 4, 12)]  # arrive out of order
    await asyncio.sleep(0)
    assert order_served == [10, 11] and slots.free == 0
    gate.set()
    await asyncio.gather(*first, *waiting)
    assert peak == 2
    assert order_served == [10, 11, 3, 4, 5, 12]
    assert slots.free == 2


async def test_a_cancelled_waiter_gives_up_its_place() -> None:
    slots = OrderedSlots(1)
    release = asyncio.Event()
    served = []

    async def hold() -> None:
        async with slots.slot(0):
            await release.wait()

    async def work(order: int) -> None:
        async with slots.slot(order):
            served.append(order)

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(work(1))
    later = asyncio.create_task(work(2))
    await asyncio.sleep(0)
    cancelled.cancel()
    release.set()
    await holder
    await later
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert served == [2] and slots.free == 1


async def test_a_failure_inside_the_slot_releases_it() -> None:
    slots = OrderedSlots(1)
    with pytest.raises(RuntimeError):
        async with slots.slot(0):
            raise RuntimeError("runc failed")
    assert slots.free == 1
    async with slots.slot(1):
        assert slots.free == 0
