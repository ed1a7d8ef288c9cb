"""The reply pipeline's steps, each alone: what it passes on, and what it tells the others."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from proxy_core import (
    Event,
    Failed,
    FailureReason,
    Finished,
    InMemorySessionStore,
    PlanKind,
    RestartReason,
    TextDelta,
    TextRetracted,
    ThinkingDelta,
    ToolCall,
    TurnPlan,
    Usage,
    parse_conversation,
    plan_turn,
    reply_fingerprint,
    restart_plan,
)
from proxy_core.fakes import FakeRunner
from proxy_core.pipeline import (
    Attempt,
    Events,
    Recording,
    must_end,
    reply_text,
    restart_once,
    structured_output,
)

CONVERSATION = parse_conversation([{"role": "user", "content": "hi"}])


def new_plan() -> TurnPlan:
    return plan_turn(None, CONVERSATION, session_key="k", model="sonnet", new_session_id="s1")


def continued_plan() -> TurnPlan:
    return msgspec.structs.replace(new_plan(), kind=PlanKind.CONTINUE)


class Source:
    """A fixed list of events that notes whether its reader closed it."""

    def __init__(self, *events: Event) -> None:
        self.events = events
        self.closed = False

    async def __call__(self) -> Events:
        try:
            for event in self.events:
                yield event
        finally:
            self.closed = True


async def collect(events: Events) -> list[Event]:
    return [event async for event in events]


async def test_a_stop_sequence_cuts_the_reply_ends_it_and_closes_the_backend() -> None:
    source = Source(TextDelta("one STOP two"), TextDelta(" three"), Finished("end_turn"))
    attempt = Attempt(new_plan())
    out = await collect(reply_text(["STOP"], whole=False)(attempt, source()))
    assert out == [TextDelta("one "), Finished("stop_sequence", "one ", stop_sequence="STOP")]
    assert attempt.cut
    assert source.closed


async def test_a_whole_reply_drops_withdrawn_text_and_names_the_reply_to_remember() -> None:
    source = Source(TextDelta("draft"), TextRetracted(5), TextDelta("final"), Finished("end_turn"))
    attempt = Attempt(new_plan())
    out = await collect(reply_text((), whole=True)(attempt, source()))
    assert out == [TextDelta("final"), Finished("end_turn")]
    assert (attempt.reply, attempt.cut) == ("final", False)


async def test_a_streamed_reply_that_cannot_take_back_its_text_fails() -> None:
    source = Source(TextDelta("draft"), TextRetracted(5), TextDelta("final"), Finished())
    out = await collect(reply_text((), whole=False)(Attempt(new_plan()), source()))
    assert out[0] == TextDelta("draft")
    assert isinstance(out[-1], Failed)
    assert out[-1].reason is FailureReason.UPSTREAM_ERROR


async def test_structured_output_is_the_final_result_not_the_text_on_the_way() -> None:
    source = Source(TextDelta("let me think"), Usage(1, 2), Finished("end_turn", '{"a": 1}'))
    out = await collect(structured_output(Attempt(new_plan()), source()))
    assert out == [Usage(1, 2), TextDelta('{"a": 1}'), Finished("end_turn", '{"a": 1}')]


def recording(store: InMemorySessionStore) -> Recording:
    return Recording(store, FakeRunner(), lambda: 1000.0, "k", None)


async def test_recording_remembers_a_reply_that_finished_well() -> None:
    store = InMemorySessionStore()
    attempt = Attempt(new_plan())
    attempt.reply = "the reply"
    out = await collect(recording(store)(attempt, Source(Finished("end_turn", "other"))()))
    assert out == [Finished("end_turn", "other")]
    record = await store.get("k")
    assert record is not None
    assert record.fingerprints[-1] == reply_fingerprint("the reply")
    assert attempt.recorded


async def test_recording_keeps_the_backends_cost_reading_until_a_reply_brings_a_new_one() -> None:
    store = InMemorySessionStore()
    priced = Attempt(new_plan())
    await collect(recording(store)(priced, Source(Finished("end_turn", "a", meter="m1"))()))
    first = await store.get("k")
    assert first is not None
    assert first.meter == "m1"
    # A reply that stops at tool calls priced nothing: the session's reading stays.
    suspended = Attempt(continued_plan())
    call = ToolCall("call_1", "f", "{}")
    keep = Recording(store, FakeRunner(), lambda: 1001.0, "k", first)
    await collect(keep(suspended, Source(Finished("tool_use", tool_calls=(call,)))()))
    second = await store.get("k")
    assert second is not None
    assert second.meter == "m1"
    # The next priced reply's reading replaces it.
    done = Recording(store, FakeRunner(), lambda: 1002.0, "k", second)
    await collect(done(Attempt(continued_plan()), Source(Finished("end_turn", "b", meter="m2"))()))
    third = await store.get("k")
    assert third is not None
    assert third.meter == "m2"


async def test_recording_leaves_the_ledger_alone_for_a_cut_reply() -> None:
    store = InMemorySessionStore()
    attempt = Attempt(new_plan())
    attempt.cut = True
    out = await collect(recording(store)(attempt, Source(Finished("stop_sequence"))()))
    assert out == [Finished("stop_sequence")]
    assert await store.get("k") is None
    assert not attempt.recorded


async def test_recording_that_fails_ends_the_turn_as_store_unavailable() -> None:
    store = InMemorySessionStore()
    store.fail("database or disk is full")
    attempt = Attempt(new_plan())
    out = await collect(recording(store)(attempt, Source(Finished("end_turn", "x"))()))
    assert out == [Failed(FailureReason.STORE_UNAVAILABLE, "database or disk is full")]
    assert not attempt.recorded


def attempts(*scripts: tuple[Event, ...]) -> tuple[list[TurnPlan], Callable[[TurnPlan], Events]]:
    plans: list[TurnPlan] = []

    def attempt(plan: TurnPlan) -> Events:
        plans.append(plan)
        return Source(*scripts[len(plans) - 1])()

    return plans, attempt


def restarted(plan: TurnPlan) -> TurnPlan:
    return restart_plan(plan, CONVERSATION, RestartReason.SESSION_MISSING, "s2")


MISSING = Failed(FailureReason.SESSION_MISSING, "No conversation found")


async def test_a_missing_session_restarts_once_with_a_restart_plan() -> None:
    plans, attempt = attempts((MISSING,), (TextDelta("hi"), Finished()))
    out = await collect(restart_once(continued_plan(), attempt, restarted))
    assert out == [TextDelta("hi"), Finished()]
    assert [p.kind for p in plans] == [PlanKind.CONTINUE, PlanKind.RESTART]


async def test_a_missing_session_is_not_restarted_twice() -> None:
    plans, attempt = attempts((MISSING,), (MISSING,))
    out = await collect(restart_once(continued_plan(), attempt, restarted))
    assert out == [MISSING]
    assert len(plans) == 2


async def test_a_missing_session_is_not_restarted_once_the_caller_saw_something() -> None:
    plans, attempt = attempts((ThinkingDelta("hmm"), MISSING), (Finished(),))
    out = await collect(restart_once(continued_plan(), attempt, restarted))
    assert out == [ThinkingDelta("hmm"), MISSING]
    assert len(plans) == 1


async def test_a_new_session_reported_missing_is_not_restarted() -> None:
    plans, attempt = attempts((MISSING,), (Finished(),))
    out = await collect(restart_once(new_plan(), attempt, restarted))
    assert out == [MISSING]
    assert len(plans) == 1


async def test_a_turn_whose_backend_stops_without_an_end_fails() -> None:
    out = await collect(must_end(Source(TextDelta("half"))()))
    assert out[0] == TextDelta("half")
    assert isinstance(out[-1], Failed)
    assert out[-1].reason is FailureReason.CLI_CRASHED
    assert len(out) == 2
