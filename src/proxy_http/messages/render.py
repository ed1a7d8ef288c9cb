"""A turn's reply as an Anthropic Message: whole, or as its stream of SSE events."""

from __future__ import annotations

import secrets
from typing import Any, Final, get_args

import msgspec

from proxy_core import FailureReason, Finished, ToolCall, Usage
from proxy_http.errors import answered, chat_error_body
from proxy_http.messages.errors import error_body
from proxy_http.messages.wire import (
    BlockDelta,
    ContentBlockDelta,
    ContentBlockStart,
    ContentBlockStop,
    ContentOut,
    InputJsonDeltaOut,
    Message,
    MessageDelta,
    MessageStart,
    MessageStop,
    MessageUsage,
    Ping,
    SignatureDeltaOut,
    StopInfo,
    StopReason,
    TextDeltaOut,
    TextOut,
    ThinkingDeltaOut,
    ThinkingOut,
    ToolUseOut,
)
from proxy_http.sse import cost_of, sse_event

_STOP_REASONS: Final = frozenset(get_args(StopReason))
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def stop_reason(finished: Finished) -> StopReason:
    """Anthropic's stop_reason: `tool_use` when the reply ends in client tool calls (the
    CLI's own tool use is not the client's), else the upstream's when Anthropic knows
    it, else `end_turn`."""
    if finished.tool_calls:
        return "tool_use"
    reason = finished.stop_reason
    if reason == "tool_use" or reason not in _STOP_REASONS:
        return "end_turn"
    found: StopReason = reason  # type: ignore[assignment]  # checked against its values
    return found


def message_usage(usage: Usage) -> MessageUsage:
    """The core's usage as Anthropic's (the same four figures; input is the uncached)."""
    return MessageUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_creation_input_tokens=usage.cache_creation_tokens,
        cache_read_input_tokens=usage.cache_read_tokens,
        cost=cost_of(usage),
    )


def tool_input(call: ToolCall) -> dict[str, Any]:
    """A call's arguments as the object `input` is (the CLI's calls are objects)."""
    try:
        value = _decoder.decode(call.arguments) if call.arguments else {}
    except msgspec.DecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def whole_message(
    *,
    message_id: str,
    model: str,
    text: str,
    thinking: str | None,
    finished: Finished,
    usage: Usage,
) -> Message:
    """The whole reply: shown thinking, the text, then the tool_use blocks. A reply
    with neither text nor calls still has its (empty) text block."""
    content: list[ContentOut] = []
    if thinking:
        content.append(ThinkingOut(thinking))
    if text or not finished.tool_calls:
        content.append(TextOut(text))
    content += [ToolUseOut(c.id, c.name, tool_input(c)) for c in finished.tool_calls]
    return Message(
        id=message_id,
        model=model,
        content=content,
        stop_reason=stop_reason(finished),
        stop_sequence=finished.stop_sequence,
        usage=message_usage(usage),
    )


def event(payload: msgspec.Struct, name: str) -> bytes:
    """One SSE event: its `event:` line names its type, as Anthropic's do."""
    return b"event: " + name.encode() + b"\n" + sse_event(payload)


def error_event(reason: FailureReason, message: str) -> bytes:
    """An `error` event with Anthropic's body (the failure's status and type)."""
    status, openai = chat_error_body(reason, message)
    answered(openai)  # the request log names the error the client was told
    _, body = error_body(status, openai.error.message, openai.error.code)
    return event(body, "error")


class MessagesRenderer:
    """Writes one turn as the Messages stream (a `StreamRenderer`): `message_start`,
    then each content block (`content_block_start`, its deltas, `content_block_stop`,
    with its own index), then `message_delta` with the stop reason and usage, and
    `message_stop`; `ping` while waiting; an `error` event for a failure."""

    def __init__(self, message_id: str, model: str) -> None:
        self.message_id = message_id
        self.model = model
        self._blocks = 0  # blocks started so far: the next one's index
        self._open: str | None = None  # the kind of the block being written
        self._calls: dict[int, int] = {}  # a tool call's index -> its block's index

    def opening(self) -> bytes:
        start = Message(
            id=self.message_id,
            model=self.model,
            content=[],
            stop_reason=None,
            stop_sequence=None,
            usage=MessageUsage(input_tokens=0, output_tokens=0),
        )
        return event(MessageStart(start), "message_start")

    def text(self, text: str) -> bytes:
        return self._block("text", TextOut("")) + self._delta(TextDeltaOut(text))

    def thinking(self, text: str) -> bytes:
        return self._block("thinking", ThinkingOut("")) + self._delta(ThinkingDeltaOut(text))

    def tool_call(self, index: int, call_id: str, name: str) -> bytes:
        out = self._close() + self._start("tool_use", ToolUseOut(call_id, name, {}))
        self._calls[index] = self._blocks - 1
        return out

    def tool_arguments(self, index: int, text: str) -> bytes:
        block = self._calls.get(index, self._blocks - 1)
        return event(ContentBlockDelta(block, InputJsonDeltaOut(text)), "content_block_delta")

    async def finished(self, finished: Finished, usage: Usage) -> bytes:
        info = StopInfo(stop_reason(finished), finished.stop_sequence)
        return (
            self._close()
            + event(MessageDelta(info, message_usage(usage)), "message_delta")
            + event(MessageStop(), "message_stop")
        )

    def failed(self, reason: FailureReason, message: str) -> bytes:
        return error_event(reason, message)

    @staticmethod
    def keepalive() -> bytes:
        return event(Ping(), "ping")

    def _block(self, kind: str, empty: ContentOut) -> bytes:
        """Opens a block of `kind` unless one is open (closing another kind first)."""
        if self._open == kind:
            return b""
        return self._close() + self._start(kind, empty)

    def _start(self, kind: str, block: ContentOut) -> bytes:
        self._open = kind
        self._blocks += 1
        return event(ContentBlockStart(self._blocks - 1, block), "content_block_start")

    def _delta(self, delta: BlockDelta) -> bytes:
        return event(ContentBlockDelta(self._blocks - 1, delta), "content_block_delta")

    def _close(self) -> bytes:
        """Stops the open block; a thinking block gets its (empty) signature first."""
        if self._open is None:
            return b""
        out = b""
        if self._open == "thinking":
            out = self._delta(SignatureDeltaOut(""))
        self._open = None
        return out + event(ContentBlockStop(self._blocks - 1), "content_block_stop")
