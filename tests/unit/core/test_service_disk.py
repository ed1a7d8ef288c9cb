"""What a turn leaves on the backend's disk: ChatService with the FakeRunner.

The FakeRunner "stores" every session it runs (`stored`) until it is purged,
discarded or swept, so these tests see what a real backend would leave behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from proxy_core import (
    ChatError,
    ChatRequest,
    ChatService,
    Event,
    Failed,
    FailureReason,
    FakeRunner,
    InMemorySessionStore,
    PlanKind,
    TextDelta,
    TurnPlan,
    echo_script,
)


def request(*texts: str, session: str = "k", stop: str | None = None) -> ChatRequest:
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": text}
        for i, text in enumerate(texts)
    ]
    return ChatRequest(model="sonnet", messages=messages, session_id=session, stop=stop)


def failing_on(word: str) -> FakeRunner:
    """Echoes, except that a last message containing `word` fails upstream."""

    def script(plan: TurnPlan) -> Sequence[Event]:
        if plan.messages and word in plan.messages[-1].text:
            return [Failed(FailureReason.INVALID_REQUEST, "Prompt is too long")]
        return echo_script(plan)

    return FakeRunner(script)


async def settle(svc: ChatService) -> None:
    """Let the service finish its background discards (as `aclose` does)."""
    await svc.aclose()


async def test_a_failed_new_turn_leaves_nothing_stored() -> None:
    runner = failing_on("boom")
    svc = ChatService(runner, InMemorySessionStore())
    with pytest.raises(ChatError):
        await svc.complete(request("boom"))
    await settle(svc)
    (plan,) = runner.plans
    assert runner.discarded == [plan.cli_session_id]
    assert runner.stored == set()


async def test_a_failed_continue_keeps_the_conversation_session() -> None:
    runner = failing_on("boom")
    svc = ChatService(runner, InMemorySessionStore())
    first = await svc.complete(request("hi"))
    with pytest.raises(ChatError):
        await svc.complete(request("hi", first.text, "boom"))
    await settle(svc)
    assert [p.kind for p in runner.plans] == [PlanKind.NEW, PlanKind.CONTINUE]
    assert runner.discarded == []
    assert runner.stored == {runner.plans[0].cli_session_id}


async def test_a_failed_restart_discards_only_its_fresh_session() -> None:
    runner = failing_on("boom")
    svc = ChatService(runner, InMemorySessionStore())
    await svc.complete(request("hi"))
    with pytest.raises(ChatError):
        await svc.complete(request("edited history", "echo: x", "boom"))
    await settle(svc)
    first, restart = runner.plans
    assert restart.kind is PlanKind.RESTART
    assert runner.discarded == [restart.cli_session_id]
    assert runner.stored == {first.cli_session_id}  # the record still points to it


async def test_a_successful_turn_is_never_discarded() -> None:
    runner = FakeRunner()
    svc = ChatService(runner, InMemorySessionStore())
    await svc.complete(request("hi"))
    await settle(svc)
    assert runner.discarded == []
    assert runner.stored == {runner.plans[0].cli_session_id}


async def test_a_new_turn_cut_by_a_stop_sequence_is_discarded() -> None:
    # The reply is cut and the ledger is not advanced, so nothing records the session.
    runner = FakeRunner()
    svc = ChatService(runner, InMemorySessionStore())
    completion = await svc.complete(request("hello there", stop="there"))
    assert completion.text == "echo: hello "
    await settle(svc)
    assert runner.discarded == [runner.plans[0].cli_session_id]
    assert runner.stored == set()


async def test_a_cancelled_new_turn_is_discarded() -> None:
    runner = FakeRunner(delay=0.05)
    svc = ChatService(runner, InMemorySessionStore())
    seen = asyncio.Event()

    async def consume() -> None:
        async for event in svc.stream(request("a long reply please")):
            if isinstance(event, TextDelta):
                seen.set()

    task = asyncio.create_task(consume())
    await seen.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await settle(svc)
    assert runner.discarded == [runner.plans[0].cli_session_id]
    assert runner.stored == set()


async def test_a_session_a_record_points_to_is_never_discarded() -> None:
    # An injected id source that repeats itself: the second conversation's failed
    # first turn runs in the first conversation's session, which must survive.
    runner = failing_on("boom")
    same = "11111111-1111-1111-1111-111111111111"
    svc = ChatService(runner, InMemorySessionStore(), new_session_id=lambda: same)
    await svc.complete(request("hi", session="a"))
    with pytest.raises(ChatError):
        await svc.complete(request("boom", session="b"))
    await settle(svc)
    assert runner.discarded == []
    assert runner.stored == {same}


async def test_purged_reports_whether_the_transcript_was_really_deleted() -> None:
    runner = FakeRunner()
    svc = ChatService(runner, InMemorySessionStore())
    await svc.complete(request("hi", session="there"))
    await svc.complete(request("hi", session="gone"))
    gone = runner.plans[1].cli_session_id
    runner.stored.discard(gone)  # deleted behind the server's back
    there = await svc.forget_session("h:there", purge=True)
    missing = await svc.forget_session("h:gone", purge=True)
    assert there is not None
    assert there.purged is True
    assert missing is not None
    assert missing.purged is False
    assert await svc.forget_session("h:there", purge=True) is None


async def test_forget_all_reports_each_purge() -> None:
    runner = FakeRunner()
    svc = ChatService(runner, InMemorySessionStore())
    for key in ("a", "b", "c"):
        await svc.complete(request("hi", session=key))
    runner.stored.discard(runner.plans[0].cli_session_id)
    removed = await svc.forget_all(purge=True)
    assert sorted(r.record.key for r in removed) == ["h:a", "h:b", "h:c"]
    assert sum(r.purged for r in removed) == 2
    assert runner.stored == set()


async def test_without_purge_nothing_is_reported_purged() -> None:
    runner = FakeRunner()
    svc = ChatService(runner, InMemorySessionStore())
    await svc.complete(request("hi"))
    reset = await svc.forget_session("h:k")
    assert reset is not None
    assert reset.purged is False
    assert runner.stored == {runner.plans[0].cli_session_id}


async def test_the_sweep_spares_sessions_that_records_point_to_and_running_ones() -> None:
    runner = FakeRunner()
    svc = ChatService(runner, InMemorySessionStore())
    await svc.complete(request("hi", session="kept"))
    await svc.complete(request("hi", session="forgotten"))
    kept, forgotten = (p.cli_session_id for p in runner.plans)
    await svc.reset_session("h:forgotten")  # no purge: its session is now an orphan
    runner.gate = asyncio.Event()
    running = asyncio.create_task(svc.complete(request("hi", session="running")))
    await asyncio.sleep(0.01)
    assert runner.active == 1
    assert await svc.sweep_orphans(grace=3600) == 1
    assert forgotten not in runner.stored
    assert kept in runner.stored
    assert runner.plans[2].cli_session_id in runner.stored
    runner.gate.set()
    await running
