"""Request bodies: admitted against a budget before they are read, and never left to stall."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from litestar.types import Receive, Scope, Send

from claude_max_api.bootstrap import http_app
from claude_max_api.settings import Settings
from proxy_core import ChatService, FakeRunner, InMemorySessionStore
from proxy_http.bodies import BodyBudget, BodyGuard, budget_limit
from proxy_http.config import HttpOptions
from proxy_http.errors import RequestRefused

Messages = list[dict[str, Any]]


def http_scope(headers: dict[str, str], method: str = "POST") -> Scope:
    return {  # type: ignore[return-value]
        "type": "http",
        "method": method,
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1234),
        "http_version": "1.1",
        "asgi": {"version": "3.0"},
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "state": {},
    }


def body_messages(*chunks: bytes, then_stall: bool = False) -> tuple[Receive, list[int]]:
    """A `receive` giving `chunks` (the last one ends the body unless `then_stall`)."""
    calls: list[int] = []

    async def receive() -> dict[str, Any]:
        calls.append(1)
        index = len(calls) - 1
        if index < len(chunks):
            more = then_stall or index < len(chunks) - 1
            return {"type": "http.request", "body": chunks[index], "more_body": more}
        if then_stall:
            await asyncio.Event().wait()
        await asyncio.Event().wait()  # after the body: a client that stays connected
        raise AssertionError("unreachable")

    return receive, calls  # type: ignore[return-value]


def recorder() -> tuple[Send, Messages]:
    sent: Messages = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    return send, sent  # type: ignore[return-value]


def reading_app(
    seen: Callable[[], None] = lambda: None,
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """An ASGI app that reads the whole body, then answers 200 with its length."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")  # type: ignore[operator]
            if not message.get("more_body"):
                break
        seen()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(len(body)).encode()})

    return app


def guard(app: Any, budget: BodyBudget, timeout: float = 5.0) -> BodyGuard:
    return BodyGuard(app, budget=budget, max_body_bytes=100, timeout=timeout, retry_after=2)


def error_of(sent: Messages) -> tuple[int, dict[str, str], dict[str, Any]]:
    start = sent[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    return start["status"], headers, body["error"]


async def test_a_body_holds_its_bytes_until_its_response_is_sent() -> None:
    budget = BodyBudget(150)
    held: list[int] = []
    receive, _ = body_messages(b"x" * 60)
    send, sent = recorder()
    await guard(reading_app(lambda: held.append(budget.in_flight)), budget)(
        http_scope({"content-length": "60"}), receive, send
    )
    assert held == [60]
    assert sent[0]["status"] == 200
    assert budget.in_flight == 0


async def test_a_content_length_beyond_the_budget_gets_503_before_a_byte_is_read() -> None:
    budget = BodyBudget(150)
    assert budget.reserve(100)  # another request's body
    receive, calls = body_messages(b"x" * 60)
    send, sent = recorder()
    called: list[int] = []
    await guard(reading_app(lambda: called.append(1)), budget)(
        http_scope({"content-length": "60"}), receive, send
    )
    status, headers, error = error_of(sent)
    assert (status, error["code"], error["type"]) == (
        503,
        "server_busy",
        "service_unavailable_error",
    )
    assert headers["retry-after"] == "2"
    assert headers["connection"] == "close"  # the body is never read
    assert calls == []
    assert called == []
    assert budget.in_flight == 100


async def test_the_bytes_come_back_when_the_app_fails() -> None:
    budget = BodyBudget(150)

    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        raise RuntimeError("boom")

    receive, _ = body_messages(b"x" * 60)
    send, _ = recorder()
    with pytest.raises(RuntimeError):
        await guard(failing, budget)(http_scope({"content-length": "60"}), receive, send)
    assert budget.in_flight == 0


async def test_the_bytes_come_back_when_the_request_is_cancelled() -> None:
    budget = BodyBudget(150)
    reading = asyncio.Event()

    async def receive() -> dict[str, Any]:
        reading.set()
        await asyncio.Event().wait()  # a client that announced 60 bytes and sends none
        raise AssertionError("unreachable")

    send, _ = recorder()
    task = asyncio.create_task(
        guard(reading_app(), budget)(http_scope({"content-length": "60"}), receive, send)  # type: ignore[arg-type]
    )
    await reading.wait()
    assert budget.in_flight == 60
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert budget.in_flight == 0


async def test_a_chunked_body_is_counted_as_it_arrives_and_refused_past_the_budget() -> None:
    budget = BodyBudget(100)
    counts: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            await receive()
            counts.append(budget.in_flight)

    receive, _ = body_messages(b"x" * 40, b"y" * 40, b"z" * 40)
    send, _ = recorder()
    with pytest.raises(RequestRefused) as refused:
        await guard(app, budget)(http_scope({"transfer-encoding": "chunked"}), receive, send)
    assert counts == [40, 80]
    assert refused.value.status == 503
    assert refused.value.headers["Connection"] == "close"
    assert budget.in_flight == 0


async def test_a_stalled_body_raises_a_408_refusal() -> None:
    budget = BodyBudget(150)
    receive, _ = body_messages(b"x" * 10, then_stall=True)
    send, _ = recorder()
    with pytest.raises(RequestRefused) as refused:
        await guard(reading_app(), budget, timeout=0.05)(
            http_scope({"content-length": "60"}), receive, send
        )
    assert refused.value.status == 408
    assert refused.value.body.error.code == "request_timeout"
    assert budget.in_flight == 0


async def test_after_the_body_the_wait_for_a_disconnect_has_no_deadline() -> None:
    budget = BodyBudget(150)
    outcome: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()  # the whole body
        try:
            await asyncio.wait_for(receive(), 0.2)
        except TimeoutError:  # ours, not the guard's 0.01 s one
            outcome.append("still waiting")

    receive, _ = body_messages(b"x" * 10)
    send, _ = recorder()
    await guard(app, budget, timeout=0.01)(http_scope({"content-length": "10"}), receive, send)
    assert outcome == ["still waiting"]


async def test_a_request_without_a_body_is_passed_through_untouched() -> None:
    budget = BodyBudget(0)
    seen: list[object] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(receive)

    receive, _ = body_messages()
    send, _ = recorder()
    await guard(app, budget)(http_scope({}, method="GET"), receive, send)
    assert seen == [receive]


def test_the_budget_defaults_to_four_bodies_and_never_holds_less_than_one() -> None:
    assert budget_limit(HttpOptions(max_body_bytes=1000)) == 4000
    assert budget_limit(HttpOptions(max_body_bytes=1000, max_body_bytes_in_flight=2500)) == 2500
    assert budget_limit(HttpOptions(max_body_bytes=1000, max_body_bytes_in_flight=10)) == 1000


# -- through the app: the refusals are OpenAI errors and close the connection ----------


def app_under_test(**settings: Any) -> Any:
    return http_app(
        ChatService(FakeRunner(), InMemorySessionStore()), Settings.from_values(**settings)
    )


async def test_the_app_answers_a_stalled_body_with_408_and_closes() -> None:
    receive, _ = body_messages(b'{"model": "sonnet", ', then_stall=True)
    send, sent = recorder()
    scope = http_scope({"content-length": "200", "content-type": "application/json"})
    await app_under_test(body_timeout=0.05)(scope, receive, send)
    status, headers, error = error_of(sent)
    assert status == 408
    assert (error["type"], error["code"]) == ("invalid_request_error", "request_timeout")
    assert "body" in error["message"]
    assert headers["connection"] == "close"


async def test_the_app_refuses_an_oversized_content_length_before_reading_it() -> None:
    receive, calls = body_messages(b"x" * 1000)
    send, sent = recorder()
    scope = http_scope({"content-length": "1000", "content-type": "application/json"})
    await app_under_test(max_body_bytes=100)(scope, receive, send)
    status, headers, error = error_of(sent)
    assert (status, error["code"]) == (413, "request_too_large")
    assert headers["connection"] == "close"
    assert calls == []


@pytest.mark.parametrize("value", ["-5", "abc", ""])
async def test_a_content_length_that_is_no_size_reserves_nothing(value: str) -> None:
    budget = BodyBudget(150)
    held: list[int] = []
    receive, _ = body_messages(b"x" * 10)
    send, _ = recorder()
    await guard(reading_app(lambda: held.append(budget.in_flight)), budget)(
        http_scope({"content-length": value}), receive, send
    )
    assert held == [0]
    assert budget.in_flight == 0
