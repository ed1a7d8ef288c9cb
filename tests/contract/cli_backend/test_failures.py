"""Failures from the real CLI map to typed reasons, and never leak as reply text."""

from __future__ import annotations

import uuid

import pytest

from proxy_cli_backend.translate import NOT_LOGGED_IN_MESSAGE
from proxy_core import (
    ChatRequest,
    ChatService,
    FailureReason,
    Finished,
    InMemorySessionStore,
    PlanKind,
    TextDelta,
)
from tests.contract.cli_backend.helpers import failed, finished, plan, run_turn
from tests.contract.conftest import RunnerFactory
from tests.support.fake_upstream import FakeAnthropic

pytestmark = pytest.mark.cli


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (400, FailureReason.INVALID_REQUEST),
        (401, FailureReason.NOT_LOGGED_IN),
        (429, FailureReason.RATE_LIMITED),
        (500, FailureReason.UPSTREAM_ERROR),
        (503, FailureReason.OVERLOADED),
        (529, FailureReason.OVERLOADED),
    ],
)
async def test_upstream_error_status_maps_to_its_reason_without_text_deltas(
    make_runner: RunnerFactory, fake_upstream: FakeAnthropic, status: int, reason: FailureReason
) -> None:
    runner = make_runner()
    await runner.start()
    events = await run_turn(runner, plan(f"[[error:{status}]]"))
    assert failed(events).reason is reason
    assert failed(events).message
    assert not [e for e in events if isinstance(e, TextDelta)]


async def test_a_connection_dropped_upstream_is_an_upstream_error_not_a_crash(
    make_runner: RunnerFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = make_runner()
    await runner.start()
    events = await run_turn(runner, plan("[[reset]]"))
    assert failed(events).reason is FailureReason.UPSTREAM_ERROR
    assert "connection" in failed(events).message.lower()
    assert not [e for e in events if isinstance(e, TextDelta)]
    assert fake_upstream.message_requests  # it did reach the upstream, which hung up


async def test_no_credentials_is_not_logged_in(
    make_runner: RunnerFactory, cli_env: dict[str, str], fake_upstream: FakeAnthropic
) -> None:
    env = {k: v for k, v in cli_env.items() if k != "ANTHROPIC_API_KEY"}
    runner = make_runner(extra_env=env)
    await runner.start()
    events = await run_turn(runner, plan("hello"))
    assert failed(events).reason is FailureReason.NOT_LOGGED_IN
    # The CLI's own advice (`/login`, for its interactive mode) is not passed on.
    assert failed(events).message == NOT_LOGGED_IN_MESSAGE
    assert not [e for e in events if isinstance(e, TextDelta)]


async def test_resuming_a_missing_transcript_is_session_missing(
    make_runner: RunnerFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = make_runner()
    await runner.start()
    events = await run_turn(
        runner, plan("hello", kind=PlanKind.CONTINUE, session_id=str(uuid.uuid4()))
    )
    assert failed(events).reason is FailureReason.SESSION_MISSING
    assert fake_upstream.message_requests == []


async def test_missing_transcript_leads_to_one_transparent_restart(
    make_runner: RunnerFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = make_runner()
    await runner.start()
    store = InMemorySessionStore()
    service = ChatService(runner, store)
    messages: list[dict[str, object]] = [{"role": "user", "content": "remember me"}]
    first = await service.complete(ChatRequest(model="sonnet", messages=messages))
    (record,), _ = await store.list()
    await runner.forget(record.cli_session_id, purge=True)  # the transcript is gone
    messages += [{"role": "assistant", "content": first.text}, {"role": "user", "content": "and?"}]
    fake_upstream.reset()
    events = [e async for e in service.stream(ChatRequest(model="sonnet", messages=messages))]
    assert isinstance(events[-1], Finished)
    (request,) = fake_upstream.message_requests  # the failed resume never reached it
    assert "remember me" in request.user_text  # the full history, rendered
    assert "and?" in request.user_text
    (after,), _ = await store.list()
    assert after.cli_session_id != record.cli_session_id


async def test_retry_after_a_failed_turn_sends_the_user_message_once(
    make_runner: RunnerFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = make_runner()
    await runner.start()
    first = finished(await run_turn(runner, plan("first")))
    resume = {
        "kind": PlanKind.CONTINUE,
        "session_id": first.session_id,
        "resume_point": first.resume_point,
    }
    assert failed(await run_turn(runner, plan("[[error:529]] second", **resume)))
    fake_upstream.reset()
    finished(await run_turn(runner, plan("second again", **resume)))
    (request,) = fake_upstream.message_requests
    texts = str([m["content"] for m in request.body["messages"] if m["role"] == "user"])
    assert "second again" in texts
    assert "[[error:529]]" not in texts  # the failed turn is not replayed


async def test_an_upstream_rate_limit_ends_the_turn_at_once_with_its_retry_after(
    make_runner: RunnerFactory, cli_env: dict[str, str], fake_upstream: FakeAnthropic
) -> None:
    # With retries allowed (the server's default, 2), the CLI announces its back-off
    # (retry-after plus up to 25% jitter) and would wait it out: the turn ends at that
    # notice instead, the back-off in whole seconds as retry_after, the process ended.
    runner = make_runner(extra_env={**cli_env, "CLAUDE_CODE_MAX_RETRIES": "2"})
    await runner.start()
    events = await run_turn(runner, plan("[[error:429]][[retry-after:2]]"))
    failure = failed(events)
    assert failure.reason is FailureReason.RATE_LIMITED
    assert failure.retry_after == 2.0
    assert runner.status().active_processes == 0
    assert len(fake_upstream.message_requests) == 1  # no retry was made
