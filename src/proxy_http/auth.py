"""API keys: who may use the server, and the rule against exposing it without them.

A request presents its key as `Authorization: Bearer <key>` (what the OpenAI SDKs
send) or as `x-api-key` (what Anthropic-style clients send). `/health` stays open so
load balancers and `doctor` can probe it. Keys are compared as SHA-256 digests with
`hmac.compare_digest`, against every configured key without stopping at a match, so
neither the timing nor the length of a key leaks. Keys never reach a log line: the
request log records no headers, and `ApiKeys` prints as a count.

Each request that presents an accepted key carries a `Caller` in its ASGI scope
state: the key's id (a slow, salted digest of the key: stable, never the key) names
the caller's session namespace, and `admin` says the key may see every namespace.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Sequence
from pathlib import Path

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from proxy_core import unnamespaced
from proxy_http.config import SecurityOptions
from proxy_http.errors import UNAUTHORIZED, send_error

OPEN_PATHS = frozenset({"/health"})
"""Paths answered without a key."""

_UNAUTHORIZED = UNAUTHORIZED.body()


CALLER_STATE_KEY = "caller"
"""Where the middleware puts the request's `Caller` (None: no valid key) in the ASGI
scope's state; its presence says that keys are required (see `keys_checked`)."""

# Key ids are stored (session keys, the session database) and shown to admins, so
# they come from a slow salted hash: an id never confirms a guess of a weak key
# cheaply. Each key's id is computed once, when the key is first used.
_KEY_ID_SALT = b"claude-max-api-proxy/session-namespace/v1"
_KEY_ID_ROUNDS = 20_000


class ApiKeyError(ValueError):
    """The configured keys cannot be used (an unreadable or empty key file)."""


class Caller(msgspec.Struct, frozen=True):
    """Who sent a request: the id of the key it presented, and whether that key is an
    admin key (one that sees and deletes every caller's sessions)."""

    key_id: str
    admin: bool = False


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def key_id(key: str) -> str:
    """The stable, non-secret id of an API key (16 hex digits)."""
    raw = hashlib.pbkdf2_hmac(
        "sha256", key.encode("utf-8", "surrogatepass"), _KEY_ID_SALT, _KEY_ID_ROUNDS
    )
    return raw[:8].hex()


class ApiKeys:
    """The set of accepted keys, kept only as digests; some may be admin keys."""

    def __init__(self, keys: Iterable[str], admin_keys: Iterable[str] = ()) -> None:
        admins = {_digest(key) for key in (k.strip() for k in admin_keys) if key}
        users = {_digest(key) for key in (k.strip() for k in keys) if key} - admins
        self._digests = (*users, *admins)
        self._admin = (False,) * len(users) + (True,) * len(admins)
        self._ids: dict[bytes, str] = {}

    def __bool__(self) -> bool:
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"ApiKeys(<{len(self._digests)} keys>)"

    def accepts(self, presented: str | None) -> bool:
        """Whether `presented` is one of the keys, in time independent of which one."""
        return self.identify(presented) is not None

    def identify(self, presented: str | None) -> Caller | None:
        """The caller `presented` identifies, or None when it is no key of ours.

        Every key is compared, whatever matched before, in time independent of which
        one matched.
        """
        if not presented:
            return None
        candidate = _digest(presented)
        found = -1
        for index, digest in enumerate(self._digests):
            equal = hmac.compare_digest(candidate, digest)
            found = index if equal else found
        if found < 0:
            return None
        ident = self._ids.get(candidate)
        if ident is None:
            ident = self._ids[candidate] = key_id(presented)
        return Caller(ident, self._admin[found])


def _listed(keys: str | Sequence[str] | None) -> list[str]:
    if isinstance(keys, str):
        return keys.split(",")
    return list(keys or ())


def load_api_keys(
    keys: str | Sequence[str] | None,
    key_file: str | None = None,
    admin_keys: str | Sequence[str] | None = None,
) -> ApiKeys:
    """Keys from a comma-separated setting (or a list) plus a file of one key per line,
    and admin keys (comma-separated or a list), which are accepted keys too.

    In the file, blank lines and lines starting with `#` are skipped. Raises
    ApiKeyError when the file cannot be read or holds no key, so a typo in its
    path never silently turns authentication off.
    """
    found = _listed(keys)
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
    return ApiKeys(found, _listed(admin_keys))


def api_keys_of(security: SecurityOptions) -> ApiKeys:
    """The keys `security` configures (its keys, key file and admin keys), read once by
    whoever starts a server and handed to every part that judges or enforces them.

    Raises ApiKeyError when the key file cannot be read or holds no key.
    """
    return load_api_keys(security.api_keys, security.api_key_file, security.admin_api_keys)


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


class Access(msgspec.Struct, frozen=True):
    """What a request may reach: its own session namespace ("" when no API keys are
    configured: one namespace shared by all), and whether it sees every namespace (an
    admin key; anyone when no keys are configured)."""

    namespace: str
    sees_all: bool

    def shown(self, key: str) -> str:
        """A store key as this caller sees it: within its own namespace for a key that
        sees only its own; in full (namespace included) for one that sees them all."""
        return key if self.sees_all else unnamespaced(self.namespace, key)


OPEN_ACCESS = Access(namespace="", sees_all=True)


def access_for(caller: Caller | None, *, keys_required: bool) -> Access | None:
    """What a request may reach, from the caller the middleware identified: None when
    keys are required and it presented no valid one."""
    if not keys_required:
        return OPEN_ACCESS
    if caller is None:
        return None
    return Access(namespace=caller.key_id, sees_all=caller.admin)


def keys_checked(scope: Scope) -> bool:
    """Whether this request passed the key check (`ApiKeyMiddleware`), which marks every
    request it sees, with a valid key or none; an app served without it requires none."""
    return CALLER_STATE_KEY in (scope.get("state") or {})


def caller_of(scope: Scope) -> Caller | None:
    """The caller the middleware identified for this request (None: no valid key)."""
    state = scope.get("state") or {}
    caller = state.get(CALLER_STATE_KEY)
    return caller if isinstance(caller, Caller) else None


class ApiKeyMiddleware:
    """ASGI middleware: a request without an accepted key gets 401 with an OpenAI error
    body; an accepted one carries its `Caller` in the scope state (see `caller_of`).
    Open paths pass without a key, and still carry the caller of a valid one."""

    def __init__(self, app: ASGIApp, keys: ApiKeys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        caller = self.keys.identify(presented_key(scope.get("headers", [])))
        scope.setdefault("state", {})[CALLER_STATE_KEY] = caller
        if caller is not None or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        await send_error(
            send,
            UNAUTHORIZED.status,
            _UNAUTHORIZED,
            [(b"www-authenticate", b'Bearer realm="claude-max-api-proxy"')],
        )


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


def full_tools_warning(host: str, *, full_tools: bool) -> str | None:
    """A loud warning when the `full` tools profile is reachable from the network."""
    if not full_tools or is_loopback(host):
        return None
    return (
        f"DANGER: the `full` tools profile is enabled on {host}. Every client that can "
        "reach this address can make the CLI run shell commands and edit files as this "
        "user. Use --tools read-only or none, or listen on 127.0.0.1."
    )
