"""The Anthropic Messages API with the official anthropic SDK, against a live server over
the real CLI and the fake upstream: a whole message, a stream the SDK assembles, a
tool_use round trip that resumes the same CLI turn (its result holding an image), a
continuation that sends the CLI only the new message, and an error the SDK raises as
Anthropic's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.support.client_tools import (
    backend_details,
    call,
    client_tools_offered,
    plan_of,
    tools_server,
)
from tests.support.fake_upstream import FakeAnthropic
from tests.support.server import ServerProcess

pytestmark = pytest.mark.cli

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}

# A 1x1 PNG.
MAP = {
    "type": "image",
    "source": {
        "type": "base64",
        "media_type": "image/png",
        "data": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
        "AAAABJRU5ErkJggg==",
    },
}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, claude_bin: str, fake_upstream_server: FakeAnthropic
) -> Iterator[ServerProcess]:
    """One server for the module's conversations (each test has its own first message)."""
    with tools_server(tmp_path_factory.mktemp("messages"), claude_bin, fake_upstream_server) as s:
        yield s


def sdk(server: ServerProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=server.base_url, api_key="unused", max_retries=0, timeout=60
    )


def user_texts(request: Any) -> list[str]:
    """The text blocks of an upstream request's last user message (reminders left out)."""
    content = request.body["messages"][-1]["content"]
    if isinstance(content, str):
        return [content]
    return [
        block["text"]
        for block in content
        if block.get("type") == "text" and not block["text"].startswith("<system-reminder>")
    ]


def test_create_then_a_continuation_sends_the_cli_only_the_new_message(
    server: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    client = sdk(server)
    first_text = "Messages continuation: first"
    raw = client.messages.with_raw_response.create(
        model="sonnet",
        max_tokens=1024,
        system="You answer briefly.",
        messages=[{"role": "user", "content": first_text}],
    )
    first = raw.parse()
    assert first.type == "message"
    assert first.id.startswith("msg_")
    assert first.stop_reason == "end_turn"
    assert [block.type for block in first.content] == ["text"]
    assert first.content[0].text == f"echo: {first_text}"  # type: ignore[union-attr]
    assert first.usage.output_tokens > 0
    assert plan_of(server, raw.headers["x-request-id"]) == "NEW"

    raw = client.messages.with_raw_response.create(
        model="sonnet",
        max_tokens=1024,
        system="You answer briefly.",
        messages=[
            {"role": "user", "content": first_text},
            first.to_param(),
            {"role": "user", "content": "Messages continuation: second"},
        ],
    )
    second = raw.parse()
    assert second.content[0].text == "echo: Messages continuation: second"  # type: ignore[union-attr]
    assert plan_of(server, raw.headers["x-request-id"]) == "CONTINUE"
    # The CLI was given the new message alone, not a transcript of the conversation.
    assert user_texts(fake_upstream.message_requests[-1]) == ["Messages continuation: second"]


def test_stream_is_assembled_by_the_sdk_with_thinking(server: ServerProcess) -> None:
    client = sdk(server)
    prompt = "Messages stream [[thinking]]"
    with client.messages.stream(
        model="sonnet",
        max_tokens=2048,
        thinking={"type": "adaptive"},
        messages=[{"role": "user", "content": prompt}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == f"echo: {prompt}"
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "Let me think about this."  # type: ignore[union-attr]
    assert final.content[1].text == text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_tool_use_round_trip_resumes_the_same_cli_turn(
    server: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    client = sdk(server)
    spawned = backend_details(server)["spawned"]
    question = {
        "role": "user",
        "content": "Messages tools: Paris? " + call("get_weather", {"city": "Paris"}),
    }
    with client.messages.stream(
        model="sonnet",
        max_tokens=1024,
        tools=[WEATHER, {"type": "web_search_20250305", "name": "web_search"}],  # type: ignore[list-item]
        messages=[question],  # type: ignore[list-item]
    ) as stream:
        first = stream.get_final_message()
        headers = stream.response.headers
    assert first.stop_reason == "tool_use"
    [tool_use] = [block for block in first.content if block.type == "tool_use"]
    assert tool_use.id.startswith("toolu_")
    assert (tool_use.name, tool_use.input) == ("get_weather", {"city": "Paris"})
    assert headers["x-ignored-tools"] == "web_search_20250305"
    assert client_tools_offered(fake_upstream.message_requests[-1]) == ["get_weather"]
    [suspended] = [p for p in backend_details(server)["live"] if p["state"] == "suspended"]

    raw = client.messages.with_raw_response.create(
        model="sonnet",
        max_tokens=1024,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[
            question,  # type: ignore[list-item]
            first.to_param(),
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": tool_use.id,
                        # An image in a result (a map, a screenshot, a file Claude Code
                        # reads) stays in it, and the CLI turn still takes it.
                        "content": [{"type": "text", "text": "18C and sunny"}, MAP],
                    },
                    # Text beside the results (as Claude Code sends) goes into the same turn.
                    {"type": "text", "text": "Keep it short."},
                ],
            },
        ],
    )
    final = raw.parse()
    assert final.stop_reason == "end_turn"
    assert plan_of(server, raw.headers["x-request-id"]) == "CONTINUE"
    details = backend_details(server)
    assert details["spawned"] == spawned + 1  # one process for both requests
    [resumed] = [p for p in details["live"] if p["session_id"] == suspended["session_id"]]
    assert resumed["pid"] == suspended["pid"]
    # The model got the result as the tool_result of its own call, in the same session,
    # with the text after it as a block of its own.
    [result] = result_blocks(fake_upstream.message_requests[-1])
    assert result["tool_use_id"] == tool_use.id
    first_block, image, *cli_notes, last = result["content"]
    assert first_block == {"type": "text", "text": "18C and sunny"}
    assert image == {"type": "image", "source": MAP["source"]}  # inside the tool_result
    # The CLI adds where it saved the image on its own disk; nothing else comes between.
    assert [note["text"].startswith("[Image: source: ") for note in cli_notes] == [True]
    assert last == {"type": "text", "text": "Keep it short."}


def result_blocks(request: Any) -> list[dict[str, Any]]:
    """The tool_result blocks of an upstream request's last user message, as sent."""
    content = request.body["messages"][-1]["content"]
    return [block for block in content if block.get("type") == "tool_result"]


def test_a_bad_request_is_raised_by_the_sdk_as_anthropic_s_error(server: ServerProcess) -> None:
    client = sdk(server)
    with pytest.raises(anthropic.BadRequestError) as caught:
        # The low-level call: the SDK's own create() would not send it without max_tokens.
        client.post(
            "/v1/messages",
            cast_to=anthropic.types.Message,
            body={"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]},
        )
    error = caught.value
    assert error.status_code == 400
    assert isinstance(error.body, dict)
    assert error.body["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }
    assert json.loads(error.response.text)["type"] == "error"
