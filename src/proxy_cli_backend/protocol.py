"""The CLI's stream-json protocol: stdout events decoded, stdin messages encoded.

Only the fields the proxy uses are declared; msgspec ignores the rest, and event
types we do not know are skipped, since each CLI release adds some.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgspec
import structlog

from proxy_core import Block

log = structlog.get_logger(__name__)

# -- stdout ------------------------------------------------------------------


class ContentBlock(msgspec.Struct, frozen=True):
    """A block of a complete message: text, thinking, tool_use, or another type."""

    type: str
    text: str = ""
    thinking: str = ""
    id: str = ""
    name: str = ""
    input: Any = None


class BlockDelta(msgspec.Struct, frozen=True):
    """`delta` of a content_block_delta (text_delta, thinking_delta, ...) or a message_delta.

    A message_delta's `stop_reason` says the upstream finished the message: a message
    that ends (`message_stop`) without one was cut off and will be retried.
    """

    type: str = ""
    text: str = ""
    thinking: str = ""
    partial_json: str = ""
    stop_reason: str | None = None


class ResultUsage(msgspec.Struct, frozen=True):
    input_tokens: int | None = 0
    output_tokens: int | None = 0
    cache_read_input_tokens: int | None = 0
    cache_creation_input_tokens: int | None = 0


class StartedMessage(msgspec.Struct, frozen=True):
    """The message a `message_start` opens (only its usage so far is read)."""

    usage: ResultUsage | None = None


class RawStreamEvent(msgspec.Struct, frozen=True):
    """An Anthropic streaming event as the CLI relays it (only what we read).

    `message` is a message_start's; `usage` a message_delta's (its output tokens).
    """

    type: str
    index: int = 0
    delta: BlockDelta | None = None
    content_block: ContentBlock | None = None
    message: StartedMessage | None = None
    usage: ResultUsage | None = None


class StreamEvent(msgspec.Struct, frozen=True, tag="stream_event", tag_field="type"):
    """A partial-message event (with --include-partial-messages)."""

    event: RawStreamEvent
    session_id: str | None = None
    parent_tool_use_id: str | None = None


class AssistantMessage(msgspec.Struct, frozen=True):
    """`stop_reason` is only set on a message that was not streamed (the CLI's
    non-streaming fallback prints it whole): a streamed one is printed before it ends."""

    id: str = ""
    model: str = ""
    content: list[ContentBlock] = msgspec.field(default_factory=list)
    stop_reason: str | None = None


class AssistantEvent(msgspec.Struct, frozen=True, tag="assistant", tag_field="type"):
    """A complete assistant message (the CLI may split one message into several)."""

    message: AssistantMessage
    uuid: str | None = None
    session_id: str | None = None
    parent_tool_use_id: str | None = None

    @property
    def synthetic(self) -> bool:
        """The CLI's own message (e.g. an API error's text), not the model's."""
        return self.message.model == "<synthetic>"


class UserBlock(msgspec.Struct, frozen=True):
    type: str = ""


class UserMessage(msgspec.Struct, frozen=True):
    content: str | list[UserBlock] = ""


class UserEvent(msgspec.Struct, frozen=True, tag="user", tag_field="type"):
    """A user-side message the CLI reports (tool results during agentic turns)."""

    message: UserMessage = msgspec.field(default_factory=UserMessage)
    uuid: str | None = None
    session_id: str | None = None
    parent_tool_use_id: str | None = None

    @property
    def tool_results(self) -> bool:
        """It carries tool results (the answer to the model's tool calls)."""
        content = self.message.content
        return not isinstance(content, str) and any(b.type == "tool_result" for b in content)


class SystemEvent(msgspec.Struct, frozen=True, tag="system", tag_field="type"):
    """`init`, `status`, `api_retry` and other notices."""

    subtype: str = ""
    session_id: str | None = None
    model: str | None = None
    # `api_retry`: the CLI retries a failed upstream request after `retry_delay_ms`.
    error_status: int | None = None
    retry_delay_ms: float | None = None
    attempt: int | None = None
    max_retries: int | None = None
    error: str | None = None  # the CLI's category: overloaded, rate_limit, server_error...


class ResultEvent(msgspec.Struct, frozen=True, tag="result", tag_field="type"):
    """The end of a turn. Errors may still say `subtype: success`: check `is_error`."""

    subtype: str = ""
    is_error: bool = False
    result: str | None = None
    session_id: str | None = None
    stop_reason: str | None = None
    api_error_status: int | None = None
    terminal_reason: str | None = None
    errors: list[Any] = msgspec.field(default_factory=list)
    usage: ResultUsage = msgspec.field(default_factory=ResultUsage)
    structured_output: Any = None  # with --json-schema: what the model returned
    # Running totals of the process (see costs.py), read tolerantly: a field of an
    # unexpected type must not cost the turn its result.
    total_cost_usd: Any = None
    model_usage: Any = msgspec.field(default=None, name="modelUsage")


def json_number(value: Any) -> float | None:
    """A field read tolerantly as a number: a finite JSON number (never a boolean),
    else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


class RateLimitEvent(msgspec.Struct, frozen=True, tag="rate_limit_event", tag_field="type"):
    """The account's plan windows as the upstream's headers reported them (subscription
    mode only); `rate_limit_info` is read tolerantly by `plan_info`."""

    rate_limit_info: Any = None
    session_id: str | None = None


class ControlResponse(msgspec.Struct, frozen=True, tag="control_response", tag_field="type"):
    """The answer to a control request we sent (initialize, set_model, interrupt)."""

    response: dict[str, Any] = msgspec.field(default_factory=dict)


class ControlRequest(msgspec.Struct, frozen=True, tag="control_request", tag_field="type"):
    """A request the CLI makes of us (`mcp_message` for the client tools' MCP server);
    it waits for our `control_response` with the same `request_id`."""

    request_id: str
    request: dict[str, Any] = msgspec.field(default_factory=dict)


class ControlCancel(msgspec.Struct, frozen=True, tag="control_cancel_request", tag_field="type"):
    """The CLI no longer waits for the answer to its request `request_id`."""

    request_id: str = ""


CliEvent = (
    StreamEvent
    | AssistantEvent
    | UserEvent
    | SystemEvent
    | ResultEvent
    | RateLimitEvent
    | ControlResponse
    | ControlRequest
    | ControlCancel
)


class _Envelope(msgspec.Struct):
    type: str = ""


_KNOWN = frozenset(
    {
        "stream_event",
        "assistant",
        "user",
        "system",
        "result",
        "rate_limit_event",
        "control_response",
        "control_request",
        "control_cancel_request",
    }
)


class EventDecoder:
    """Decodes stdout lines; one instance per process, reused for every line."""

    def __init__(self) -> None:
        self._events = msgspec.json.Decoder(CliEvent)
        self._envelope = msgspec.json.Decoder(_Envelope)

    def decode(self, line: bytes) -> CliEvent | None:
        """The event on a line, or None for an unknown type or a malformed line (logged)."""
        try:
            event: CliEvent = self._events.decode(line)
        except msgspec.DecodeError as error:
            try:
                kind = self._envelope.decode(line).type
            except msgspec.DecodeError:
                kind = ""
            if kind and kind not in _KNOWN:
                log.debug("cli_event_unknown", type=kind)
            else:
                log.warning("cli_line_malformed", error=str(error), line=repr(line)[:200])
            return None
        return event


# -- stdin -------------------------------------------------------------------


class _UserContent(msgspec.Struct, frozen=True):
    role: str
    content: Sequence[Block]


class _UserLine(msgspec.Struct, frozen=True, tag="user", tag_field="type"):
    message: _UserContent


class _ControlLine(msgspec.Struct, frozen=True, tag="control_request", tag_field="type"):
    request_id: str
    request: dict[str, Any]


_encoder = msgspec.json.Encoder()


def encode_user_message(blocks: Sequence[Block]) -> bytes:
    """One stdin line carrying a user turn: text and image blocks (base64 or url)."""
    return _encoder.encode(_UserLine(_UserContent("user", blocks))) + b"\n"


def encode_control_request(request_id: str, subtype: str, **fields: Any) -> bytes:
    """One stdin control line, e.g. `initialize`, `set_model` (model=...), `interrupt`."""
    return _encoder.encode(_ControlLine(request_id, {"subtype": subtype, **fields})) + b"\n"


class _ControlAnswer(msgspec.Struct, frozen=True, tag="control_response", tag_field="type"):
    response: dict[str, Any]


def encode_control_response(request_id: str, response: dict[str, Any]) -> bytes:
    """One stdin line answering the CLI's control request `request_id` successfully."""
    answer = {"subtype": "success", "request_id": request_id, "response": response}
    return _encoder.encode(_ControlAnswer(answer)) + b"\n"


def encode_control_error(request_id: str, error: str) -> bytes:
    """One stdin line refusing the CLI's control request `request_id`."""
    answer = {"subtype": "error", "request_id": request_id, "error": error}
    return _encoder.encode(_ControlAnswer(answer)) + b"\n"
