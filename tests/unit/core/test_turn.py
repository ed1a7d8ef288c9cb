"""A Turn is an async context manager: admission is held inside it and freed on leaving."""

from __future__ import annotations

import asyncio

import pytest

from proxy_core import (
    ChatError,
    ChatRequest,
    ChatService,
    FailureReason,
    FakeRunner,
    InMemorySessionStore,
    ServiceLimits,
    TextDelta,
)


def request(text: str = "a long reply please", session: str | None = None) -> ChatRequest:
    return ChatRequest(
        model="sonnet", messages=[{"role": "user", "content": text}], session_id=session
    )


def service(
    runner: FakeRunner | None = None, *, max_concurrent: int = 4, max_queued: int = 8
) -> ChatService:
    limits = ServiceLimits(max_concurrent=max_concurrent, max_queued=max_queued)
    return ChatService(runner or FakeRunner(), InMemorySessionStore(), limits=limits)


async def test_events_are_refused_outside_the_context() -> None:
    turn = service().open_turn(request())
    with pytest.raises(RuntimeError):
        turn.events()


async def test_a_turn_is_entered_once_and_iterated_once() -> None:
    svc = service()
    async with svc.open_turn(request()) as turn:
        turn.events()
        with pytest.raises(RuntimeError):
            turn.events()
        with pytest.raises(RuntimeError):
            await turn.__aenter__()
    assert (svc.active, svc.queued) == (0, 0)


async def test_opening_holds_nothing_and_entering_a_full_service_is_busy() -> None:
    runner = FakeRunner()
    runner.gate = asyncio.Event()
    svc = service(runner, max_concurrent=1, max_queued=0)
    opened = svc.open_turn(request("waits"))
    assert svc.queued == 0
    async with svc.open_turn(request("runs")):
        with pytest.raises(ChatError) as refused:
            async with opened:
                pass
    assert refused.value.reason is FailureReason.BUSY
    assert (svc.active, svc.queued) == (0, 0)
    assert (await svc.stats()).errors == 2  # the refused turn, and the one never iterated


async def test_leaving_mid_reply_closes_the_runner_frees_the_slot_and_counts_a_cancel() -> None:
    runner = FakeRunner(delay=0.001)
    svc = service(runner)
    async with svc.open_turn(request()) as turn:
        async for event in turn.events():
            assert isinstance(event, TextDelta)
            assert svc.active == 1
            break
    assert (runner.active, runner.closed) == (0, 1)
    assert (svc.active, svc.queued) == (0, 0)
    assert turn.failure is not None
    assert turn.failure.reason is FailureReason.CANCELLED


async def test_a_turn_cancelled_while_waiting_for_its_session_frees_its_place() -> None:
    runner = FakeRunner()
    runner.gate = asyncio.Event()
    svc = service(runner, max_concurrent=4, max_queued=4)

    async def drain(text: str) -> None:
        async with svc.open_turn(request(text, session="same")) as turn:
            async for _ in turn.events():
                pass

    first = asyncio.create_task(drain("first"))
    second = asyncio.create_task(drain("second"))
    await asyncio.sleep(0.01)
    assert (svc.active, svc.queued) == (1, 1)
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    assert (svc.active, svc.queued) == (1, 0)
    runner.gate.set()
    await first
    assert (svc.active, svc.queued, runner.active) == (0, 0, 0)


async def test_a_turn_left_cannot_be_iterated_any_more() -> None:
    svc = service()
    async with svc.open_turn(request()) as turn:
        pass
    with pytest.raises(RuntimeError):
        turn.events()
    assert (svc.active, svc.queued) == (0, 0)
