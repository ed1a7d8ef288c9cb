"""The fake upstream's client-tool behaviour, over HTTP as the CLI sees it.

Messages API bodies are posted with httpx; streamed replies are folded back into content
blocks from their SSE events, so these tests check what a client of the stream receives.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.fake_tools import example_input
from tests.support.fake_upstream import FakeAnthropic

WEATHER = {
    "name": "mcp__client__get_weather",
    "description": "Weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
TIME = {
    "name": "mcp__client__get_time",
    "description": "Time in a city",
    "input_schema": {"type": "object", "properties": {"zone": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def body(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": "claude-fake",
        "max_tokens": 100,
        "stream": True,
        "messages": messages,
        **extra,
    }
    if tools is not None:
        payload["tools"] = tools
    return payload


def sse_events(fake: FakeAnthropic, payload: dict[str, Any]) -> list[dict[str, Any]]:
    with httpx.Client(base_url=fake.base_url, timeout=10) as client:
        response = client.post("/v1/messages?beta=true", json=payload)
    assert response.status_code == 200
    return [
        json.loads(line[len("data: ") :])
        for line in response.text.splitlines()
        if line.startswith("data: ")
    ]


class Reply:
    """A streamed reply folded back into its content blocks."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.blocks: list[dict[str, Any]] = []
        self.fragments: dict[int, list[str]] = {}
        self.stop_reason: str | None = None
        for event in events:
            self._fold(event)

    def _fold(self, event: dict[str, Any]) -> None:
        if event["type"] == "content_block_start":
            self.blocks.append(dict(event["content_block"]))
        elif event["type"] == "content_block_delta":
            delta = event["delta"]
            block = self.blocks[event["index"]]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "input_json_delta":
                self.fragments.setdefault(event["index"], []).append(delta["partial_json"])
        elif event["type"] == "content_block_stop":
            index = event["index"]
            if index in self.fragments:
                self.blocks[index]["input"] = json.loads("".join(self.fragments[index]))
        elif event["type"] == "message_delta":
            self.stop_reason = event["delta"]["stop_reason"]

    @property
    def calls(self) -> list[tuple[str, Any]]:
        return [(b["name"], b["input"]) for b in self.blocks if b["type"] == "tool_use"]

    @property
    def text(self) -> str:
        return "".join(b["text"] for b in self.blocks if b["type"] == "text")


def ask(fake: FakeAnthropic, payload: dict[str, Any]) -> Reply:
    return Reply(sse_events(fake, payload))


def test_call_marker_calls_the_offered_tool_by_its_short_name(fake: FakeAnthropic) -> None:
    reply = ask(fake, body([user('weather [[call:get_weather:{"city": "Paris"}]]')], [WEATHER]))

    assert reply.calls == [("mcp__client__get_weather", {"city": "Paris"})]
    assert reply.stop_reason == "tool_use"
    assert reply.blocks[0]["id"].startswith("toolu_")


def test_call_input_is_streamed_in_three_fragments(fake: FakeAnthropic) -> None:
    reply = ask(fake, body([user('[[call:get_weather:{"city": "Paris"}]]')], [WEATHER]))

    assert len(reply.fragments[0]) == 3
    assert json.loads("".join(reply.fragments[0])) == {"city": "Paris"}


def test_call_marker_takes_json_with_arrays_and_nested_objects(fake: FakeAnthropic) -> None:
    marker = '[[call:get_weather:{"city": "Paris", "days": [1, 2], "opts": {"u": "C"}}]]'
    reply = ask(fake, body([user(marker)], [WEATHER]))

    assert reply.calls == [
        ("mcp__client__get_weather", {"city": "Paris", "days": [1, 2], "opts": {"u": "C"}})
    ]


def test_several_call_markers_are_parallel_calls_in_one_message(fake: FakeAnthropic) -> None:
    text = (
        '[[say:Checking both.]] [[call:get_weather:{"city": "Rome"}]] '
        '[[call:get_time:{"zone": "CET"}]]'
    )
    reply = ask(fake, body([user(text)], [WEATHER, TIME]))

    assert [b["type"] for b in reply.blocks] == ["text", "tool_use", "tool_use"]
    assert reply.blocks[0]["text"] == "Checking both."
    assert reply.calls == [
        ("mcp__client__get_weather", {"city": "Rome"}),
        ("mcp__client__get_time", {"zone": "CET"}),
    ]
    assert reply.blocks[1]["id"] != reply.blocks[2]["id"]
    assert [e["type"] for e in reply.events].count("message_start") == 1
    assert reply.stop_reason == "tool_use"


def test_call_without_json_generates_input_from_the_schema(fake: FakeAnthropic) -> None:
    schema = {
        "type": "object",
        "properties": {
            "address": {"$ref": "#/$defs/Address"},
            "unit": {"enum": ["celsius", "fahrenheit"]},
            "days": {"type": "array", "items": {"type": "integer"}},
            "detailed": {"type": "boolean"},
            "ratio": {"type": "number"},
            "when": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "legacy": {"$ref": "#/definitions/Legacy"},
        },
        "required": ["address", "note"],
        "$defs": {
            "Address": {
                "type": "object",
                "properties": {"street": {"type": "string"}, "zip": {"type": ["integer", "null"]}},
            }
        },
        "definitions": {"Legacy": {"oneOf": [{"type": "boolean"}, {"type": "string"}]}},
    }
    tool = {"name": "mcp__client__plan", "input_schema": schema}

    reply = ask(fake, body([user("[[call:plan]]")], [tool]))

    assert reply.calls == [
        (
            "mcp__client__plan",
            {
                "address": {"street": "example", "zip": 1},
                "unit": "celsius",
                "days": [1],
                "detailed": True,
                "ratio": 1.5,
                "when": "example",
                "legacy": True,
                "note": "example",
            },
        )
    ]


def test_example_input_of_a_recursive_schema_ends() -> None:
    schema = {
        "type": "object",
        "properties": {"root": {"$ref": "#/$defs/Node"}},
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                },
                "required": ["name"],
            }
        },
    }

    value = example_input(schema)

    assert value["root"]["name"] == "example"
    assert isinstance(value["root"]["children"], list)


def test_a_tool_that_is_not_offered_is_not_called(fake: FakeAnthropic) -> None:
    reply = ask(fake, body([user("[[call:delete_everything]]")], [WEATHER]))

    assert reply.calls == []
    assert reply.text == "tool delete_everything is not offered"
    assert reply.stop_reason == "end_turn"


def test_without_tools_a_call_marker_is_not_offered(fake: FakeAnthropic) -> None:
    reply = ask(fake, body([user("[[call:get_weather]]")]))

    assert reply.text == "tool get_weather is not offered"


def test_offered_tools_without_a_marker_get_the_echo(fake: FakeAnthropic) -> None:
    reply = ask(fake, body([user("what is the weather?")], [WEATHER]))

    assert reply.calls == []
    assert reply.text == "echo: what is the weather?"


def test_a_reply_marker_is_the_whole_answer_even_with_tools_offered(fake: FakeAnthropic) -> None:
    reply = ask(fake, body([user("say hi [[reply:first]] then [[reply:hello there]]")], [WEATHER]))

    assert reply.calls == []
    assert reply.text == "hello there"
    assert reply.stop_reason == "end_turn"


def test_markers_are_read_after_a_reminder_merged_into_the_text(fake: FakeAnthropic) -> None:
    # A client's own reminder and prompt, written by a proxy as one block.
    merged = "<system-reminder>\nctx [[reply:no]]\n</system-reminder>\n\nsay hi [[reply:yes]]"
    reminder = {"type": "text", "text": "<system-reminder>\nthe CLI's own\n</system-reminder>\n"}
    request = body([user([{"type": "text", "text": merged}, reminder])])

    assert ask(fake, request).text == "yes"
    assert fake.requests[-1].user_text == "say hi [[reply:yes]]"
    assert ask(fake, body([user([reminder, {"type": "text", "text": "hi"}])])).text == "echo: hi"


def test_an_explicit_instruction_calls_the_named_tool(fake: FakeAnthropic) -> None:
    text = "Call the `mcp__client__get_weather` tool now."

    reply = ask(fake, body([user(text)], [TIME, WEATHER]))

    assert reply.calls == [("mcp__client__get_weather", {"city": "example"})]


def test_an_instruction_takes_its_input_from_an_args_marker(fake: FakeAnthropic) -> None:
    messages = [
        user('Here is the input: [[args:{"city": "Oslo"}]]'),
        {"role": "assistant", "content": "ok"},
        user("Call the `mcp__client__get_weather` tool."),
    ]

    reply = ask(fake, body(messages, [WEATHER]))

    assert reply.calls == [("mcp__client__get_weather", {"city": "Oslo"})]


def test_call_one_of_these_tools_calls_the_first_offered(fake: FakeAnthropic) -> None:
    text = "Call one of these tools: `mcp__client__search`, `mcp__client__get_time` or `x`."

    reply = ask(fake, body([user(text)], [WEATHER, TIME]))

    assert reply.calls == [("mcp__client__get_time", {"zone": "example"})]


def test_call_one_of_these_tools_in_the_system_prompt(fake: FakeAnthropic) -> None:
    system = [{"type": "text", "text": "Call one of these tools:\n- `mcp__client__get_weather`"}]

    reply = ask(fake, body([user("hello")], [WEATHER], system=system))

    assert reply.calls == [("mcp__client__get_weather", {"city": "example"})]


def test_an_instruction_for_a_tool_not_offered_says_so(fake: FakeAnthropic) -> None:
    reply = ask(fake, body([user("Call the `mcp__client__get_weather` tool.")], []))

    assert reply.calls == []
    assert reply.text == "tool mcp__client__get_weather is not offered"


def tool_result(tool_use_id: str, content: Any, is_error: bool | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id, "content": content}
    if is_error is not None:
        block["is_error"] = is_error
    return block


def with_results(*results: dict[str, Any]) -> list[dict[str, Any]]:
    """A conversation whose last user message answers two calls."""
    calls = [
        {"type": "tool_use", "id": r["tool_use_id"], "name": WEATHER["name"], "input": {}}
        for r in results
    ]
    return [
        user("Call the `mcp__client__get_weather` tool."),
        {"role": "assistant", "content": calls},
        user(list(results)),
    ]


def test_tool_results_are_echoed_with_errors_marked(fake: FakeAnthropic) -> None:
    messages = with_results(
        tool_result("toolu_1", [{"type": "text", "text": "sunny"}]),
        tool_result("toolu_2", "boom", is_error=True),
    )

    reply = ask(fake, body(messages, [WEATHER]))

    assert reply.calls == []
    assert reply.text == "tool result seen: sunny | error: boom"
    assert reply.stop_reason == "end_turn"


def test_a_tool_result_can_ask_for_the_next_call(fake: FakeAnthropic) -> None:
    messages = with_results(tool_result("toolu_1", 'cloudy [[call:get_time:{"zone": "UTC"}]]'))

    reply = ask(fake, body(messages, [WEATHER, TIME]))

    assert reply.calls == [("mcp__client__get_time", {"zone": "UTC"})]


def test_the_recorded_request_shows_tools_and_results(fake: FakeAnthropic) -> None:
    fake.reset()
    messages = with_results(
        tool_result("toolu_a", [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]),
        tool_result("toolu_b", "bad", is_error=True),
    )
    ask(fake, body(messages, [WEATHER, TIME]))

    request = fake.message_requests[-1]
    assert FakeAnthropic.offered_tools(request) == [WEATHER["name"], TIME["name"]]
    assert FakeAnthropic.tool_results(request) == [
        {"tool_use_id": "toolu_a", "text": "onetwo", "is_error": False},
        {"tool_use_id": "toolu_b", "text": "bad", "is_error": True},
    ]


def test_a_call_marker_with_broken_json_is_reported(fake: FakeAnthropic) -> None:
    reply = ask(fake, body([user('[[call:get_weather:{"city": }]]')], [WEATHER]))

    assert reply.calls == []
    assert reply.text.startswith("bad marker:")


def test_a_whole_reply_carries_the_calls(fake: FakeAnthropic) -> None:
    payload = body([user('[[call:get_weather:{"city": "Lima"}]]')], [WEATHER], stream=False)
    with httpx.Client(base_url=fake.base_url, timeout=10) as client:
        message = client.post("/v1/messages", json=payload).json()

    assert message["stop_reason"] == "tool_use"
    assert [(b["name"], b["input"]) for b in message["content"]] == [
        ("mcp__client__get_weather", {"city": "Lima"})
    ]


def test_the_tool_use_marker_still_sends_its_input_as_written(fake: FakeAnthropic) -> None:
    reply = ask(fake, body([user('[[tool-use:Read:{"file_path": "/x"}]]')]))

    assert reply.calls == [("Read", {"file_path": "/x"})]
    assert reply.fragments[0] == ['{"file_path": "/x"}']
