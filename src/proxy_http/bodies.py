"""Request bodies: a budget for the bytes all requests hold at once, a deadline for a stall.

Bodies are read and decoded before the service can refuse a turn, so sixteen clients
each sending 29 MB took the server from 175 MB to 1.5 GB. `BodyGuard` admits a body's
bytes against one budget before a byte of it is read: a request whose Content-Length
does not fit is answered 503 with Retry-After at once, and a chunked body (no
Content-Length) is counted as it arrives. A body that stops arriving is answered 408.
Either way the connection closes, so the rest of the body is never read. A request
keeps its bytes until its response ends (its messages live as long as its turn), and
gives them back however it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from proxy_http.config import HttpOptions
from proxy_http.errors import (
    AT_CAPACITY,
    BODY_STALLED,
    RequestRefused,
    retry_after_header,
    send_refusal,
)

BUDGET_PER_BODY = 4
"""Default budget, in largest bodies (`max_body_bytes`)."""


class BodyBudget:
    """Request-body bytes admitted and not yet released, against a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def reserve(self, size: int) -> bool:
        """Take `size` bytes of the budget; False (and nothing taken) when they do not fit."""
        if self.in_flight + size > self.limit:
            return False
        self.in_flight += size
        return True

    def release(self, size: int) -> None:
        self.in_flight -= size


def budget_limit(options: HttpOptions) -> int:
    """The budget: the setting, else 4 bodies; never below one body of the largest size."""
    limit = options.max_body_bytes_in_flight or BUDGET_PER_BODY * options.max_body_bytes
    return max(limit, options.max_body_bytes)


def announced_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """The Content-Length a request announces (None when absent or not a size).

    uvicorn refuses a malformed one before the app sees it; other servers may not.
    """
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return None
            return length if length >= 0 else None
    return None


def is_chunked(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    return any(
        name.lower() == b"transfer-encoding" and b"chunked" in value.lower()
        for name, value in headers
    )


def stalled(timeout: float) -> RequestRefused:
    message = (
        f"The request body stopped arriving: no byte for {timeout:g} s "
        "(the server's body timeout). Send the whole body without pausing."
    )
    return RequestRefused(BODY_STALLED.status, BODY_STALLED.body(message))


def no_room(budget: BodyBudget, retry_after: float) -> RequestRefused:
    message = (
        f"The server is holding as many request bodies as it may ({budget.limit} bytes); "
        "retry shortly."
    )
    return RequestRefused(
        AT_CAPACITY.status, AT_CAPACITY.body(message), retry_after_header(retry_after)
    )


class _BodyReader:
    """`receive` for one request: times out a stalled body; counts a chunked one."""

    def __init__(
        self,
        receive: Receive,
        timeout: float,
        counter: BodyBudget | None,
        retry_after: float,
    ) -> None:
        self._receive = receive
        self._timeout = timeout
        self._counter = counter
        self._retry_after = retry_after
        self._done = False
        self.counted = 0

    async def receive(self) -> ReceiveMessage:
        if self._done:  # the body is in: what follows is the wait for a disconnect
            return await self._receive()
        message = await self._next()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self._done = True
        if self._counter is not None and message["type"] == "http.request":
            size = len(message.get("body", b""))
            if not self._counter.reserve(size):
                raise no_room(self._counter, self._retry_after)
            self.counted += size
        return message

    async def _next(self) -> ReceiveMessage:
        if self._timeout <= 0:
            return await self._receive()
        try:
            async with asyncio.timeout(self._timeout):
                return await self._receive()
        except TimeoutError:
            raise stalled(self._timeout) from None


class BodyGuard:
    """ASGI middleware: admits request bodies against a `BodyBudget`; times out stalls.

    A Content-Length over `max_body_bytes` is left to the app's 413 (given before
    reading); `timeout` <= 0 disables the stall deadline.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        budget: BodyBudget,
        max_body_bytes: int,
        timeout: float,
        retry_after: float,
    ) -> None:
        self.app = app
        self.budget = budget
        self.max_body_bytes = max_body_bytes
        self.timeout = timeout
        self.retry_after = retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = scope.get("headers", []) if scope["type"] == ScopeType.HTTP else []
        length = announced_length(headers)
        if length is None and not is_chunked(headers):  # no body (or not HTTP)
            await self.app(scope, receive, send)
            return
        reserved = 0
        if length is not None and length <= self.max_body_bytes:
            if not self.budget.reserve(length):
                await send_refusal(send, no_room(self.budget, self.retry_after))
                return
            reserved = length
        counter = self.budget if length is None else None
        reader = _BodyReader(receive, self.timeout, counter, self.retry_after)
        try:
            await self.app(scope, reader.receive, send)
        finally:
            self.budget.release(reserved + reader.counted)
