"""Which requests a web browser may make: the pure decisions behind `browser_guard`.

A web page can make a browser send requests to this server: a cross-site "simple"
POST (a form, or `fetch` with `Content-Type: text/plain`) needs no CORS permission,
and a DNS-rebinding page (a name of the attacker's that now resolves to 127.0.0.1)
is same-origin with the server and may read what it answers. Three rules close
both doors, and the browser itself supplies what they check:

- `Host` must name this server: a loopback name, the bound address, or a listed
  name (a rebinding page can only send its own domain name there);
- a request that says it comes from a web page (`Origin`, or
  `Sec-Fetch-Site: cross-site`) must come from a listed origin or the server's own;
- a body must be declared `application/json`, which no page can send cross-origin
  without a CORS preflight, which only listed origins pass.

Nothing here does I/O; the settings' text is parsed once into a `BrowserPolicy`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

JSON_MEDIA_TYPE = "application/json"
BODY_METHODS = frozenset({"POST"})
"""Methods whose body must be declared JSON. POST is the only one a page can send
cross-origin without a preflight (PUT, PATCH, DELETE always need one), and the only
one whose body an endpoint reads."""
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})
DEFAULT_PORTS = {"http": 80, "https": 443}
ANY_HOST = "*"

# RFC 9110 token characters (header names, media types); host names are narrower.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HOST_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")


class Verdict(StrEnum):
    """What to do with a request; a refusal's value is its error code and log outcome."""

    PASS = "pass"
    PREFLIGHT = "cors_preflight"
    MISDIRECTED = "misdirected_request"
    FORBIDDEN_ORIGIN = "origin_not_allowed"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"


@dataclass(frozen=True)
class HostName:
    """A host as a `Host` header or an origin names it: lower case, IPv6 unbracketed."""

    name: str
    port: int | None = None

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The address, when the host is an IP literal."""
        try:
            return ipaddress.ip_address(self.name)
        except ValueError:
            return None

    def is_loopback(self) -> bool:
        """`localhost`, 127.0.0.0/8 or ::1 (IPv4-mapped included)."""
        if self.name == "localhost":
            return True
        ip = self.ip
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return ip is not None and ip.is_loopback


@dataclass(frozen=True)
class Origin:
    """A web origin: scheme, host and port (the scheme's default port filled in)."""

    scheme: str
    host: str
    port: int | None


def parse_host(value: str) -> HostName | None:
    """`name`, `name:port`, `[v6]` or `[v6]:port`; None when it is none of these."""
    text = value.strip().lower()
    if text.startswith("["):
        literal, bracket, rest = text[1:].partition("]")
        try:
            name = ipaddress.IPv6Address(literal).compressed if bracket else ""
        except ValueError:
            return None
        if not name or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else ""
    else:
        name, _, port_text = text.partition(":")
        if name.endswith("."):  # `localhost.` is the same name written fully qualified
            name = name[:-1]
        if not _HOST_NAME.fullmatch(name):
            return None
    if not port_text:
        return HostName(name)
    if not port_text.isdigit() or int(port_text) > 65535:
        return None
    return HostName(name, int(port_text))


def parse_origin(value: str) -> Origin | None:
    """An `Origin` value (or an allow-list entry); None for `null` and malformed ones."""
    scheme, separator, rest = value.strip().lower().partition("://")
    rest = rest.removesuffix("/")
    if not separator or not _SCHEME.fullmatch(scheme) or "/" in rest or "@" in rest:
        return None
    host = parse_host(rest)
    if host is None:
        return None
    return Origin(scheme, host.name, host.port or DEFAULT_PORTS.get(scheme))


def is_json_media_type(value: str) -> bool:
    """`application/json`, any case and spacing; a charset parameter must be UTF-8.

    Other parameters are ignored: what makes a request need a CORS preflight is
    the media type itself, and JSON is UTF-8 whatever else is said.
    """
    media_type, *parameters = value.split(";")
    if media_type.strip().lower() != JSON_MEDIA_TYPE:
        return False
    for parameter in parameters:
        name, _, argument = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = argument.strip().strip('"').lower()
            if charset not in ("utf-8", "utf8"):
                return False
    return True


def parse_allowed_origins(text: str | None) -> frozenset[Origin]:
    """The `allowed_origins` setting; raises ValueError naming a bad entry."""
    origins: set[Origin] = set()
    for entry in _entries(text):
        if entry == ANY_HOST:
            raise ValueError(
                "`*` would let every web page drive the server; "
                "list each origin (e.g. https://app.example.com)"
            )
        origin = parse_origin(entry)
        if origin is None:
            raise ValueError(
                f"{entry!r} is not an origin; write scheme://host[:port], "
                "e.g. https://app.example.com or http://localhost:5173"
            )
        origins.add(origin)
    return frozenset(origins)


def parse_allowed_hosts(text: str | None) -> tuple[frozenset[HostName], bool]:
    """The `allowed_hosts` setting as (hosts, any host allowed); raises ValueError."""
    hosts: set[HostName] = set()
    any_host = False
    for entry in _entries(text):
        if entry == ANY_HOST:
            any_host = True
            continue
        host = parse_host(entry)
        if host is None:
            raise ValueError(
                f"{entry!r} is not a host; write a name or address, "
                "optionally with :port (e.g. proxy.example.com or proxy.example.com:8443)"
            )
        hosts.add(host)
    return frozenset(hosts), any_host


def _entries(text: str | None) -> list[str]:
    return [entry.strip() for entry in (text or "").split(",") if entry.strip()]


@dataclass(frozen=True)
class BrowserHeaders:
    """The request headers the policy reads, each as every value sent (latin-1)."""

    host: tuple[str, ...] = ()
    origin: tuple[str, ...] = ()
    sec_fetch_site: tuple[str, ...] = ()
    content_type: tuple[str, ...] = ()
    preflight_method: tuple[str, ...] = ()

    @classmethod
    def of(cls, headers: Iterable[tuple[bytes, bytes]]) -> BrowserHeaders:
        """From an ASGI scope's raw header pairs."""
        found: dict[bytes, list[str]] = {}
        for name, value in headers:
            found.setdefault(name.lower(), []).append(value.decode("latin-1"))

        def values(name: bytes) -> tuple[str, ...]:
            return tuple(found.get(name, ()))

        return cls(
            host=values(b"host"),
            origin=values(b"origin"),
            sec_fetch_site=values(b"sec-fetch-site"),
            content_type=values(b"content-type"),
            preflight_method=values(b"access-control-request-method"),
        )


@dataclass(frozen=True)
class Decision:
    """A verdict, and the origin to name in CORS headers (a listed origin only)."""

    verdict: Verdict
    cors_origin: str | None = None


@dataclass(frozen=True)
class BrowserPolicy:
    """The three rules over the settings' host and origin allow-lists.

    The bound address (the `--host` setting) is read once, into `bound` or
    `wildcard_bind`. Bound to a wildcard (0.0.0.0, ::), any IP-literal Host is
    accepted: a rebinding page must put a domain name of its own in Host, so an
    address there is never one.
    """

    bound: HostName | None = HostName("127.0.0.1")
    """The bound address as a Host header names it (None: a wildcard, or unreadable)."""
    wildcard_bind: bool = False
    """Whether the server is bound to a wildcard address (0.0.0.0, ::, or empty)."""
    allowed_hosts: frozenset[HostName] = frozenset()
    any_host: bool = False
    allowed_origins: frozenset[Origin] = frozenset()

    @classmethod
    def from_settings(
        cls, host: str, allowed_hosts: str | None, allowed_origins: str | None
    ) -> BrowserPolicy:
        """The policy of the `host`, `allowed_hosts` and `allowed_origins` settings."""
        bound = host.strip().strip("[]").lower()
        wildcard = bound in WILDCARD_BINDS
        hosts, any_host = parse_allowed_hosts(allowed_hosts)
        return cls(
            bound=None if wildcard else parse_host(_bracketed(bound)),
            wildcard_bind=wildcard,
            allowed_hosts=hosts,
            any_host=any_host,
            allowed_origins=parse_allowed_origins(allowed_origins),
        )

    @property
    def cors_enabled(self) -> bool:
        """Whether some origin is listed, so responses depend on the Origin header."""
        return bool(self.allowed_origins)

    def names_this_server(self, host: HostName) -> bool:
        """Whether `host` is a loopback name, the bound address or a listed host.

        The port plays no part unless a listed entry names one: rebinding needs a
        foreign name, whatever the port.
        """
        if host.is_loopback():
            return True
        if self.wildcard_bind:
            if host.ip is not None:
                return True
        elif self.bound is not None and self.bound.name == host.name:
            return True
        return any(
            entry.name == host.name and entry.port in (None, host.port)
            for entry in self.allowed_hosts
        )

    def decide(self, method: str, headers: BrowserHeaders) -> Decision:
        """Host first (421), then where the request comes from (403), then its body (415)."""
        accepted, host = self._request_host(headers.host)
        if not accepted:
            return Decision(Verdict.MISDIRECTED)
        cors_origin: str | None = None
        if headers.origin:
            origin = _single(headers.origin)
            parsed = parse_origin(origin) if origin is not None else None
            if parsed is not None and parsed in self.allowed_origins:
                cors_origin = origin
            elif not self._own_page(parsed, host, headers.sec_fetch_site):
                return Decision(Verdict.FORBIDDEN_ORIGIN)
        elif _cross_site(headers.sec_fetch_site):
            return Decision(Verdict.FORBIDDEN_ORIGIN)
        if method == "OPTIONS" and headers.origin and headers.preflight_method:
            # A preflight: answered for a listed origin, refused for any other.
            verdict = Verdict.PREFLIGHT if cors_origin else Verdict.FORBIDDEN_ORIGIN
            return Decision(verdict, cors_origin)
        if method in BODY_METHODS:
            content_type = _single(headers.content_type)
            if content_type is None or not is_json_media_type(content_type):
                return Decision(Verdict.UNSUPPORTED_MEDIA_TYPE, cors_origin)
        return Decision(Verdict.PASS, cors_origin)

    def _request_host(self, values: tuple[str, ...]) -> tuple[bool, HostName | None]:
        """Whether the Host is accepted, and the host if it names this server.

        No Host at all is an HTTP/1.0 client, never a browser. Under `*` any single
        Host passes, but only one that names this server can make a page same-origin.
        """
        if not values:
            return True, None
        host = parse_host(values[0]) if len(values) == 1 else None
        if host is not None and self.names_this_server(host):
            return True, host
        return self.any_host and len(values) == 1, None

    def _own_page(
        self, origin: Origin | None, host: HostName | None, sites: tuple[str, ...]
    ) -> bool:
        """Whether a page of this very server sent the request (its API docs, say).

        Safe only because the Host names this server: a rebinding page is
        same-origin too, but under its own name, which the Host check refused.
        """
        return (
            origin is not None
            and host is not None
            and _same_origin(origin, host)
            and not _cross_site(sites)
        )


def _single(values: tuple[str, ...]) -> str | None:
    """The one value of a header sent once; None when absent or repeated."""
    return values[0] if len(values) == 1 else None


def _cross_site(sites: tuple[str, ...]) -> bool:
    return any(site.strip().lower() == "cross-site" for site in sites)


def _bracketed(host: str) -> str:
    """An IPv6 address as a Host header writes it, so `parse_host` reads it."""
    return f"[{host}]" if ":" in host else host


def _same_origin(origin: Origin, host: HostName) -> bool:
    """Whether the page's origin is this server as the request's Host names it.

    The scheme is not compared: behind a TLS-terminating proxy the page is https
    while this server speaks http, and a Host without a port means the default
    port of whatever scheme the page used.
    """
    port = host.port if host.port is not None else DEFAULT_PORTS.get(origin.scheme)
    return origin.host == host.name and origin.port == port
