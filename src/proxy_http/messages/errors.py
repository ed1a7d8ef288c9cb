"""Errors in Anthropic's shape for everything under `/v1/messages`.

Every error the server answers is made once, as an OpenAI error body, wherever it
arises: the ASGI layers (API key 401, browser guard 403/421, body 408/413/415/503),
Litestar's routing (404, 405), validation (400) and the service (429, 502, 503, 504).
Rather than teach each of them a second shape, `AnthropicErrors` sits around them all
(see `proxy_http.layers.protect`) and rewrites the JSON error body of a response to a
Messages path into `{"type": "error", "error": {"type", "message"}}` with Anthropic's
status: one place, so no source can be missed. The message text is kept (it says what
to do), and so are the other headers (Retry-After) and the request log's `error`
field, which the original body noted.
"""

from __future__ import annotations

from typing import Final, cast

import msgspec
import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send

from proxy_core import FailureReason
from proxy_http.errors import shape_of
from proxy_http.messages.wire import ErrorBody, ErrorDetail
from proxy_http.wire import ErrorBody as OpenAIErrorBody

MESSAGES_PATH: Final = "/v1/messages"

OVERLOADED_STATUS: Final = 529
"""Anthropic's status for an overloaded API (the SDKs retry it)."""

_TYPES_BY_STATUS: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
}
_OVERLOADED_CODE: Final = shape_of(FailureReason.OVERLOADED).code
_QUOTA_CODE: Final = shape_of(FailureReason.BUDGET_EXCEEDED).code
"""Out of credit or over a budget: Anthropic's `billing_error`, with the 429 kept."""

_openai_decoder = msgspec.json.Decoder(OpenAIErrorBody)
_encoder = msgspec.json.Encoder()


def is_messages_path(path: str) -> bool:
    """Whether `path` is the Messages API's (its own errors take Anthropic's shape)."""
    return path == MESSAGES_PATH or path.startswith(MESSAGES_PATH + "/")


def error_type(status: int, code: str | None = None) -> tuple[int, str]:
    """Anthropic's status and error type for an answer of `status` with OpenAI `code`:
    an overloaded upstream is a 529; out of credit or over a budget is a
    `billing_error`; other 4xx are invalid requests and 5xx API errors unless Anthropic
    names them."""
    if code == _OVERLOADED_CODE:
        return OVERLOADED_STATUS, "overloaded_error"
    if code == _QUOTA_CODE:
        # Anthropic has no `insufficient_quota`: its `billing_error` says what is wrong
        # (credit, a budget), and the status stays 429, the proxy's one answer for it on
        # every surface, which the SDKs raise as a rate limit error.
        return status, "billing_error"
    if status in _TYPES_BY_STATUS:
        return status, _TYPES_BY_STATUS[status]
    return status, "invalid_request_error" if status < 500 else "api_error"


def request_id() -> str | None:
    """The id of the request being served (the request log binds it)."""
    value = structlog.contextvars.get_contextvars().get("request_id")
    return value if isinstance(value, str) else None


def error_body(status: int, message: str, code: str | None = None) -> tuple[int, ErrorBody]:
    """Anthropic's status and error body saying `message` (see `error_type`)."""
    status, kind = error_type(status, code)
    return status, ErrorBody(ErrorDetail(kind, message), request_id())


def anthropic_error(status: int, body: bytes) -> tuple[int, bytes] | None:
    """The OpenAI error `body` of a `status` answer in Anthropic's shape; None when it
    is not one (left as it is)."""
    try:
        openai = _openai_decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    status, anthropic = error_body(status, openai.error.message, openai.error.code)
    return status, _encoder.encode(anthropic)


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(
        name.lower() == b"content-type" and value.lower().startswith(b"application/json")
        for name, value in headers
    )


class AnthropicErrors:
    """ASGI layer: error answers to Messages paths in Anthropic's shape (module doc).

    Only an error (status >= 400) with a JSON body is held, whole, and rewritten; a
    stream and every other answer pass through untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not is_messages_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        held: HTTPResponseStartEvent | None = None
        chunks: list[bytes] = []

        async def rewriting(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                if message["status"] >= 400 and _is_json(list(message.get("headers", []))):
                    held = message
                    return
            elif held is not None and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                await _send_rewritten(send, held, b"".join(chunks))
                return
            await send(message)

        await self.app(scope, receive, rewriting)


async def _send_rewritten(send: Send, start: HTTPResponseStartEvent, body: bytes) -> None:
    status = start["status"]
    rewritten = anthropic_error(status, body)
    if rewritten is not None:
        status, body = rewritten
    headers = [
        (name, value)
        for name, value in start.get("headers", [])
        if name.lower() != b"content-length"
    ]
    headers.append((b"content-length", str(len(body)).encode()))
    await send(cast(HTTPResponseStartEvent, {**start, "status": status, "headers": headers}))
    await send({"type": "http.response.body", "body": body, "more_body": False})
