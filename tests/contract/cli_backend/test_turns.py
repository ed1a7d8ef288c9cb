"""One turn with the real CLI: what reaches the upstream, and what comes back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgspec
import pytest

from proxy_core import (
    ChatRequest,
    ChatService,
    Effort,
    ImageBlock,
    InMemorySessionStore,
    PlanKind,
    TextDelta,
    TextRetracted,
    ThinkingDelta,
    ToolActivity,
    UrlImage,
    Usage,
)
from proxy_core.conversation import Base64Image
from tests.contract.cli_backend.helpers import finished, plan, run_turn, text_of
from tests.contract.conftest import RunnerFactory
from tests.support.fake_upstream import FakeAnthropic

pytestmark = pytest.mark.cli

PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAA"
    "AABJRU5ErkJggg=="
)


def _user_messages(body: dict[str, object]) -> list[dict[str, object]]:
    messages = body["messages"]
    assert isinstance(messages, list)
    return [m for m in messages if m["role"] in ("user", "assistant")]


async def test_a_turn_streams_the_reply_and_ends_with_usage_and_finished(
    make_runner: RunnerFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = make_runner()
    await runner.start()
    started = time.monotonic()
    events = await run_turn(runner, plan("hello there"))
    print(f"spawn + one turn: {time.monotonic() - started:.2f}s wall")
    assert text_of(events) == "echo: hello there"
    assert len([e for e in events if isinstance(e, TextDelta)]) > 1  # streamed, not at once
    done = finished(events)
    assert done.text == "echo: hello there"
    assert done.stop_reason == "end_turn"
    assert done.resume_point


async def test_usage_numbers_propagate_including_cached_tokens(
    make_runner: RunnerFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = make_runner()
    await runner.start()
    events = await run_turn(runner, plan("count me"))
    usage = next(e for e in events if isinstance(e, Usage))
    assert usage.output_tokens > 0
    assert usage.input_tokens > 0
    assert usage.cache_read_tokens == 100
    assert usage.cache_creation_tokens == 10


async def test_new_then_continue_replays_history_and_sends_only_the_new_message(
    make_runner: RunnerFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = make_runner()
    await runner.start()
    first = finished(await run_turn(runner, plan("first question")))
    second = await run_turn(
        runner,
        plan(
            "second question",
            kind=PlanKind.CONTINUE,
            session_id=first.session_id,
            resume_point=first.resume_point,
        ),
    )
    assert text_of(second) == "echo: second question"
    requests = fake_upstream.message_requests
    assert len(requests) == 2
    replayed = _user_messages(requests[1].body)
    assert [m["role"] for m in replayed] == ["user", "assistant", "user"]
    assert "first question" in str(replayed[0]["content"])
    assert "echo: first question" in str(replayed[1]["content"])
    assert requests[1].user_text == "second question"


async def test_system_prompt_reaches_the_upstream_system_field(
    make_runner: RunnerFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = make_runner()
    await runner.start()
    await run_turn(runner, plan("hi", system="-You are a terse pirate."))
    system = fake_upstream.message_requests[0].body["system"]
    assert any(block["text"] == "-You are a terse pirate." for block in system)


async def test_the_effort_reaches_the_upstream_and_the_default_applies_without_one(
    make_runner: RunnerFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = make_runner(effort=Effort.LOW)
    await runner.start()
    await run_turn(runner, msgspec.structs.replace(plan("think hard"), effort=Effort.XHIGH))
    await run_turn(runner, plan("think little"))
    efforts = [r.body["output_config"]["effort"] for r in fake_upstream.message_requests]
    assert efforts == ["xhigh", "low"]


async def test_images_reach_the_upstream_as_image_blocks_base64_and_url(
    make_runner: RunnerFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = make_runner()
    await runner.start()
    url = "https://example.com/cat.png"
    blocks = (
        "what are these?",
        ImageBlock(Base64Image(media_type="image/png", data=PNG)),
        ImageBlock(UrlImage(url=url)),
    )
    finished(await run_turn(runner, plan(*blocks)))
    last_user = _user_messages(fake_upstream.message_requests[0].body)[-1]
    content = last_user["content"]
    assert isinstance(content, list)
    images = [block["source"] for block in content if block["type"] == "image"]
    assert images == [
        {"type": "base64", "media_type": "image/png", "data": PNG},
        {"type": "url", "url": url},
    ]


async def test_thinking_streams_as_thinking_deltas_not_text(
    make_runner: RunnerFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = make_runner()
    await runner.start()
    events = await run_turn(runner, plan("[[thinking]] ponder"))
    thinking = "".join(e.text for e in events if isinstance(e, ThinkingDelta))
    assert thinking == "Let me think about this."
    assert text_of(events) == "echo: [[thinking]] ponder"


async def test_tool_use_reports_activity_and_delivers_the_reply_after_it(
    make_runner: RunnerFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = make_runner(tools="Read")
    await runner.start()
    note = f"{runner.config.resolved_workdir}/note.txt"
    await asyncio.to_thread(Path(note).write_text, "the note says hi\n")
    events = await run_turn(runner, plan(f'[[tool-use:Read:{{"file_path": "{note}"}}]]'))
    activity = [e for e in events if isinstance(e, ToolActivity)]
    assert activity == [ToolActivity("Read", note)]
    assert (
        activity[0] in events[: events.index(next(e for e in events if isinstance(e, TextDelta)))]
    )
    assert "tool result seen:" in text_of(events)
    assert "the note says hi" in text_of(events)
    assert len(fake_upstream.message_requests) == 2


async def test_a_dropped_stream_is_recovered_without_repeating_streamed_text(
    make_runner: RunnerFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = make_runner()
    await runner.start()
    events = await run_turn(runner, plan("[[disconnect]]"))
    assert text_of(events) == "echo: [[disconnect]]"
    assert finished(events).text == "echo: [[disconnect]]"


async def test_a_retry_after_a_drop_continues_the_sent_text_without_repeating_it(
    make_runner: RunnerFactory, cli_env: dict[str, str], fake_upstream: FakeAnthropic
) -> None:
    # With retries allowed, the CLI streams the message again from its start.
    runner = make_runner(extra_env={**cli_env, "CLAUDE_CODE_MAX_RETRIES": "2"})
    await runner.start()
    events = await run_turn(runner, plan("[[disconnect-once]]"))
    assert text_of(events) == "echo: [[disconnect-once]]"
    assert not any(isinstance(e, TextRetracted) for e in events)
    assert finished(events).text == "echo: [[disconnect-once]]"
    assert len(fake_upstream.message_requests) == 2


async def test_a_retry_after_a_drop_that_says_something_else_withdraws_the_sent_text(
    make_runner: RunnerFactory, cli_env: dict[str, str], fake_upstream: FakeAnthropic
) -> None:
    runner = make_runner(extra_env={**cli_env, "CLAUDE_CODE_MAX_RETRIES": "2"})
    await runner.start()
    events = await run_turn(runner, plan("[[disconnect-vary]]"))
    withdrawn = [e for e in events if isinstance(e, TextRetracted)]
    assert len(withdrawn) == 1
    before = text_of(events[: events.index(withdrawn[0])])
    assert withdrawn[0].chars == len(before)
    assert text_of(events[events.index(withdrawn[0]) :]) == "echo (retried): [[disconnect-vary]]"
    assert finished(events).text == "echo (retried): [[disconnect-vary]]"


async def test_chat_service_two_turns_continue_one_cli_session(
    make_runner: RunnerFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = make_runner()
    await runner.start()
    service = ChatService(runner, InMemorySessionStore())
    messages: list[dict[str, object]] = [{"role": "user", "content": "one"}]
    first = await service.complete(ChatRequest(model="sonnet", messages=messages))
    messages += [{"role": "assistant", "content": first.text}, {"role": "user", "content": "two"}]
    second = await service.complete(ChatRequest(model="sonnet", messages=messages))
    assert (first.text, second.text) == ("echo: one", "echo: two")
    assert fake_upstream.message_requests[1].user_text == "two"


async def test_the_read_only_profile_lets_the_agent_use_a_read_tool(
    make_runner: RunnerFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = make_runner(tools="read-only")
    await runner.start()
    events = await run_turn(runner, plan("[[tool-use]]"))
    assert [e for e in events if isinstance(e, ToolActivity)] == [ToolActivity("Glob", "*")]
    assert text_of(events).startswith("tool result seen:")
    tools = {tool["name"] for tool in fake_upstream.message_requests[0].body["tools"]}
    assert {"Read", "Glob", "Grep", "WebSearch", "WebFetch"} <= tools
    assert "Bash" not in tools


async def test_a_system_prompt_too_long_for_argv_still_reaches_the_upstream(
    make_runner: RunnerFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = make_runner()
    await runner.start()
    system = "Be kind. " * 30_000  # 270 KB: one argv string may hold 128 KiB at most
    finished(await run_turn(runner, plan("hi", system=system)))
    blocks = fake_upstream.message_requests[0].body["system"]
    assert any(block["text"] == system for block in blocks)
    prompts = Path(runner.config.state_dir) / "prompts"
    assert not prompts.exists() or not any(prompts.iterdir())  # the file is gone again
