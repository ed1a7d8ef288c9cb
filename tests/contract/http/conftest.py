"""Fixtures for the HTTP contract: the app over a scripted FakeRunner, live on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack

import openai
import pytest

from claude_max_api.settings import Settings
from proxy_core import (
    ChatService,
    Event,
    Failed,
    FailureReason,
    FakeRunner,
    Finished,
    ModelCatalog,
    ServiceLimits,
    TextDelta,
    TurnPlan,
    Usage,
)
from tests.support.server import LiveServer, live_fake_server

MakeServer = Callable[..., tuple[LiveServer, ChatService, FakeRunner]]


@pytest.fixture
def make_server() -> Iterator[MakeServer]:
    """Start a live server over a FakeRunner; every one started is stopped at the end."""
    with ExitStack() as stack:

        def make(
            script: Callable[[TurnPlan], Sequence[Event]] | None = None,
            *,
            delay: float = 0.0,
            settings: Settings | None = None,
            limits: ServiceLimits | None = None,
            catalog: ModelCatalog | None = None,
        ) -> tuple[LiveServer, ChatService, FakeRunner]:
            runner = FakeRunner(script, delay=delay) if script else FakeRunner(delay=delay)
            server, service = stack.enter_context(
                live_fake_server(runner, settings, limits=limits, catalog=catalog)
            )
            return server, service, runner

        yield make


@pytest.fixture
def server(make_server: MakeServer) -> LiveServer:
    """A live server over the echo FakeRunner."""
    return make_server()[0]


def sdk(server: LiveServer) -> openai.OpenAI:
    """The official client, without retries so that error statuses surface as they are."""
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)


def async_sdk(server: LiveServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)


def reply(
    *pieces: str, stop_reason: str = "end_turn", usage: Usage | None = None
) -> Callable[[TurnPlan], Sequence[Event]]:
    """A script answering every turn with `pieces` as text deltas."""

    def script(plan: TurnPlan) -> Sequence[Event]:
        return [
            *(TextDelta(p) for p in pieces),
            usage or Usage(input_tokens=7, output_tokens=3, cache_read_tokens=5),
            Finished(stop_reason, "".join(pieces), plan.cli_session_id),
        ]

    return script


def fail(
    reason: FailureReason,
    message: str = "it failed",
    *,
    after: Sequence[str] = (),
    retry_after: float | None = None,
) -> Callable[[TurnPlan], Sequence[Event]]:
    """A script that fails every turn, after streaming `after` as text."""

    def script(plan: TurnPlan) -> Sequence[Event]:
        return [*(TextDelta(p) for p in after), Failed(reason, message, retry_after=retry_after)]

    return script


USER_HI = [{"role": "user", "content": "hi"}]
