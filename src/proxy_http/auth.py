"""API keys: who may use the server, and the rule against exposing it without them.

A request presents its key as `Authorization: Bearer <key>` (what the OpenAI SDKs
send) or as `x-api-key` (what Anthropic-style clients send). `/health` stays open so
load balancers and `doctor` can probe it. Keys are compared as SHA-256 digests with
`hmac.compare_digest`, against every configured key without stopping at a match, so
neither the timing nor the length of a key leaks. Keys never reach a log line: the
request log records no headers, and `ApiKeys` prints as a count.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Sequence
from pathlib import Path

import msgspec
from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    Scope,
    Send,
)

from proxy_http.wire import ErrorBody, ErrorDetail

OPEN_PATHS = frozenset({"/health"})
"""Paths answered without a key."""

_UNAUTHORIZED = msgspec.json.encode(
    ErrorBody(
        ErrorDetail(
            "Missing or invalid API key: send it as `Authorization: Bearer <key>` "
            "or as `x-api-key: <key>`.",
            "invalid_request_error",
            None,
            "invalid_api_key",
        )
    )
)


class ApiKeyError(ValueError):
    """The configured keys cannot be used (an unreadable or empty key file)."""


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class ApiKeys:
    """The set of accepted keys, kept only as digests."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = tuple({_digest(key) for key in (k.strip() for k in keys) if key})

    def __bool__(self) -> bool:
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"ApiKeys(<{len(self._digests)} keys>)"

    def accepts(self, presented: str | None) -> bool:
        """Whether `presented` is one of the keys, in time independent of which one."""
        if not presented:
            return False
        candidate = _digest(presented)
        matched = False
        for digest in self._digests:
            # `|=` rather than `or`: every key is compared, whatever matched before.
            matched |= hmac.compare_digest(candidate, digest)
        return matched


def load_api_keys(keys: str | Sequence[str] | None, key_file: str | None = None) -> ApiKeys:
    """Keys from a comma-separated setting (or a list) plus a file of one key per line.

    In the file, blank lines and lines starting with `#` are skipped. Raises
    ApiKeyError when the file cannot be read or holds no key, so a typo in its
    path never silently turns authentication off.
    """
    found: list[str] = []
    if isinstance(keys, str):
        found += keys.split(",")
    elif keys:
        found += list(keys)
    if key_file:
        try:
            text = Path(key_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ApiKeyError(f"Cannot read the API key file {key_file}: {error}") from None
        from_file = [
            line.strip()
            for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
        if not from_file:
            raise ApiKeyError(f"The API key file {key_file} holds no key (one per line).")
        found += from_file
    return ApiKeys(found)


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key a request presents: its Bearer token, else its `x-api-key`."""
    bearer: str | None = None
    api_key: str | None = None
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                bearer = token.strip()
        elif lowered == b"x-api-key":
            api_key = value.decode("latin-1").strip() or None
    return bearer or api_key


class ApiKeyMiddleware:
    """ASGI middleware: a request without an accepted key gets 401 with an OpenAI error body."""

    def __init__(self, app: ASGIApp, keys: ApiKeys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != ScopeType.HTTP
            or scope.get("path") in OPEN_PATHS
            or self.keys.accepts(presented_key(scope.get("headers", [])))
        ):
            await self.app(scope, receive, send)
            return
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_UNAUTHORIZED)).encode()),
                (b"www-authenticate", b'Bearer realm="claude-max-api-proxy"'),
            ],
        }
        body: HTTPResponseBodyEvent = {
            "type": "http.response.body",
            "body": _UNAUTHORIZED,
            "more_body": False,
        }
        await send(start)
        await send(body)


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server reachable from this machine only."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def exposure_refusal(host: str, keys: ApiKeys, *, allow_unauthenticated: bool) -> str | None:
    """Why `serve` must not start on `host`, or None when it may."""
    if keys or allow_unauthenticated or is_loopback(host):
        return None
    return (
        f"refusing to listen on {host} without API keys: anyone who can reach that "
        "address could use the Claude account (and, with tools enabled, this machine). "
        "Set --api-keys / CLAUDE_PROXY_API_KEYS or --api-key-file, listen on 127.0.0.1, "
        "or pass --allow-unauthenticated if the network is trusted."
    )


def full_tools_warning(host: str, tools: str) -> str | None:
    """A loud warning when the `full` tools profile is reachable from the network."""
    if tools.strip() != "full" or is_loopback(host):
        return None
    return (
        f"DANGER: the `full` tools profile is enabled on {host}. Every client that can "
        "reach this address can make the CLI run shell commands and edit files as this "
        "user. Use --tools read-only or none, or listen on 127.0.0.1."
    )
