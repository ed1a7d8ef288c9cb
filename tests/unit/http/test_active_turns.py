"""Ending turns at shutdown: a stream gets an error event then [DONE]; a whole reply a 503."""

from __future__ import annotations

import asyncio
import json

import pytest

from claude_max_api.bootstrap import http_app
from claude_max_api.settings import Settings
from proxy_core import ChatError, ChatRequest, ChatService, FailureReason, FakeRunner
from proxy_core.fakes import InMemorySessionStore
from proxy_http.auth import ApiKeyMiddleware
from proxy_http.sse import ChunkRenderer
from proxy_http.streaming import ActiveTurns, collect_turn, stream_turn

MESSAGE = "The server is shutting down; retry later."


def slow_service() -> ChatService:
    return ChatService(FakeRunner(delay=30), InMemorySessionStore())


def request(text: str) -> ChatRequest:
    return ChatRequest(model="sonnet", messages=[{"role": "user", "content": text}])


async def test_an_aborted_stream_ends_with_an_error_event_then_done() -> None:
    active = ActiveTurns()
    turn = slow_service().open_turn(request("a long one"))
    stream = stream_turn(
        turn,
        ChunkRenderer("chatcmpl-1", 0, "sonnet"),
        show_thinking=False,
        keepalive_interval=5,
        hold=0,
        active=active,
    )
    chunks = [await anext(stream)]  # the marker after no hold; the turn is now in flight
    assert len(active) == 1
    assert active.abort_all(MESSAGE) == 1
    chunks += [chunk async for chunk in stream]
    *_, end = chunks  # the error event, then `[DONE]`
    error, done = end.split(b"\n\n", 1)
    assert done == b"data: [DONE]\n\n"
    body = json.loads(error.decode().removeprefix("data: "))
    assert body["error"]["message"].startswith("The server is shutting down")
    assert body["error"]["code"] == "cancelled"
    assert len(active) == 0


async def test_an_aborted_whole_reply_raises_a_cancelled_error() -> None:
    active = ActiveTurns()
    turn = slow_service().open_turn(request("another"))
    collecting = asyncio.ensure_future(collect_turn(turn, active))
    await asyncio.sleep(0.05)
    active.abort_all(MESSAGE)
    with pytest.raises(ChatError) as raised:
        await asyncio.wait_for(collecting, 5)
    assert raised.value.reason is FailureReason.CANCELLED
    assert len(active) == 0


async def test_waiting_for_idle_turns_reports_whether_they_ended() -> None:
    active = ActiveTurns()
    assert await active.wait_idle(0.01)
    turn = slow_service().open_turn(request("held"))
    collecting = asyncio.ensure_future(collect_turn(turn, active))
    await asyncio.sleep(0.05)
    assert not await active.wait_idle(0.05)
    active.abort_all(MESSAGE)
    await asyncio.gather(collecting, return_exceptions=True)
    assert await active.wait_idle(1)


def test_settings_dumps_hide_the_api_keys() -> None:
    settings = Settings.from_values(api_keys="very-secret-key", port=9000)
    assert "very-secret-key" not in repr(settings)
    assert "very-secret-key" not in str(settings)
    assert "api_keys=<hidden>" in repr(settings)


def test_the_app_checks_keys_only_when_some_are_configured() -> None:
    service = slow_service()
    # The instance header wraps the request log, which wraps the Messages API's error
    # shaping, which wraps the browser guard, which wraps the key check when there is one.
    guarded = http_app(service, Settings.from_values(api_keys="k"))
    assert isinstance(guarded.asgi_handler.app.app.app.app, ApiKeyMiddleware)  # type: ignore[attr-defined]
    open_app = http_app(service, Settings())
    assert not isinstance(open_app.asgi_handler.app.app.app.app, ApiKeyMiddleware)  # type: ignore[attr-defined]
