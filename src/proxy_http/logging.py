"""Structured logs: structlog configured once, one line per request.

Every stdlib logger (uvicorn, the CLI backend, its CLI stderr at debug) is routed
through the same structlog renderer, so the output is one format throughout.
The request id and session key are bound with `structlog.contextvars`, so every
line a request causes carries them.
"""

from __future__ import annotations

import logging
import secrets
import sys
import time
from typing import Any, Literal

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_LOG_KEY = "proxy_request_log"

_SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


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
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
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
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # Our request line replaces uvicorn's access log.
    logging.getLogger("uvicorn.access").disabled = True


class RequestLog:
    """What one request's log line reports; the handlers fill it in as they learn it."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.session_key: str | None = None
        self.model: str | None = None
        self.plan: str | None = None
        self.stream: bool | None = None
        self.outcome: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None


def request_log(scope: Scope) -> RequestLog:
    """The RequestLog of a request (a throwaway one when the middleware is absent)."""
    state = scope.setdefault("state", {})
    log = state.get(REQUEST_LOG_KEY)
    if not isinstance(log, RequestLog):
        log = RequestLog(new_request_id())
        state[REQUEST_LOG_KEY] = log
    return log


def new_request_id() -> str:
    return "req_" + secrets.token_hex(8)


class RequestLogMiddleware:
    """ASGI middleware: binds a request id, adds `X-Request-Id`, logs one line at the end.

    The line is written when the response is complete, so a stream's line has its
    tokens and outcome.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.logger = structlog.get_logger("proxy_http.request")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        log = RequestLog(new_request_id())
        scope.setdefault("state", {})[REQUEST_LOG_KEY] = log
        status = 0
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", log.request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=log.request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                fields: dict[str, Any] = {
                    "request_id": log.request_id,
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "latency_ms": round((time.perf_counter() - started) * 1000, 1),
                }
                for name in (
                    "session_key",
                    "model",
                    "plan",
                    "stream",
                    "outcome",
                    "prompt_tokens",
                    "completion_tokens",
                ):
                    value = getattr(log, name)
                    if value is not None:
                        fields[name] = value
                self.logger.info("request", **fields)
