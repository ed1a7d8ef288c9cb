"""Client tool calls on the wire, over a runner that holds suspended turns: the shape of
a reply with calls (whole and streamed, parallel, legacy `function_call`), a round trip
of calls and results, and the 400s for bad definitions and bad results in OpenAI's
error body."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from litestar.testing import TestClient

from claude_max_api.bootstrap import http_app
from claude_max_api.settings import Settings
from proxy_core import ChatService, InMemorySessionStore, RestartReason, parse_rendering
from tests.support.server import live_fake_server
from tests.support.tool_runner import Call, Reply, ToolRunner, args

QUESTION = {"role": "user", "content": "Weather in Paris and Rome?"}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "The weather of a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
PARIS = args(city="Paris")
ROME = args(city="Rome")


@pytest.fixture
def runner() -> ToolRunner:
    return ToolRunner(fragment=4)


@pytest.fixture
def client(runner: ToolRunner) -> Iterator[TestClient[Any]]:
    app = http_app(ChatService(runner, InMemorySessionStore()), Settings())
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


def post(client: TestClient[Any], messages: list[dict[str, Any]], **fields: Any) -> Any:
    body: dict[str, Any] = {"model": "sonnet", "messages": messages, **fields}
    if "functions" not in body:
        body.setdefault("tools", TOOLS)
    return client.post("/v1/chat/completions", json=body, headers={"X-Session-Id": "tools"})


def chunks(response: Any) -> tuple[list[dict[str, Any]], str]:
    """The JSON chunks of an SSE body, and its last data line."""
    data = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    return [json.loads(d) for d in data[:-1]], data[-1]


def deltas(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["choices"][0]["delta"] for e in events if e["choices"]]


def test_a_reply_that_only_calls_has_null_content_the_calls_and_finish_reason_tool_calls(
    client: TestClient[Any], runner: ToolRunner
) -> None:
    runner.reply(Reply("", (Call("weather", PARIS),)))
    response = post(client, [QUESTION])
    assert response.status_code == 200
    (choice,) = response.json()["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "toolu_0001",
                "type": "function",
                "function": {"name": "weather", "arguments": PARIS},
            }
        ],
    }


def test_text_before_the_calls_is_the_content_and_parallel_calls_come_together(
    client: TestClient[Any], runner: ToolRunner
) -> None:
    runner.reply(Reply("Looking both up.", (Call("weather", PARIS), Call("weather", ROME))))
    message = post(client, [QUESTION]).json()["choices"][0]["message"]
    assert message["content"] == "Looking both up."
    assert [(c["id"], c["function"]["arguments"]) for c in message["tool_calls"]] == [
        ("toolu_0001", PARIS),
        ("toolu_0002", ROME),
    ]


def test_a_streamed_call_opens_with_its_id_and_name_then_streams_its_arguments(
    client: TestClient[Any], runner: ToolRunner
) -> None:
    runner.reply(Reply("On it.", (Call("weather", PARIS), Call("weather", ROME))))
    response = post(client, [QUESTION], stream=True, stream_options={"include_usage": True})
    assert response.status_code == 200
    events, last = chunks(response)
    assert last == "[DONE]"
    pieces = deltas(events)
    assert pieces[0] == {"role": "assistant", "content": ""}
    assert pieces[1] == {"content": "On it."}
    calls = [d["tool_calls"] for d in pieces if "tool_calls" in d]
    assert all(len(c) == 1 for c in calls)
    for index, (call_id, arguments) in enumerate((("toolu_0001", PARIS), ("toolu_0002", ROME))):
        mine = [c[0] for c in calls if c[0]["index"] == index]
        assert mine[0] == {
            "index": index,
            "id": call_id,
            "type": "function",
            "function": {"name": "weather", "arguments": ""},
        }
        # The following chunks carry argument fragments and the index only.
        assert len(mine) > 2
        assert all(set(c) == {"index", "function"} for c in mine[1:])
        assert all(set(c["function"]) == {"arguments"} for c in mine[1:])
        assert "".join(c["function"]["arguments"] for c in mine[1:]) == arguments
    # Call 1 starts after call 0's arguments are done.
    order = [c[0]["index"] for c in calls]
    assert order == sorted(order)
    finish = [e for e in events if e["choices"] and e["choices"][0]["finish_reason"]]
    assert len(finish) == 1
    assert finish[0]["choices"][0]["delta"] == {}
    assert finish[0]["choices"][0]["finish_reason"] == "tool_calls"
    assert events.index(finish[0]) == len(events) - 2
    usage = events[-1]
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] > 0


def test_legacy_functions_get_a_function_call_and_finish_reason_function_call(
    client: TestClient[Any], runner: ToolRunner
) -> None:
    functions = [TOOLS[0]["function"]]
    runner.reply(Reply("", (Call("weather", PARIS),)))
    response = post(client, [QUESTION], functions=functions)
    (choice,) = response.json()["choices"]
    assert choice["finish_reason"] == "function_call"
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "function_call": {"name": "weather", "arguments": PARIS},
    }
    # The client answers by name, and the suspended turn goes on.
    echoed = {
        "role": "assistant",
        "content": None,
        "function_call": choice["message"]["function_call"],
    }
    answer = {"role": "function", "name": "weather", "content": "sunny"}
    again = post(client, [QUESTION, echoed, answer], functions=functions).json()
    assert again["choices"][0]["message"]["content"] == "results: sunny"
    assert [r.call_id for r in runner.resumed[0].tool_results] == ["toolu_0001"]


def test_legacy_functions_stream_as_function_call_deltas(
    client: TestClient[Any], runner: ToolRunner
) -> None:
    runner.reply(Reply("", (Call("weather", PARIS),)))
    response = post(client, [QUESTION], functions=[TOOLS[0]["function"]], stream=True)
    events, last = chunks(response)
    assert last == "[DONE]"
    pieces = deltas(events)
    assert not any("tool_calls" in d for d in pieces)
    calls = [d["function_call"] for d in pieces if "function_call" in d]
    assert calls[0] == {"name": "weather", "arguments": ""}
    assert all(set(c) == {"arguments"} for c in calls[1:])
    assert "".join(c["arguments"] for c in calls[1:]) == PARIS
    assert events[-1]["choices"][0]["finish_reason"] == "function_call"


@pytest.mark.parametrize("stream", [False, True])
def test_results_posted_back_resume_the_suspended_turn(
    client: TestClient[Any], runner: ToolRunner, stream: bool
) -> None:
    runner.reply(Reply("", (Call("weather", PARIS), Call("weather", ROME))))
    message = post(client, [QUESTION]).json()["choices"][0]["message"]
    # Echoed as LangChain does: arguments re-serialised, results in another order.
    for call in message["tool_calls"]:
        call["function"]["arguments"] = json.dumps(json.loads(call["function"]["arguments"]))
    paris, rome = (c["id"] for c in message["tool_calls"])
    results = [
        {"role": "tool", "tool_call_id": rome, "content": "rain"},
        {"role": "tool", "tool_call_id": paris, "content": [{"type": "text", "text": "sun"}]},
    ]
    response = post(client, [QUESTION, message, *results], stream=stream)
    assert response.status_code == 200
    if stream:
        events, _ = chunks(response)
        text = "".join(d.get("content", "") for d in deltas(events))
    else:
        text = response.json()["choices"][0]["message"]["content"]
    assert text == "results: sun; rain"
    (resumed,) = runner.resumed
    assert [(r.call_id, r.text) for r in resumed.tool_results] == [(paris, "sun"), (rome, "rain")]


def bad_tool(**function: Any) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": "weather", **function}}]


@pytest.mark.parametrize(
    ("tools", "param"),
    [
        (bad_tool(name="get weather"), "tools[0].function.name"),
        (bad_tool(name="x" * 65), "tools[0].function.name"),
        (bad_tool(parameters={"type": "string"}), "tools[0].function.parameters"),
        ([*bad_tool(), *bad_tool()], "tools[1].function.name"),
        ([{"type": "retrieval", "function": {"name": "weather"}}], "tools[0].type"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_an_invalid_definition_is_a_400_naming_its_field(
    client: TestClient[Any], runner: ToolRunner, tools: Any, param: str, stream: bool
) -> None:
    response = post(client, [QUESTION], tools=tools, stream=stream)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    assert runner.plans == []


def test_an_invalid_legacy_function_is_a_400_naming_its_field(
    client: TestClient[Any], runner: ToolRunner
) -> None:
    functions = [{"name": "ok"}, {"name": "bad name"}]
    response = post(client, [QUESTION], functions=functions)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "functions[1].name"


def test_a_result_for_no_call_and_missing_results_are_400s(
    client: TestClient[Any], runner: ToolRunner
) -> None:
    runner.reply(Reply("", (Call("weather", PARIS), Call("weather", ROME))))
    message = post(client, [QUESTION]).json()["choices"][0]["message"]
    paris, rome = (c["id"] for c in message["tool_calls"])
    stray = {"role": "tool", "tool_call_id": "call_nowhere", "content": "?"}
    response = post(client, [QUESTION, message, stray])
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages[2].tool_call_id"
    partial = {"role": "tool", "tool_call_id": paris, "content": "sun"}
    response = post(client, [QUESTION, message, partial])
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "messages[1].tool_calls"
    assert rome in error["message"]
    assert paris not in error["message"]
    # Neither reached the backend, and the suspended turn still waits for both.
    assert len(runner.plans) == 1
    assert runner.suspended[runner.plans[0].cli_session_id].pending == (
        paris,
        rome,
    )


def test_the_openai_sdk_accumulates_streamed_parallel_calls_and_goes_on_after_a_loss() -> None:
    """The official client against the live server: its stream helper rebuilds both
    calls from the chunks, and after the suspended turn is lost the results still get
    an answer (the fallback), with no error."""
    runner = ToolRunner(fragment=3)
    runner.reply(
        Reply("Both.", (Call("weather", PARIS), Call("weather", ROME))),
        Reply("Sunny in Paris, rain in Rome."),
    )
    with live_fake_server(runner) as (server, _):
        sdk = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)
        messages: list[Any] = [QUESTION]
        with sdk.chat.completions.stream(
            model="sonnet",
            messages=messages,
            tools=TOOLS,
            extra_headers={"X-Session-Id": "sdk"},
        ) as stream:
            final = stream.get_final_completion()
        choice = final.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content == "Both."
        calls = choice.message.tool_calls or []
        assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
            ("toolu_0001", "weather", PARIS),
            ("toolu_0002", "weather", ROME),
        ]
        runner.lose()
        messages += [
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": calls[0].id, "content": "sun"},
            {"role": "tool", "tool_call_id": calls[1].id, "content": "rain"},
        ]
        answer = sdk.chat.completions.create(
            model="sonnet",
            messages=messages,
            tools=TOOLS,
            extra_headers={"X-Session-Id": "sdk"},
        )
    assert answer.choices[0].message.content == "Sunny in Paris, rain in Rome."
    assert answer.choices[0].finish_reason == "stop"
    assert len(runner.missing) == 1
    fresh = runner.plans[-1]
    assert fresh.restart_reason is RestartReason.SESSION_MISSING
    assert [m.role.value for m in parse_rendering(fresh.prompt)] == [
        "user",
        "assistant",
        "tool",
        "tool",
    ]
