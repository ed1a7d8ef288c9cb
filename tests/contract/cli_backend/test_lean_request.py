"""The upstream request carries no more than the CLI must send (issue 16, point 9).

With the CLI's default system prompt (no client system prompt), the proxy passes
`--exclude-dynamic-system-prompt-sections`: the per-machine file-memory section (it
names $HOME and the working directory) leaves the system prompt, and so does a line
about the CLI's interactive `/fast` command. With a tool set that cannot write files,
the file-memory section (which asks for the Write tool) is not sent at all. What the
model is asked stays the same: same replies, and each turn's request extends the
previous one, so the upstream's prompt cache keeps serving the prefix.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from proxy_cli_backend.config import CliRunnerConfig
from proxy_cli_backend.live_runner import LiveCliRunner, LiveConfig
from proxy_cli_backend.runner import ClaudeCliRunner
from proxy_core import ChatService, InMemorySessionStore
from tests.contract.cli_backend.conftest import Chat
from tests.support.fake_upstream import FakeAnthropic, RecordedRequest

MEMORY = "persistent file-based memory"  # the memory section's opening words
FAST_MODE = "/fast"  # the line about the interactive fast mode

ServiceFactory = Callable[..., Awaitable[ChatService]]


@pytest.fixture
async def make_service(
    claude_bin: str, cli_env: dict[str, str], tmp_path: Path
) -> AsyncIterator[ServiceFactory]:
    """Services over a live or a spawn-per-turn runner with a tools profile."""
    services: list[ChatService] = []

    async def factory(*, live: bool, tools: str) -> ChatService:
        config = CliRunnerConfig(
            cli_path=claude_bin,
            state_dir=str(tmp_path / "state"),
            extra_env=cli_env,
            tools=tools,
            allow_root_tools=True,  # the `full` profile in a root container
            first_event_timeout=30.0,
            idle_timeout=30.0,
            total_timeout=60.0,
        )
        runner = LiveCliRunner(config, LiveConfig(pool_size=0)) if live else ClaudeCliRunner(config)
        await runner.start()
        service = ChatService(runner, InMemorySessionStore())
        services.append(service)
        return service

    yield factory
    for service in services:
        await service.aclose()


def system_text(request: RecordedRequest) -> str:
    return "\n".join(block["text"] for block in request.body["system"])


def as_cached(value: Any) -> Any:
    """What the prompt cache compares: no cache marks (they move turn by turn), and a
    string content as the one text block it stands for."""
    if isinstance(value, dict):
        if isinstance(value.get("content"), str):
            value = {**value, "content": [{"type": "text", "text": value["content"]}]}
        return {k: as_cached(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [as_cached(v) for v in value]
    return value


def extends(earlier: RecordedRequest, later: RecordedRequest) -> bool:
    a, b = as_cached(earlier.body), as_cached(later.body)
    head = b["messages"][: len(a["messages"])]
    return (a["system"], a.get("tools"), a["messages"]) == (b["system"], b.get("tools"), head)


@pytest.mark.parametrize(
    ("live", "tools"),
    [(True, "none"), (False, "none"), (True, "full")],
    ids=["live-none", "spawn-per-turn-none", "live-full"],
)
async def test_the_default_system_prompt_goes_without_its_dynamic_sections(
    make_service: ServiceFactory,
    fake_upstream: FakeAnthropic,
    cli_env: dict[str, str],
    live: bool,
    tools: str,
) -> None:
    service = await make_service(live=live, tools=tools)
    chat = Chat(service, "lean")
    assert await chat.say("first") == "echo: first"
    assert await chat.say("second") == "echo: second"
    first, second = fake_upstream.message_requests
    for request in (first, second):
        system = system_text(request)
        assert MEMORY not in system
        assert FAST_MODE not in system
        # Nothing of this machine's paths: the system prompt is the same everywhere.
        assert cli_env["HOME"] not in system
        # The CLI's file memory, shared by every conversation here, is off.
        assert MEMORY not in json.dumps(request.body)
    assert extends(first, second)
