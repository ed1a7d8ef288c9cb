"""The Responses API over a scripted runner: input translation, the Response object and
its stream events (each checked with the official openai SDK's own models, and the
stream folded by the SDK's own accumulator), errors and their params, ignored tools,
stored responses and `previous_response_id`, and the requests Codex CLI sends."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from claude_max_api.bootstrap import http_app
from claude_max_api.settings import Settings
from proxy_cli_backend.response_store import SqliteResponseStore
from proxy_core import (
    Base64Image,
    ChatService,
    Event,
    Failed,
    FailureReason,
    FakeRunner,
    Finished,
    InMemoryResponseStore,
    InMemorySessionStore,
    PlanKind,
    ResponseStore,
    TextDelta,
    ThinkingDelta,
    TurnPlan,
    Usage,
)
from proxy_http.responses import stored as stored_module
from proxy_http.responses.translate import translate
from proxy_http.responses.wire import ResponsesRequest
from tests.support.tool_runner import Call, Reply, ToolRunner, args

CODEX = Path(__file__).parent / "codex_requests"
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
WEATHER = {
    "type": "function",
    "name": "weather",
    "description": "The weather of a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}


@pytest.fixture
def runner() -> ToolRunner:
    return ToolRunner(fragment=4)


@pytest.fixture
def stored() -> InMemoryResponseStore:
    return InMemoryResponseStore()


def serve(runner: FakeRunner, stored: ResponseStore, **settings: Any) -> TestClient[Any]:
    service = ChatService(runner, InMemorySessionStore())
    app = http_app(service, Settings.from_values(**settings), responses=stored)
    return TestClient(app, base_url="http://127.0.0.1")


@pytest.fixture
def client(runner: ToolRunner, stored: InMemoryResponseStore) -> Iterator[TestClient[Any]]:
    with serve(runner, stored) as test_client:
        yield test_client


def create(client: TestClient[Any], **fields: Any) -> Any:
    return client.post("/v1/responses", json={"model": "sonnet", **fields})


def events_of(body: str) -> list[Any]:
    """The SSE body's events, each validated by the SDK's own event models; each
    `event:` line names its data's type."""
    events = []
    for block in body.strip().split("\n\n"):
        lines = block.split("\n")
        if lines[0].startswith(":"):
            continue
        assert lines[0].startswith("event: "), block
        assert lines[1].startswith("data: "), block
        event = EVENTS.validate_python(json.loads(lines[1][6:]))
        assert event.type == lines[0][7:]
        events.append(event)
    return events


def folded(events: Sequence[Any], tools: Sequence[Any] = ()) -> Any:
    """The final response as the SDK's `responses.stream()` accumulates the events."""
    state: ResponseStreamState[Any] = ResponseStreamState(
        input_tools=list(tools) if tools else omit, text_format=omit
    )
    for event in events:
        state.handle_event(event)
    return state._completed_response


# -- translation -----------------------------------------------------------------------


def test_every_input_item_kind_becomes_the_chat_message_the_core_recorded() -> None:
    request = msgspec.convert(
        {
            "model": "sonnet",
            "input": [
                {"type": "message", "role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "input_text", "text": "Paris?"}]},
                {
                    "role": "user",
                    "content": [{"type": "input_image", "image_url": "https://x.test/a.png"}],
                },
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": None},
                {
                    "type": "message",
                    "role": "assistant",
                    "id": "msg_1",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
                },
                {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "time", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {
                    "type": "function_call_output",
                    "call_id": "c2",
                    "output": [{"type": "input_text", "text": "noon"}],
                },
                {"type": "item_reference", "id": "msg_0"},
                {"type": "function_call", "call_id": "c3", "name": "weather", "arguments": "{}"},
            ],
        },
        ResponsesRequest,
    )
    translated = translate(request)
    call = {"type": "function", "function": {"name": "weather", "arguments": "{}"}}
    assert translated.messages == [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "Paris?"}]},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "Checking."}],
            "tool_calls": [
                {"id": "c1", **call},
                {"id": "c2", "type": "function", "function": {"name": "time", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "noon"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c3", **call}]},
    ]
    assert translated.sources == [f"input[{i}]" for i in (0, 1, 2, 4, 7, 8, 10)]


def test_tools_choices_and_formats_take_their_chat_shapes() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    request = msgspec.convert(
        {
            "model": "sonnet",
            "input": "hi",
            "tools": [
                {"type": "web_search", "external_web_access": False},
                WEATHER,
                {"type": "namespace", "name": "agents", "tools": []},
                {"type": "web_search"},
            ],
            "tool_choice": {"type": "function", "name": "weather"},
            "text": {"format": {"type": "json_schema", "name": "out", "schema": schema}},
        },
        ResponsesRequest,
    )
    translated = translate(request)
    assert translated.tools == [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "The weather of a city.",
                "parameters": WEATHER["parameters"],
                "strict": False,
            },
        }
    ]
    assert translated.tool_sources == [1]
    assert translated.ignored_tools == ("web_search", "namespace")
    assert translated.tool_choice == {"type": "function", "function": {"name": "weather"}}
    assert translated.response_format == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": schema},
    }


# -- the Response object ---------------------------------------------------------------


def test_a_whole_response_is_the_sdks_response_with_text_calls_and_usage(
    client: TestClient[Any], runner: ToolRunner
) -> None:
    runner.reply(Reply("Checking.", (Call("weather", args(city="Paris")),)))
    answer = create(
        client,
        input="Paris?",
        instructions="be brief",
        tools=[WEATHER, {"type": "web_search"}],
        metadata={"run": "7"},
        max_output_tokens=500,
    )
    assert answer.status_code == 200
    assert answer.headers["x-ignored-tools"] == "web_search"
    assert answer.headers["x-ignored-fields"] == "max_output_tokens"
    response = Response.model_validate(answer.json())
    assert response.id.startswith("resp_")
    assert (response.object, response.status, response.model) == ("response", "completed", "sonnet")
    message, call = response.output
    assert message.type == "message"
    assert message.id.startswith("msg_")
    assert response.output_text == "Checking."
    assert call.type == "function_call"
    assert call.id is not None
    assert call.id.startswith("fc_")
    assert (call.call_id, call.name, call.arguments) == (
        "toolu_0001",
        "weather",
        '{"city":"Paris"}',
    )
    assert (response.instructions, response.metadata) == ("be brief", {"run": "7"})
    assert [t.type for t in response.tools] == ["function"]
    assert response.max_output_tokens == 500
    assert response.usage is not None
    assert response.usage.input_tokens == 10
    assert response.usage.total_tokens == 10 + response.usage.output_tokens


def test_line_separators_in_the_text_are_escaped_so_each_event_stays_one_line(
    stored: InMemoryResponseStore,
) -> None:
    # str.splitlines (which SSE readers use) breaks lines at U+2028 and U+2029 too.
    text = "one\u2028two\u2029three\u0085four"

    def script(plan: TurnPlan) -> list[Event]:
        return [TextDelta(text), Finished("end_turn", text, plan.cli_session_id)]

    with serve(FakeRunner(script), stored) as client:
        answer = create(client, input="hi", stream=True)
    assert not any(breaker in answer.text for breaker in "\u2028\u2029\u0085")
    final = folded(events_of(answer.text))
    assert final.output_text == text


def test_a_stream_is_the_event_sequence_the_sdk_folds_into_the_final_response(
    stored: InMemoryResponseStore,
) -> None:
    def script(plan: TurnPlan) -> list[Event]:
        return [
            ThinkingDelta("Let me "),
            ThinkingDelta("think."),
            TextDelta("Hello "),
            TextDelta("there."),
            Usage(input_tokens=5, output_tokens=3, cache_read_tokens=20),
            Finished("end_turn", "Hello there.", plan.cli_session_id),
        ]

    with serve(FakeRunner(script), stored) as client:
        answer = create(client, input="hi", stream=True, reasoning={"effort": "low"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert "[DONE]" not in answer.text
    events = events_of(answer.text)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = folded(events)
    assert final.id == events[0].response.id
    assert final.status == "completed"
    reasoning, message = final.output
    assert reasoning.type == "reasoning"
    assert [s.text for s in reasoning.summary] == ["Let me think."]
    assert message.type == "message"
    assert final.output_text == "Hello there."
    assert final.usage.input_tokens == 25
    assert final.usage.input_tokens_details.cached_tokens == 20
    # Stored before response.completed was sent, as it was sent.
    retrieved = client_get(stored, final.id)
    assert retrieved == events[-1].response.model_dump(mode="json")


def client_get(stored: InMemoryResponseStore, response_id: str) -> Any:
    with serve(FakeRunner(), stored) as client:
        answer = client.get(f"/v1/responses/{response_id}")
    assert answer.status_code == 200
    return Response.model_validate(answer.json()).model_dump(mode="json")


def test_streamed_calls_end_with_their_whole_arguments(
    client: TestClient[Any], runner: ToolRunner
) -> None:
    runner.reply(
        Reply("", (Call("weather", args(city="Oslo")), Call("weather", args(city="Rome"))))
    )
    answer = create(client, input="Both?", stream=True, tools=[WEATHER])
    events = events_of(answer.text)
    deltas = [e for e in events if e.type == "response.function_call_arguments.delta"]
    assert len(deltas) > 2  # fragments, as the model wrote them
    final = folded(events, [WEATHER])
    assert [(c.type, c.call_id, c.arguments) for c in final.output] == [
        ("function_call", "toolu_0001", '{"city":"Oslo"}'),
        ("function_call", "toolu_0002", '{"city":"Rome"}'),
    ]
    assert [o.id for o in final.output] == [
        e.item.id for e in events if e.type == "response.output_item.added"
    ]


def test_a_failure_after_the_stream_started_ends_it_with_response_failed(
    stored: InMemoryResponseStore,
) -> None:
    def script(plan: TurnPlan) -> list[Event]:
        return [TextDelta("partial"), Failed(FailureReason.UPSTREAM_ERROR, "upstream went away")]

    with serve(FakeRunner(script), stored) as client:
        answer = create(client, input="hi", stream=True)
    assert answer.status_code == 200
    events = events_of(answer.text)
    last = events[-1]
    assert last.type == "response.failed"
    assert last.response.status == "failed"
    assert last.response.error.code == "server_error"
    assert "upstream went away" in last.response.error.message
    assert last.response.output == []  # the unfinished message is not shown as done
    assert not any(e.type == "response.output_item.done" for e in events)


def test_a_silent_stream_is_kept_alive_with_comments(stored: InMemoryResponseStore) -> None:
    runner = FakeRunner(delay=0.1)
    with serve(runner, stored, keepalive_interval=0.02, stream_hold=0) as client:
        answer = create(client, input="hi", stream=True)
    assert "\n: keep-alive\n\n" in answer.text
    events = events_of(answer.text)  # the comments are no events
    assert folded(events).output_text == "echo: hi"


def test_a_failure_before_the_stream_starts_is_answered_with_its_status(
    stored: InMemoryResponseStore,
) -> None:
    def script(plan: TurnPlan) -> list[Event]:
        return [Failed(FailureReason.RATE_LIMITED, "slow down", retry_after=3)]

    with serve(FakeRunner(script), stored) as client:
        answer = create(client, input="hi", stream=True)
    assert answer.status_code == 429
    assert answer.json()["error"]["code"] == "rate_limit_exceeded"


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"input": ""}, "input"),
        ({"input": [{"type": "reasoning", "summary": []}]}, "input"),
        (
            {"input": [{"role": "user", "content": "a"}, {"type": "function_call"}]},
            "input[1].call_id",
        ),
        (
            {
                "input": [
                    {"role": "user", "content": "a"},
                    {"type": "function_call", "name": "f", "arguments": "{}"},
                ]
            },
            "input[1].call_id",
        ),
        ({"input": [{"role": "user", "content": [{"type": "video"}]}]}, "input[0].content[0].type"),
        ({"input": [{"role": "robot", "content": "a"}]}, "input[0].role"),
        ({"input": "hi", "stream": "yes"}, "stream"),
        ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "hi", "tool_choice": "sometimes"}, "tool_choice"),
        ({"input": "hi", "tools": [{"name": "f"}]}, "tools[0].type"),
        (
            {"input": "hi", "tools": [{"type": "web_search"}, {"type": "function", "name": "a b"}]},
            "tools[1].name",
        ),
        ({"input": "hi", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"input": "hi", "reasoning": {"effort": "loads"}}, "reasoning.effort"),
    ],
)
def test_bad_requests_are_400s_naming_the_field(
    client: TestClient[Any], fields: dict[str, Any], param: str
) -> None:
    answer = create(client, **fields)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert "reasoning_effort" not in error["message"]  # the core's name for the field


def test_unknown_and_other_keys_previous_responses_are_404s(stored: InMemoryResponseStore) -> None:
    keys = {"api_keys": "key-a,key-b"}
    with serve(FakeRunner(), stored, **keys) as client:
        mine = {"Authorization": "Bearer key-a"}
        theirs = {"Authorization": "Bearer key-b"}
        first = client.post("/v1/responses", json={"model": "sonnet", "input": "hi"}, headers=mine)
        response_id = first.json()["id"]
        assert client.get(f"/v1/responses/{response_id}", headers=mine).status_code == 200
        assert client.get(f"/v1/responses/{response_id}", headers=theirs).status_code == 404
        assert client.delete(f"/v1/responses/{response_id}", headers=theirs).status_code == 404
        for body in (
            {"previous_response_id": response_id},
            {"previous_response_id": "resp_unknown"},
        ):
            answer = client.post(
                "/v1/responses", json={"model": "sonnet", "input": "more", **body}, headers=theirs
            )
            assert answer.status_code == 404
            assert answer.json()["error"]["param"] == "previous_response_id"
        deleted = client.delete(f"/v1/responses/{response_id}", headers=mine)
        assert deleted.json() == {"id": response_id, "object": "response", "deleted": True}
        assert client.get(f"/v1/responses/{response_id}", headers=mine).status_code == 404


def test_store_false_keeps_nothing(client: TestClient[Any], stored: InMemoryResponseStore) -> None:
    answer = create(client, input="hi", store=False)
    assert answer.json()["store"] is False
    response_id = answer.json()["id"]
    assert client.get(f"/v1/responses/{response_id}").status_code == 404
    again = create(client, input="more", previous_response_id=response_id)
    assert again.status_code == 404


def test_a_store_that_cannot_write_is_a_503_whole_and_response_failed_streamed(
    client: TestClient[Any], stored: InMemoryResponseStore
) -> None:
    stored.fail()
    answer = create(client, input="hi")
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "store_unavailable"
    streamed = create(client, input="again", stream=True)
    last = events_of(streamed.text)[-1]
    assert last.type == "response.failed"
    assert "store_unavailable" in last.response.error.message


# -- continuation -------------------------------------------------------------------------


def test_previous_response_id_continues_the_session_with_only_the_new_input(
    client: TestClient[Any], runner: ToolRunner
) -> None:
    opened = create(client, input="one", instructions="be brief")
    first = opened.json()
    second = create(client, input="two", previous_response_id=first["id"])
    assert second.status_code == 200
    plan = runner.plans[-1]
    assert plan.kind is PlanKind.CONTINUE
    assert [m.text for m in plan.messages] == ["two"]
    assert plan.system == "be brief"  # kept from the chain
    assert second.json()["instructions"] == "be brief"
    assert second.json()["previous_response_id"] == first["id"]
    assert second.headers["x-session-id"] == opened.headers["x-session-id"]
    # A chain goes on from any of its responses; new instructions start the CLI over.
    third = create(client, input="three", previous_response_id=second.json()["id"])
    assert runner.plans[-1].kind is PlanKind.CONTINUE
    create(client, input="four", previous_response_id=third.json()["id"], instructions="be long")
    assert runner.plans[-1].kind is PlanKind.RESTART
    assert [m.text for m in runner.plans[-1].messages][-1] == "four"


def short_reply(plan: TurnPlan) -> Sequence[Event]:
    return [TextDelta("ok"), Usage(1, 1), Finished("end_turn", "ok", plan.cli_session_id)]


def test_a_chain_is_stored_in_linear_space_and_rebuilt_whole(tmp_path: Path) -> None:
    """Each response keeps only what it added: 50 turns of 10 kB each take about
    50 x 10 kB, where keeping each turn's whole conversation would take 25 times that;
    and a continuation still rebuilds the whole conversation."""
    path = tmp_path / "responses.sqlite3"
    store = SqliteResponseStore(path)
    runner = FakeRunner(short_reply)
    turns, size = 50, 10_000
    inputs = [f"{n:03d}" + "x" * (size - 3) for n in range(turns)]
    with serve(runner, store) as client:
        previous: dict[str, str] = {}
        for text in inputs:
            answer = create(client, input=text, **previous)
            assert answer.status_code == 200, answer.text
            previous = {"previous_response_id": answer.json()["id"]}
        assert runner.plans[-1].kind is PlanKind.CONTINUE
        # New instructions start the CLI session over, with the conversation rebuilt.
        assert create(client, input="last", instructions="new", **previous).status_code == 200
    restart = runner.plans[-1]
    assert restart.kind is PlanKind.RESTART
    expected = [text for sent in inputs for text in (sent, "ok")]
    assert [m.text for m in restart.messages] == [*expected, "last"]
    asyncio.run(store.close())
    with sqlite3.connect(path) as db:
        (stored_bytes,) = db.execute("SELECT sum(length(data)) FROM responses").fetchone()
    assert turns * size <= stored_bytes < 2 * turns * size


def test_a_conversation_with_a_response_gone_is_not_continued_with_a_gap(
    client: TestClient[Any],
) -> None:
    """Deleting a response leaves the later ones retrievable, but continuing from them
    would rebuild the conversation without it: a 404 that says so."""
    ids = []
    previous: dict[str, str] = {}
    for text in ("one", "two", "three"):
        ids.append(create(client, input=text, **previous).json()["id"])
        previous = {"previous_response_id": ids[-1]}
    assert client.delete(f"/v1/responses/{ids[1]}").status_code == 200
    assert client.get(f"/v1/responses/{ids[2]}").status_code == 200
    answer = create(client, input="four", previous_response_id=ids[2])
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert (error["param"], error["code"]) == ("previous_response_id", "not_found")
    assert f"earlier response of its conversation ('{ids[1]}') is gone" in error["message"]
    # The part of the conversation before the gap goes on.
    assert create(client, input="two again", previous_response_id=ids[0]).status_code == 200


def test_a_conversation_longer_than_the_bound_is_a_400(
    client: TestClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The conversation a previous_response_id names may hold MAX_CHAIN responses."""
    monkeypatch.setattr(stored_module, "MAX_CHAIN", 3)
    previous: dict[str, str] = {}
    for text in ("one", "two", "three", "four"):  # the fourth continues three
        answer = create(client, input=text, **previous)
        assert answer.status_code == 200
        previous = {"previous_response_id": answer.json()["id"]}
    answer = create(client, input="five", **previous)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == "previous_response_id"
    assert "longer than 3 responses" in error["message"]


def test_a_response_store_that_cannot_be_read_names_its_own_database(tmp_path: Path) -> None:
    store = SqliteResponseStore(tmp_path / "responses.sqlite3")
    with serve(FakeRunner(), store) as client:
        response_id = create(client, input="hi").json()["id"]
        store._database.connection.close()  # every later call fails, as on a lost disk
        for answer in (
            client.get(f"/v1/responses/{response_id}"),
            create(client, input="more", previous_response_id=response_id),
        ):
            assert answer.status_code == 503
            error = answer.json()["error"]
            assert error["code"] == "store_unavailable"
            assert "--responses-db" in error["message"]
            assert "--sessions-db" not in error["message"]
    asyncio.run(store.close())


def test_a_function_call_round_trip_resumes_the_suspended_turn(
    client: TestClient[Any], runner: ToolRunner
) -> None:
    runner.reply(Reply("", (Call("weather", args(city="Paris")),)))
    first = create(client, input="Paris?", tools=[WEATHER]).json()
    (call,) = first["output"]
    assert call["type"] == "function_call"
    result = {"type": "function_call_output", "call_id": call["call_id"], "output": "18C"}
    final = create(client, input=[result], tools=[WEATHER], previous_response_id=first["id"])
    assert final.status_code == 200
    assert Response.model_validate(final.json()).output_text == "results: 18C"
    (resumed,) = runner.resumed
    assert [r.text for r in resumed.tool_results] == ["18C"]
    assert runner.violations == []


def test_a_function_call_output_with_an_image_resumes_the_turn_with_it(
    client: TestClient[Any], runner: ToolRunner
) -> None:
    # Codex's view_image answers with the image as an input_image part of the output.
    runner.reply(Reply("", (Call("weather", args(city="Paris")),)))
    first = create(client, input="Paris?", tools=[WEATHER]).json()
    (call,) = first["output"]
    output = [
        {"type": "input_text", "text": "radar:"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
    ]
    result = {"type": "function_call_output", "call_id": call["call_id"], "output": output}
    final = create(client, input=[result], tools=[WEATHER], previous_response_id=first["id"])
    assert final.status_code == 200, final.text
    (resumed,) = runner.resumed
    assert resumed.kind is PlanKind.CONTINUE
    assert [(r.text, r.images) for r in resumed.tool_results] == [
        ("radar:", (Base64Image("image/png", "iVBORw0KGgo="),))
    ]
    assert runner.violations == []


def test_prompt_cache_key_keys_the_session_and_the_header_wins(
    client: TestClient[Any], runner: ToolRunner
) -> None:
    answer = create(client, input="hi", prompt_cache_key="conv-1", user="alice")
    assert answer.headers["x-session-id"] == "h:conv-1"
    pinned = client.post(
        "/v1/responses",
        json={"model": "sonnet", "input": "hi", "prompt_cache_key": "conv-1"},
        headers={"X-Session-Id": "mine"},
    )
    assert pinned.headers["x-session-id"] == "h:mine"


# -- Codex CLI ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "turn1",
        "after-function-call",
        "resume-after-reasoning-item",
        "known-model-gpt-6.2-sol",
        "output-schema-effort-high",
    ],
)
def test_every_request_codex_sends_is_answered_as_it_needs(
    client: TestClient[Any], runner: ToolRunner, name: str
) -> None:
    body = json.loads((CODEX / f"{name}.json").read_text())
    answer = client.post("/v1/responses", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-session-id"] == "h:" + body["prompt_cache_key"]
    if body.get("tools"):
        assert answer.headers["x-ignored-tools"] == "namespace,web_search"
        offer = runner.plans[-1].tools
        assert offer is not None
        assert [t.name for t in offer.tools] == [
            t["name"] for t in body["tools"] if t["type"] == "function"
        ]
    events = events_of(answer.text)
    # What Codex prints its answer from: the message item's output_item.done.
    (done,) = [e for e in events if e.type == "response.output_item.done"]
    assert done.item.type == "message"
    assert done.item.content[0].text.startswith("echo: ")
    assert events[-1].type == "response.completed"


def test_codex_resuming_a_conversation_continues_its_cli_session(
    stored: InMemoryResponseStore,
) -> None:
    """Codex resends the whole history (store: false) with our reply replayed: the
    ledger sees an extension, and only the new prompt reaches the CLI."""
    runner = ToolRunner()
    runner.reply(Reply("STUB-ANSWER-1"))  # what the captured resume request replays
    with serve(runner, stored) as client:
        for name in ("turn1", "resume-turn2"):
            body = json.loads((CODEX / f"{name}.json").read_text())
            assert client.post("/v1/responses", json=body).status_code == 200
    first, second = runner.plans
    assert first.kind is PlanKind.NEW
    assert second.kind is PlanKind.CONTINUE
    assert [m.text for m in second.messages] == ["Second probe prompt"]


def test_stats_count_responses_requests_refused_ones_too(client: TestClient[Any]) -> None:
    assert create(client, input="hi").status_code == 200
    assert create(client, input=3).status_code == 400  # refused by decoding
    assert create(client, input="").status_code == 400  # refused by the translation
    assert create(client, input="hi", previous_response_id="resp_x").status_code == 404
    assert create(client, input="hi", reasoning={"effort": "x"}).status_code == 400  # the core
    requests = client.get("/stats").json()["requests"]
    assert requests["byEndpoint"] == {"responses": 5}
    assert (requests["total"], requests["errors"]) == (5, 4)


def test_the_openapi_schema_lists_the_responses_paths(client: TestClient[Any]) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]
    assert "post" in paths["/v1/responses"]
    assert {"get", "delete"} <= set(paths["/v1/responses/{response_id}"])
