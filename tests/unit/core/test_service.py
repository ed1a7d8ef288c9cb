"""ChatService with the FakeRunner: admission, ordering, ledger advance, cancellation, stats."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import aclosing

import msgspec
import pytest

from proxy_core import (
    ChatError,
    ChatRequest,
    ChatService,
    Effort,
    Event,
    Failed,
    FailureReason,
    FakeRunner,
    Finished,
    InMemorySessionStore,
    PlanKind,
    RestartReason,
    ServiceLimits,
    SessionRecord,
    TextDelta,
    TextRetracted,
    TurnPlan,
    Usage,
    echo_script,
    reply_fingerprint,
)


def request(*texts: str, session: str | None = None, model: str = "sonnet") -> ChatRequest:
    messages: list[dict[str, object]] = []
    for index, text in enumerate(texts):
        messages.append({"role": "user" if index % 2 == 0 else "assistant", "content": text})
    return ChatRequest(model=model, messages=messages, session_id=session)


def service(runner: FakeRunner | None = None, **limits: int) -> ChatService:
    return ChatService(
        runner or FakeRunner(), InMemorySessionStore(), limits=ServiceLimits(**limits)
    )


async def drain(svc: ChatService, req: ChatRequest) -> list[Event]:
    return [event async for event in svc.stream(req)]


async def test_a_completed_turn_returns_the_text_and_advances_the_ledger() -> None:
    svc = service()
    completion = await svc.complete(request("hi"))
    assert completion.text == "echo: hi"
    records, total = await svc.list_sessions()
    assert total == 1
    assert records[0].message_count == 2


async def test_the_follow_up_continues_the_same_cli_session() -> None:
    runner = FakeRunner()
    svc = service(runner)
    first = await svc.complete(request("hi"))
    await svc.complete(request("hi", first.text, "more"))
    assert [p.kind for p in runner.plans] == [PlanKind.NEW, PlanKind.CONTINUE]
    assert runner.plans[1].cli_session_id == runner.plans[0].cli_session_id


async def test_requests_beyond_the_limit_and_queue_are_refused_as_busy() -> None:
    runner = FakeRunner()
    runner.gate = asyncio.Event()
    svc = service(runner, max_concurrent=2, max_queued=1)
    tasks = [asyncio.create_task(svc.complete(request(f"q{i}", session=f"s{i}"))) for i in range(3)]
    await asyncio.sleep(0.01)
    assert (svc.active, svc.queued) == (2, 1)
    with pytest.raises(ChatError) as caught:
        async with svc.open_turn(request("one too many", session="s9")):
            pass
    assert caught.value.reason is FailureReason.BUSY
    assert caught.value.retry_after is not None
    runner.gate.set()
    await asyncio.gather(*tasks)
    assert (svc.active, svc.queued) == (0, 0)


async def test_turns_of_one_session_run_one_at_a_time_in_arrival_order() -> None:
    order: list[str] = []
    running = 0
    overlap = False

    def script(plan: TurnPlan) -> Sequence[Event]:
        order.append(plan.messages[-1].text)
        return echo_script(plan)

    runner = FakeRunner(script, delay=0.002)
    original_run = runner.run

    async def tracking_run(plan: TurnPlan):  # type: ignore[no-untyped-def]
        nonlocal running, overlap
        running += 1
        overlap = overlap or running > 1
        try:
            async for event in original_run(plan):
                yield event
        finally:
            running -= 1

    runner.run = tracking_run  # type: ignore[method-assign]
    svc = service(runner, max_concurrent=4, max_queued=16)
    tasks = []
    for i in range(6):
        tasks.append(asyncio.create_task(drain(svc, request(f"m{i}", session="same"))))
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == [f"m{i}" for i in range(6)]
    assert not overlap


async def test_no_ledger_advance_on_failure_and_the_retry_sends_the_message_once() -> None:
    failing = {"on": False}

    def script(plan: TurnPlan) -> Sequence[Event]:
        if failing["on"]:
            return [Failed(FailureReason.OVERLOADED, "API Error: 529")]
        return echo_script(plan)

    runner = FakeRunner(script)
    svc = service(runner)
    first = await svc.complete(request("hi"))
    before, _ = await svc.list_sessions()
    failing["on"] = True
    with pytest.raises(ChatError) as caught:
        await svc.complete(request("hi", first.text, "q2"))
    assert caught.value.reason is FailureReason.OVERLOADED
    after, _ = await svc.list_sessions()
    assert after == before
    failing["on"] = False
    await svc.complete(request("hi", first.text, "q2"))
    retry = runner.plans[-1]
    assert retry.kind is PlanKind.CONTINUE
    assert [m.text for m in retry.messages] == ["q2"]


async def test_a_cancelled_turn_frees_its_slot() -> None:
    runner = FakeRunner()
    runner.gate = asyncio.Event()
    svc = service(runner, max_concurrent=1, max_queued=0)
    task = asyncio.create_task(svc.complete(request("slow")))
    await asyncio.sleep(0.01)
    assert svc.active == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (svc.active, svc.queued, runner.active) == (0, 0, 0)
    runner.gate.set()
    assert (await svc.complete(request("next"))).text == "echo: next"


async def test_closing_the_stream_early_closes_the_runner() -> None:
    runner = FakeRunner(delay=0.001)
    svc = service(runner)
    async with aclosing(svc.stream(request("a long reply please"))) as events:
        async for event in events:
            assert isinstance(event, TextDelta)
            break
    assert runner.active == 0
    assert runner.closed == 1
    stats = await svc.stats()
    assert (stats.total, stats.completed, stats.errors, stats.active) == (1, 0, 1, 0)


async def test_a_turn_never_iterated_is_released() -> None:
    svc = service(max_concurrent=1, max_queued=0)
    async with svc.open_turn(request("hi")):
        assert svc.queued == 1
    assert svc.queued == 0
    assert (await svc.complete(request("hi"))).text == "echo: hi"


def missing_on_continue(plan: TurnPlan) -> Sequence[Event]:
    """The backend lost the CLI session: every CONTINUE fails with session_missing."""
    if plan.kind is PlanKind.CONTINUE:
        return [Failed(FailureReason.SESSION_MISSING, "No conversation found")]
    return echo_script(plan)


async def test_a_missing_cli_session_restarts_once_with_the_full_history() -> None:
    runner = FakeRunner(missing_on_continue)
    svc = service(runner)
    first = await svc.complete(request("hi"))
    second = await svc.complete(request("hi", first.text, "again"))
    assert second.text.startswith("echo: ")
    assert [p.kind for p in runner.plans] == [PlanKind.NEW, PlanKind.CONTINUE, PlanKind.RESTART]
    assert runner.plans[2].restart_reason is RestartReason.SESSION_MISSING
    assert len(runner.plans[2].messages) == 3


async def test_the_requested_effort_reaches_every_plan_of_the_turn_restarts_included() -> None:
    runner = FakeRunner(missing_on_continue)
    svc = service(runner)
    first = await svc.complete(request("hi"))
    follow_up = request("hi", first.text, "again")
    await svc.complete(msgspec.structs.replace(follow_up, reasoning_effort="high"))
    assert [p.effort for p in runner.plans] == [None, Effort.HIGH, Effort.HIGH]
    assert runner.plans[2].kind is PlanKind.RESTART


async def test_an_unknown_effort_is_refused_before_anything_runs() -> None:
    runner = FakeRunner()
    svc = service(runner)
    with pytest.raises(ChatError) as caught:
        svc.open_turn(msgspec.structs.replace(request("hi"), reasoning_effort="extreme"))
    assert (caught.value.reason, caught.value.param) == (
        FailureReason.INVALID_REQUEST,
        "reasoning_effort",
    )
    assert runner.plans == []
    assert (svc.queued, (await svc.stats()).errors) == (0, 1)


def partial_then_missing(plan: TurnPlan) -> Sequence[Event]:
    if plan.kind is PlanKind.CONTINUE:
        return [TextDelta("partial"), Failed(FailureReason.SESSION_MISSING, "gone")]
    return echo_script(plan)


async def test_session_missing_after_streamed_output_is_not_retried() -> None:
    runner = FakeRunner(partial_then_missing)
    svc = service(runner)
    first = await svc.complete(request("hi"))
    events = await drain(svc, request("hi", first.text, "again"))
    assert TextDelta("partial") in events
    assert events[-1] == Failed(FailureReason.SESSION_MISSING, "gone")
    assert len(runner.plans) == 2


async def test_session_missing_after_held_output_restarts_for_a_whole_reply() -> None:
    # A caller that takes the reply whole was shown nothing yet: the restart is safe.
    runner = FakeRunner(partial_then_missing)
    svc = service(runner)
    first = await svc.complete(request("hi"))
    again = await svc.complete(request("hi", first.text, "again"))
    assert again.text.startswith("echo:")
    assert [p.kind for p in runner.plans][1:] == [PlanKind.CONTINUE, PlanKind.RESTART]


def redone(*, sent: str, final: str) -> Callable[[TurnPlan], Sequence[Event]]:
    """A backend whose reply was redone: `sent` streamed, withdrawn, then `final`."""

    def script(plan: TurnPlan) -> Sequence[Event]:
        return [
            TextDelta(sent),
            TextRetracted(len(sent)),
            TextDelta(final),
            Usage(1, 2),
            Finished("end_turn", final, plan.cli_session_id),
        ]

    return script


async def test_a_withdrawn_streamed_text_ends_a_streamed_turn_with_an_error() -> None:
    svc = service(FakeRunner(redone(sent="echo: h", final="other")))
    events = await drain(svc, request("hi"))
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta("echo: h")]
    failed = events[-1]
    assert isinstance(failed, Failed)
    assert failed.reason is FailureReason.UPSTREAM_ERROR
    assert (await svc.list_sessions())[1] == 0  # the ledger did not record a garbled reply


async def test_a_whole_reply_drops_the_withdrawn_text_and_records_what_it_returns() -> None:
    svc = service(FakeRunner(redone(sent="echo: h", final="other")))
    completion = await svc.complete(request("hi"))
    assert completion.text == "other"
    (record,), _ = await svc.list_sessions()
    assert record.fingerprints[-1] == reply_fingerprint("other")


async def test_a_whole_reply_with_stop_sequences_cuts_the_final_text_only() -> None:
    svc = service(FakeRunner(redone(sent="echo: h", final="fine STOP rest")))
    completion = await svc.complete(msgspec.structs.replace(request("hi"), stop=["STOP"]))
    assert completion.text == "fine "
    assert completion.stop_reason == "stop_sequence"


async def test_a_runner_that_raises_ends_the_turn_with_a_typed_failure() -> None:
    def script(plan: TurnPlan) -> Sequence[Event]:
        raise RuntimeError("boom")

    svc = service(FakeRunner(script))
    events = await drain(svc, request("hi"))
    assert isinstance(events[-1], Failed)
    assert events[-1].reason is FailureReason.CLI_CRASHED


async def test_a_runner_that_ends_without_a_result_is_a_crash() -> None:
    svc = service(FakeRunner(lambda plan: [TextDelta("half")]))
    events = await drain(svc, request("hi"))
    assert isinstance(events[-1], Failed)
    assert events[-1].reason is FailureReason.CLI_CRASHED


async def test_stats_count_requests_tokens_and_latency() -> None:
    def script(plan: TurnPlan) -> Sequence[Event]:
        return [
            TextDelta("ok"),
            Usage(input_tokens=5, output_tokens=7, cache_read_tokens=3),
            Finished("end_turn", "ok"),
        ]

    svc = service(FakeRunner(script))
    await svc.complete(request("a", session="x"))
    await svc.complete(request("b", session="y"))
    with pytest.raises(ChatError):
        svc.open_turn(ChatRequest(model="sonnet", messages=[]))
    stats = await svc.stats()
    assert (stats.total, stats.completed, stats.errors) == (3, 2, 1)
    assert (stats.input_tokens, stats.output_tokens) == (16, 14)
    assert stats.sampled == 2
    assert 0 < stats.p50_latency_ms <= stats.p95_latency_ms
    assert stats.sessions == 2


async def test_two_services_in_one_process_share_nothing() -> None:
    a, b = service(), service()
    await a.complete(request("hi"))
    assert (await b.stats()).total == 0
    assert (await b.list_sessions())[1] == 0


async def test_reset_forgets_the_session_and_the_next_turn_starts_over() -> None:
    runner = FakeRunner()
    svc = service(runner)
    first = await svc.complete(request("hi", session="k"))
    removed = await svc.reset_session("h:k", purge=True)
    assert removed is not None
    assert runner.purged == [removed.cli_session_id]
    await svc.complete(request("hi", first.text, "next", session="k"))
    assert runner.plans[-1].kind is PlanKind.NEW
    assert len(runner.plans[-1].messages) == 3


async def test_reset_waits_for_the_running_turn_of_that_session() -> None:
    runner = FakeRunner()
    runner.gate = asyncio.Event()
    svc = service(runner)
    turn = asyncio.create_task(svc.complete(request("hi", session="k")))
    await asyncio.sleep(0.01)
    reset = asyncio.create_task(svc.reset_session("h:k"))
    await asyncio.sleep(0.01)
    assert not reset.done()
    runner.gate.set()
    await turn
    assert await reset is not None
    assert (await svc.list_sessions())[1] == 0


async def test_the_same_session_under_two_namespaces_is_two_conversations() -> None:
    runner = FakeRunner()
    svc = service(runner)
    alice = msgspec.structs.replace(request("hi", session="s"), namespace="alice")
    bob = msgspec.structs.replace(request("hi", "echo: hi", "more", session="s"), namespace="bob")
    first = await svc.complete(alice)
    second = await svc.complete(bob)
    assert (first.session_key, second.session_key) == ("ns:alice:h:s", "ns:bob:h:s")
    assert [p.kind for p in runner.plans] == [PlanKind.NEW, PlanKind.NEW]
    assert runner.plans[0].cli_session_id != runner.plans[1].cli_session_id


async def test_listing_and_resetting_keep_to_a_namespace_when_given_one() -> None:
    svc = service()
    for namespace in ("alice", "alice", "bob", ""):
        session = f"s{len((await svc.list_sessions())[0])}"
        await svc.complete(
            msgspec.structs.replace(request("hi", session=session), namespace=namespace)
        )
    records, total = await svc.list_sessions(namespace="alice")
    assert total == 2
    assert all(r.key.startswith("ns:alice:") for r in records)
    assert (await svc.list_sessions())[1] == 4
    removed = await svc.reset_all(namespace="alice")
    assert sorted(r.key for r in removed) == ["ns:alice:h:s0", "ns:alice:h:s1"]
    assert sorted(r.key for r in (await svc.list_sessions())[0]) == ["h:s3", "ns:bob:h:s2"]


# -- a session store that fails -------------------------------------------------


async def test_a_store_that_cannot_record_ends_the_turn_as_store_unavailable() -> None:
    store = InMemorySessionStore()
    svc = ChatService(FakeRunner(), store)
    await svc.complete(request("first", session="s"))
    store.fail("database or disk is full")
    async with svc.open_turn(request("first", "echo: first", "second", session="s")) as turn:
        events = [event async for event in turn.events()]
    # The reply was streamed, but the turn does not claim to have finished well.
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "echo: second"
    assert not [e for e in events if isinstance(e, Finished)]
    assert isinstance(events[-1], Failed)
    assert events[-1].reason is FailureReason.STORE_UNAVAILABLE
    assert events[-1].message == "database or disk is full"
    assert turn.failure is not None
    assert turn.failure.reason is FailureReason.STORE_UNAVAILABLE
    assert (await svc.stats()).errors == 1
    with pytest.raises(ChatError) as raised:
        await svc.complete(request("first", "echo: first", "third", session="s"))
    assert raised.value.reason is FailureReason.STORE_UNAVAILABLE


async def test_a_store_that_cannot_be_read_fails_the_turn_before_the_backend_runs() -> None:
    store = InMemorySessionStore()
    runner = FakeRunner()
    svc = ChatService(runner, store)
    store.fail("attempt to write a readonly database", reads=True)
    events = await drain(svc, request("hi"))
    assert len(events) == 1
    assert isinstance(events[0], Failed)
    assert events[0].reason is FailureReason.STORE_UNAVAILABLE
    assert runner.plans == []
    assert (svc.active, svc.queued) == (0, 0)


async def test_a_store_raising_anything_else_is_store_unavailable_too() -> None:
    class BrokenStore(InMemorySessionStore):
        async def put(self, record: SessionRecord) -> None:
            raise OSError(28, "No space left on device")

    events = await drain(ChatService(FakeRunner(), BrokenStore()), request("hi"))
    assert isinstance(events[-1], Failed)
    assert events[-1].reason is FailureReason.STORE_UNAVAILABLE
    assert "No space left on device" in events[-1].message


@pytest.mark.parametrize("call", ["reset_session", "reset_all", "list_sessions"])
async def test_session_calls_on_a_failing_store_raise_store_unavailable(call: str) -> None:
    store = InMemorySessionStore()
    svc = ChatService(FakeRunner(), store)
    await svc.complete(request("hi", session="s"))
    store.fail(reads=True)
    calls = {
        "reset_session": lambda: svc.reset_session("h:s"),
        "reset_all": lambda: svc.reset_all(),
        "list_sessions": lambda: svc.list_sessions(),
    }
    with pytest.raises(ChatError) as raised:
        await calls[call]()
    assert raised.value.reason is FailureReason.STORE_UNAVAILABLE
