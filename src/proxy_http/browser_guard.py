"""ASGI middleware that keeps web browsers from driving the server (see `browser_policy`).

It sits outside the API-key check, so a refused browser request never reaches it,
and outside routing, so every path (`/health` included) is covered. A refusal is
an OpenAI error body, and its code is the request log line's `outcome`; header
values are never logged. For origins on the allow-list it answers CORS preflights
and adds the CORS headers to every response, refusals included, so a browser
client can read why it was refused.
"""

from __future__ import annotations

from collections.abc import Iterable

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from proxy_http.browser_policy import BrowserHeaders, BrowserPolicy, Verdict
from proxy_http.errors import (
    FORBIDDEN_ORIGIN,
    MISDIRECTED,
    UNSUPPORTED_MEDIA_TYPE,
    ErrorShape,
    send_error,
    send_response,
)
from proxy_http.logging import note
from proxy_http.wire import ErrorBody

CORS_ALLOWED_HEADERS = ("Authorization", "Content-Type", "X-Session-Id", "x-api-key")
CORS_EXPOSED_HEADERS = "X-Session-Id, X-Request-Id, Retry-After, X-Ignored-Fields, X-Ignored-Tools"
CORS_METHODS = "GET, POST, DELETE, OPTIONS"
PREFLIGHT_MAX_AGE = "600"
MAX_REQUESTED_HEADERS = 64

_REFUSALS: dict[Verdict, ErrorShape] = {
    Verdict.MISDIRECTED: MISDIRECTED,
    Verdict.FORBIDDEN_ORIGIN: FORBIDDEN_ORIGIN,
    Verdict.UNSUPPORTED_MEDIA_TYPE: UNSUPPORTED_MEDIA_TYPE,
}


def refusal_body(verdict: Verdict) -> tuple[int, ErrorBody]:
    """Status and OpenAI error body of a refusal."""
    shape = _REFUSALS[verdict]
    return shape.status, shape.body()


def cors_headers(origin: str) -> list[tuple[bytes, bytes]]:
    """What every response to a listed origin carries."""
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-expose-headers", CORS_EXPOSED_HEADERS.encode()),
    ]


def preflight_headers(origin: str, requested: Iterable[str]) -> list[tuple[bytes, bytes]]:
    """The answer to a listed origin's preflight.

    The headers it asks for are allowed besides ours: the origin is trusted to send
    any request, and browser SDKs add their own (the openai SDK's `x-stainless-*`).
    """
    allowed = {name.lower(): name for name in CORS_ALLOWED_HEADERS}
    for name in requested:
        allowed.setdefault(name.lower(), name.lower())
    return [
        *cors_headers(origin),
        (b"access-control-allow-methods", CORS_METHODS.encode()),
        (b"access-control-allow-headers", ", ".join(allowed.values()).encode("latin-1")),
        (b"access-control-max-age", PREFLIGHT_MAX_AGE.encode()),
        (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
        (b"content-length", b"0"),
    ]


def requested_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """Header names a preflight asks for, valid tokens only, at most a few dozen."""
    names: list[str] = []
    for name, value in headers:
        if name.lower() == b"access-control-request-headers":
            names += [n.strip() for n in value.decode("latin-1").split(",") if n.strip()]
    return [n for n in names if _is_token(n)][:MAX_REQUESTED_HEADERS]


def _is_token(name: str) -> bool:
    return name.isascii() and all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in name)


class BrowserGuardMiddleware:
    """Refuses what a browser must not do (421, 403, 415) and serves opt-in CORS."""

    def __init__(self, app: ASGIApp, policy: BrowserPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        raw_headers = scope.get("headers", [])
        decision = self.policy.decide(scope["method"], BrowserHeaders.of(raw_headers))
        extra: list[tuple[bytes, bytes]] = []
        if decision.cors_origin is not None:
            extra = cors_headers(decision.cors_origin)
        if self.policy.cors_enabled and decision.verdict is not Verdict.PREFLIGHT:
            # Whether CORS headers come depends on Origin: caches must keep them apart.
            extra.append((b"vary", b"Origin"))
        if decision.verdict is Verdict.PASS:
            await self.app(scope, receive, _adding(send, extra) if extra else send)
            return
        note(outcome=decision.verdict.value)
        if decision.verdict is Verdict.PREFLIGHT:
            assert decision.cors_origin is not None
            headers = preflight_headers(decision.cors_origin, requested_headers(raw_headers))
            await send_response(send, 204, headers)
            return
        status, body = refusal_body(decision.verdict)
        await send_error(send, status, body, extra)


def _adding(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return send_with_headers
