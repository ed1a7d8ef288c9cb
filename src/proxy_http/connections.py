"""Client connections: a deadline for the request head, and a cap on how many are open.

uvicorn keeps a connection for as long as its client sends nothing, or a header a
byte at a time: 3,000 half-sent requests held 3,000 file descriptors for as long as
their clients liked, before any API key was looked at. `guarded_protocol` gives
uvicorn an HTTP/1.1 protocol (its own h11 one) that

- closes a connection whose request head (request line and headers) is not complete
  `header_timeout` seconds after it opened, or after the previous response on a
  kept-alive connection (a deadline, however slowly the bytes trickle in);
- answers a connection beyond `max_connections` open ones with a 503 at once, before
  reading anything, and closes it.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import msgspec
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle
from uvicorn.server import ServerState

from proxy_http.errors import AT_CAPACITY, retry_after_header
from proxy_http.instance import INSTANCE_HEADER, check_instance_name

REFUSED_LINGER = 1.0
"""Seconds a refused connection drains what its client sends before it closes.

Closing with unread input makes the kernel reset the connection, and a client may then
lose the 503 it was sent; draining briefly lets it read the answer.
"""


def connections_refusal(limit: int, retry_after: float, instance: str | None = None) -> bytes:
    """The whole HTTP/1.1 response given to a connection beyond the cap (naming the
    instance, as every response of the app does, when there is a name)."""
    message = f"The server has as many connections open as it may ({limit}); retry shortly."
    body = msgspec.json.encode(AT_CAPACITY.body(message))
    headers = {
        "content-type": "application/json",
        "content-length": str(len(body)),
        "connection": "close",
        **{name.lower(): value for name, value in retry_after_header(retry_after).items()},
    }
    if instance:
        headers[INSTANCE_HEADER.lower()] = check_instance_name(instance)
    head = "HTTP/1.1 503 Service Unavailable\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()
    )
    return (head + "\r\n").encode("latin-1") + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request-head deadline and a connection cap.

    The limits are class attributes: `guarded_protocol` makes a subclass per server,
    since uvicorn builds each connection's protocol from the class alone.
    """

    header_timeout: ClassVar[float] = 0.0
    max_connections: ClassVar[int] = 0
    refusal: ClassVar[bytes] = b""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_cycle: RequestResponseCycle | None = None
        self._refused = False

    # -- the cap -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if 0 < self.max_connections <= len(self.connections):
            self._refuse(transport)
            return
        super().connection_made(transport)
        self._arm_head_deadline()

    def _refuse(self, transport: asyncio.Transport) -> None:
        self._refused = True
        self.transport = transport
        transport.write(self.refusal)
        if transport.can_write_eof():
            transport.write_eof()
        self.loop.call_later(REFUSED_LINGER, transport.close)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # drained: the answer is already on its way
        super().data_received(data)
        self._note_new_request()

    def eof_received(self) -> None:
        if self._refused:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        if not self._refused:
            super().connection_lost(exc)

    # -- the request-head deadline ---------------------------------------------------

    def on_response_complete(self) -> None:
        # Armed before the next head is looked at: a pipelined one already buffered
        # disarms it at once; a client that still sends the unread rest of the last
        # body, or only part of a new head, meets it.
        self._arm_head_deadline()
        super().on_response_complete()
        self._note_new_request()

    def _note_new_request(self) -> None:
        # uvicorn starts a new cycle for each complete request head it parses.
        if self.cycle is not None and self.cycle is not self._head_cycle:
            self._head_cycle = self.cycle
            self._disarm_head_deadline()

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        if self.header_timeout > 0 and not self.transport.is_closing():
            self._head_deadline = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        # No response can be on its way here (the deadline runs only between responses
        # and heads), so closing cuts nothing short.
        if not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(
    *,
    header_timeout: float,
    max_connections: int,
    retry_after: float,
    instance: str | None = None,
) -> type[GuardedH11Protocol]:
    """The protocol class for `uvicorn.Config(http=...)` with these limits (0 disables
    one); its refusals name `instance` when given."""

    class Configured(GuardedH11Protocol):
        pass

    Configured.header_timeout = header_timeout
    Configured.max_connections = max_connections
    Configured.refusal = connections_refusal(max_connections, retry_after, instance)
    return Configured
