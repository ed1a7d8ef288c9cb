"""POST /v1/messages over a scripted runner: a whole reply is a Message and a streamed
one the event sequence the official SDK validates and accumulates into the same
Message; a tool_use round trip resumes the suspended turn; stop sequences, pings,
count_tokens, the Claude Code CLI's own requests, /stats and the OpenAPI schema."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from litestar.testing import TestClient
from pydantic import TypeAdapter

from claude_max_api.bootstrap import http_app
from claude_max_api.settings import Settings
from proxy_core import (
    Base64Image,
    ChatService,
    Event,
    FakeRunner,
    Finished,
    InMemorySessionStore,
    PlanKind,
    TextDelta,
    ThinkingDelta,
    ToolArguments,
    ToolCall,
    ToolCallStarted,
    TurnPlan,
    Usage,
)
from tests.support.tool_runner import Call, Reply, ToolRunner, args

CAPTURED = Path(__file__).parents[2] / "support" / "claude_client"
EVENTS: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)
WEATHER = {
    "name": "weather",
    "description": "The weather of a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
QUESTION = {"role": "user", "content": "Weather in Paris and Rome?"}
PARIS, ROME = args(city="Paris"), args(city="Rome")


def thinks_writes_and_calls(plan: TurnPlan) -> Sequence[Event]:
    """Thinking, text, then two calls whose arguments come in pieces; all the usage."""
    calls = (ToolCall("toolu_a", "weather", PARIS), ToolCall("toolu_b", "weather", ROME))
    return [
        ThinkingDelta("Two cities"),
        ThinkingDelta(", two calls."),
        TextDelta("Checking"),
        TextDelta(" both."),
        ToolCallStarted(0, "toolu_a", "weather"),
        ToolArguments(0, PARIS[:6]),
        ToolArguments(0, PARIS[6:]),
        ToolCallStarted(1, "toolu_b", "weather"),
        ToolArguments(1, ROME),
        Usage(input_tokens=5, output_tokens=7, cache_read_tokens=30, cache_creation_tokens=2),
        Finished("tool_use", "", plan.cli_session_id, tool_calls=calls),
    ]


def client_over(runner: FakeRunner, **settings: Any) -> TestClient[Any]:
    app = http_app(ChatService(runner, InMemorySessionStore()), Settings.from_values(**settings))
    return TestClient(app, base_url="http://127.0.0.1")


@pytest.fixture
def thinker() -> Iterator[TestClient[Any]]:
    with client_over(FakeRunner(thinks_writes_and_calls)) as client:
        yield client


def ask(client: TestClient[Any], messages: list[dict[str, Any]], **fields: Any) -> Any:
    body = {"model": "sonnet", "max_tokens": 1024, "messages": messages, "tools": [WEATHER]}
    return client.post("/v1/messages", json={**body, **fields}, headers={"X-Session-Id": "m"})


def sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each event of a body."""
    out = []
    for block in text.split("\n\n"):
        if block:
            name, data = block.split("\n")
            out.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


def test_a_whole_reply_is_a_message_with_thinking_text_and_tool_use(
    thinker: TestClient[Any],
) -> None:
    response = ask(thinker, [QUESTION], thinking={"type": "adaptive"})
    assert response.status_code == 200
    message = Message.model_validate(response.json())
    assert message.id.startswith("msg_")
    assert [block.type for block in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    thinking, text, paris, rome = message.content
    assert thinking.thinking == "Two cities, two calls."  # type: ignore[union-attr]
    assert text.text == "Checking both."  # type: ignore[union-attr]
    assert (paris.id, paris.name, paris.input) == ("toolu_a", "weather", {"city": "Paris"})  # type: ignore[union-attr]
    assert rome.input == {"city": "Rome"}  # type: ignore[union-attr]
    assert (message.stop_reason, message.stop_sequence) == ("tool_use", None)
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens) == (5, 7)
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (30, 2)


def test_thinking_is_not_shown_unless_asked_for(thinker: TestClient[Any]) -> None:
    for thinking in (None, {"type": "disabled"}, {"type": "adaptive", "display": "omitted"}):
        fields = {"thinking": thinking} if thinking else {}
        content = ask(thinker, [QUESTION], **fields).json()["content"]
        assert [block["type"] for block in content] == ["text", "tool_use", "tool_use"]


def test_a_stream_is_the_event_sequence_the_sdk_accumulates_into_the_whole_message(
    thinker: TestClient[Any],
) -> None:
    whole = ask(thinker, [QUESTION], thinking={"type": "adaptive"}).json()
    response = ask(thinker, [QUESTION], thinking={"type": "adaptive"}, stream=True)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse(response.text)
    assert all(name == data["type"] for name, data in events)
    typed = [EVENTS.validate_python(data) for _, data in events]
    shape = [
        (e.type, getattr(e, "index", None), getattr(getattr(e, "delta", None), "type", None))
        for e in typed
    ]
    assert shape == [
        ("message_start", None, None),
        ("content_block_start", 0, None),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "signature_delta"),  # before the thinking block stops
        ("content_block_stop", 0, None),
        ("content_block_start", 1, None),
        ("content_block_delta", 1, "text_delta"),
        ("content_block_delta", 1, "text_delta"),
        ("content_block_stop", 1, None),
        ("content_block_start", 2, None),
        ("content_block_delta", 2, "input_json_delta"),
        ("content_block_delta", 2, "input_json_delta"),
        ("content_block_stop", 2, None),
        ("content_block_start", 3, None),
        ("content_block_delta", 3, "input_json_delta"),
        ("content_block_stop", 3, None),
        ("message_delta", None, None),
        ("message_stop", None, None),
    ]
    snapshot = None
    buffers: dict[int, bytes] = {}
    for event in typed:
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=buffers)
    assert snapshot is not None
    expected = Message.model_validate({**whole, "id": snapshot.id})
    assert Message.model_validate(snapshot.to_dict()).model_dump() == expected.model_dump()


RADAR = {"media_type": "image/png", "data": "iVBORw0KGgo="}


def test_a_tool_result_turn_resumes_the_suspended_turn() -> None:
    runner = ToolRunner(fragment=4)
    with client_over(runner) as client:
        runner.reply(Reply("On it.", (Call("weather", PARIS), Call("weather", ROME))))
        first = ask(client, [QUESTION], stream=True)
        message = None
        buffers: dict[int, bytes] = {}
        for _, data in sse(first.text):
            message = accumulate_event(
                event=EVENTS.validate_python(data), current_snapshot=message, json_bufs=buffers
            )
        assert message is not None
        assert message.stop_reason == "tool_use"
        calls = [block for block in message.content if block.type == "tool_use"]
        assert [c.input for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]  # type: ignore[union-attr]
        # The client sends the reply back as it got it, and the results in one user turn.
        results = {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": calls[1].id,  # type: ignore[union-attr]
                    # A result may hold images (a radar map): they stay in the result.
                    "content": [
                        {"type": "text", "text": "rain"},
                        {"type": "image", "source": {"type": "base64", **RADAR}},
                    ],
                },
                {
                    "type": "tool_result",
                    "tool_use_id": calls[0].id,  # type: ignore[union-attr]
                    "content": [{"type": "text", "text": "no data"}],
                    "is_error": True,
                },
            ],
        }
        history = [QUESTION, {"role": "assistant", "content": message.to_dict()["content"]}]
        second = ask(client, [*history, results])
    assert second.status_code == 200, second.text
    assert second.json()["stop_reason"] == "end_turn"
    (resumed,) = runner.resumed
    assert resumed.kind is PlanKind.CONTINUE
    assert [(r.text, r.is_error, r.images) for r in resumed.tool_results] == [
        ("no data", True, ()),
        ("rain", False, (Base64Image(**RADAR),)),
    ]
    assert runner.violations == []


def test_a_stop_sequence_ends_the_reply_and_is_named() -> None:
    def says(plan: TurnPlan) -> Sequence[Event]:
        return [TextDelta("one two "), TextDelta("THREE four"), Finished("end_turn", "x")]

    with client_over(FakeRunner(says)) as client:
        body = {"stop_sequences": ["THREE", "never"]}
        whole = ask(client, [QUESTION], **body).json()
        streamed = sse(ask(client, [QUESTION], stream=True, **body).text)
    assert whole["content"] == [{"type": "text", "text": "one two "}]
    assert (whole["stop_reason"], whole["stop_sequence"]) == ("stop_sequence", "THREE")
    (delta,) = [data for name, data in streamed if name == "message_delta"]
    assert delta["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "THREE"}


def test_pings_keep_a_waiting_stream_alive() -> None:
    runner = FakeRunner(delay=0.3)
    with client_over(runner, keepalive_interval=0.05, stream_hold=0.01) as client:
        events = sse(ask(client, [QUESTION], stream=True).text)
    names = [name for name, _ in events]
    assert names[0] == "message_start"
    assert "ping" in names
    assert {"type": "ping"} in [data for name, data in events if name == "ping"]
    assert names[-1] == "message_stop"


def test_count_tokens_estimates_without_a_turn() -> None:
    runner = FakeRunner()
    with client_over(runner) as client:
        body = {
            "model": "sonnet",
            "system": "x" * 40,
            "messages": [{"role": "user", "content": "y" * 400}],
        }
        counted = client.post("/v1/messages/count_tokens", json=body)
        with_tools = client.post("/v1/messages/count_tokens", json={**body, "tools": [WEATHER]})
        refused = client.post("/v1/messages/count_tokens", json={"model": "sonnet"})
    assert counted.status_code == 200
    assert counted.json() == {"input_tokens": 110}  # 440 characters / 4
    assert with_tools.json()["input_tokens"] > 110
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "messages: Field required"
    assert runner.plans == []


@pytest.mark.parametrize("captured", ["p-default.json", "after-tool-use-with-thinking.json"])
def test_what_the_claude_code_cli_sends_is_served(captured: str) -> None:
    request = json.loads((CAPTURED / captured).read_text())
    runner = FakeRunner()
    with client_over(runner) as client:
        response = client.post(
            f"{request['path']}?{request['query']}",
            json=request["body"],
            headers=request["headers"],
        )
    assert response.status_code == 200, response.text
    events = [EVENTS.validate_python(data) for _, data in sse(response.text)]
    assert events[-1].type == "message_stop"
    (plan,) = runner.plans
    # Its system blocks and its system turn are the system prompt; its tools are offered.
    assert plan.system is not None
    assert "# Environment" in plan.system
    assert plan.tools is not None
    names = {tool.name for tool in plan.tools.tools}
    assert {"Bash", "Read"} <= names
    assert plan.messages[-1].role.value in ("user", "tool")


def test_stats_count_messages_and_the_schema_lists_both_paths() -> None:
    with client_over(FakeRunner()) as client:
        ask(client, [QUESTION])
        client.post("/v1/messages", json={"model": "sonnet", "messages": [QUESTION]})
        requests = client.get("/stats").json()["requests"]
        schema = client.get("/schema/openapi.json").json()
    assert requests["byEndpoint"] == {"messages": 2}  # the refused body too
    assert (requests["total"], requests["errors"]) == (2, 1)
    assert {"/v1/messages", "/v1/messages/count_tokens"} <= set(schema["paths"])
    described = schema["paths"]["/v1/messages/count_tokens"]["post"]["description"]
    assert "estimate" in described


@pytest.mark.parametrize("stream", [False, True])
def test_ignored_fields_and_server_tools_are_named_in_headers(stream: bool) -> None:
    server_tool = {"type": "web_search_20250305", "name": "web_search"}
    with client_over(FakeRunner()) as client:
        named = ask(
            client,
            [QUESTION],
            stream=stream,
            temperature=0.3,
            top_p=0.9,
            tools=[server_tool, WEATHER],
        )
        plain = ask(client, [QUESTION], stream=stream, max_tokens=5)
    assert named.status_code == 200
    assert named.headers["x-ignored-fields"] == "temperature,top_p"
    assert named.headers["x-ignored-tools"] == "web_search_20250305"
    # max_tokens is required of every request, so naming it would say nothing.
    assert "x-ignored-fields" not in plain.headers
    assert "x-ignored-tools" not in plain.headers
