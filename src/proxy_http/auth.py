"""API keys: who may use the server, and the rule against exposing it without them.

A request presents its key as `Authorization: Bearer <key>` (what the OpenAI SDKs
send) or as `x-api-key` (what Anthropic-style clients send); the status page, which a
browser opens, takes it as HTTP Basic credentials too. `/health` stays open so
load balancers and `doctor` can probe it. Keys are compared as SHA-256 digests with
`hmac.compare_digest`, against every configured key without stopping at a match, so
neither the timing nor the length of a key leaks. Keys never reach a log line: the
request log records no headers, and `ApiKeys` prints as a count.

Each request that presents an accepted key carries a `Caller` in its ASGI scope
state: the key's id (a slow, salted digest of the key: stable, never the key) names
the caller's session namespace, and `admin` says the key may see every namespace.

A line of the key file may carry fields after the key: `KEY label=NAME daily_usd=0.50
monthly_usd=20` (see docs/usage.md). The label names the key wherever its spend is
shown, and the budgets cap it (`ApiKeys.budgets`, by key id, for the service).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from proxy_core import Budget, unnamespaced
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
    """The configured keys cannot be used (an unreadable or empty key file, or a line
    whose fields are wrong: the message names the file and line, never the key)."""


class Caller(msgspec.Struct, frozen=True):
    """Who sent a request: the id of the key it presented, whether that key is an
    admin key (one that sees and deletes every caller's sessions), and its label
    from the key file (None: none given)."""

    key_id: str
    admin: bool = False
    label: str | None = None


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def key_id(key: str) -> str:
    """The stable, non-secret id of an API key (16 hex digits)."""
    raw = hashlib.pbkdf2_hmac(
        "sha256", key.encode("utf-8", "surrogatepass"), _KEY_ID_SALT, _KEY_ID_ROUNDS
    )
    return raw[:8].hex()


class ApiKeys:
    """The set of accepted keys, kept only as digests; some may be admin keys.

    `budgets` gives some keys a label and caps (from the key file); their ids are
    computed at once, so `self.budgets` maps each such key's id to its Budget (what
    the service enforces and `/v1/usage` names), the keys themselves are not kept.
    """

    def __init__(
        self,
        keys: Iterable[str],
        admin_keys: Iterable[str] = (),
        budgets: Mapping[str, Budget] | None = None,
    ) -> None:
        admins = {_digest(key) for key in (k.strip() for k in admin_keys) if key}
        users = {_digest(key) for key in (k.strip() for k in keys) if key} - admins
        self._digests = (*users, *admins)
        self._admin = (False,) * len(users) + (True,) * len(admins)
        self._ids: dict[bytes, str] = {}
        self._labels: dict[bytes, str] = {}
        self.budgets: dict[str, Budget] = {}
        for key, budget in (budgets or {}).items():
            digest = _digest(key.strip())
            if digest not in self._digests:
                continue
            ident = self._ids[digest] = key_id(key.strip())
            self.budgets[ident] = budget
            if budget.label:
                self._labels[digest] = budget.label

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
        return Caller(ident, self._admin[found], self._labels.get(candidate))


def _listed(keys: str | Sequence[str] | None) -> list[str]:
    if isinstance(keys, str):
        return keys.split(",")
    return list(keys or ())


KEY_FIELDS = ("label", "daily_usd", "monthly_usd")
"""The fields a line of the key file may carry after its key."""
_LABEL = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_FIELD_NAME = re.compile(r"^[A-Za-z_]{1,32}$")


def _amount(name: str, value: str, where: str) -> float:
    try:
        amount = float(value)
    except ValueError:
        raise ApiKeyError(f"{where}: {name} must be a number of US dollars.") from None
    if not math.isfinite(amount) or amount < 0:
        raise ApiKeyError(f"{where}: {name} must be a dollar amount of 0 or more.")
    return amount


def parse_key_line(line: str, where: str) -> tuple[str, Budget | None]:
    """The key of one key-file line and the Budget its fields state (None: no field).

    `where` ("FILE line N") starts every error; no error repeats the key, nor any
    word of the line that is not a known field (which might be a piece of a key).
    """
    key, *fields = line.split()
    values: dict[str, str] = {}
    for position, field in enumerate(fields, start=2):
        name, sep, value = field.partition("=")
        if not sep or not name:
            raise ApiKeyError(
                f"{where}: word {position} is not a field: after the key, write NAME=VALUE "
                f"({', '.join(KEY_FIELDS)})."
            )
        if name not in KEY_FIELDS:
            shown = f"{name!r}" if _FIELD_NAME.match(name) else f"at word {position}"
            raise ApiKeyError(
                f"{where}: unknown field {shown}; the fields are {', '.join(KEY_FIELDS)}."
            )
        if name in values:
            raise ApiKeyError(f"{where}: {name} is given twice.")
        values[name] = value
    if not values:
        return key, None
    label = values.get("label")
    if label is not None and not _LABEL.match(label):
        raise ApiKeyError(f"{where}: a label is 1-64 letters, digits, `.`, `_`, `@` or `-`.")
    daily = values.get("daily_usd")
    monthly = values.get("monthly_usd")
    return key, Budget(
        label=label,
        daily_usd=None if daily is None else _amount("daily_usd", daily, where),
        monthly_usd=None if monthly is None else _amount("monthly_usd", monthly, where),
    )


def parse_key_file(text: str, name: str) -> tuple[list[str], dict[str, Budget]]:
    """The keys of a key file's text and the budgets of those with fields. Raises
    ApiKeyError (naming the file `name` and the line, never a key) for a wrong field,
    a label given to two keys, or one key given two different sets of fields."""
    keys: list[str] = []
    budgets: dict[str, Budget] = {}
    first_line: dict[str, int] = {}
    labels: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{name} line {number}"
        key, budget = parse_key_line(line, where)
        if key in first_line and budgets.get(key) != budget:
            raise ApiKeyError(
                f"{where}: this key is on line {first_line[key]} too, with other fields."
            )
        first_line.setdefault(key, number)
        keys.append(key)
        if budget is None or key in budgets:
            continue
        budgets[key] = budget
        if budget.label is not None:
            if budget.label in labels:
                raise ApiKeyError(
                    f"{where}: label {budget.label!r} is already used on line "
                    f"{labels[budget.label]}; each key needs its own."
                )
            labels[budget.label] = number
    return keys, budgets


def load_api_keys(
    keys: str | Sequence[str] | None,
    key_file: str | None = None,
    admin_keys: str | Sequence[str] | None = None,
) -> ApiKeys:
    """Keys from a comma-separated setting (or a list) plus a file of one key per line,
    and admin keys (comma-separated or a list), which are accepted keys too.

    In the file, blank lines and lines starting with `#` are skipped; a key may be
    followed by fields (`label=`, `daily_usd=`, `monthly_usd=`: see
    `parse_key_file`). Raises ApiKeyError when the file cannot be read, holds no key or
    has a wrong field, so a typo never silently turns authentication or a budget off.
    """
    found = _listed(keys)
    budgets: dict[str, Budget] = {}
    if key_file:
        try:
            text = Path(key_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ApiKeyError(f"Cannot read the API key file {key_file}: {error}") from None
        from_file, budgets = parse_key_file(text, f"The API key file {key_file}")
        if not from_file:
            raise ApiKeyError(f"The API key file {key_file} holds no key (one per line).")
        found += from_file
    return ApiKeys(found, _listed(admin_keys), budgets)


def api_keys_of(security: SecurityOptions) -> ApiKeys:
    """The keys `security` configures (its keys, key file and admin keys), read once by
    whoever starts a server and handed to every part that judges or enforces them.

    Raises ApiKeyError when the key file cannot be read or holds no key.
    """
    return load_api_keys(security.api_keys, security.api_key_file, security.admin_api_keys)


def presented_key(headers: Iterable[tuple[bytes, bytes]], *, basic: bool = False) -> str | None:
    """The key a request presents: its Bearer token, else its `x-api-key`; with `basic`,
    also the password of HTTP Basic credentials (the user name is ignored)."""
    bearer: str | None = None
    api_key: str | None = None
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                bearer = token.strip()
            elif basic and scheme.lower() == "basic":
                bearer = basic_password(token.strip())
        elif lowered == b"x-api-key":
            api_key = value.decode("latin-1").strip() or None
    return bearer or api_key


def basic_password(credentials: str) -> str | None:
    """The password of HTTP Basic `credentials` (base64 of `user:password`, UTF-8 as
    browsers send it); None when malformed or empty."""
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, colon, password = decoded.partition(":")
    if not colon:
        return None
    return password.strip() or None


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


REALM = "claude-max-api-proxy"
_BEARER_CHALLENGE = f'Bearer realm="{REALM}"'.encode()
_BASIC_CHALLENGE = f'Basic realm="{REALM}", charset="UTF-8"'.encode()
_BASIC_METHODS = frozenset({"GET", "HEAD"})


class ApiKeyMiddleware:
    """ASGI middleware: a request without an accepted key gets 401 with an OpenAI error
    body; an accepted one carries its `Caller` in the scope state (see `caller_of`).
    Open paths pass without a key, and still carry the caller of a valid one.

    A GET of one of `basic_paths` (pages a browser opens: it cannot add a Bearer
    header) may present the key as HTTP Basic credentials, any user name and the key
    as password, and its 401 asks for them, so the browser prompts. Nowhere else: a
    browser sends remembered Basic credentials with every request to the server, and
    a cross-site form could then spend the account; a GET of a page changes nothing.
    """

    def __init__(self, app: ASGIApp, keys: ApiKeys, basic_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.keys = keys
        self.basic_paths = frozenset(basic_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        path = scope.get("path")
        basic = path in self.basic_paths and scope.get("method") in _BASIC_METHODS
        caller = self.keys.identify(presented_key(scope.get("headers", []), basic=basic))
        scope.setdefault("state", {})[CALLER_STATE_KEY] = caller
        if caller is not None or path in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        challenge = _BASIC_CHALLENGE if basic else _BEARER_CHALLENGE
        await send_error(
            send, UNAUTHORIZED.status, _UNAUTHORIZED, [(b"www-authenticate", challenge)]
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
