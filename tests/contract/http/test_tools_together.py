"""Client tools together with the rest: the built-in tools profile, images, reasoning
effort, stop sequences, streaming and response_format.

The openai SDK -> `python -m proxy_http serve` -> the real claude CLI -> the fake
Anthropic upstream, on 127.0.0.1. The fake calls a tool when the user text (or a tool
result) holds `[[call:NAME:JSON]]`, and answers tool results with `tool result seen: ...`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.contract.http.test_end_to_end import PIXEL
from tests.support.fake_upstream import FakeAnthropic
from tests.support.server import ServerProcess, cli_server_env


def tool(name: str) -> dict[str, Any]:
    parameters = {"type": "object", "properties": {"path": {"type": "string"}}}
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


@pytest.fixture(scope="module")
def proxy(
    claude_bin: str, fake_upstream_server: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server whose CLI also has built-in tools (the read-only profile)."""
    root = tmp_path_factory.mktemp("tools-together")
    env = cli_server_env(
        root, claude_bin, fake_upstream_server.base_url, CLAUDE_PROXY_TOOLS="read-only"
    )
    with ServerProcess(env=env, log_path=root / "server.log") as server:
        yield server


def sdk(proxy: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=proxy.base_url + "/v1", api_key="unused", max_retries=0, timeout=90
    )


def test_a_client_tool_named_like_a_built_in_one_is_offered_beside_it_and_called_back(
    proxy: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    asked = [{"role": "user", "content": 'read it [[call:mcp__client__Read:{"path": "/etc/hostname"}]]'}]
    reply = sdk(proxy).chat.completions.create(model="sonnet", messages=asked, tools=[tool("Read")])

    offered = fake_upstream.offered_tools(fake_upstream.message_requests[-1])
    assert {"Read", "mcp__client__Read"} <= set(offered)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "Read"
    assert json.loads(call.function.arguments) == {"path": "/etc/hostname"}
    # The model called the client's tool by its prefixed name: the built-in did not run.
    assert not fake_upstream.tool_results(fake_upstream.message_requests[-1])


def test_tools_work_with_an_image_reasoning_effort_a_stop_sequence_and_streaming(
    proxy: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    content = [
        {"type": "text", "text": 'look [[say:Checking.]] [[call:mcp__client__Read:{"path": "a.png"}]]'},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
    ]
    chunks = list(
        sdk(proxy).chat.completions.create(
            model="sonnet",
            messages=[{"role": "user", "content": content}],
            tools=[tool("Read")],
            reasoning_effort="low",
            stop=["NEVER-SEEN"],
            stream=True,
        )
    )

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert text == "Checking."
    assert calls[0].id
    assert calls[0].function is not None
    assert calls[0].function.name == "Read"
    arguments = "".join(tc.function.arguments or "" for tc in calls if tc.function)
    assert json.loads(arguments) == {"path": "a.png"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    upstream = fake_upstream.message_requests[-1].body
    users = [m for m in upstream["messages"] if m["role"] == "user"]
    assert any(block.get("type") == "image" for block in users[-1]["content"])


def test_with_response_format_the_calls_come_first_and_the_final_reply_follows_the_schema(
    proxy: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temp": {"type": "integer"}},
        "required": ["city", "temp"],
    }
    response_format: Any = {"type": "json_schema", "json_schema": {"name": "w", "schema": schema}}
    client = sdk(proxy)
    history: list[Any] = [{"role": "user", "content": 'weather? [[call:mcp__client__Read:{"path": "paris"}]]'}]
    first = client.chat.completions.create(
        model="sonnet", messages=history, tools=[tool("Read")], response_format=response_format
    )
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    assert message.content is None
    (call,) = message.tool_calls or []
    # The tool's result leads the (fake) model to give its structured answer.
    result = '21 degrees [[call:StructuredOutput:{"city": "Paris", "temp": 21}]]'
    history += [
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": result},
    ]
    final = client.chat.completions.create(
        model="sonnet", messages=history, tools=[tool("Read")], response_format=response_format
    )

    assert final.choices[0].finish_reason == "stop", final
    assert json.loads(final.choices[0].message.content or "") == {"city": "Paris", "temp": 21}
