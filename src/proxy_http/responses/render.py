"""A turn as the Responses API shows it: the Response object (whole), and the SSE
events a streamed response is made of (`ResponsesRenderer`).

A stream is `response.created`, `response.in_progress`, then one output item at a
time (shown thinking as a `reasoning` item with one summary part, the text as a
`message` item with one `output_text` part, each client tool call as a
`function_call` item), each opened with `response.output_item.added` and closed
with `response.output_item.done`, and ends with `response.completed` (or
`response.failed`): every event `event: <type>` + `data: <json>`, numbered by
`sequence_number` from 0. No `[DONE]`: OpenAI sends none on this API.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from proxy_core import ChatError, FailureReason, Finished, ToolCall, Usage
from proxy_http.responses.wire import (
    IncompleteDetails,
    InputTokensDetails,
    OutputFunctionCall,
    OutputItem,
    OutputMessage,
    OutputReasoning,
    OutputTextPart,
    ResponseEcho,
    ResponseError,
    ResponseObject,
    ResponseUsage,
    SummaryText,
)
from proxy_http.sse import KEEPALIVE, cost_of, json_line


def new_id(prefix: str) -> str:
    """A fresh id: `resp_`, `msg_`, `fc_`, `rs_` and 32 hex digits."""
    return f"{prefix}_{uuid.uuid4().hex}"


def response_usage(usage: Usage) -> ResponseUsage:
    """The core's usage in the Responses shape (input tokens include cached ones)."""
    return ResponseUsage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.prompt_tokens + usage.output_tokens,
        input_tokens_details=InputTokensDetails(
            cached_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_creation_tokens,
        ),
        cost=cost_of(usage),
    )


def error_code(reason: FailureReason) -> str:
    """OpenAI's code for a failure: clients (Codex) retry `server_error` and
    `rate_limit_exceeded`, and give up on `invalid_prompt`. A response's error has no
    `insufficient_quota` code (the SDK's list is closed): a refused credit or budget is
    the closest one, `rate_limit_exceeded`, and its message starts `insufficient_quota:`
    or `budget_exceeded:`."""
    quota = (FailureReason.INSUFFICIENT_QUOTA, FailureReason.BUDGET_EXCEEDED)
    if reason in (FailureReason.RATE_LIMITED, FailureReason.BUSY, *quota):
        return "rate_limit_exceeded"
    if reason is FailureReason.INVALID_REQUEST:
        return "invalid_prompt"
    return "server_error"


class Envelope(ResponseEcho, frozen=True, kw_only=True):
    """Everything of a Response object but its outcome (its fields are the echo's).
    `response` adds an outcome."""

    def response(
        self,
        status: str,
        output: Sequence[OutputItem] = (),
        *,
        usage: Usage | None = None,
        error: ResponseError | None = None,
        stop_reason: str | None = None,
    ) -> ResponseObject:
        """The Response with this outcome; a reply cut by the model's output limit
        (`max_tokens`) is `incomplete`."""
        incomplete = None
        if status == "completed" and stop_reason == "max_tokens":
            status, incomplete = "incomplete", IncompleteDetails("max_output_tokens")
        done = status in ("completed", "incomplete")
        return ResponseObject(
            **msgspec.structs.asdict(self),
            status=status,
            output=list(output),
            error=error,
            incomplete_details=incomplete,
            usage=None if usage is None else response_usage(usage),
            completed_at=int(time.time()) if done else None,
        )


def output_items(thinking: str | None, text: str, calls: Sequence[ToolCall]) -> list[OutputItem]:
    """A whole reply's output items: shown thinking, the text (when there is any or
    nothing else), then the calls."""
    items: list[OutputItem] = []
    if thinking:
        items.append(OutputReasoning(new_id("rs"), [SummaryText(thinking)]))
    if text or not calls:
        items.append(OutputMessage(new_id("msg"), [OutputTextPart(text)]))
    items.extend(_call_item(new_id("fc"), call) for call in calls)
    return items


def _call_item(item_id: str, call: ToolCall) -> OutputFunctionCall:
    return OutputFunctionCall(item_id, call.id, call.name, call.arguments)


Finish = Callable[[ResponseObject, str, tuple[ToolCall, ...]], Awaitable[None]]
"""What runs before `response.completed` is sent: given the Response, the reply's text
and its calls (it stores the response; a ChatError it raises fails the stream)."""


class _Open(msgspec.Struct):
    """The output item being written: its kind, index, id and the text so far (in
    pieces: joined once, at its end)."""

    kind: str
    index: int
    item_id: str
    pieces: list[str] = msgspec.field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.pieces)


class ResponsesRenderer:
    """The StreamRenderer of the Responses API (see the module docstring)."""

    def __init__(self, envelope: Envelope, finish: Finish) -> None:
        self.envelope = envelope
        self._finish = finish
        self._sequence = 0
        self._opened = 0  # output items opened so far: the next one's output_index
        self._done: dict[int, OutputItem] = {}  # by output_index
        self._open: _Open | None = None
        self._calls: dict[int, _Open] = {}  # by the core's call index, until the end
        self._text: list[str] = []

    # -- the StreamRenderer protocol ----------------------------------------------

    def opening(self) -> bytes:
        response = self.envelope.response("in_progress")
        return self._event("response.created", response=response) + self._event(
            "response.in_progress", response=response
        )

    def text(self, text: str) -> bytes:
        head = self._switch("message")
        assert self._open is not None
        self._open.pieces.append(text)
        self._text.append(text)
        return head + self._event(
            "response.output_text.delta",
            item_id=self._open.item_id,
            output_index=self._open.index,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def thinking(self, text: str) -> bytes:
        head = self._switch("reasoning")
        assert self._open is not None
        self._open.pieces.append(text)
        return head + self._event(
            "response.reasoning_summary_text.delta",
            item_id=self._open.item_id,
            output_index=self._open.index,
            summary_index=0,
            delta=text,
        )

    def tool_call(self, index: int, call_id: str, name: str) -> bytes:
        head = self._close()
        call = _Open("function_call", self._next_index(), new_id("fc"))
        self._calls[index] = call
        item = OutputFunctionCall(call.item_id, call_id, name, "", status="in_progress")
        return head + self._event("response.output_item.added", output_index=call.index, item=item)

    def tool_arguments(self, index: int, text: str) -> bytes:
        call = self._calls[index]
        return self._event(
            "response.function_call_arguments.delta",
            item_id=call.item_id,
            output_index=call.index,
            delta=text,
        )

    async def finished(self, finished: Finished, usage: Usage) -> bytes:
        events = self._close()
        # The calls close last, with their whole arguments as the core recorded them.
        for index, call in enumerate(finished.tool_calls):
            events += self._close_call(self._calls.get(index), call)
        response = self.envelope.response(
            "completed", self._output(), usage=usage, stop_reason=finished.stop_reason
        )
        try:
            await self._finish(response, "".join(self._text), finished.tool_calls)
        except ChatError as error:
            return events + self.failed(error.reason, error.message)
        return events + self._event("response.completed", response=response)

    def failed(self, reason: FailureReason, message: str) -> bytes:
        # Only finished items are shown: a client that retries (Codex) replays them.
        self._open = None
        error = ResponseError(error_code(reason), f"{reason.value}: {message}")
        response = self.envelope.response("failed", self._output(), error=error)
        return self._event("response.failed", response=response)

    def keepalive(self) -> bytes:
        return KEEPALIVE

    # -- items ---------------------------------------------------------------------

    def _next_index(self) -> int:
        index, self._opened = self._opened, self._opened + 1
        return index

    def _output(self) -> list[OutputItem]:
        return [self._done[index] for index in sorted(self._done)]

    def _switch(self, kind: str) -> bytes:
        """Open an item of `kind` unless it is the one open (closing the open one)."""
        if self._open is not None and self._open.kind == kind:
            return b""
        head = self._close()
        item_id = new_id("msg" if kind == "message" else "rs")
        self._open = _Open(kind, self._next_index(), item_id)
        if kind == "message":
            added = OutputMessage(item_id, [], status="in_progress")
            return (
                head
                + self._event(
                    "response.output_item.added", output_index=self._open.index, item=added
                )
                + self._event(
                    "response.content_part.added",
                    item_id=item_id,
                    output_index=self._open.index,
                    content_index=0,
                    part=OutputTextPart(""),
                )
            )
        reasoning = OutputReasoning(item_id, [], status="in_progress")
        return (
            head
            + self._event(
                "response.output_item.added", output_index=self._open.index, item=reasoning
            )
            + self._event(
                "response.reasoning_summary_part.added",
                item_id=item_id,
                output_index=self._open.index,
                summary_index=0,
                part=SummaryText(""),
            )
        )

    def _close(self) -> bytes:
        """Close the open text or reasoning item, if any."""
        current, self._open = self._open, None
        if current is None:
            return b""
        where = {"item_id": current.item_id, "output_index": current.index}
        text = current.text
        if current.kind == "message":
            part = OutputTextPart(text)
            item: OutputItem = OutputMessage(current.item_id, [part])
            events = self._event(
                "response.output_text.done",
                **where,
                content_index=0,
                text=text,
                logprobs=[],
            ) + self._event("response.content_part.done", **where, content_index=0, part=part)
        else:
            summary = SummaryText(text)
            item = OutputReasoning(current.item_id, [summary])
            events = self._event(
                "response.reasoning_summary_text.done", **where, summary_index=0, text=text
            ) + self._event(
                "response.reasoning_summary_part.done", **where, summary_index=0, part=summary
            )
        self._done[current.index] = item
        return events + self._event(
            "response.output_item.done", output_index=current.index, item=item
        )

    def _close_call(self, opened: _Open | None, call: ToolCall) -> bytes:
        events = b""
        if opened is None:  # a call the stream never announced: shown whole
            opened = _Open("function_call", self._next_index(), new_id("fc"))
            item = OutputFunctionCall(opened.item_id, call.id, call.name, "", status="in_progress")
            events += self._event(
                "response.output_item.added", output_index=opened.index, item=item
            )
        where = {"item_id": opened.item_id, "output_index": opened.index}
        done = _call_item(opened.item_id, call)
        self._done[opened.index] = done
        return (
            events
            + self._event(
                "response.function_call_arguments.done", **where, arguments=call.arguments
            )
            + self._event("response.output_item.done", output_index=opened.index, item=done)
        )

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = json_line({"type": kind, "sequence_number": self._sequence, **fields})
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"
