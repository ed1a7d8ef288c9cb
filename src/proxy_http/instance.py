"""Which server answered: the `X-Proxy-Instance` header on every response.

Behind a load balancer (docs/deploy.md) several servers answer on one address; the
header names the one that served a response, so an operator (and the scale-out test)
can see that a conversation stays on one instance, and where it went when one failed.
"""

from __future__ import annotations

import re

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

INSTANCE_HEADER = "X-Proxy-Instance"
"""The response header that names the instance."""

# Visible ASCII, inner spaces allowed: any other byte would make every response's
# head invalid (or split it), so a name is checked once, at start-up.
_HEADER_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")


def check_instance_name(name: str) -> str:
    """`name` when it can be a header value; raises ValueError saying why not."""
    if not _HEADER_VALUE.fullmatch(name):
        raise ValueError(
            f"{name!r} cannot be a header value: use visible ASCII characters (spaces only inside)"
        )
    return name


class InstanceHeader:
    """ASGI: every HTTP response of `app` carries `X-Proxy-Instance: <name>`."""

    def __init__(self, app: ASGIApp, name: str) -> None:
        self.app = app
        self._header = (INSTANCE_HEADER.lower().encode(), check_instance_name(name).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return

        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), self._header]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, named)
