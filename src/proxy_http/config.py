"""What the HTTP adapter reads, declared here so the application can hand it over.

`create_app` takes an `HttpConfig`: the HTTP part (host, bodies, streaming) and the
security part (API keys, the browser allow-lists). Each field's description is the
operator's documentation (the application turns it into a flag and an env var).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from proxy_core.redact import masked_repr

KeepaliveStyle = Literal["comment", "chunk"]
"""How a chat completion stream keeps alive: SSE comments, or empty-content chunks."""

# Fields whose values are secrets: shown masked wherever a config is printed.
SECRET_FIELDS = frozenset({"api_keys", "admin_api_keys"})


class HttpOptions(msgspec.Struct, frozen=True, kw_only=True):
    """The HTTP side: the host the browser policy trusts, body limits, streaming."""

    host: Annotated[str, Meta(description="Interface to bind (loopback by default).")] = "127.0.0.1"
    max_body_bytes: Annotated[
        int, Meta(description="Largest request body accepted; larger ones get 413.")
    ] = 32 * 1024 * 1024
    max_body_bytes_in_flight: Annotated[
        int | None,
        Meta(
            description="Most request-body bytes held at once by all requests; beyond it 503 "
            "with Retry-After, before the body is read.",
            extra={"default": "4 x max_body_bytes"},
        ),
    ] = None
    body_timeout: Annotated[
        float,
        Meta(
            description="Seconds a request body may go without a byte; then 408 and the "
            "connection closes. 0 disables."
        ),
    ] = 30.0
    keepalive_interval: Annotated[
        float,
        Meta(
            description="Seconds between keepalives while a stream waits (`: keep-alive` "
            "comments unless keepalive_style says otherwise; Messages streams send `ping`)."
        ),
    ] = 15.0
    keepalive_style: Annotated[
        KeepaliveStyle,
        Meta(
            description="What a chat completion stream sends as its keepalive: `comment` "
            "(`: keep-alive`) or `chunk` (a chunk with empty content, for clients whose idle "
            "timer ignores comments, such as OpenClaw)."
        ),
    ] = "comment"
    stream_hold: Annotated[
        float,
        Meta(
            description="Seconds a stream waits for its first content before sending headers, "
            "so an early failure gets its own status (0: send at once)."
        ),
    ] = 3.0
    reasoning: Annotated[
        bool,
        Meta(
            description="Always send thinking as `reasoning_content` (else only with "
            "reasoning_effort)."
        ),
    ] = False
    metrics: Annotated[
        bool,
        Meta(
            description="Serve Prometheus metrics at GET /metrics (docs/metrics.md); "
            "`--no-metrics` removes the path."
        ),
    ] = True
    dashboard: Annotated[
        bool,
        Meta(
            description="Serve the status page at GET /dashboard (docs/dashboard.md); "
            "`--no-dashboard` removes the path."
        ),
    ] = True


class SecurityOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Who may call: API keys, and the hosts and web origins answered."""

    api_keys: Annotated[
        str | None,
        Meta(description="API keys clients must send (Bearer or x-api-key), comma-separated."),
    ] = None
    api_key_file: Annotated[
        str | None,
        Meta(
            description="File of API keys, one per line (`#` comments allowed), each "
            "optionally followed by `label=`, `daily_usd=`, `monthly_usd=` (docs/usage.md)."
        ),
    ] = None
    admin_api_keys: Annotated[
        str | None,
        Meta(description="Admin API keys (see and delete every key's sessions), comma-separated."),
    ] = None
    allowed_hosts: Annotated[
        str | None,
        Meta(
            description="Host names answered besides loopback and --host (`name[:port]`, "
            "comma-separated; `*`: any); others get 421."
        ),
    ] = None
    allowed_origins: Annotated[
        str | None,
        Meta(
            description="Web origins that may call the server, with CORS "
            "(`https://app.example`, comma-separated); other pages get 403."
        ),
    ] = None
    metrics_public: Annotated[
        bool,
        Meta(
            description="Let GET /metrics answer without an API key (for a scraper that "
            "holds none); the browser guard still applies."
        ),
    ] = False

    def __repr__(self) -> str:
        # API keys are secrets: a dump (a log line, a traceback) shows a mask.
        return masked_repr(self, SECRET_FIELDS)


class HttpConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Everything `create_app` and `layers.protect` read, in two parts, and the name the
    `X-Proxy-Instance` header gives every response (None: no header)."""

    http: HttpOptions = msgspec.field(default_factory=HttpOptions)
    security: SecurityOptions = msgspec.field(default_factory=SecurityOptions)
    instance: str | None = None
