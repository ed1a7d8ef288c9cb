"""A turn's SSE response is written in the request's own task, with the headers a
`Stream` has, and its body is closed however the writing ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from litestar import Litestar, Request, get
from litestar.testing import TestClient
from litestar.types import Message

from proxy_http.turn_stream import TurnStream


class Body:
    """An SSE body that notes the task that reads it and whether it was closed."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks
        self.tasks: set[asyncio.Task[Any] | None] = set()
        self.closed = False

    async def __call__(self) -> AsyncGenerator[bytes, None]:
        try:
            for chunk in self.chunks:
                self.tasks.add(asyncio.current_task())
                yield chunk
        finally:
            self.closed = True


def scope() -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": "/", "headers": [], "app": None}


async def never_disconnects() -> Message:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def test_the_body_is_written_in_the_callers_task_in_order_then_ended() -> None:
    body = Body(b"data: one\n\n", b"data: two\n\n")
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    stream = TurnStream(body(), media_type="text/event-stream", headers={"X-Session-Id": "k"})
    request: Request[Any, Any, Any] = Request(scope())
    response = stream.to_asgi_response(None, request)
    await response(scope(), never_disconnects, send)
    assert body.tasks == {asyncio.current_task()}
    chunks = [(m["body"], m["more_body"]) for m in sent[1:]]
    assert chunks == [(b"data: one\n\n", True), (b"data: two\n\n", True), (b"", False)]
    assert body.closed


async def test_a_write_that_fails_closes_the_body_and_raises() -> None:
    body = Body(b"data: one\n\n", b"data: two\n\n", b"data: three\n\n")

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            raise OSError("the connection broke")

    stream = TurnStream(body(), media_type="text/event-stream")
    response = stream.to_asgi_response(None, Request(scope()))
    with pytest.raises(OSError, match="the connection broke"):
        await response(scope(), never_disconnects, send)
    assert body.closed  # its `finally` ran: a turn's body ends the turn there


def test_the_response_has_the_headers_a_stream_has() -> None:
    @get("/turn")
    async def turn() -> TurnStream:
        return TurnStream(
            Body(b"data: one\n\n")(), media_type="text/event-stream", headers={"X-Mine": "1"}
        )

    with TestClient(Litestar([turn])) as client:
        response = client.get("/turn")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["x-mine"] == "1"
    assert response.text == "data: one\n\n"
