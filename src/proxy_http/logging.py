"""Structured logs: structlog configured once, one line per request.

Every stdlib logger (uvicorn, the CLI backend, its CLI stderr at debug) is routed
through the same structlog renderer, so the output is one format throughout.
A request's id and facts (session key, outcome, tokens) are bound with
`structlog.contextvars` (see `note`), so every line a request causes carries its id.
"""

from __future__ import annotations

import logging
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

_SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


# Characters that would act on a terminal or split a line if written raw: C0 and C1
# controls, DEL, the Unicode line and paragraph separators, and the bidi overrides that
# can make a line read differently from what it holds. Request paths and headers carry
# them from any client into the log.
_UNICODE_BREAKERS = "\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_UNICODE_BREAKERS}]")
# A traceback is multi-line by nature: keep its newlines, escape the rest.
_UNSAFE_IN_BLOCK = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f{_UNICODE_BREAKERS}]")
_BLOCK_KEYS = frozenset({"exception", "stack"})


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _escaped(value: Any, unsafe: re.Pattern[str] = _UNSAFE) -> Any:
    if isinstance(value, str):
        return unsafe.sub(_escape_char, value) if unsafe.search(value) else value
    if isinstance(value, dict):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_escaped(item) for item in value)
    return value


def escape_control_characters(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: every string in a line has its control characters escaped.

    ESC, NUL, CR and the like become `\\x1b`, `\\x00`, `\\x0d` (as Python writes them), so
    nothing a client sends can move the cursor, recolour the terminal or forge a log
    line. Tracebacks keep their newlines.
    """
    for key, value in event_dict.items():
        event_dict[key] = _escaped(value, _UNSAFE_IN_BLOCK if key in _BLOCK_KEYS else _UNSAFE)
    return event_dict


# A line is read from the left: what happened and how it went come first; the long ids,
# there to search by rather than to read, come last. Other fields keep their order.
LEADING_FIELDS = (
    "event",
    "status",
    "latency_ms",
    "outcome",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_usd",
    "error",
    "message",
)
TRAILING_FIELDS = ("request_id", "session_key")


def order_fields(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: LEADING_FIELDS first, TRAILING_FIELDS last (when present)."""
    first = {k: event_dict[k] for k in LEADING_FIELDS if k in event_dict}
    last = {k: event_dict[k] for k in TRAILING_FIELDS if k in event_dict}
    middle = {k: v for k, v in event_dict.items() if k not in first and k not in last}
    return {**first, **middle, **last}


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when a line is emitted, not when configured.

    Whoever swaps stderr later (a test runner's capture, a daemon wrapper) gets the lines.
    """

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(
    log_format: Literal["console", "json"] = "console",
    level: str = "info",
    *,
    cache_loggers: bool = True,
) -> None:
    """Configure structlog and the stdlib root logger (call once, at startup).

    `cache_loggers=False` keeps module-level loggers following later configuration
    (tests capture log lines by reconfiguring structlog for a moment).
    """
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        # Unsorted: the order `order_fields` gives is the one worth reading.
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty(), sort_keys=False)
    )
    structlog.configure(
        processors=[
            # First: a line below the level costs a check, not the processors' work.
            structlog.stdlib.filter_by_level,
            *_SHARED_PROCESSORS,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=cache_loggers,
    )
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED_PROCESSORS,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                # A stdlib record's traceback becomes text here, so that it is escaped too.
                structlog.processors.format_exc_info,
                escape_control_characters,
                order_fields,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # Our request line replaces uvicorn's access log.
    logging.getLogger("uvicorn.access").disabled = True


# What a request's line reports beyond its method, path, status and latency.
REQUEST_FACTS = (
    "endpoint",
    "session_key",
    "model",
    "plan",
    "stream",
    "outcome",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_usd",
    "error",
    "message",
)

# An error message on a line is cut here: enough to say what went wrong, while a client
# that sends a huge value (quoted back in the message) cannot make a huge line.
MESSAGE_LIMIT = 500

# The facts of the request being served. One dict per request, set once by
# `request_scope`: tasks the request starts copy the context, so they see the same dict
# and what they note reaches the line, which values bound in them alone would not.
_FACTS: ContextVar[dict[str, Any] | None] = ContextVar("proxy_http_request_facts", default=None)


def note(**facts: Any) -> None:
    """Record facts about the current request (its outcome, tokens, ...).

    Its log line reports them, and they are bound with `structlog.contextvars`, so the
    lines logged after this in the same context carry them too. Outside a request
    (no `request_scope`) they are only bound.
    """
    structlog.contextvars.bind_contextvars(**facts)
    current = _FACTS.get()
    if current is not None:
        current.update(facts)


FIRST_CONTENT = "first_content_at"
"""The fact `note_first_content` records: when the client was first sent reply content
(`time.perf_counter()`); it is on no log line (the line's observers read it)."""


def note_first_content() -> None:
    """Record that the current request's client is being sent the first of its reply now
    (its time to first token); later calls keep the first time. Nothing is bound."""
    current = _FACTS.get()
    if current is not None and FIRST_CONTENT not in current:
        current[FIRST_CONTENT] = time.perf_counter()


def note_error(code: str, message: str) -> None:
    """Record the error the current request is answered with: its line shows `error`
    (the code) and `message` (what the client was told, cut at MESSAGE_LIMIT).

    Unlike `note`, nothing is bound: the lines logged after it are not about the error.
    """
    current = _FACTS.get()
    if current is not None:
        if len(message) > MESSAGE_LIMIT:
            message = message[: MESSAGE_LIMIT - 1] + "…"
        current.update(error=code, message=message)


@contextmanager
def request_scope(request_id: str) -> Iterator[dict[str, Any]]:
    """The span of one request: yields the dict its `note`s fill in.

    The request id is bound to every line logged within; whatever the request bound
    is unbound when it ends.
    """
    facts: dict[str, Any] = {}
    token = _FACTS.set(facts)
    bound = structlog.contextvars.get_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    try:
        yield facts
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**bound)
        _FACTS.reset(token)


def new_request_id() -> str:
    return "req_" + secrets.token_hex(8)


@dataclass(frozen=True)
class FinishedRequest:
    """One request as its log line saw it, handed to the log's observers (the metrics).

    `latency` is its seconds from arrival to the end of its answer; `first_content` the
    seconds until its first reply content was sent (a stream's, see
    `note_first_content`; None for any other answer); `facts` what it noted; `state`
    what the layers left in its ASGI scope's state (the key check's caller).
    """

    method: str
    path: str
    status: int
    latency: float
    first_content: float | None
    facts: Mapping[str, Any]
    state: Mapping[str, Any] = field(default_factory=dict)


RequestObserver = Callable[[FinishedRequest], None]
"""What the request log tells of each request it ends (see `RequestLogMiddleware`)."""


class RequestLogMiddleware:
    """ASGI middleware: binds a request id, adds `X-Request-Id`, logs one line at the end.

    The line is written when the response is complete, so a stream's line has its
    tokens and outcome (see `note`). Each of `observers` (the metrics) is then told of
    the request, the ones refused by the layers inside this one included.
    """

    def __init__(self, app: ASGIApp, observers: Sequence[RequestObserver] = ()) -> None:
        self.app = app
        self.logger = structlog.get_logger("proxy_http.request")
        self.observers = tuple(observers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        status = 0
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with request_scope(request_id) as facts:
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                latency = time.perf_counter() - started
                fields: dict[str, Any] = {
                    "request_id": request_id,
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "latency_ms": round(latency * 1000, 1),
                }
                for name in REQUEST_FACTS:
                    if facts.get(name) is not None:
                        fields[name] = facts[name]
                self.logger.info("request", **fields)
                if self.observers:
                    first = facts.get(FIRST_CONTENT)
                    finished = FinishedRequest(
                        method=str(scope.get("method", "")),
                        path=str(scope.get("path", "")),
                        status=status,
                        latency=latency,
                        first_content=None if first is None else first - started,
                        facts=facts,
                        state=scope.get("state") or {},
                    )
                    for observe in self.observers:
                        observe(finished)
