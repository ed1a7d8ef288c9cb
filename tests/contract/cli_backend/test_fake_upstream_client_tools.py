"""The fake upstream's client-tool markers, driven end to end through the real CLI.

A hand-rolled SDK MCP server (answering the CLI's `mcp_message` control requests on its
stdin) serves two client tools; the fake upstream's markers make the model call them.
This pins that the markers work as the backend's tests will use them: the CLI offers the
tools as `mcp__client__NAME`, calls them by their own name, and feeds the results back.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from typing import Any

from tests.support.fake_upstream import FakeAnthropic

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS = [
    {"name": "get_weather", "description": "Weather in a city", "inputSchema": SCHEMA},
    {
        "name": "get_time",
        "description": "Time in a zone",
        "inputSchema": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
]
MCP_CONFIG = {"mcpServers": {"client": {"type": "sdk", "name": "client"}}}
Answer = Callable[[str, dict[str, Any]], dict[str, Any]]


def answer_to(message: dict[str, Any], answer: Answer) -> dict[str, Any] | None:
    """The JSON-RPC result for one MCP message from the CLI (None for a notification)."""
    if "id" not in message:
        return None
    method = message.get("method")
    if method == "initialize":
        return {
            "protocolVersion": message["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "client", "version": "1"},
        }
    if method == "tools/list":
        return {"tools": TOOLS}
    params = message["params"]
    return answer(params["name"], params["arguments"])


async def one_turn(
    claude_bin: str, cli_env: dict[str, str], prompt: str, answer: Answer
) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """Run one turn; return its result event and the (name, arguments) of each tools/call."""
    env = {k: v for k, v in os.environ.items() if k != "CLAUDECODE"} | cli_env
    process = await asyncio.create_subprocess_exec(
        claude_bin,
        *("-p", "--input-format", "stream-json", "--output-format", "stream-json"),
        *("--verbose", "--tools", "", "--model", "sonnet"),
        *("--mcp-config", json.dumps(MCP_CONFIG)),
        *("--allowedTools", "mcp__client__get_weather,mcp__client__get_time"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
        cwd=cli_env["HOME"],
    )
    assert process.stdin is not None
    assert process.stdout is not None

    def send(line: dict[str, Any]) -> None:
        assert process.stdin is not None
        process.stdin.write((json.dumps(line) + "\n").encode())

    initialize = {"subtype": "initialize", "hooks": None, "sdkMcpServers": ["client"]}
    send({"type": "control_request", "request_id": "init", "request": initialize})
    send({"type": "user", "message": {"role": "user", "content": prompt}})
    calls: list[tuple[str, Any]] = []
    try:
        async with asyncio.timeout(60):
            while line := await process.stdout.readline():
                event = json.loads(line)
                if event.get("type") == "result":
                    return event, calls
                request = event.get("request", {})
                if (
                    event.get("type") != "control_request"
                    or request.get("subtype") != "mcp_message"
                ):
                    continue
                message = request["message"]
                if message.get("method") == "tools/call":
                    calls.append((message["params"]["name"], message["params"]["arguments"]))
                result = answer_to(message, answer)
                reply = {"jsonrpc": "2.0", "result": result or {}}
                if "id" in message:
                    reply["id"] = message["id"]
                response = {"mcp_response": reply}
                send(
                    {
                        "type": "control_response",
                        "response": {
                            "subtype": "success",
                            "request_id": event["request_id"],
                            "response": response,
                        },
                    }
                )
        raise AssertionError("the CLI ended the turn without a result")
    finally:
        process.stdin.close()
        if process.returncode is None:
            process.kill()
        await process.wait()


def text(value: str, *, error: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {"content": [{"type": "text", "text": value}]}
    if error:
        result["isError"] = True
    return result


async def test_parallel_calls_with_generated_input_reach_the_client_and_come_back(
    claude_bin: str, cli_env: dict[str, str], fake_upstream: FakeAnthropic
) -> None:
    def answer(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        if name == "get_weather":
            return text(f"sunny in {arguments['city']}")
        return text("no clock", error=True)

    prompt = '[[say:Checking.]] [[call:get_weather]] [[call:get_time:{"zone": "UTC"}]]'
    result, calls = await one_turn(claude_bin, cli_env, prompt, answer)

    assert calls == [("get_weather", {"city": "example"}), ("get_time", {"zone": "UTC"})]
    assert result["result"] == "tool result seen: sunny in example | error: no clock"
    first, second = fake_upstream.message_requests
    assert {"mcp__client__get_weather", "mcp__client__get_time"} <= set(
        FakeAnthropic.offered_tools(first)
    )
    assert [(r["text"], r["is_error"]) for r in FakeAnthropic.tool_results(second)] == [
        ("sunny in example", False),
        ("no clock", True),
    ]


async def test_a_tool_result_scripts_the_next_call_of_an_agent_loop(
    claude_bin: str, cli_env: dict[str, str], fake_upstream: FakeAnthropic
) -> None:
    def answer(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        if name == "get_weather":
            return text('rain [[call:get_time:{"zone": "CET"}]]')
        return text(f"noon {arguments['zone']}")

    prompt = 'Call the `mcp__client__get_weather` tool. [[args:{"city": "Paris"}]]'
    result, calls = await one_turn(claude_bin, cli_env, prompt, answer)

    assert calls == [("get_weather", {"city": "Paris"}), ("get_time", {"zone": "CET"})]
    assert result["result"] == "tool result seen: noon CET"
    assert len(fake_upstream.message_requests) == 3
