"""A suspended turn that is ended costs nothing more: its CLI never goes on with the turn.

The real CLI against the fake upstream, through the service: a reply that calls a client
tool suspends its CLI turn; whatever ends that turn without the client's result (the
conversation forgotten, its expiry, a spawn-per-turn process's end) must not let the
CLI send the upstream another request, which would be paid for and read by nobody.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proxy_cli_backend.config import CliRunnerConfig
from proxy_cli_backend.runner import ClaudeCliRunner
from proxy_core import ChatRequest, ChatService, InMemorySessionStore, LiveDetails
from tests.contract.cli_backend.conftest import wait_for
from tests.support.fake_upstream import FakeAnthropic

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"key": {"type": "string"}}},
        },
    }
]
ASK = 'look it up [[call:lookup:{"key": "k"}]]'


def request(key: str) -> ChatRequest:
    return ChatRequest(
        model="sonnet",
        messages=[{"role": "user", "content": ASK}],
        session_id=key,
        tools=TOOLS,
    )


def suspended(service: ChatService) -> int:
    details = service.backend_status().details
    assert isinstance(details, LiveDetails)
    return details.suspended_turns


def live_count(service: ChatService) -> int:
    details = service.backend_status().details
    assert isinstance(details, LiveDetails)
    return details.live_processes


async def quiet_after(fake: FakeAnthropic, count: int) -> None:
    """Long enough for a CLI that went on with its turn to have asked the upstream."""
    await asyncio.sleep(1.5)
    assert len(fake.message_requests) == count, [r.user_text for r in fake.message_requests]


async def test_forgetting_a_conversation_ends_its_suspended_turn_without_another_request(
    make_live_service: Callable[..., Any], fake_upstream: FakeAnthropic
) -> None:
    service = await make_live_service()
    reply = await service.complete(request("forgotten"))
    assert reply.tool_calls
    assert reply.stop_reason == "tool_use"
    assert suspended(service) == 1
    sent = len(fake_upstream.message_requests)

    assert await service.forget_session(reply.session_key) is not None

    await wait_for(lambda: suspended(service) == 0 and live_count(service) == 0)
    await quiet_after(fake_upstream, sent)


async def test_an_expired_suspended_turn_ends_without_another_request(
    make_live_service: Callable[..., Any], fake_upstream: FakeAnthropic
) -> None:
    service = await make_live_service(suspended_timeout=0.5)
    reply = await service.complete(request("expiring"))
    assert reply.tool_calls
    sent = len(fake_upstream.message_requests)

    await wait_for(lambda: suspended(service) == 0)
    await quiet_after(fake_upstream, sent)


async def test_a_process_per_turn_ends_at_the_calls_without_another_request(
    claude_bin: str, cli_env: dict[str, str], tmp_path: Path, fake_upstream: FakeAnthropic
) -> None:
    config = CliRunnerConfig(
        cli_path=claude_bin, state_dir=str(tmp_path / "state"), extra_env=cli_env
    )
    runner = ClaudeCliRunner(config)
    await runner.start()
    service = ChatService(runner, InMemorySessionStore())
    try:
        reply = await service.complete(request("per-turn"))
        assert reply.tool_calls
        sent = len(fake_upstream.message_requests)
        await wait_for(lambda: runner.status().active_processes == 0)
        await quiet_after(fake_upstream, sent)
    finally:
        await service.aclose()
