"""Fixtures for the live-process contract tests: a LiveCliRunner behind a ChatService."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from proxy_cli_backend.config import CliRunnerConfig
from proxy_cli_backend.live_runner import LiveCliRunner, LiveConfig
from proxy_core import ChatRequest, ChatService, Effort, InMemorySessionStore, LiveDetails


@pytest.fixture
async def make_live(
    claude_bin: str, cli_env: dict[str, str], tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    """Build and start LiveCliRunners on the fake upstream (pool off unless asked); all
    closed after."""
    runners: list[LiveCliRunner] = []

    async def factory(effort: Effort | None = None, **live: Any) -> LiveCliRunner:
        config = CliRunnerConfig(
            effort=effort,
            cli_path=claude_bin,
            state_dir=str(tmp_path / "state"),
            extra_env=cli_env,
            first_event_timeout=30.0,
            idle_timeout=30.0,
            total_timeout=60.0,
            kill_grace=2.0,
        )
        runner = LiveCliRunner(config, LiveConfig(**{"pool_size": 0, **live}))
        await runner.start()
        runners.append(runner)
        return runner

    yield factory
    for runner in runners:
        await runner.aclose()


@pytest.fixture
async def make_live_service(
    make_live: Callable[..., Any],
) -> AsyncIterator[Callable[..., Any]]:
    """Build and start services over a LiveCliRunner (pool off unless asked); all closed after."""
    services: list[ChatService] = []

    async def factory(effort: Effort | None = None, **live: Any) -> ChatService:
        service = ChatService(await make_live(effort, **live), InMemorySessionStore())
        services.append(service)
        return service

    yield factory
    for service in services:
        await service.aclose()


def live_runner(service: ChatService) -> LiveCliRunner:
    runner = service.runner
    assert isinstance(runner, LiveCliRunner)
    return runner


def live_pids(service: ChatService) -> dict[str, int]:
    """Session id -> pid of every live process (the list /health shows)."""
    details = service.backend_status().details
    assert isinstance(details, LiveDetails)
    return {entry.session_id: entry.pid for entry in details.live}


async def wait_for(predicate: Callable[[], bool], within: float = 30.0) -> None:
    """Poll until `predicate()` holds; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within}s")
        await asyncio.sleep(0.05)


class Chat:
    """One client conversation: keeps the messages and sends each turn with its history."""

    def __init__(self, service: ChatService, key: str, model: str = "sonnet") -> None:
        self.service = service
        self.key = key
        self.model = model
        self.effort: str | None = None  # the request's reasoning_effort
        self.response_format: dict[str, object] | None = None
        self.stop: list[str] | None = None
        self.messages: list[dict[str, str]] = []
        self.session_key: str | None = None

    def request(self, text: str) -> ChatRequest:
        return ChatRequest(
            model=self.model,
            messages=[*self.messages, {"role": "user", "content": text}],
            session_id=self.key,
            reasoning_effort=self.effort,
            response_format=self.response_format,
            stop=self.stop,
        )

    async def say(self, text: str) -> str:
        """Send `text` as the next user message; return the reply (kept in the history)."""
        completion = await self.service.complete(self.request(text))
        self.session_key = completion.session_key
        self.messages += [
            {"role": "user", "content": text},
            {"role": "assistant", "content": completion.text},
        ]
        return completion.text

    async def cli_session(self) -> str:
        assert self.session_key is not None, "no turn yet"
        record = await self.service.store.get(self.session_key)
        assert record is not None
        return record.cli_session_id
