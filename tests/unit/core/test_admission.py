"""Admission: global slots, a bounded queue that refuses as busy, one turn per session."""

from __future__ import annotations

import asyncio

import pytest

from proxy_core import Admission, ChatError, FailureReason, ServiceLimits


async def test_a_full_queue_refuses_a_place_as_busy_with_a_retry_after() -> None:
    admission = Admission(ServiceLimits(max_concurrent=1, max_queued=1, busy_retry_after=2.5))
    admission.reserve()
    admission.reserve()
    with pytest.raises(ChatError) as refused:
        admission.reserve()
    assert refused.value.reason is FailureReason.BUSY
    assert refused.value.retry_after == 2.5
    assert admission.queued == 2


async def test_a_place_moves_from_queued_to_active_and_then_is_gone() -> None:
    admission = Admission(ServiceLimits())
    place = admission.reserve()
    assert (admission.active, admission.queued) == (0, 1)
    async with place.running("k"):
        assert (admission.active, admission.queued) == (1, 0)
    assert (admission.active, admission.queued) == (0, 0)


async def test_leaving_a_place_twice_gives_it_up_once() -> None:
    admission = Admission(ServiceLimits())
    first, _second = admission.reserve(), admission.reserve()
    first.leave()
    first.leave()
    assert admission.queued == 1


async def test_slots_bound_how_many_places_run_at_once() -> None:
    admission = Admission(ServiceLimits(max_concurrent=1, max_queued=4))
    release = asyncio.Event()
    entered: list[str] = []

    async def run(key: str) -> None:
        async with admission.reserve().running(key):
            entered.append(key)
            await release.wait()

    tasks = [asyncio.create_task(run(key)) for key in ("a", "b")]
    await asyncio.sleep(0.01)
    assert entered == ["a"]
    assert (admission.active, admission.queued) == (1, 1)
    release.set()
    await asyncio.gather(*tasks)
    assert entered == ["a", "b"]
    assert (admission.active, admission.queued) == (0, 0)


async def test_places_of_one_session_run_one_at_a_time_in_arrival_order() -> None:
    admission = Admission(ServiceLimits(max_concurrent=4, max_queued=8))
    order: list[int] = []
    running = 0
    overlap = False

    async def run(index: int) -> None:
        nonlocal running, overlap
        async with admission.reserve().running("same"):
            running += 1
            overlap = overlap or running > 1
            await asyncio.sleep(0.001)
            order.append(index)
            running -= 1

    tasks = []
    for index in range(5):
        tasks.append(asyncio.create_task(run(index)))
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == list(range(5))
    assert not overlap


async def test_a_place_cancelled_while_waiting_gives_up_its_queue_place() -> None:
    admission = Admission(ServiceLimits(max_concurrent=1, max_queued=1))
    release = asyncio.Event()

    async def run(key: str) -> None:
        async with admission.reserve().running(key):
            await release.wait()

    holder = asyncio.create_task(run("a"))
    waiter = asyncio.create_task(run("b"))
    await asyncio.sleep(0.01)
    assert (admission.active, admission.queued) == (1, 1)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert (admission.active, admission.queued) == (1, 0)
    release.set()
    await holder
    assert (admission.active, admission.queued) == (0, 0)
