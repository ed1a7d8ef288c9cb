"""The guarded HTTP protocol: a deadline for request heads, a cap on open connections.

Driven through uvicorn's own protocol interface with an in-memory transport.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import uvicorn
from litestar.types import Receive, Scope, Send
from uvicorn.server import ServerState

from proxy_http.connections import GuardedH11Protocol, guarded_protocol

HEAD = b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
PATIENCE = 10.0  # generous: these wait for something that happens far sooner


class MemoryTransport:
    """What the protocol writes, and whether it closed or half-closed the connection."""

    def __init__(self) -> None:
        self.written = b""
        self.closed = False
        self.eof_written = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 3456)}.get(
            name, default
        )

    def write(self, data: bytes) -> None:
        self.written += data

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Gate:
    """An ASGI app that answers `ok` once `opened` is set (set by default)."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.opened.set()
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.requests += 1
        await self.opened.wait()
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})


def connect(
    app: Gate,
    state: ServerState,
    *,
    header_timeout: float = 0.05,
    max_connections: int = 0,
) -> tuple[GuardedH11Protocol, MemoryTransport]:
    protocol_class = guarded_protocol(
        header_timeout=header_timeout, max_connections=max_connections, retry_after=3
    )
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
    protocol = protocol_class(config=config, server_state=state, app_state={})
    transport = MemoryTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport


async def until(condition: Any) -> bool:
    """Wait for `condition()` to hold (up to PATIENCE); whether it did."""
    deadline = asyncio.get_running_loop().time() + PATIENCE
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def test_a_connection_that_sends_nothing_is_closed_at_the_head_deadline() -> None:
    _, transport = connect(Gate(), ServerState())
    assert await until(lambda: transport.closed)
    assert transport.written == b""


async def test_a_head_trickled_byte_by_byte_is_closed_however_long_it_keeps_coming() -> None:
    app = Gate()
    protocol, transport = connect(app, ServerState())
    # Never the final blank line: a client that trickles a header forever.
    trickle = b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 10_000
    for byte in trickle:
        if transport.closed:
            break
        protocol.data_received(bytes([byte]))
        await asyncio.sleep(0.001)
    assert transport.closed
    assert app.requests == 0


async def test_a_complete_head_lifts_the_deadline_while_the_response_is_made() -> None:
    app = Gate()
    app.opened.clear()
    protocol, transport = connect(app, ServerState())
    protocol.data_received(HEAD)
    await asyncio.sleep(0.3)  # six deadlines' worth, with the app still thinking
    assert not transport.closed
    app.opened.set()
    assert await until(lambda: transport.written.endswith(b"ok"))
    assert transport.written.startswith(b"HTTP/1.1 200")


async def test_a_kept_alive_connection_meets_the_deadline_again_after_its_response() -> None:
    app = Gate()
    protocol, transport = connect(app, ServerState(), header_timeout=0.2)
    protocol.data_received(HEAD)
    assert await until(lambda: transport.written.endswith(b"ok"))
    protocol.data_received(b"GET /v1/mod")  # half of the next head, then nothing
    assert await until(lambda: transport.closed)
    assert app.requests == 1


async def test_pipelined_requests_are_all_answered() -> None:
    app = Gate()
    protocol, transport = connect(app, ServerState(), header_timeout=5)
    protocol.data_received(HEAD + HEAD)
    assert await until(lambda: transport.written.count(b"HTTP/1.1 200") == 2)
    assert not transport.closed


async def test_no_deadline_when_the_header_timeout_is_zero() -> None:
    _, transport = connect(Gate(), ServerState(), header_timeout=0)
    await asyncio.sleep(0.2)
    assert not transport.closed


async def test_a_connection_beyond_the_cap_gets_503_at_once_and_is_closed() -> None:
    state = ServerState()
    app = Gate()
    first, first_transport = connect(app, state, header_timeout=5, max_connections=2)
    second, _ = connect(app, state, header_timeout=5, max_connections=2)
    third, transport = connect(app, state, header_timeout=5, max_connections=2)
    head, _, body = transport.written.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ")
    assert b"connection: close" in head
    assert b"retry-after: 3" in head
    error = json.loads(body)["error"]
    assert (error["type"], error["code"]) == ("service_unavailable_error", "server_busy")
    assert transport.eof_written
    third.data_received(HEAD)  # drained, never served
    third.eof_received()
    assert transport.closed
    assert app.requests == 0
    assert len(state.connections) == 2
    # A refused connection leaving frees nothing it never took; a served one does.
    third.connection_lost(None)
    assert len(state.connections) == 2
    first.connection_lost(None)
    assert len(state.connections) == 1
    _, fourth = connect(app, state, header_timeout=5, max_connections=2)
    assert fourth.written == b""
    assert not first_transport.written
    second.connection_lost(None)


async def test_a_refused_connection_that_never_closes_is_closed_after_a_short_linger() -> None:
    state = ServerState()
    connect(Gate(), state, header_timeout=5, max_connections=1)
    _, transport = connect(Gate(), state, header_timeout=5, max_connections=1)
    assert await until(lambda: transport.closed)
