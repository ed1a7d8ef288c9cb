"""CLI stream events -> the core's events, for one turn.

The CLI reports the reply twice: as partial deltas (stream_event) and as complete
assistant messages. Deltas are forwarded as they come; a complete message only
contributes text that was not streamed (e.g. a non-streaming fallback after a
dropped connection). When the upstream connection drops mid-reply the CLI tries the
message again from its start: only what continues the text already sent is
forwarded, and a retry that contradicts it withdraws it (`TextRetracted`, see
`attempts`). An upstream 429 ends the turn at the CLI's first retry notice for it,
with the CLI's back-off as `retry_after`: the client decides whether to wait.
Messages from the CLI itself (`<synthetic>`, such as API error text) never become
reply text: the result event says what went wrong.
"""

from __future__ import annotations

import json
import math
from typing import Any

import structlog

from proxy_cli_backend.attempts import Change, MessageText
from proxy_cli_backend.protocol import (
    AssistantEvent,
    CliEvent,
    ResultEvent,
    StreamEvent,
    SystemEvent,
    UserEvent,
)
from proxy_core import (
    Event,
    Failed,
    FailureReason,
    Finished,
    TextDelta,
    TextRetracted,
    ThinkingDelta,
    ToolActivity,
    Usage,
)

log = structlog.get_logger(__name__)

NOT_LOGGED_IN_MESSAGE = "The Claude CLI is not logged in."
_SUMMARY_CHARS = 120
_SUMMARY_KEYS = ("file_path", "path", "pattern", "command", "url", "query", "description")


def classify_failure(status: int | None, text: str) -> FailureReason:
    """The failure reason for an error result, from the upstream status and the text."""
    lowered = text.lower()
    if "no conversation found" in lowered:
        return FailureReason.SESSION_MISSING
    if status == 401 or "not logged in" in lowered:
        return FailureReason.NOT_LOGGED_IN
    if status == 429:
        return FailureReason.RATE_LIMITED
    if status in (503, 529):
        return FailureReason.OVERLOADED
    if status is not None and 400 <= status < 500:
        return FailureReason.INVALID_REQUEST
    if status is not None and status >= 500:
        return FailureReason.UPSTREAM_ERROR
    if "prompt is too long" in lowered:
        return FailureReason.INVALID_REQUEST
    if lowered.startswith("api error"):
        # The upstream never answered with a status: the connection was dropped,
        # refused or timed out ("API Error: Connection dropped (ECONNRESET)...").
        return FailureReason.UPSTREAM_ERROR
    return FailureReason.CLI_CRASHED


def summarize_input(value: Any) -> str:
    """A short, one-line description of a tool's input (its most telling field)."""
    if isinstance(value, dict):
        for key in _SUMMARY_KEYS:
            if isinstance(value.get(key), str):
                return _clip(value[key])
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        text = repr(value)
    return _clip(text)


def _clip(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _SUMMARY_CHARS else flat[: _SUMMARY_CHARS - 1] + "…"


class TurnTranslator:
    """Turns one turn's CLI events into core events. One instance per turn."""

    def __init__(self) -> None:
        self._text = MessageText(withdraws=True)
        self._thinking = MessageText(withdraws=False)  # a contradicting retry is withheld
        self._open = False  # an upstream message is streaming (message_start, no stop yet)
        self._cut = False  # the last message was cut off: what comes next is a retry
        # The uuid of the turn's last message in the transcript: its last assistant
        # message, or the tool results after it (a --json-schema turn ends with the
        # StructuredOutput call's result; resuming before it would lose that result).
        self.resume_point: str | None = None
        self.session_id: str | None = None
        self.result: ResultEvent | None = None
        self.progressed = False  # the model produced something (for first-event timing)
        self._retry_delays: dict[int, float] = {}  # upstream status -> last back-off (s)

    def feed(self, event: CliEvent) -> list[Event]:
        """The core events for one CLI event (often none)."""
        if isinstance(event, StreamEvent):
            self.progressed = True
            return self._stream(event)
        if isinstance(event, AssistantEvent):
            self.progressed = True
            return self._assistant(event)
        if isinstance(event, UserEvent):
            if event.parent_tool_use_id is None and event.tool_results:
                self.resume_point = event.uuid or self.resume_point
            return []
        if isinstance(event, ResultEvent):
            self.result = event
            self.session_id = event.session_id or self.session_id
            return []
        if isinstance(event, SystemEvent) and event.subtype == "api_retry":
            return self._retrying(event)
        return []

    def _retrying(self, event: SystemEvent) -> list[Event]:
        # Worth a line at info: a slow reply is then explained (the request's id is bound).
        log.info(
            "upstream_retry",
            status=event.error_status,
            attempt=event.attempt,
            max_retries=event.max_retries,
            wait_ms=None if event.retry_delay_ms is None else round(event.retry_delay_ms),
            error=event.error,
        )
        self._message_cut()
        if event.error_status is None or event.retry_delay_ms is None:
            return []
        # The CLI backs off as the upstream's retry-after says, plus up to 25% jitter.
        delay = max(0.0, event.retry_delay_ms / 1000)
        self._retry_delays[event.error_status] = delay
        if event.error_status != 429:
            return []  # 5xx and 529: the CLI's bounded retries go on
        # A rate limit is the client's to wait out (or not): answer it now instead of
        # holding the request through the CLI's back-offs. Whole seconds, rounded down,
        # undo most of the jitter and never come before the upstream's own retry-after
        # when it is in whole seconds (as HTTP's Retry-After is).
        retry_after = float(max(1, math.floor(delay)))
        return [
            Failed(
                FailureReason.RATE_LIMITED,
                f"The upstream API is rate limiting requests (429); retry after "
                f"{retry_after:g} seconds.",
                retry_after=retry_after,
            )
        ]

    def _stream(self, event: StreamEvent) -> list[Event]:
        if event.parent_tool_use_id is not None:
            return []  # a subagent's output is not the reply
        raw = event.event
        delta = raw.delta
        if raw.type == "message_start":
            self._message_start()
        elif raw.type == "message_delta" and delta is not None and delta.stop_reason:
            self._open = False  # the upstream finished this message
            return _text_events(self._text.leftover())
        elif raw.type == "message_stop":
            self._message_cut()
        elif raw.type == "content_block_delta" and delta is not None:
            if delta.type == "text_delta" and delta.text:
                return _text_events(self._text.delta(delta.text))
            if delta.type == "thinking_delta" and delta.thinking:
                return _thinking_events(self._thinking.delta(delta.thinking))
        return []

    def _message_start(self) -> None:
        self._message_cut()  # a start while one is open: the open one was cut off
        if not self._cut:
            self._text.new_message()
            self._thinking.new_message()
        self._cut = False
        self._open = True

    def _message_cut(self) -> None:
        """An open message ends without its stop reason: the CLI will try it again."""
        if self._open:
            self._open = False
            self._cut = True
            self._text.retry()
            self._thinking.retry()

    def _assistant(self, event: AssistantEvent) -> list[Event]:
        if event.synthetic or event.parent_tool_use_id is not None:
            return []
        self.resume_point = event.uuid or self.resume_point
        out: list[Event] = []
        for block in event.message.content:
            if block.type == "text":
                out += _text_events(self._text.complete(block.text))
            elif block.type == "thinking":
                out += _thinking_events(self._thinking.complete(block.thinking))
            elif block.type == "tool_use":
                out.append(ToolActivity(block.name, summarize_input(block.input)))
        return out

    def outcome(self, stderr: str) -> list[Event]:
        """Usage and the end event, once the result has arrived (else a crash)."""
        result = self.result
        if result is None:
            return [crashed(stderr)]
        usage = Usage(
            input_tokens=result.usage.input_tokens,
            output_tokens=result.usage.output_tokens,
            cache_read_tokens=result.usage.cache_read_input_tokens,
            cache_creation_tokens=result.usage.cache_creation_input_tokens,
        )
        if not result.is_error:
            finished = Finished(
                stop_reason=result.stop_reason,
                text=_final_text(result),
                session_id=result.session_id,
                resume_point=self.resume_point,
            )
            return [usage, finished]
        text = "\n".join([result.result or "", *(str(e) for e in result.errors), stderr]).strip()
        reason = classify_failure(result.api_error_status, text)
        message = result.result or "; ".join(str(e) for e in result.errors) or _last(stderr)
        if reason is FailureReason.NOT_LOGGED_IN and result.api_error_status is None:
            # The CLI's "Please run /login" is for its interactive mode; the caller is
            # told what to do in the proxy's own words (proxy_core.LOGIN_HELP).
            message = NOT_LOGGED_IN_MESSAGE
        retry_after = None
        if reason in (FailureReason.RATE_LIMITED, FailureReason.OVERLOADED):
            retry_after = self._retry_delays.get(result.api_error_status or 0)
        return [
            Failed(
                reason,
                message or f"The CLI reported an error ({result.subtype}).",
                retry_after=retry_after,
            )
        ]


def crashed(stderr: str, returncode: int | None = None) -> Failed:
    """A turn that ended without a result, with stderr's last lines as the message."""
    code = "" if returncode is None else f" (exit code {returncode})"
    tail = _last(stderr)
    detail = f": {tail}" if tail else ""
    return Failed(FailureReason.CLI_CRASHED, f"The Claude CLI ended without a result{code}{detail}")


def _last(stderr: str, count: int = 10) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    return "\n".join(lines[-count:])


def _text_events(change: Change) -> list[Event]:
    out: list[Event] = [TextRetracted(change.void)] if change.void else []
    return [*out, TextDelta(change.text)] if change.text else out


def _thinking_events(change: Change) -> list[Event]:
    return [ThinkingDelta(change.text)] if change.text else []


def _final_text(result: ResultEvent) -> str:
    """The reply's final text: with --json-schema, the structured output as JSON."""
    if result.structured_output is not None:
        return json.dumps(result.structured_output, ensure_ascii=False, separators=(",", ":"))
    return result.result or ""
