"""Failures as OpenAI error bodies and HTTP statuses.

Handlers raise domain errors (`ChatError`) or let Litestar raise its own; the
exception handlers here turn each into `{"error": {...}}` with the right status,
so no handler builds error JSON by hand and no client ever sees a stack trace.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import msgspec
import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap, Send

from proxy_core import DOCTOR_HELP, INSTALL_HELP, LOGIN_HELP, ChatError, FailureReason
from proxy_core.errors import invalid
from proxy_core.openai_wire import error_location, invalid_field
from proxy_http.browser_policy import Verdict
from proxy_http.logging import note_error
from proxy_http.wire import ErrorBody, ErrorDetail


class ErrorShape(msgspec.Struct, frozen=True):
    """How one failure looks on the wire: its status, OpenAI error type and code, and
    the hint that says what to do (the whole message when a site has none)."""

    status: int
    type: str
    code: str
    hint: str = ""

    def body(self, message: str = "", *, param: str | None = None) -> ErrorBody:
        """The OpenAI error body of this shape saying `message` (else its hint)."""
        return ErrorBody(ErrorDetail(message or self.hint, self.type, param, self.code))


# The HTTP layer's own answers, outside the service's failure reasons: each shape is
# declared here once, and each site only adds its message when it has one.
UNAUTHORIZED = ErrorShape(
    401,
    "invalid_request_error",
    "invalid_api_key",
    "Missing or invalid API key: send it as `Authorization: Bearer <key>` "
    "or as `x-api-key: <key>`.",
)
MISDIRECTED = ErrorShape(
    421,
    "invalid_request_error",
    Verdict.MISDIRECTED.value,
    "This server does not answer for the Host this request names. Behind a reverse "
    "proxy, add that name to --allowed-hosts / CLAUDE_PROXY_ALLOWED_HOSTS.",
)
FORBIDDEN_ORIGIN = ErrorShape(
    403,
    "permission_error",
    Verdict.FORBIDDEN_ORIGIN.value,
    "Requests from web pages are refused unless their origin is listed in "
    "--allowed-origins / CLAUDE_PROXY_ALLOWED_ORIGINS.",
)
UNSUPPORTED_MEDIA_TYPE = ErrorShape(
    415,
    "invalid_request_error",
    Verdict.UNSUPPORTED_MEDIA_TYPE.value,
    "Send the request body as JSON with `Content-Type: application/json`.",
)
BODY_STALLED = ErrorShape(408, "invalid_request_error", "request_timeout")
NOT_FOUND = ErrorShape(404, "invalid_request_error", "not_found")
"""What a handler answers for a thing it keeps that is not there (a stored response)."""
AT_CAPACITY = ErrorShape(503, "service_unavailable_error", "server_busy")
"""No room for one more request body or connection (the service's own busy is a 429)."""
UNEXPECTED = ErrorShape(500, "api_error", "internal_error", "The server hit an unexpected error.")


_SHAPES: dict[FailureReason, ErrorShape] = {
    FailureReason.INVALID_REQUEST: ErrorShape(400, "invalid_request_error", "invalid_request"),
    FailureReason.MODEL_NOT_FOUND: ErrorShape(404, "invalid_request_error", "model_not_found"),
    FailureReason.BUSY: ErrorShape(429, "rate_limit_error", "server_busy"),
    FailureReason.RATE_LIMITED: ErrorShape(
        429, "rate_limit_error", "rate_limit_exceeded", "The upstream rate limit was reached."
    ),
    # OpenAI's answer for "out of credit", which client SDKs already understand. The
    # message says what to do: the backend's names the credit page (CREDIT_HELP), the
    # service's names the budget and when it resets.
    FailureReason.INSUFFICIENT_QUOTA: ErrorShape(429, "insufficient_quota", "insufficient_quota"),
    FailureReason.BUDGET_EXCEEDED: ErrorShape(429, "insufficient_quota", "insufficient_quota"),
    FailureReason.UPSTREAM_ERROR: ErrorShape(502, "api_error", "upstream_error"),
    FailureReason.CLI_CRASHED: ErrorShape(502, "api_error", "cli_crashed"),
    FailureReason.SESSION_MISSING: ErrorShape(502, "api_error", "session_missing"),
    FailureReason.NOT_LOGGED_IN: ErrorShape(
        503,
        "service_unavailable_error",
        "not_logged_in",
        f"{LOGIN_HELP} Then retry; {DOCTOR_HELP}",
    ),
    FailureReason.BACKEND_UNAVAILABLE: ErrorShape(
        503,
        "service_unavailable_error",
        "backend_unavailable",
        f"If the Claude Code CLI is missing: {INSTALL_HELP} {DOCTOR_HELP}",
    ),
    FailureReason.OVERLOADED: ErrorShape(
        503, "service_unavailable_error", "overloaded", "The upstream is overloaded: retry later."
    ),
    FailureReason.STORE_UNAVAILABLE: ErrorShape(
        503,
        "service_unavailable_error",
        "store_unavailable",
        # Each store's message names its own database and the flag that chooses it.
        "The server cannot read or write its state: free disk space, and check that the "
        "state directory, and any database named here, are writable; then retry.",
    ),
    FailureReason.CANCELLED: ErrorShape(
        503, "service_unavailable_error", "cancelled", "The request was cancelled: retry it."
    ),
    FailureReason.TIMEOUT: ErrorShape(504, "timeout_error", "timeout"),
}


def shape_of(reason: FailureReason) -> ErrorShape:
    """The wire shape of a failure reason (an unknown one is a 502)."""
    return _SHAPES.get(reason, ErrorShape(502, "api_error", str(reason)))


def chat_error_body(
    reason: FailureReason, message: str, param: str | None = None
) -> tuple[int, ErrorBody]:
    """Status and body for a typed failure; the message says what to do when we know."""
    shape = shape_of(reason)
    text = message.strip() or shape.hint or str(reason)
    if shape.hint and shape.hint not in text:
        text = f"{text.rstrip('. ')}. {shape.hint}"
    return shape.status, shape.body(text, param=param)


def retry_after_header(seconds: float | None) -> dict[str, str]:
    """A `Retry-After` header in whole seconds (at least 1), or none when unknown."""
    if seconds is None or seconds < 0 or not math.isfinite(seconds):
        return {}
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def answered(body: ErrorBody) -> ErrorBody:
    """`body`, noted as the error the current request is answered with (its log line
    then says what the client was told). Every error body sent passes through here."""
    note_error(body.error.code or body.error.type, body.error.message)
    return body


def error_response(
    status: int, body: ErrorBody, headers: dict[str, str] | None = None
) -> Response[ErrorBody]:
    return Response(answered(body), status_code=status, media_type=MediaType.JSON, headers=headers)


CLOSE: dict[str, str] = {"Connection": "close"}
"""Sent with an answer given before the body was read: the unread rest is never read."""


class RequestRefused(Exception):
    """A request answered without being served: a stalled body (408), no room for it (503).

    Raised by the request-body reader, inside the app; the exception handler turns it
    into its OpenAI error body, and the connection closes after it.
    """

    def __init__(self, status: int, body: ErrorBody, headers: dict[str, str] | None = None) -> None:
        super().__init__(body.error.message)
        self.status = status
        self.body = body
        self.headers = {**(headers or {}), **CLOSE}


def handle_refused(_: Request[Any, Any, Any], error: RequestRefused) -> Response[ErrorBody]:
    return error_response(error.status, error.body, error.headers)


async def send_response(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> None:
    """A whole response as raw ASGI events (for middleware outside the app's handlers)."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_error(
    send: Send, status: int, error: ErrorBody, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """An OpenAI error body as a raw ASGI response, with `headers` added."""
    body = msgspec.json.encode(answered(error))
    await send_response(
        send,
        status,
        [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
        body,
    )


async def send_refusal(send: Send, refusal: RequestRefused) -> None:
    """Answer `refusal` with raw ASGI events (for middleware outside the app's handlers)."""
    await send_error(
        send,
        refusal.status,
        refusal.body,
        ((name.lower().encode(), value.encode()) for name, value in refusal.headers.items()),
    )


def handle_chat_error(_: Request[Any, Any, Any], error: ChatError) -> Response[ErrorBody]:
    status, body = chat_error_body(error.reason, error.message, error.param)
    return error_response(status, body, retry_after_header(error.retry_after))


_TYPES_BY_STATUS = {
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_error",
}
_CODES_BY_STATUS = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
# Litestar decodes the body as the handler's `data` argument: msgspec's paths start there.
_BODY = "data"
_EMPTY_BODY = "The request body is empty: send a JSON object with `model` and `messages`."


def validation_error(error: ValidationException) -> ChatError:
    """The invalid request a failed decoding is, naming the field by msgspec's path
    (`messages[0].content[1].type`; a query parameter by its name)."""
    cause = error.__cause__
    if not isinstance(cause, msgspec.ValidationError):
        return invalid(str(error.detail))  # Litestar's own check: its detail says it all
    what, path = error_location(cause)
    if path == _BODY and what.startswith("Object missing"):
        return invalid(_EMPTY_BODY)
    if path == _BODY or path.startswith((f"{_BODY}.", f"{_BODY}[")):
        path = path.removeprefix(_BODY).removeprefix(".")
    return invalid_field(what, path)


def handle_validation(
    request: Request[Any, Any, Any], error: ValidationException
) -> Response[ErrorBody]:
    return handle_chat_error(request, validation_error(error))


def _from_decoding(error: BaseException) -> bool:
    """Whether msgspec's JSON decoder raised this (e.g. "Input data was truncated")."""
    cause = error.__cause__
    while cause is not None:
        if isinstance(cause, msgspec.DecodeError):
            return True
        cause = cause.__cause__
    return False


def handle_http(_: Request[Any, Any, Any], error: HTTPException) -> Response[ErrorBody]:
    status = error.status_code
    if status >= 500:
        # Litestar's own 5xx (none expected): keep the detail but never a trace.
        shape = ErrorShape(status, UNEXPECTED.type, UNEXPECTED.code)
    else:
        shape = ErrorShape(
            status,
            _TYPES_BY_STATUS.get(status, "invalid_request_error"),
            _CODES_BY_STATUS.get(status, "invalid_request"),
        )
    headers = dict(error.headers or {})
    message = str(error.detail)
    if status == 400 and (message.startswith("JSON is malformed") or _from_decoding(error)):
        message = f"The request body is not valid JSON: {message}"
    elif status == 413:
        message = f"The request body is too large ({message}); the limit is a server setting."
        headers.update(CLOSE)  # Litestar refuses before reading: do not read it afterwards
    return error_response(status, shape.body(message), headers)


def handle_undecodable(_: Request[Any, Any, Any], error: Exception) -> Response[ErrorBody]:
    """A body Litestar's JSON decoder chokes on outside its own error type: a client error."""
    if isinstance(error, UnicodeDecodeError):
        message = f"The request body is not valid UTF-8 JSON: {error.reason} at byte {error.start}."
    else:
        message = "The request body is nested too deeply to decode."
    shape = shape_of(FailureReason.INVALID_REQUEST)
    return error_response(shape.status, shape.body(message))


def handle_unexpected(request: Request[Any, Any, Any], error: Exception) -> Response[ErrorBody]:
    structlog.get_logger("proxy_http").error(
        "unhandled_error", path=request.url.path, error=repr(error), exc_info=error
    )
    return error_response(UNEXPECTED.status, UNEXPECTED.body())


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ChatError: handle_chat_error,
    RequestRefused: handle_refused,
    ValidationException: handle_validation,
    HTTPException: handle_http,
    # msgspec raises these for invalid UTF-8 and deep nesting, and Litestar lets them through.
    UnicodeDecodeError: handle_undecodable,
    RecursionError: handle_undecodable,
    Exception: handle_unexpected,
}
