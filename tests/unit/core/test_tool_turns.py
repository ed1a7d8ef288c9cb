"""Client tool turns through the ChatService, over a runner that holds suspended turns.

A reply that ends in calls is recorded with the backend's ids of its calls and the
fingerprint of the reply as its client echoes it; the echo and the results resume the
suspended turn with exactly the new messages; a suspended turn that is gone falls back
to a fresh session given the whole history; a suspended turn holds no slot.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxy_core import (
    Base64Image,
    ChatRequest,
    ChatService,
    Completion,
    Event,
    Finished,
    InMemorySessionStore,
    PlanKind,
    RestartReason,
    ServiceLimits,
    SessionRecord,
    TextDelta,
    ToolArguments,
    ToolCall,
    ToolCallStarted,
    ToolResult,
    fingerprint,
    parse_conversation,
    parse_rendering,
)
from proxy_core.ledger import fingerprints
from tests.support.tool_runner import Call, Reply, ToolRunner, args

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"The {name} of a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    for name in ("weather", "time")
]
FUNCTIONS = [tool["function"] for tool in TOOLS]
QUESTION = {"role": "user", "content": "Weather in Paris?"}
PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNk"
    "YAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


def service(runner: ToolRunner, **limits: int) -> ChatService:
    return ChatService(runner, InMemorySessionStore(), limits=ServiceLimits(**limits))


def ask(messages: list[dict[str, Any]], session: str = "s", **fields: Any) -> ChatRequest:
    offer: dict[str, Any] = {"functions": FUNCTIONS} if fields.pop("legacy", False) else {}
    if not offer:
        offer = {"tools": TOOLS}
    return ChatRequest(model="sonnet", messages=messages, session_id=session, **offer, **fields)


def echo(completion: Completion, *, legacy: bool = False) -> dict[str, Any]:
    """Our reply as a client sends it back: content null when it had no text, and the
    arguments re-serialised as LangChain does (json.dumps: spaces after separators)."""
    message: dict[str, Any] = {"role": "assistant", "content": completion.text or None}
    calls = [
        {"name": c.name, "arguments": json.dumps(json.loads(c.arguments))}
        for c in completion.tool_calls
    ]
    if legacy:
        (message["function_call"],) = calls
    else:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": f}
            for c, f in zip(completion.tool_calls, calls, strict=True)
        ]
    return message


def result(call: ToolCall, content: Any, **extra: Any) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call.id, "content": content, **extra}


async def record_of(svc: ChatService) -> SessionRecord:
    records, _ = await svc.list_sessions()
    (record,) = records
    return record


def ledger_of(messages: list[dict[str, Any]], reply: dict[str, Any]) -> tuple[str, ...]:
    """The fingerprints of the client's history followed by its echo of our reply (a
    reply with calls is parsed with answers after it, as a conversation must have)."""
    answers: list[dict[str, Any]] = [
        {"role": "tool", "tool_call_id": call["id"], "content": "-"}
        for call in reply.get("tool_calls") or ()
    ]
    if "function_call" in reply:
        answers = [{"role": "function", "name": reply["function_call"]["name"], "content": "-"}]
    parsed = parse_conversation([*messages, reply, *answers]).messages
    return fingerprints(parsed[: len(parsed) - len(answers)])


async def test_a_reply_with_calls_is_recorded_with_its_pending_calls_as_echoed() -> None:
    runner = ToolRunner()
    svc = service(runner)
    runner.reply(Reply("Let me look.", (Call("weather", args(city="Paris")),)))
    completion = await svc.complete(ask([QUESTION]))
    assert completion.stop_reason == "tool_use"
    assert completion.text == "Let me look."
    assert completion.tool_calls == (ToolCall("toolu_0001", "weather", '{"city":"Paris"}'),)
    record = await record_of(svc)
    assert record.pending_calls == ("toolu_0001",)
    assert record.fingerprints == ledger_of([QUESTION], echo(completion))
    assert runner.suspended[record.cli_session_id].pending == ("toolu_0001",)


async def test_the_echo_and_results_resume_the_suspended_turn_with_exactly_the_results() -> None:
    runner = ToolRunner()
    svc = service(runner)
    runner.reply(Reply("", (Call("weather", args(city="Paris")),)))
    first = await svc.complete(ask([QUESTION]))
    (call,) = first.tool_calls
    history = [QUESTION, echo(first), result(call, "sunny")]
    second = await svc.complete(ask(history))
    plan = runner.plans[-1]
    assert plan.kind is PlanKind.CONTINUE
    assert plan.tool_results == (ToolResult(call.id, "sunny"),)
    assert plan.messages == parse_conversation(history).messages[2:]
    assert runner.resumed == [plan]
    assert runner.missing == []
    assert second.text == "results: sunny"
    assert second.tool_calls == ()
    record = await record_of(svc)
    assert record.pending_calls == ()
    assert record.fingerprints == ledger_of(history, echo(second))
    assert runner.violations == []


async def test_parallel_results_in_any_order_reach_the_backend_in_its_order_of_the_calls() -> None:
    runner = ToolRunner()
    svc = service(runner)
    cities = ("Paris", "Rome", "Oslo")
    runner.reply(Reply("", tuple(Call("weather", args(city=c)) for c in cities)))
    first = await svc.complete(ask([QUESTION]))
    assert [c.id for c in first.tool_calls] == ["toolu_0001", "toolu_0002", "toolu_0003"]
    assert (await record_of(svc)).pending_calls == tuple(c.id for c in first.tool_calls)
    answers = [result(call, f"weather of {call.id}") for call in reversed(first.tool_calls)]
    await svc.complete(ask([QUESTION, echo(first), *answers]))
    plan = runner.plans[-1]
    assert plan.kind is PlanKind.CONTINUE
    assert [r.call_id for r in plan.tool_results] == [c.id for c in first.tool_calls]
    assert [r.text for r in plan.tool_results] == [f"weather of {c.id}" for c in first.tool_calls]
    assert runner.resumed == [plan]


async def test_a_lost_suspended_turn_falls_back_to_a_fresh_session_given_everything() -> None:
    runner = ToolRunner()
    svc = service(runner)
    runner.reply(Reply("Checking.", (Call("weather", args(city="Paris")), Call("time"))))
    first = await svc.complete(ask([QUESTION], tool_choice="auto"))
    old = (await record_of(svc)).cli_session_id
    runner.lose()
    weather, time = first.tool_calls
    history = [
        QUESTION,
        echo(first),
        result(weather, "sunny"),
        result(time, [{"type": "text", "text": "noon"}]),
    ]
    runner.reply(Reply("It is sunny at noon."))
    second = await svc.complete(ask(history, tool_choice="auto"))
    resumed, restarted = runner.plans[-2:]
    assert runner.missing == [resumed]
    assert resumed.tool_results
    assert restarted.kind is PlanKind.RESTART
    assert restarted.restart_reason is RestartReason.SESSION_MISSING
    assert restarted.tool_results == ()
    assert restarted.tools is not None
    assert restarted.tools == resumed.tools
    # The fresh session is told everything: the question, the calls and their results.
    told = parse_rendering(restarted.prompt)
    assert told == parse_conversation(history).messages
    assert [c.name for c in told[1].tool_calls] == ["weather", "time"]
    assert [(m.tool_call_id, m.text) for m in told[2:]] == [
        (weather.id, "sunny"),
        (time.id, "noon"),
    ]
    assert second.text == "It is sunny at noon."
    record = await record_of(svc)
    assert record.cli_session_id == restarted.cli_session_id != old
    assert record.pending_calls == ()
    assert record.fingerprints == ledger_of(history, echo(second))
    # The next turn continues the fresh session as any other.
    await svc.complete(ask([*history, echo(second), {"role": "user", "content": "Thanks"}]))
    assert runner.plans[-1].kind is PlanKind.CONTINUE
    assert runner.plans[-1].cli_session_id == restarted.cli_session_id


async def test_legacy_functions_round_trip_by_name() -> None:
    runner = ToolRunner()
    svc = service(runner)
    runner.reply(Reply("", (Call("weather", args(city="Paris")),)))
    first = await svc.complete(ask([QUESTION], legacy=True, function_call="auto"))
    (call,) = first.tool_calls
    echoed = echo(first, legacy=True)
    record = await record_of(svc)
    # The client echoes a function_call, which has no id: the ledger knows it by name.
    assert record.fingerprints == ledger_of([QUESTION], echoed)
    assert record.pending_calls == (call.id,)
    answer = {"role": "function", "name": "weather", "content": "sunny"}
    second = await svc.complete(ask([QUESTION, echoed, answer], legacy=True))
    plan = runner.plans[-1]
    assert plan.kind is PlanKind.CONTINUE
    assert plan.tool_results == (ToolResult(call.id, "sunny"),)
    assert second.text == "results: sunny"


async def test_text_after_the_results_goes_with_the_last_result_into_the_suspended_turn() -> None:
    # Claude Code and Anthropic clients send text beside their tool results (reminders,
    # a user's remark): the waiting turn takes it rather than starting over.
    runner = ToolRunner()
    svc = service(runner)
    runner.reply(Reply("", (Call("weather", args(city="Paris")), Call("time", args()))))
    first = await svc.complete(ask([QUESTION]))
    old = (await record_of(svc)).cli_session_id
    weather, clock = first.tool_calls
    history = [
        QUESTION,
        echo(first),
        result(weather, "sunny"),
        result(clock, "noon"),
        {"role": "user", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "<reminder>"}]},
    ]
    await svc.complete(ask(history))
    plan = runner.plans[-1]
    assert plan.kind is PlanKind.CONTINUE
    assert plan.cli_session_id == old
    assert plan.tool_results == (
        ToolResult(weather.id, "sunny"),
        ToolResult(clock.id, "noon", notes=("Be brief.", "<reminder>")),
    )
    assert runner.violations == []


async def test_a_result_with_images_resumes_the_suspended_turn_with_them() -> None:
    # Claude Code reading an image file with its Read tool: the image is the result.
    runner = ToolRunner()
    svc = service(runner)
    runner.reply(Reply("", (Call("weather", args(city="Paris")),)))
    first = await svc.complete(ask([QUESTION]))
    old = (await record_of(svc)).cli_session_id
    (call,) = first.tool_calls
    content = [
        {"type": "text", "text": "the map:"},
        {"type": "image_url", "image_url": {"url": PIXEL}},
    ]
    history = [QUESTION, echo(first), result(call, content)]
    await svc.complete(ask(history))
    plan = runner.plans[-1]
    assert plan.kind is PlanKind.CONTINUE
    assert plan.cli_session_id == old
    media_type, data = PIXEL.removeprefix("data:").split(";base64,")
    assert plan.tool_results == (
        ToolResult(call.id, "the map:", images=(Base64Image(media_type, data),)),
    )
    assert runner.violations == []


@pytest.mark.parametrize(
    ("url", "extra"),
    [
        # MCP carries an image's bytes, never a URL.
        ("https://example.com/map.png", {}),
        # The CLI keeps only an error result's text: its images would be lost.
        (PIXEL, {"is_error": True}),
    ],
    ids=["an image by url", "an error result's image"],
)
async def test_a_result_whose_images_the_turn_cannot_take_starts_over_with_them(
    url: str, extra: dict[str, Any]
) -> None:
    runner = ToolRunner()
    svc = service(runner)
    runner.reply(Reply("", (Call("weather", args(city="Paris")),)))
    first = await svc.complete(ask([QUESTION]))
    (call,) = first.tool_calls
    image = {"type": "image_url", "image_url": {"url": url}}
    history = [QUESTION, echo(first), result(call, [{"type": "text", "text": "x"}, image], **extra)]
    await svc.complete(ask(history))
    plan = runner.plans[-1]
    assert plan.kind is PlanKind.RESTART
    assert plan.restart_reason is RestartReason.TOOL_TURN_ABANDONED
    assert parse_rendering(plan.prompt) == parse_conversation(history).messages
    assert runner.violations == []


@pytest.mark.parametrize(
    "after",
    [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": PIXEL}}]},
        {"role": "assistant", "content": "I answer myself."},
    ],
    ids=["an image", "an assistant turn"],
)
async def test_results_followed_by_what_a_turn_cannot_take_abandon_it(
    after: dict[str, Any],
) -> None:
    runner = ToolRunner()
    svc = service(runner)
    runner.reply(Reply("", (Call("weather", args(city="Paris")),)))
    first = await svc.complete(ask([QUESTION]))
    old = (await record_of(svc)).cli_session_id
    (call,) = first.tool_calls
    history = [QUESTION, echo(first), result(call, "sunny"), after]
    if after["role"] == "assistant":
        history.append({"role": "user", "content": "Go on."})
    await svc.complete(ask(history))
    plan = runner.plans[-1]
    assert plan.kind is PlanKind.RESTART
    assert plan.restart_reason is RestartReason.TOOL_TURN_ABANDONED
    assert plan.tool_results == ()
    assert parse_rendering(plan.prompt) == parse_conversation(history).messages
    # The abandoned session is forgotten, and its suspended turn with it.
    assert old in runner.forgotten
    assert old not in runner.suspended
    assert runner.violations == []


@pytest.mark.parametrize("is_error", [True, False])
async def test_a_result_marked_as_an_error_reaches_the_backend_as_one(is_error: bool) -> None:
    runner = ToolRunner()
    svc = service(runner)
    runner.reply(Reply("", (Call("weather", args(city="Atlantis")),)))
    first = await svc.complete(ask([QUESTION]))
    (call,) = first.tool_calls
    answer = result(call, "no such city", is_error=is_error)
    await svc.complete(ask([QUESTION, echo(first), answer]))
    assert runner.plans[-1].tool_results == (ToolResult(call.id, "no such city", is_error),)


async def test_a_suspended_turn_holds_no_slot() -> None:
    runner = ToolRunner()
    svc = service(runner, max_concurrent=1, max_queued=0)
    runner.reply(Reply("", (Call("weather", args(city="Paris")),)))
    first = await svc.complete(ask([QUESTION], session="tools"))
    assert (svc.active, svc.queued) == (0, 0)
    # Another conversation runs while the first one's turn waits for its results.
    other = await svc.complete(ask([{"role": "user", "content": "hi"}], session="other"))
    assert other.text == "echo: hi"
    (call,) = first.tool_calls
    await svc.complete(ask([QUESTION, echo(first), result(call, "sunny")], session="tools"))
    assert runner.plans[-1].tool_results == (ToolResult(call.id, "sunny"),)
    assert runner.missing == []


async def test_a_streamed_reply_with_calls_yields_each_call_then_its_arguments() -> None:
    runner = ToolRunner(fragment=4)
    svc = service(runner)
    arguments = (args(city="Paris"), args(city="Rome"))
    runner.reply(Reply("Two.", tuple(Call("weather", a) for a in arguments)))
    events: list[Event] = [event async for event in svc.stream(ask([QUESTION]))]
    started = [e for e in events if isinstance(e, ToolCallStarted)]
    assert [(e.index, e.id, e.name) for e in started] == [
        (0, "toolu_0001", "weather"),
        (1, "toolu_0002", "weather"),
    ]
    for index, expected in enumerate(arguments):
        fragments = [e.text for e in events if isinstance(e, ToolArguments) and e.index == index]
        assert len(fragments) > 1
        assert "".join(fragments) == expected
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.stop_reason == "tool_use"
    assert [c.arguments for c in finished.tool_calls] == list(arguments)


async def test_the_recorded_reply_fingerprint_ignores_the_spelling_of_the_arguments() -> None:
    runner = ToolRunner()
    svc = service(runner)
    runner.reply(Reply("", (Call("weather", '{"city":"Paris","units":"C"}'),)))
    first = await svc.complete(ask([QUESTION]))
    reordered = echo(first)
    reordered["tool_calls"][0]["function"]["arguments"] = '{ "units" : "C", "city" : "Paris" }'
    client = parse_conversation([QUESTION, reordered, result(first.tool_calls[0], "sunny")])
    assert (await record_of(svc)).fingerprints[-1] == fingerprint(client.messages[1])


WEATHER_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "weather",
        "schema": {"type": "object", "properties": {"temp": {"type": "number"}}},
    },
}


@pytest.mark.parametrize("streamed", [False, True])
async def test_with_a_response_format_a_reply_with_calls_has_no_content_and_resumes(
    streamed: bool,
) -> None:
    runner = ToolRunner()
    svc = service(runner)
    runner.reply(
        Reply("Let me check first.", (Call("weather", args(city="Paris")),)),
        Reply('{"temp": 21}'),
    )
    request = ask([QUESTION], response_format=WEATHER_SCHEMA)
    if streamed:
        events = [event async for event in svc.stream(request)]
        # The text written before the calls is not the structured reply: none is shown.
        assert not [e for e in events if isinstance(e, TextDelta)]
        finished = events[-1]
        assert isinstance(finished, Finished)
        made = finished.tool_calls
    else:
        first = await svc.complete(request)
        assert first.text == ""
        made = first.tool_calls
    (call,) = made
    echoed = {"role": "assistant", "content": None, "tool_calls": [_wire(call)]}
    assert (await record_of(svc)).fingerprints == ledger_of([QUESTION], echoed)
    history = [QUESTION, echoed, result(call, "21 degrees")]
    second = await svc.complete(ask(history, response_format=WEATHER_SCHEMA))
    assert runner.plans[-1].tool_results == (ToolResult(call.id, "21 degrees"),)
    assert second.text == '{"temp": 21}'


def _wire(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_stop_sequence_before_the_calls_cuts_the_reply_without_them(
    streamed: bool,
) -> None:
    runner = ToolRunner()
    svc = service(runner)
    hello = [{"role": "user", "content": "hello"}]
    first = await svc.complete(ask(hello))
    history = [*hello, {"role": "assistant", "content": first.text}, QUESTION]
    before = await record_of(svc)
    runner.reply(Reply("Sure. STOP here", (Call("weather", args(city="Paris")),)))
    request = ask(history, stop=["STOP"])
    if streamed:
        events = [event async for event in svc.stream(request)]
        assert not [e for e in events if isinstance(e, ToolCallStarted)]
        finished = events[-1]
        assert isinstance(finished, Finished)
        stop_reason, made = finished.stop_reason, finished.tool_calls
    else:
        cut = await svc.complete(request)
        assert cut.text == "Sure. "
        stop_reason, made = cut.stop_reason, cut.tool_calls
    assert stop_reason == "stop_sequence"
    assert made == ()
    # The cut reply is not remembered and leaves no turn waiting for results.
    assert await record_of(svc) == before
    assert runner.suspended == {}
    going_on = [
        *history,
        {"role": "assistant", "content": "Sure. "},
        {"role": "user", "content": "And?"},
    ]
    await svc.complete(ask(going_on))
    plan = runner.plans[-1]
    assert plan.kind is PlanKind.CONTINUE
    assert plan.messages == parse_conversation(going_on).messages[2:]
    assert runner.violations == []


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_stop_sequence_settled_only_when_the_calls_start_cuts_before_them(
    streamed: bool,
) -> None:
    # "ab" ends the text, but "xabq" might still have begun earlier: the cut is known
    # only once the model turns to its calls, and it comes before them.
    runner = ToolRunner()
    svc = service(runner)
    hello = [{"role": "user", "content": "hello"}]
    first = await svc.complete(ask(hello))
    history = [*hello, {"role": "assistant", "content": first.text}, QUESTION]
    runner.reply(Reply("xab", (Call("weather", args(city="Paris")),)))
    request = ask(history, stop=["xabq", "ab"])
    if streamed:
        events = [event async for event in svc.stream(request)]
        assert events[0] == TextDelta("x")
        assert not [e for e in events if isinstance(e, ToolCallStarted | ToolArguments)]
        finished = events[-1]
        assert isinstance(finished, Finished)
        assert (finished.stop_reason, finished.text, finished.tool_calls) == (
            "stop_sequence",
            "x",
            (),
        )
    else:
        cut = await svc.complete(request)
        assert (cut.stop_reason, cut.text, cut.tool_calls) == ("stop_sequence", "x", ())
    # The backend's turn was closed before it suspended at the calls.
    assert runner.suspended == {}
    going_on = [*history, {"role": "assistant", "content": "x"}, {"role": "user", "content": "?"}]
    await svc.complete(ask(going_on))
    assert runner.plans[-1].kind is PlanKind.CONTINUE
    assert runner.violations == []


async def test_text_held_back_for_a_stop_sequence_streams_before_the_calls() -> None:
    runner = ToolRunner()
    svc = service(runner)
    runner.reply(Reply("Sure, ST", (Call("weather", args(city="Paris")),)))
    events = [event async for event in svc.stream(ask([QUESTION], stop=["STOP"]))]
    first_call = next(i for i, e in enumerate(events) if isinstance(e, ToolCallStarted))
    texts = [i for i, e in enumerate(events) if isinstance(e, TextDelta)]
    assert texts
    assert max(texts) < first_call
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Sure, ST"
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.stop_reason == "tool_use"
    assert len(finished.tool_calls) == 1
