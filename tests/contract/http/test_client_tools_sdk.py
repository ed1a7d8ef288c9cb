"""Client tools with the official openai SDK against a live server over the real CLI.

The fake upstream plays the model: its markers make it call the offered client tools
(`[[tool-use:...]]`, `[[call:...]]`), and it answers a tool result with
`tool result seen: <result>`. The server's CLI process serves the client's tools
through its MCP bridge, ends the client's turn with the calls and resumes the same
CLI turn when the results come back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from tests.support.client_tools import (
    TIME,
    WEATHER,
    backend_details,
    call,
    client_tools_offered,
    function_tool,
    plan_of,
    tool_results_in,
    tools_server,
)
from tests.support.fake_upstream import FakeAnthropic
from tests.support.server import ServerProcess

pytestmark = pytest.mark.cli


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, claude_bin: str, fake_upstream_server: FakeAnthropic
) -> Iterator[ServerProcess]:
    """One server for the module's conversations (each test has its own first message)."""
    with tools_server(tmp_path_factory.mktemp("sdk-tools"), claude_bin, fake_upstream_server) as s:
        yield s


def sdk(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.base_url + "/v1", api_key="unused", max_retries=0, timeout=60
    )


def assistant(message: Any) -> dict[str, Any]:
    """The SDK's reply message as the next request's history entry."""
    entry: dict[str, Any] = message.model_dump(exclude_none=True)
    return entry


def result(call_id: str, text: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def test_round_trip_resumes_the_same_cli_turn(
    server: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    client = sdk(server)
    spawned = backend_details(server)["spawned"]
    messages: list[Any] = [
        {"role": "user", "content": "Paris? " + call("get_weather", {"city": "Paris"})}
    ]
    raw = client.chat.completions.with_raw_response.create(
        model="sonnet", messages=messages, tools=[WEATHER]
    )
    first = raw.parse().choices[0]
    assert first.finish_reason == "tool_calls"
    assert first.message.content is None
    assert first.message.tool_calls is not None
    [tool_call] = first.message.tool_calls
    assert tool_call.type == "function"
    assert tool_call.id.startswith("toolu_")
    assert tool_call.function.name == "get_weather"
    assert json.loads(tool_call.function.arguments) == {"city": "Paris"}
    assert plan_of(server, raw.headers["x-request-id"]) == "NEW"
    details = backend_details(server)
    assert details["suspended_turns"] == 1
    [suspended] = [p for p in details["live"] if p["state"] == "suspended"]

    messages += [assistant(first.message), result(tool_call.id, "18C and sunny")]
    raw = client.chat.completions.with_raw_response.create(
        model="sonnet", messages=messages, tools=[WEATHER]
    )
    final = raw.parse().choices[0]
    assert final.finish_reason == "stop"
    assert final.message.tool_calls is None
    assert final.message.content == "tool result seen: 18C and sunny"
    assert plan_of(server, raw.headers["x-request-id"]) == "CONTINUE"
    details = backend_details(server)
    assert details["spawned"] == spawned + 1  # one process for both requests
    assert details["suspended_turns"] == 0
    [resumed] = [p for p in details["live"] if p["session_id"] == suspended["session_id"]]
    assert resumed["pid"] == suspended["pid"]
    assert resumed["state"] != "suspended"
    # The model got the result as a tool_result of its own call, in the same session.
    last = fake_upstream.message_requests[-1]
    assert tool_results_in(last) == {tool_call.id: "18C and sunny"}


def collect(stream: Iterator[ChatCompletionChunk]) -> list[ChatCompletionChunk]:
    return list(stream)


def test_streamed_round_trip(server: ServerProcess, fake_upstream: FakeAnthropic) -> None:
    client = sdk(server)
    spawned = backend_details(server)["spawned"]
    messages: list[Any] = [
        {"role": "user", "content": "Streamed: Rome? " + call("get_weather", {"city": "Rome"})}
    ]
    chunks = collect(
        client.chat.completions.create(
            model="sonnet",
            messages=messages,
            tools=[WEATHER],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert deltas, "no delta.tool_calls in the stream"
    head = deltas[0]
    assert head.index == 0
    assert head.id is not None
    assert head.id.startswith("toolu_")
    assert head.type == "function"
    assert head.function is not None
    assert head.function.name == "get_weather"
    assert all(d.index == 0 for d in deltas)
    assert all(d.id is None and (d.function is None or d.function.name is None) for d in deltas[1:])
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function is not None)
    assert json.loads(arguments) == {"city": "Rome"}
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert [f for f in finishes if f] == ["tool_calls"]
    assert chunks[-1].usage is not None
    assert not chunks[-1].choices

    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": head.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": arguments},
                }
            ],
        },
        result(head.id, "22C, clear"),
    ]
    chunks = collect(
        client.chat.completions.create(
            model="sonnet", messages=messages, tools=[WEATHER], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "tool result seen: 22C, clear"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert backend_details(server)["spawned"] == spawned + 1
    assert tool_results_in(fake_upstream.message_requests[-1]) == {head.id: "22C, clear"}


def test_parallel_calls_take_two_results(
    server: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    client = sdk(server)
    messages: list[Any] = [
        {
            "role": "user",
            "content": "Both, please. [[say:Checking both.]]"
            + call("get_weather", {"city": "Oslo"})
            + call("get_time", {"city": "Oslo"}),
        }
    ]
    first = client.chat.completions.create(
        model="sonnet", messages=messages, tools=[WEATHER, TIME]
    ).choices[0]
    assert first.finish_reason == "tool_calls"
    assert first.message.content == "Checking both."  # the text written before the calls
    calls = first.message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Oslo"}] * 2
    assert len({c.id for c in calls}) == 2
    messages += [
        assistant(first.message),
        result(calls[0].id, "cold"),
        result(calls[1].id, "noon"),
    ]
    final = client.chat.completions.create(
        model="sonnet", messages=messages, tools=[WEATHER, TIME]
    ).choices[0]
    assert final.finish_reason == "stop"
    assert final.message.tool_calls is None
    assert final.message.content == "tool result seen: cold | noon"
    # Both results reached the model, each as the answer to its own call.
    last = fake_upstream.message_requests[-1]
    assert tool_results_in(last) == {calls[0].id: "cold", calls[1].id: "noon"}


def test_parallel_tool_calls_false_hands_one_call_per_reply(
    server: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    client = sdk(server)
    messages: list[Any] = [
        {
            "role": "user",
            "content": "One at a time. "
            + call("get_weather", {"city": "Riga"})
            + call("get_time", {"city": "Riga"}),
        }
    ]
    reply = client.chat.completions.create(
        model="sonnet", messages=messages, tools=[WEATHER, TIME], parallel_tool_calls=False
    ).choices[0]
    assert reply.finish_reason == "tool_calls"
    [only] = reply.message.tool_calls or []
    assert only.function.name == "get_weather"
    messages += [assistant(reply.message), result(only.id, "breezy")]
    final = client.chat.completions.create(
        model="sonnet", messages=messages, tools=[WEATHER, TIME], parallel_tool_calls=False
    ).choices[0]
    assert final.finish_reason == "stop"
    # The model learns that its second call was not run (and may make it again later).
    results = FakeAnthropic.tool_results(fake_upstream.message_requests[-1])
    assert results[0]["text"] == "breezy"
    assert len(results) == 2
    assert results[1]["is_error"]
    assert "parallel_tool_calls" in results[1]["text"]


def test_legacy_functions_round_trip(server: ServerProcess, fake_upstream: FakeAnthropic) -> None:
    client = sdk(server)
    functions = [WEATHER["function"]]
    messages: list[Any] = [
        {"role": "user", "content": "Legacy: Kyiv? " + call("get_weather", {"city": "Kyiv"})}
    ]
    reply = client.chat.completions.create(
        model="sonnet", messages=messages, functions=functions
    ).choices[0]
    assert reply.finish_reason == "function_call"
    assert reply.message.tool_calls is None
    assert reply.message.function_call is not None
    assert reply.message.function_call.name == "get_weather"
    assert json.loads(reply.message.function_call.arguments) == {"city": "Kyiv"}
    messages += [
        assistant(reply.message),
        {"role": "function", "name": "get_weather", "content": "snow"},
    ]
    raw = client.chat.completions.with_raw_response.create(
        model="sonnet", messages=messages, functions=functions
    )
    final = raw.parse().choices[0]
    assert final.finish_reason == "stop"
    assert final.message.content == "tool result seen: snow"
    assert plan_of(server, raw.headers["x-request-id"]) == "CONTINUE"


def test_tool_choice_required_makes_the_reply_call(
    server: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    first = (
        sdk(server)
        .chat.completions.create(
            model="sonnet",
            messages=[{"role": "user", "content": "Required: what now in Lima?"}],
            tools=[WEATHER, TIME],
            tool_choice="required",
        )
        .choices[0]
    )
    assert first.finish_reason == "tool_calls"
    calls = first.message.tool_calls or []
    assert calls
    assert {c.function.name for c in calls} <= {"get_weather", "get_time"}
    for tool_call in calls:
        assert isinstance(json.loads(tool_call.function.arguments)["city"], str)


def test_tool_choice_named_calls_that_tool_only(
    server: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    first = (
        sdk(server)
        .chat.completions.create(
            model="sonnet",
            messages=[{"role": "user", "content": "Named: anything about Quito."}],
            tools=[WEATHER, TIME],
            tool_choice={"type": "function", "function": {"name": "get_time"}},
        )
        .choices[0]
    )
    assert first.finish_reason == "tool_calls"
    calls = first.message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_time"]
    assert isinstance(json.loads(calls[0].function.arguments)["city"], str)
    # Only the named tool is offered to the model for that turn.
    assert client_tools_offered(fake_upstream.message_requests[0]) == ["get_time"]


def test_tool_choice_none_offers_no_client_tool(
    server: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    reply = (
        sdk(server)
        .chat.completions.create(
            model="sonnet",
            messages=[{"role": "user", "content": "None: " + call("get_weather")}],
            tools=[WEATHER, TIME],
            tool_choice="none",
        )
        .choices[0]
    )
    assert reply.finish_reason == "stop"
    assert reply.message.tool_calls is None
    assert reply.message.content is not None
    assert "get_weather is not offered" in reply.message.content
    assert fake_upstream.message_requests
    assert all(client_tools_offered(r) == [] for r in fake_upstream.message_requests)


def test_agent_loop_of_three_tool_rounds(
    server: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    """Each tool result scripts the model's next call; the last one lets it answer."""
    client = sdk(server)
    spawned = backend_details(server)["spawned"]
    scripted = [
        call("get_weather", {"city": "Bern"}),
        call("get_time", {"city": "Bern"}),
        "final facts",
    ]
    messages: list[Any] = [
        {"role": "user", "content": "Loop: " + call("get_weather", {"city": "Zurich"})}
    ]
    names: list[str] = []
    for outcome in scripted:
        raw = client.chat.completions.with_raw_response.create(
            model="sonnet", messages=messages, tools=[WEATHER, TIME]
        )
        reply = raw.parse().choices[0]
        assert plan_of(server, raw.headers["x-request-id"]) == ("CONTINUE" if names else "NEW")
        assert reply.finish_reason == "tool_calls"
        [tool_call] = reply.message.tool_calls or []
        names.append(tool_call.function.name)
        messages += [assistant(reply.message), result(tool_call.id, f"ok. {outcome}")]
    raw = client.chat.completions.with_raw_response.create(
        model="sonnet", messages=messages, tools=[WEATHER, TIME]
    )
    final = raw.parse().choices[0]
    assert names == ["get_weather", "get_weather", "get_time"]
    assert final.finish_reason == "stop"
    assert final.message.content == "tool result seen: ok. final facts"
    assert plan_of(server, raw.headers["x-request-id"]) == "CONTINUE"
    assert backend_details(server)["spawned"] == spawned + 1  # one CLI turn throughout


def test_tool_fields_are_not_named_ignored(
    server: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    raw = sdk(server).chat.completions.with_raw_response.create(
        model="sonnet",
        messages=[{"role": "user", "content": "Ignored fields check."}],
        tools=[WEATHER],
        tool_choice="auto",
        parallel_tool_calls=True,
        seed=7,  # still ignored: the header is there and names it
    )
    ignored = [f.strip() for f in raw.headers["x-ignored-fields"].split(",")]
    assert "seed" in ignored
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(ignored)
    assert raw.parse().choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("tools", "param"),
    [
        ([function_tool("get weather!", "spaces")], "tools[0].function.name"),
        (
            [
                {
                    "type": "function",
                    "function": {"name": "listy", "parameters": {"type": "array"}},
                }
            ],
            "tools[0].function.parameters",
        ),
        ([WEATHER, TIME, WEATHER], "tools[2].function.name"),
    ],
    ids=["bad-name", "non-object-parameters", "duplicate-name"],
)
def test_invalid_definitions_get_a_400_naming_the_field(
    server: ServerProcess, fake_upstream: FakeAnthropic, tools: list[Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(server).chat.completions.create(
            model="sonnet", messages=[{"role": "user", "content": "never sent"}], tools=tools
        )
    error = caught.value
    assert error.status_code == 400
    assert error.param == param
    assert error.type == "invalid_request_error"
    assert isinstance(error.body, dict)
    assert error.body.get("message")
    assert not fake_upstream.message_requests  # refused before any model call


def test_a_result_for_no_call_gets_a_400(
    server: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    client = sdk(server)
    messages: list[Any] = [
        {"role": "user", "content": "Stray: " + call("get_weather", {"city": "Lyon"})}
    ]
    first = client.chat.completions.create(model="sonnet", messages=messages, tools=[WEATHER])
    reply = first.choices[0]
    [tool_call] = reply.message.tool_calls or []
    messages += [assistant(reply.message), result("call_nobody_made", "whatever")]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="sonnet", messages=messages, tools=[WEATHER])
    assert caught.value.param == "messages[2].tool_call_id"
    assert "call_nobody_made" in caught.value.message
    # The refusal leaves the suspended turn as it was: the right result still resumes it.
    messages[-1] = result(tool_call.id, "mild")
    final = client.chat.completions.create(model="sonnet", messages=messages, tools=[WEATHER])
    assert final.choices[0].message.content == "tool result seen: mild"


def test_answering_only_some_calls_gets_a_400_naming_the_missing(
    server: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    client = sdk(server)
    messages: list[Any] = [
        {
            "role": "user",
            "content": "Partial: "
            + call("get_weather", {"city": "Nice"})
            + call("get_time", {"city": "Nice"}),
        }
    ]
    reply = client.chat.completions.create(
        model="sonnet", messages=messages, tools=[WEATHER, TIME]
    ).choices[0]
    calls = reply.message.tool_calls or []
    assert len(calls) == 2
    messages += [assistant(reply.message), result(calls[0].id, "warm")]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="sonnet", messages=messages, tools=[WEATHER, TIME])
    assert caught.value.param == "messages[1].tool_calls"
    assert calls[1].id in caught.value.message
    assert calls[0].id not in caught.value.message
    messages.append(result(calls[1].id, "night"))
    final = client.chat.completions.create(
        model="sonnet", messages=messages, tools=[WEATHER, TIME]
    ).choices[0]
    assert final.finish_reason == "stop"


def test_restart_between_call_and_result_falls_back_to_the_history(
    tmp_path: Path, claude_bin: str, fake_upstream: FakeAnthropic
) -> None:
    """The sessions survive in a file; the new server has no live process for the
    suspended turn, so it starts a fresh CLI session given the whole history."""
    store = {"CLAUDE_PROXY_SESSIONS_DB": str(tmp_path / "s.db")}
    messages: list[Any] = [{"role": "user", "content": "Restart: the weather in Porto?"}]
    named = {"type": "function", "function": {"name": "get_weather"}}
    with tools_server(tmp_path, claude_bin, fake_upstream, **store) as first_server:
        reply = (
            sdk(first_server)
            .chat.completions.create(
                model="sonnet", messages=messages, tools=[WEATHER], tool_choice=named
            )
            .choices[0]
        )
    [tool_call] = reply.message.tool_calls or []
    assert tool_call.function.name == "get_weather"
    messages += [assistant(reply.message), result(tool_call.id, "foggy, 14C")]
    with tools_server(tmp_path, claude_bin, fake_upstream, **store) as second_server:
        raw = sdk(second_server).chat.completions.with_raw_response.create(
            model="sonnet", messages=messages, tools=[WEATHER]
        )
        final = raw.parse().choices[0]
        plan = plan_of(second_server, raw.headers["x-request-id"])
    assert final.finish_reason == "stop"
    assert final.message.tool_calls is None
    # The model read the transcript's last messages as the result of its call.
    assert final.message.content == "tool result seen: foggy, 14C"
    assert plan == "RESTART"
    # The fresh session's prompt is the transcript: the question, the call and its result.
    last = fake_upstream.message_requests[-1]
    assert tool_results_in(last) == {}  # not a resumed call: a new session's first prompt
    assert client_tools_offered(last) == ["get_weather"]  # the tools go on being offered
    prompt = last.user_text
    assert prompt.startswith("Conversation transcript.")
    for piece in ("Restart: the weather in Porto?", tool_call.id, "get_weather", "foggy, 14C"):
        assert piece in prompt
