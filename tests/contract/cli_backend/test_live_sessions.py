"""Live CLI processes with the real binary: reuse, fallback to --resume, failures, models."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

from proxy_core import Effort, LiveDetails, TextDelta
from tests.contract.cli_backend.conftest import Chat, live_pids, live_runner, wait_for
from tests.contract.conftest import ProcessWatch
from tests.contract.http.test_process_cap import CliCounter
from tests.support.fake_upstream import FakeAnthropic

Factory = Callable[..., Any]


def history(fake: FakeAnthropic) -> list[str]:
    """The user/assistant texts of the last Messages call (CLI reminders left out)."""
    texts: list[str] = []
    for message in fake.message_requests[-1].body["messages"]:
        if message["role"] not in ("user", "assistant"):
            continue
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        texts += [
            b["text"]
            for b in blocks
            if b.get("type") == "text" and not b["text"].startswith("<system-reminder>")
        ]
    return texts


async def test_two_turns_of_a_conversation_run_in_one_process(
    make_live_service: Factory, fake_upstream: FakeAnthropic
) -> None:
    service = await make_live_service()
    chat = Chat(service, "one-process")
    assert await chat.say("first") == "echo: first"
    before = live_pids(service)
    assert await chat.say("second") == "echo: second"
    assert live_pids(service) == before
    assert list(before) == [await chat.cli_session()]
    assert live_runner(service).spawned == 1
    # The live process kept the conversation: the upstream saw the whole of it.
    assert history(fake_upstream) == ["first", "echo: first", "second"]


async def test_an_evicted_conversation_resumes_with_its_context(
    make_live_service: Factory, fake_upstream: FakeAnthropic
) -> None:
    service = await make_live_service(max_live=1)
    alice, bob = Chat(service, "alice"), Chat(service, "bob")
    await alice.say("alice one")
    await bob.say("bob one")  # the cap is 1: alice's process is evicted
    assert list(live_pids(service)) == [await bob.cli_session()]
    assert await alice.say("alice two") == "echo: alice two"
    assert history(fake_upstream) == ["alice one", "echo: alice one", "alice two"]
    assert live_runner(service).evicted >= 1


async def test_a_memory_budget_below_two_processes_keeps_one_alive_and_loses_no_context(
    make_live_service: Factory, fake_upstream: FakeAnthropic
) -> None:
    # A real CLI is 150-250 MB resident: 300 MiB fits one, though --live-max allows 4.
    service = await make_live_service(max_live=4, live_memory_mb=300)
    chats = [Chat(service, name) for name in ("alice", "bob", "carol")]
    with CliCounter(os.getpid()) as counter:
        for chat in chats:
            await chat.say(f"{chat.key} one")
        assert await chats[0].say("alice two") == "echo: alice two"
    details = service.backend_status().details
    assert isinstance(details, LiveDetails)
    assert details.memory_limit == 1, "a CLI process below 150 MiB? see the comment above"
    assert counter.samples > 0
    assert counter.most == 1
    assert history(fake_upstream) == ["alice one", "echo: alice one", "alice two"]
    assert live_runner(service).evicted == 3


async def test_an_idle_process_ends_after_the_idle_timeout_and_the_next_turn_resumes(
    make_live_service: Factory, fake_upstream: FakeAnthropic
) -> None:
    service = await make_live_service(live_idle_timeout=0.5)
    chat = Chat(service, "idle")
    async with ProcessWatch() as watch:
        await chat.say("before the pause")
        await wait_for(lambda: live_pids(service) == {})
        assert await watch.wait_gone(2.0) == []
    assert await chat.say("after the pause") == "echo: after the pause"
    assert history(fake_upstream) == [
        "before the pause",
        "echo: before the pause",
        "after the pause",
    ]


async def test_a_process_killed_between_turns_is_replaced_and_the_turn_succeeds(
    make_live_service: Factory, fake_upstream: FakeAnthropic
) -> None:
    service = await make_live_service()
    chat = Chat(service, "killed")
    await chat.say("one")
    (pid,) = live_pids(service).values()
    os.killpg(pid, signal.SIGKILL)
    assert await chat.say("two") == "echo: two"
    assert list(live_pids(service).values()) != [pid]
    assert history(fake_upstream) == ["one", "echo: one", "two"]


async def test_a_cancelled_stream_does_not_leak_into_the_next_turn(
    make_live_service: Factory, fake_upstream: FakeAnthropic
) -> None:
    service = await make_live_service()
    chat = Chat(service, "cancelled")
    await chat.say("one")
    stream = service.stream(chat.request("[[slow-stream:2]] abandoned words"))
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()
    assert await chat.say("two") == "echo: two"
    # Neither the abandoned prompt, its partial reply nor the CLI's interruption note.
    assert history(fake_upstream) == ["one", "echo: one", "two"]


async def test_a_model_switch_reaches_the_upstream_in_the_same_process(
    make_live_service: Factory, fake_upstream: FakeAnthropic
) -> None:
    service = await make_live_service()
    chat = Chat(service, "models")
    await chat.say("on sonnet")
    before = live_pids(service)
    chat.model = "haiku"
    await chat.say("on haiku")
    models = [r.body["model"] for r in fake_upstream.message_requests]
    assert "sonnet" in models[0]
    assert "haiku" in models[-1]
    assert live_pids(service) == before


def efforts(fake: FakeAnthropic) -> list[str]:
    """The effort of every Messages call, in order."""
    return [r.body["output_config"]["effort"] for r in fake.message_requests]


async def test_effort_changes_reach_the_upstream_in_the_same_process(
    make_live_service: Factory, fake_upstream: FakeAnthropic
) -> None:
    service = await make_live_service()
    chat = Chat(service, "efforts")
    await chat.say("at the default")
    before = live_pids(service)
    for effort in ("high", "max", None, "minimal"):
        chat.effort = effort
        await chat.say(f"at {effort}")
    # None: back to the CLI's default; minimal: Claude's lowest level.
    assert efforts(fake_upstream) == ["medium", "high", "max", "medium", "low"]
    assert live_pids(service) == before
    assert live_runner(service).spawned == 1
    assert history(fake_upstream)[-1] == "at minimal"


async def test_a_pooled_process_runs_at_the_configured_effort_and_returns_to_it(
    make_live_service: Factory, fake_upstream: FakeAnthropic
) -> None:
    service = await make_live_service(effort=Effort.HIGH, pool_size=1)
    runner = live_runner(service)
    await wait_for(lambda: runner.status().details.pool_ready == 1)
    chat = Chat(service, "pooled-effort")
    await chat.say("configured")
    chat.effort = "low"
    await chat.say("asked low")
    chat.effort = None
    await chat.say("configured again")
    assert efforts(fake_upstream) == ["high", "low", "high"]
    assert runner.spawned == 0


async def test_structured_turns_share_a_process_and_dropping_the_schema_resumes_anew(
    make_live_service: Factory, fake_upstream: FakeAnthropic
) -> None:
    service = await make_live_service()
    chat = Chat(service, "structured")
    chat.response_format = {"type": "json_object"}
    assert await chat.say('[[tool-use:StructuredOutput:{"n": 1}]]') == '{"n":1}'
    before = live_pids(service)
    assert await chat.say('[[tool-use:StructuredOutput:{"n": 2}]]') == '{"n":2}'
    assert live_pids(service) == before
    # The schema is fixed for a process's life: plain text needs a new one (--resume).
    chat.response_format = None
    await chat.say("plain")
    assert live_runner(service).spawned == 2
    assert set(live_pids(service).values()).isdisjoint(before.values())
    body = fake_upstream.message_requests[-1].body
    assert "StructuredOutput" not in [t["name"] for t in body.get("tools", [])]
    # Resumed after the last structured call's result (not before it, which would
    # leave that call unanswered), with the new prompt next to it.
    blocks = body["messages"][-1]["content"]
    results = [b["content"] for b in blocks if b["type"] == "tool_result"]
    assert results == ["Structured output provided successfully"]
    assert history(fake_upstream)[-1] == "plain"


async def test_a_reply_cut_at_a_stop_sequence_is_all_the_model_sees_of_it_next_turn(
    make_live_service: Factory, fake_upstream: FakeAnthropic
) -> None:
    service = await make_live_service()
    chat = Chat(service, "stops")
    assert await chat.say("alpha") == "echo: alpha"
    chat.stop = ["STOP"]
    assert await chat.say("one STOP two") == "echo: one "
    chat.stop = None
    await chat.say("three")  # (the fake echoes the rendered catch-up prompt)
    # The cut turn's process was ended (it had seen the whole reply); the next one
    # resumed before that turn and got the conversation as the client has it.
    assert live_runner(service).spawned == 2
    seen = "\n".join(history(fake_upstream))
    assert "echo: one STOP two" not in seen
    assert "echo: one" in seen
    assert seen.startswith("alpha\necho: alpha\n")
    assert "three" in history(fake_upstream)[-1]
    assert len(live_pids(service)) == 1


async def test_no_process_is_left_after_the_runner_closes(
    make_live_service: Factory, fake_upstream: FakeAnthropic
) -> None:
    service = await make_live_service(pool_size=1)
    async with ProcessWatch() as watch:
        await Chat(service, "a").say("hello")
        await Chat(service, "b").say("hello")
        watch.sample()
        await service.aclose()
        assert service.backend_status().active_processes == 0
        assert await watch.wait_gone(2.0) == []
