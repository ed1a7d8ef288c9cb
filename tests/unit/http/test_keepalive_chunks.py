"""Keepalives as empty-content chunks (`keepalive_style = "chunk"`, issue 16 point 8):
a chat completion stream that waits sends valid `chat.completion.chunk`s of its own
stream whose content is empty, never before the role chunk, and the official openai
SDK and LangChain assemble the same reply (text and tool calls) as with comments.
Other surfaces keep their own keepalives."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage
from langchain_openai import ChatOpenAI
from litestar.testing import TestClient
from openai.types.chat import ChatCompletionChunk

from claude_max_api.bootstrap import http_app
from claude_max_api.settings import Settings
from proxy_core import (
    ChatService,
    Event,
    FakeRunner,
    Finished,
    InMemorySessionStore,
    TextDelta,
    TurnPlan,
    Usage,
)
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
# A slow turn: each event comes this long after the last, against keepalives every
# tick, so a stream of either style has keepalives between its chunks.
SLOW = 0.1
TICK = 0.01


def slow_reply(plan: TurnPlan) -> Sequence[Event]:
    return [
        TextDelta("Sunny"),
        TextDelta(" in "),
        TextDelta("Paris."),
        Usage(input_tokens=5, output_tokens=3),
        Finished("end_turn", "Sunny in Paris.", plan.cli_session_id),
    ]


def settings(style: str) -> Settings:
    return Settings.from_values(keepalive_interval=TICK, stream_hold=0, keepalive_style=style)


def stream_body(runner: FakeRunner, style: str, **fields: Any) -> str:
    app = http_app(ChatService(runner, InMemorySessionStore()), settings(style))
    body = {"model": "sonnet", "messages": [QUESTION], "stream": True, **fields}
    with TestClient(app, base_url="http://127.0.0.1") as client:
        answer = client.post("/v1/chat/completions", json=body)
    assert answer.status_code == 200
    return answer.text


def chunks_of(body: str) -> list[ChatCompletionChunk]:
    """Every data event but `[DONE]`, validated as the SDK's chunk type."""
    data = [line[6:] for line in body.splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    return [ChatCompletionChunk.model_validate(json.loads(d)) for d in data[:-1]]


def is_keepalive(chunk: ChatCompletionChunk) -> bool:
    return bool(chunk.choices) and chunk.choices[0].delta.model_dump(exclude_unset=True) == {
        "content": ""
    }


@pytest.mark.parametrize("include_usage", [False, True])
def test_a_waiting_stream_sends_empty_content_chunks_of_its_own_after_the_role_chunk(
    include_usage: bool,
) -> None:
    body = stream_body(
        FakeRunner(slow_reply, delay=SLOW),
        "chunk",
        stream_options={"include_usage": include_usage},
    )
    assert not [line for line in body.splitlines() if line.startswith(":")]  # no comments
    chunks = chunks_of(body)
    opening = chunks[0]
    assert opening.choices[0].delta.role == "assistant"
    keepalives = [c for c in chunks if is_keepalive(c)]
    assert keepalives
    stream = (opening.id, opening.created, opening.model)
    for chunk in keepalives:
        assert (chunk.id, chunk.created, chunk.model) == stream
        assert chunk.object == "chat.completion.chunk"
        assert chunk.choices[0].finish_reason is None
        assert chunk.choices[0].index == 0
    raw = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: {")]
    # As every chunk of its stream: `"usage": null` exactly when usage was asked for.
    assert all(("usage" in c) is include_usage for c in raw if c["choices"])
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Sunny in Paris."
    )


def test_by_default_a_waiting_stream_sends_comments() -> None:
    body = stream_body(FakeRunner(slow_reply, delay=SLOW), "comment")
    assert ": keep-alive" in body.splitlines()
    assert not [c for c in chunks_of(body) if is_keepalive(c)]


def test_other_surfaces_keep_their_own_keepalives() -> None:
    """Responses streams keep `: keep-alive` comments, Messages streams `ping` events."""
    runner = FakeRunner(slow_reply, delay=SLOW)
    app = http_app(ChatService(runner, InMemorySessionStore()), settings("chunk"))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        responses = client.post(
            "/v1/responses", json={"model": "sonnet", "input": "Weather?", "stream": True}
        )
        messages = client.post(
            "/v1/messages",
            json={"model": "sonnet", "max_tokens": 64, "messages": [QUESTION], "stream": True},
        )
    assert ": keep-alive" in responses.text.splitlines()
    assert "event: ping" in messages.text.splitlines()
    assert ": keep-alive" not in messages.text.splitlines()


def tool_runner() -> ToolRunner:
    runner = ToolRunner(delay=SLOW / 2, fragment=6)
    runner.reply(
        Reply("Both.", (Call("weather", args(city="Paris")), Call("weather", args(city="Rome"))))
    )
    return runner


def sdk_final(style: str) -> tuple[dict[str, Any], int]:
    """The completion the openai SDK's stream helper assembles, and the keepalive chunks
    it went through while the tool calls streamed."""
    with live_fake_server(tool_runner(), settings(style)) as (server, _):
        sdk = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)
        with sdk.chat.completions.stream(
            model="sonnet",
            messages=[QUESTION],
            tools=TOOLS,  # type: ignore[list-item]
        ) as stream:
            seen = [e.chunk for e in stream if e.type == "chunk"]
            final = stream.get_final_completion()
    choice = final.choices[0]
    calls = [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls or []]
    assembled = {
        "content": choice.message.content,
        "calls": calls,
        "finish_reason": choice.finish_reason,
    }
    # Keepalives that came while the calls streamed (between their first and last chunk).
    with_calls = [i for i, c in enumerate(seen) if c.choices and c.choices[0].delta.tool_calls]
    during = seen[with_calls[0] : with_calls[-1]] if with_calls else []
    return assembled, sum(1 for chunk in during if is_keepalive(chunk))


def test_the_openai_sdk_assembles_the_same_text_and_calls_with_chunk_keepalives() -> None:
    with_chunks, keepalives = sdk_final("chunk")
    with_comments, none = sdk_final("comment")
    assert keepalives
    assert not none
    assert with_chunks == with_comments
    assert with_chunks["content"] == "Both."
    assert [name for _, name, _ in with_chunks["calls"]] == ["weather", "weather"]
    assert [json.loads(a) for _, _, a in with_chunks["calls"]] == [
        {"city": "Paris"},
        {"city": "Rome"},
    ]
    assert with_chunks["finish_reason"] == "tool_calls"


def langchain_final(style: str) -> tuple[AIMessageChunk, int]:
    with live_fake_server(tool_runner(), settings(style)) as (server, _):
        model = ChatOpenAI(
            base_url=server.base_url + "/v1",
            api_key="unused",  # type: ignore[arg-type]
            model="sonnet",
            max_retries=0,
            timeout=30,
        ).bind_tools(TOOLS)
        pieces = list(model.stream([HumanMessage(str(QUESTION["content"]))]))
    total = pieces[0]
    for piece in pieces[1:]:
        total = total + piece
    assert isinstance(total, AIMessageChunk)
    empty = [p for p in pieces if p.content == "" and not p.tool_call_chunks]
    return total, len(empty)


def test_langchain_assembles_the_same_text_and_calls_with_chunk_keepalives() -> None:
    with_chunks, empty_with_chunks = langchain_final("chunk")
    with_comments, empty_with_comments = langchain_final("comment")
    assert empty_with_chunks > empty_with_comments  # the keepalives reached it
    assert with_chunks.content == with_comments.content == "Both."
    calls = [(c["name"], c["args"]) for c in with_chunks.tool_calls]
    assert calls == [("weather", {"city": "Paris"}), ("weather", {"city": "Rome"})]
    assert calls == [(c["name"], c["args"]) for c in with_comments.tool_calls]
    assert not with_chunks.invalid_tool_calls
