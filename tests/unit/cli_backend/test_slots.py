"""ProcessSlots: the hard cap on CLI processes, its queue order and its cancellation."""

from __future__ import annotations

import asyncio

import pytest

from proxy_cli_backend.slots import ProcessSlots


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_slots_are_free_up_to_the_limit_and_then_taken_only_by_waiting() -> None:
    slots = ProcessSlots(2)
    assert slots.try_take()
    assert slots.try_take()
    assert not slots.try_take()
    assert slots.held == 2


async def test_waiters_get_returned_slots_in_arrival_order() -> None:
    slots = ProcessSlots(1)
    await slots.take()
    served: list[str] = []

    async def taker(name: str) -> None:
        await slots.take()
        served.append(name)

    tasks = []
    for name in ("first", "second", "third"):
        tasks.append(asyncio.create_task(taker(name)))
        await settle()
    assert slots.waiting == 3
    for expected in (["first"], ["first", "second"], ["first", "second", "third"]):
        slots.give_back()
        await settle()
        assert served == expected
    await asyncio.gather(*tasks)
    assert slots.held == 1


async def test_a_background_taker_never_jumps_the_queue() -> None:
    slots = ProcessSlots(1)
    await slots.take()
    waiter = asyncio.create_task(slots.take())
    await settle()
    slots.give_back()  # handed to the waiter, not freed
    assert not slots.try_take()
    await waiter
    assert slots.held == 1


async def test_a_cancelled_waiter_leaves_its_place_and_no_slot_behind() -> None:
    slots = ProcessSlots(1)
    await slots.take()
    gone = asyncio.create_task(slots.take())
    kept = asyncio.create_task(slots.take())
    await settle()
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert slots.waiting == 1
    slots.give_back()
    await kept
    slots.give_back()
    assert slots.held == 0
    assert slots.try_take()


async def test_a_waiter_cancelled_as_its_slot_arrives_passes_the_slot_on() -> None:
    slots = ProcessSlots(1)
    await slots.take()
    unlucky = asyncio.create_task(slots.take())
    await settle()
    slots.give_back()  # the slot is the waiter's now...
    unlucky.cancel()  # ...but it is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await unlucky
    assert slots.held == 0
    assert slots.try_take()


async def test_a_limit_below_one_still_allows_one_process() -> None:
    slots = ProcessSlots(0)
    assert slots.try_take()
    assert not slots.try_take()


async def test_a_lowered_limit_frees_returned_slots_until_the_held_ones_fit() -> None:
    slots = ProcessSlots(3)
    for _ in range(3):
        assert slots.try_take()
    slots.resize(1)
    waiter = asyncio.create_task(slots.take())
    await settle()
    slots.give_back()  # 3 held, limit 1: freed, not handed on
    await settle()
    assert (slots.held, waiter.done()) == (2, False)
    slots.give_back()
    await settle()
    assert (slots.held, waiter.done()) == (1, False)
    slots.give_back()  # now within the limit: the waiter gets it
    await waiter
    assert slots.held == 1


async def test_a_raised_limit_serves_waiting_takers_at_once() -> None:
    slots = ProcessSlots(1)
    await slots.take()
    waiters = [asyncio.create_task(slots.take()) for _ in range(3)]
    await settle()
    slots.resize(3)
    await settle()
    assert [w.done() for w in waiters] == [True, True, False]
    assert (slots.held, slots.waiting) == (3, 1)
    waiters[2].cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
