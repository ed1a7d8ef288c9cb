"""Client tools with the real CLI: a turn suspends at the model's calls of client tools
(served by our SDK MCP server) and the client's results resume the same CLI turn."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from proxy_cli_backend.client_tools import NOT_RUN
from proxy_cli_backend.live_runner import LiveCliRunner
from proxy_cli_backend.runner import ClaudeCliRunner
from proxy_core import (
    ChatRequest,
    ChoiceMode,
    ClientTool,
    Event,
    FailureReason,
    Finished,
    LiveDetails,
    PlanKind,
    TextDelta,
    ToolArguments,
    ToolCallStarted,
    ToolOffer,
    ToolResult,
    TurnPlan,
    Usage,
)
from tests.contract.cli_backend.conftest import live_runner, wait_for
from tests.contract.cli_backend.helpers import failed, finished, plan, text_of
from tests.contract.conftest import RunnerFactory, cli_processes
from tests.support.fake_upstream import FakeAnthropic

WEATHER = ClientTool(
    "get_weather",
    "The weather of a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CALL_WEATHER = '[[tool-use:mcp__client__get_weather:{"city":"Paris"}]]'

LiveFactory = Callable[..., Any]


def offer(*tools: ClientTool, **rules: Any) -> ToolOffer:
    return ToolOffer(tools or (WEATHER,), **rules)


def tool_plan(text: str, tools: ToolOffer | None = None, **fields: Any) -> TurnPlan:
    return msgspec.structs.replace(plan(text, **fields), tools=tools or offer())


def results_plan(
    first: TurnPlan, done: Finished, *results: ToolResult, tools: ToolOffer | None = None
) -> TurnPlan:
    """The CONTINUE that brings the client's results for a suspended turn."""
    return TurnPlan(
        kind=PlanKind.CONTINUE,
        session_key=first.session_key,
        cli_session_id=first.cli_session_id,
        model=first.model,
        system=first.system,
        prompt=(),
        messages=(),
        seen=(),
        resume_point=done.resume_point,
        tools=tools or first.tools,
        tool_results=results,
    )


async def run(runner: LiveCliRunner | ClaudeCliRunner, turn: TurnPlan) -> list[Event]:
    return [event async for event in runner.run(turn)]


def details(runner: LiveCliRunner) -> LiveDetails:
    status = runner.status().details
    assert isinstance(status, LiveDetails)
    return status


def live_pid(runner: LiveCliRunner, session: str) -> int:
    return next(p.pid for p in details(runner).live if p.session_id == session)


async def test_a_turn_that_calls_a_client_tool_suspends_its_process(
    make_live: LiveFactory,
) -> None:
    runner = await make_live()
    turn = tool_plan(f"weather? {CALL_WEATHER}")
    events = await run(runner, turn)
    done = finished(events)
    assert done.stop_reason == "tool_use"
    assert [(c.name, msgspec.json.decode(c.arguments)) for c in done.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert done.pending == (done.tool_calls[0].id,)
    assert done.pending[0].startswith("toolu_")
    started = [e for e in events if isinstance(e, ToolCallStarted)]
    assert started == [ToolCallStarted(index=0, id=done.pending[0], name="get_weather")]
    arguments = "".join(e.text for e in events if isinstance(e, ToolArguments))
    assert msgspec.json.decode(arguments) == {"city": "Paris"}
    assert details(runner).suspended_turns == 1
    assert [p.state for p in details(runner).live] == ["suspended"]


async def test_the_clients_result_resumes_the_same_process_and_turn(
    make_live: LiveFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = await make_live()
    turn = tool_plan(f"weather? {CALL_WEATHER}")
    done = finished(await run(runner, turn))
    pid = live_pid(runner, turn.cli_session_id)
    answer = ToolResult(done.pending[0], "sunny, 21C")
    events = await run(runner, results_plan(turn, done, answer))
    end = finished(events)
    assert end.stop_reason == "end_turn"
    assert text_of(events) == "tool result seen: sunny, 21C"
    assert live_pid(runner, turn.cli_session_id) == pid
    assert details(runner).suspended_turns == 0
    assert runner.spawned == 1
    assert fake_upstream.tool_results(fake_upstream.message_requests[-1]) == [
        {"tool_use_id": done.pending[0], "text": "sunny, 21C", "is_error": False}
    ]


async def test_an_error_result_reaches_the_upstream_as_an_error(
    make_live: LiveFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = await make_live()
    turn = tool_plan(f"weather? {CALL_WEATHER}")
    done = finished(await run(runner, turn))
    failure = ToolResult(done.pending[0], "city not found", is_error=True)
    events = await run(runner, results_plan(turn, done, failure))
    # The fake marks a result it got with is_error as "error: ".
    assert text_of(events) == "tool result seen: error: city not found"
    assert fake_upstream.tool_results(fake_upstream.message_requests[-1]) == [
        {"tool_use_id": done.pending[0], "text": "city not found", "is_error": True}
    ]


async def test_an_expired_suspended_turn_ends_its_process_and_results_find_it_gone(
    make_live: LiveFactory,
) -> None:
    runner = await make_live(suspended_timeout=0.5)
    turn = tool_plan(f"weather? {CALL_WEATHER}")
    done = finished(await run(runner, turn))
    pid = live_pid(runner, turn.cli_session_id)
    await wait_for(lambda: details(runner).live == ())
    await wait_for(lambda: pid not in cli_processes())
    events = await run(runner, results_plan(turn, done, ToolResult(done.pending[0], "late")))
    assert failed(events).reason is FailureReason.SESSION_MISSING
    assert cli_processes() == []


async def test_a_suspended_process_killed_meanwhile_is_a_missing_session(
    make_live: LiveFactory,
) -> None:
    runner = await make_live()
    turn = tool_plan(f"weather? {CALL_WEATHER}")
    done = finished(await run(runner, turn))
    os.kill(live_pid(runner, turn.cli_session_id), signal.SIGKILL)
    events = await run(runner, results_plan(turn, done, ToolResult(done.pending[0], "x")))
    assert [type(e).__name__ for e in events] == ["Failed"]
    assert failed(events).reason is FailureReason.SESSION_MISSING
    await wait_for(lambda: cli_processes() == [])
    assert details(runner).live == ()


async def test_a_suspended_process_is_evicted_when_a_new_turn_needs_its_slot(
    make_live: LiveFactory,
) -> None:
    runner = await make_live(max_live=1)
    turn = tool_plan(f"weather? {CALL_WEATHER}")
    done = finished(await run(runner, turn))
    other = plan("another conversation")
    assert text_of(await run(runner, other)) == "echo: another conversation"
    assert [p.session_id for p in details(runner).live] == [other.cli_session_id]
    assert runner.evicted == 1
    events = await run(runner, results_plan(turn, done, ToolResult(done.pending[0], "x")))
    assert failed(events).reason is FailureReason.SESSION_MISSING


async def test_closing_the_runner_ends_a_suspended_process(make_live: LiveFactory) -> None:
    runner = await make_live()
    finished(await run(runner, tool_plan(f"weather? {CALL_WEATHER}")))
    assert len(cli_processes()) == 1
    await runner.aclose()
    assert cli_processes() == []


async def test_a_process_per_turn_suspends_by_ending_and_results_find_no_turn(
    make_runner: RunnerFactory,
) -> None:
    runner = make_runner()
    await runner.start()
    turn = tool_plan(f"weather? {CALL_WEATHER}")
    done = finished(await run(runner, turn))
    assert done.stop_reason == "tool_use"
    assert [c.name for c in done.tool_calls] == ["get_weather"]
    assert done.pending == (done.tool_calls[0].id,)
    await wait_for(lambda: cli_processes() == [])
    events = await run(runner, results_plan(turn, done, ToolResult(done.pending[0], "x")))
    assert failed(events).reason is FailureReason.SESSION_MISSING
    assert cli_processes() == []


def usages(events: Sequence[Event]) -> list[Usage]:
    return [e for e in events if isinstance(e, Usage)]


async def test_a_suspended_turns_usage_counts_each_upstream_message_once(
    make_live: LiveFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = await make_live()
    turn = tool_plan(f"weather? {CALL_WEATHER}")
    first = await run(runner, turn)
    done = finished(first)
    rest = await run(runner, results_plan(turn, done, ToolResult(done.pending[0], "sunny")))
    # The fake reports 100 cached tokens read and 10 written for each message it answers.
    answered = len(fake_upstream.message_requests)
    assert answered == 2
    (before,), (after,) = usages(first), usages(rest)
    assert before.cache_read_tokens == 100
    assert before.cache_creation_tokens == 10
    assert after.cache_read_tokens == 100
    assert after.cache_creation_tokens == 10
    assert before.output_tokens > 0
    assert after.output_tokens > 0


async def test_tools_offered_but_not_called_leave_the_process_idle_for_the_next_turn(
    make_live: LiveFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = await make_live()
    turn = tool_plan("just chat")
    events = await run(runner, turn)
    done = finished(events)
    assert (done.stop_reason, done.tool_calls, done.pending) == ("end_turn", (), ())
    assert text_of(events) == "echo: just chat"
    assert [p.state for p in details(runner).live] == ["idle"]
    # The upstream was offered the client's tool under the CLI's name for it.
    offered = [t["name"] for t in fake_upstream.message_requests[-1].body["tools"]]
    assert "mcp__client__get_weather" in offered
    follow = msgspec.structs.replace(
        tool_plan(f"now call {CALL_WEATHER}"),
        kind=PlanKind.CONTINUE,
        cli_session_id=turn.cli_session_id,
        resume_point=done.resume_point,
    )
    assert finished(await run(runner, follow)).stop_reason == "tool_use"
    assert runner.spawned == 1


async def test_results_for_another_point_of_the_session_end_the_suspended_turn(
    make_live: LiveFactory,
) -> None:
    runner = await make_live()
    turn = tool_plan(f"weather? {CALL_WEATHER}")
    done = finished(await run(runner, turn))
    stale = msgspec.structs.replace(done, resume_point="not-this-one")
    events = await run(runner, results_plan(turn, stale, ToolResult(done.pending[0], "x")))
    assert failed(events).reason is FailureReason.SESSION_MISSING
    await wait_for(lambda: cli_processes() == [])


async def test_a_suspended_process_outlives_the_idle_timeout_but_not_its_own_death(
    make_live: LiveFactory,
) -> None:
    runner = await make_live(live_idle_timeout=0.3)
    turn = tool_plan(f"weather? {CALL_WEATHER}")
    done = finished(await run(runner, turn))
    pid = live_pid(runner, turn.cli_session_id)
    # Another conversation's idle process is reaped: the reaper ran past the idle timeout.
    other = plan("meanwhile")
    await run(runner, other)
    await wait_for(lambda: [p.session_id for p in details(runner).live] == [turn.cli_session_id])
    assert details(runner).suspended_turns == 1
    # Killed while it waits: the reaper ends it without waiting for its expiry.
    os.kill(pid, signal.SIGKILL)
    await wait_for(lambda: details(runner).live == ())
    assert details(runner).suspended_turns == 0
    await wait_for(lambda: cli_processes() == [])
    events = await run(runner, results_plan(turn, done, ToolResult(done.pending[0], "x")))
    assert failed(events).reason is FailureReason.SESSION_MISSING


async def test_an_idle_process_is_evicted_before_a_suspended_one(
    make_live: LiveFactory,
) -> None:
    runner = await make_live(max_live=2)
    turn = tool_plan(f"weather? {CALL_WEATHER}")
    done = finished(await run(runner, turn))
    idle = plan("an idle conversation")
    await run(runner, idle)  # used after the suspended one: the most recent
    third = plan("a third conversation")
    await run(runner, third)
    live = {p.session_id: p.state for p in details(runner).live}
    assert live == {turn.cli_session_id: "suspended", third.cli_session_id: "idle"}
    events = await run(runner, results_plan(turn, done, ToolResult(done.pending[0], "sunny")))
    assert text_of(events) == "tool result seen: sunny"


TIME = ClientTool(
    "get_time",
    "The local time in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}},
)
CALL_BOTH = '[[call:get_weather:{"city":"Paris"}]] [[call:get_time:{"city":"Rome"}]]'


async def test_parallel_calls_are_handed_over_together_and_both_answered_on_resume(
    make_live: LiveFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = await make_live()
    turn = tool_plan(f"weather and time? {CALL_BOTH}", offer(WEATHER, TIME))
    events = await run(runner, turn)
    done = finished(events)
    assert [(c.name, msgspec.json.decode(c.arguments)) for c in done.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"city": "Rome"}),
    ]
    assert done.pending == tuple(c.id for c in done.tool_calls)
    started = [(e.index, e.id, e.name) for e in events if isinstance(e, ToolCallStarted)]
    assert started == [(0, done.pending[0], "get_weather"), (1, done.pending[1], "get_time")]
    for index in (0, 1):
        fragments = [e.text for e in events if isinstance(e, ToolArguments) and e.index == index]
        # Exactly: the client sends its copy (the fragments joined) back in its history.
        assert "".join(fragments) == done.tool_calls[index].arguments
    # The CLI asks the second call only once the first is answered: both come from here.
    answers = (ToolResult(done.pending[0], "sunny"), ToolResult(done.pending[1], "noon"))
    rest = await run(runner, results_plan(turn, done, *answers))
    assert text_of(rest) == "tool result seen: sunny | noon"
    assert finished(rest).stop_reason == "end_turn"
    assert fake_upstream.tool_results(fake_upstream.message_requests[-1]) == [
        {"tool_use_id": done.pending[0], "text": "sunny", "is_error": False},
        {"tool_use_id": done.pending[1], "text": "noon", "is_error": False},
    ]


async def test_one_call_per_reply_hands_over_the_first_and_answers_the_rest_not_run(
    make_live: LiveFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = await make_live()
    single = offer(WEATHER, TIME, parallel=False)
    turn = tool_plan(f"weather and time? {CALL_BOTH}", single)
    events = await run(runner, turn)
    done = finished(events)
    assert [c.name for c in done.tool_calls] == ["get_weather"]
    assert [e.name for e in events if isinstance(e, ToolCallStarted)] == ["get_weather"]
    assert {e.index for e in events if isinstance(e, ToolArguments)} == {0}
    rest = await run(runner, results_plan(turn, done, ToolResult(done.pending[0], "sunny")))
    assert finished(rest).stop_reason == "end_turn"
    sent = fake_upstream.tool_results(fake_upstream.message_requests[-1])
    assert [(r["text"], r["is_error"]) for r in sent] == [
        ("sunny", False),
        (NOT_RUN, True),
    ]
    assert sent[0]["tool_use_id"] == done.pending[0]


async def test_a_named_tool_choice_makes_a_lazy_model_call_it(
    make_live: LiveFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = await make_live()
    forced = offer(WEATHER, TIME, choice=ChoiceMode.FUNCTION, forced="get_time")
    # No call marker: the fake calls a tool only when the prompt's words say so.
    events = await run(runner, tool_plan('what time is it? [[args:{"city":"Oslo"}]]', forced))
    done = finished(events)
    assert [(c.name, msgspec.json.decode(c.arguments)) for c in done.tool_calls] == [
        ("get_time", {"city": "Oslo"})
    ]
    # Only the named tool is offered to the model.
    tools = fake_upstream.offered_tools(fake_upstream.message_requests[-1])
    assert [t for t in tools if t.startswith("mcp__")] == ["mcp__client__get_time"]


async def test_without_a_required_choice_a_lazy_model_just_answers(
    make_live: LiveFactory,
) -> None:
    runner = await make_live()
    events = await run(runner, tool_plan("what time is it?", offer(WEATHER, TIME)))
    done = finished(events)
    assert done.tool_calls == ()
    assert text_of(events) == "echo: what time is it?"


async def test_a_reply_that_must_call_and_did_not_is_reminded_and_only_the_call_shown(
    make_live: LiveFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = await make_live()
    required = offer(WEATHER, TIME, choice=ChoiceMode.REQUIRED)
    # The first reply calls a tool that is not offered, so it is text: "tool nope is ...".
    events = await run(runner, tool_plan("[[call:nope]]", required))
    done = finished(events)
    assert [c.name for c in done.tool_calls] == ["get_weather"]  # the first one listed
    assert text_of(events) == ""
    replies = fake_upstream.message_requests
    assert len(replies) == 2
    assert "Call one of these tools" in replies[-1].user_text
    assert details(runner).suspended_turns == 1
    # Both upstream messages are counted (the fake reads 100 cached tokens for each).
    (usage,) = usages(events)
    assert usage.cache_read_tokens == 100 * len(replies)


async def test_a_process_per_turn_hands_over_parallel_calls_and_ends(
    make_runner: RunnerFactory,
) -> None:
    runner = make_runner()
    await runner.start()
    events = await run(runner, tool_plan(f"both {CALL_BOTH}", offer(WEATHER, TIME)))
    done = finished(events)
    assert [c.name for c in done.tool_calls] == ["get_weather", "get_time"]
    assert len(done.pending) == 2
    await wait_for(lambda: cli_processes() == [])


async def test_a_resumed_turn_that_calls_again_suspends_again_in_the_same_process(
    make_live: LiveFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = await make_live()
    turn = tool_plan(f"weather? {CALL_WEATHER}", offer(WEATHER, TIME))
    first = await run(runner, turn)
    done = finished(first)
    pid = live_pid(runner, turn.cli_session_id)
    # The fake reads call markers from a tool result: the model calls again.
    scripted = ToolResult(done.pending[0], 'sunny [[call:get_time:{"city":"Paris"}]]')
    second = await run(runner, results_plan(turn, done, scripted))
    again = finished(second)
    assert [c.name for c in again.tool_calls] == ["get_time"]
    assert again.pending != done.pending
    assert [(e.index, e.name) for e in second if isinstance(e, ToolCallStarted)] == [
        (0, "get_time")
    ]
    assert details(runner).suspended_turns == 1
    third = await run(runner, results_plan(turn, again, ToolResult(again.pending[0], "noon")))
    assert text_of(third) == "tool result seen: noon"
    assert live_pid(runner, turn.cli_session_id) == pid
    # Each upstream message is counted once over the three parts of the turn.
    total = sum(u.cache_read_tokens for u in usages([*first, *second, *third]))
    assert total == 100 * len(fake_upstream.message_requests)


async def test_a_long_tool_result_reaches_the_model_whole(
    make_live: LiveFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = await make_live()
    turn = tool_plan(f"weather? {CALL_WEATHER}")
    done = finished(await run(runner, turn))
    # Far above the ~50 KB the CLI keeps in the conversation by default.
    long = "".join(f"line {n}: {'x' * 40}\n" for n in range(4000))
    assert len(long) > 150_000
    events = await run(runner, results_plan(turn, done, ToolResult(done.pending[0], long)))
    assert finished(events).stop_reason == "end_turn"
    (sent,) = fake_upstream.tool_results(fake_upstream.message_requests[-1])
    assert sent["text"] == long


async def test_a_client_gone_while_calls_are_written_ends_the_process(
    make_live: LiveFactory,
) -> None:
    runner = await make_live()
    turn = tool_plan(f"weather? {CALL_WEATHER}")
    async with contextlib.aclosing(runner.run(turn)) as events:
        async for event in events:
            if isinstance(event, ToolCallStarted):
                break  # the client disconnects as the call starts
    await wait_for(lambda: details(runner).live == ())
    await wait_for(lambda: cli_processes() == [])
    assert details(runner).suspended_turns == 0


async def test_a_process_per_turn_with_tools_not_called_answers_and_ends(
    make_runner: RunnerFactory,
) -> None:
    runner = make_runner()
    await runner.start()
    events = await run(runner, tool_plan("no tools needed"))
    assert text_of(events) == "echo: no tools needed"
    assert finished(events).tool_calls == ()
    await wait_for(lambda: cli_processes() == [])
    assert runner.status().active_processes == 0


TOOLS_JSON = [
    {
        "type": "function",
        "function": {
            "name": WEATHER.name,
            "description": WEATHER.description,
            "parameters": WEATHER.parameters,
        },
    }
]


async def test_a_streaming_clients_tool_round_resumes_the_same_process(
    make_live_service: LiveFactory,
) -> None:
    service = await make_live_service()
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": 'weather? [[call:get_weather:{"city":"Paris"}]]'}
    ]
    calls: dict[int, dict[str, Any]] = {}
    request = ChatRequest(model="sonnet", messages=messages, session_id="k", tools=TOOLS_JSON)
    async for event in service.stream(request):
        if isinstance(event, ToolCallStarted):
            function = {"name": event.name, "arguments": ""}
            calls[event.index] = {"id": event.id, "type": "function", "function": function}
        elif isinstance(event, ToolArguments):
            calls[event.index]["function"]["arguments"] += event.text
    (call,) = calls.values()
    runner = live_runner(service)
    pids = [p.pid for p in details(runner).live]
    # The client sends back its copy of the call (the streamed fragments joined).
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
    ]
    request = ChatRequest(model="sonnet", messages=messages, session_id="k", tools=TOOLS_JSON)
    text = "".join([e.text async for e in service.stream(request) if isinstance(e, TextDelta)])
    assert text == "tool result seen: sunny"
    assert [p.pid for p in details(runner).live] == pids
    assert runner.spawned == 1


async def test_calls_of_a_reply_the_cli_fetched_without_streaming_are_handed_over(
    make_live: LiveFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = await make_live()
    # Every streamed attempt is cut: the CLI asks once more without streaming, and prints
    # the reply whole (its calls were never streamed).
    prompt = f"[[say:Looking it up.]] {CALL_BOTH} [[disconnect]]"
    turn = tool_plan(prompt, offer(WEATHER, TIME))
    events = await run(runner, turn)
    assert [r.body.get("stream") for r in fake_upstream.message_requests][-1] is False
    done = finished(events)
    assert [c.name for c in done.tool_calls] == ["get_weather", "get_time"]
    assert [(e.index, e.name) for e in events if isinstance(e, ToolCallStarted)] == [
        (0, "get_weather"),
        (1, "get_time"),
    ]
    assert text_of(events) == "Looking it up."
    answers = (ToolResult(done.pending[0], "sunny"), ToolResult(done.pending[1], "noon"))
    rest = await run(runner, results_plan(turn, done, *answers))
    assert text_of(rest) == "tool result seen: sunny | noon"
