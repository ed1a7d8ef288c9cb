"""Helpers for the client-tool contract tests: a `serve` over the real CLI and the fake
upstream, the tool definitions they offer, and what to read back from the server
(its request log lines, its live CLI processes) and from the fake (the tools a
request offered the model)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.fake_upstream import FakeAnthropic, RecordedRequest
from tests.support.server import ServerProcess, cli_server_env

CLIENT_PREFIX = "mcp__client__"
"""How the model sees a client tool (the CLI's name for the proxy's MCP server's tools)."""


def function_tool(name: str, description: str, **properties: str) -> dict[str, Any]:
    """An OpenAI `tools` entry whose parameters are the given string properties, all
    required."""
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {key: {"type": kind} for key, kind in properties.items()},
                "required": list(properties),
            },
        },
    }


WEATHER = function_tool("get_weather", "The weather in a city.", city="string")
TIME = function_tool("get_time", "The local time in a city.", city="string")


def call(name: str, arguments: dict[str, Any] | None = None) -> str:
    """The fake upstream's marker for one call of the offered client tool `name` (with
    `arguments`, else arguments generated from its schema); several make parallel calls."""
    if arguments is None:
        return f"[[call:{name}]]"
    return f"[[call:{name}:{json.dumps(arguments)}]]"


@contextmanager
def tools_server(
    root: Path, claude_bin: str, fake: FakeAnthropic, **settings: str
) -> Iterator[ServerProcess]:
    """A `serve` subprocess over the real CLI and `fake`, its log in `root`/server.log."""
    root.mkdir(parents=True, exist_ok=True)
    env = cli_server_env(root, claude_bin, fake.base_url, **settings)
    with ServerProcess(env=env, log_path=root / "server.log") as server:
        yield server


def log_line(server: ServerProcess, request_id: str, within: float = 5.0) -> str:
    """The server's access-log line for `request_id` (waiting briefly for it)."""
    assert server.log_path is not None
    deadline = time.monotonic() + within
    while True:
        text = server.log_path.read_text(errors="replace")
        lines = [ln for ln in text.splitlines() if f"request_id={request_id}" in ln]
        if lines or time.monotonic() > deadline:
            assert lines, f"no log line for {request_id}:\n{text[-3000:]}"
            return lines[-1]
        time.sleep(0.05)


def plan_of(server: ServerProcess, request_id: str) -> str:
    """The plan kind (NEW, CONTINUE, ...) the server logged for a request."""
    found = re.search(r"\bplan=(\w+)", log_line(server, request_id))
    assert found, f"no plan in the log line of {request_id}"
    return found.group(1)


def backend_details(server: ServerProcess) -> dict[str, Any]:
    """/health's backend details (live processes, counters)."""
    health = httpx.get(server.base_url + "/health", timeout=10).json()
    details: dict[str, Any] = health["backend"]["details"]
    return details


def client_tools_offered(request: RecordedRequest) -> list[str]:
    """The client's own names of the client tools one upstream request offered."""
    names = FakeAnthropic.offered_tools(request)
    return [n[len(CLIENT_PREFIX) :] for n in names if n.startswith(CLIENT_PREFIX)]


def tool_results_in(request: RecordedRequest) -> dict[str, str]:
    """The tool_result blocks of a request's last user message: tool_use id -> text."""
    return {r["tool_use_id"]: r["text"] for r in FakeAnthropic.tool_results(request)}
