"""CLI stream events -> the core's events, for one turn.

The CLI reports the reply twice: as partial deltas (stream_event) and as complete
assistant messages. Deltas are forwarded as they come; a complete message only
contributes text that was not streamed (e.g. a non-streaming fallback after a
dropped connection). Messages from the CLI itself (`<synthetic>`, such as API error
text) never become reply text: the result event says what went wrong.
"""

from __future__ import annotations

import json
from typing import Any

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
    ThinkingDelta,
    ToolActivity,
    Usage,
)

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
        self._streamed_text = ""  # deltas since the last complete message
        self._streamed_thinking = ""
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
            return self._delta(event)
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
            self._note_retry(event)
        return []

    def _note_retry(self, event: SystemEvent) -> None:
        # The CLI backs off as the upstream's retry-after says (plus jitter): the last
        # back-off for a status is the best hint of when a client should come back.
        if event.error_status is not None and event.retry_delay_ms is not None:
            self._retry_delays[event.error_status] = max(0.0, event.retry_delay_ms / 1000)

    def _delta(self, event: StreamEvent) -> list[Event]:
        if event.parent_tool_use_id is not None:
            return []  # a subagent's output is not the reply
        delta = event.event.delta
        if event.event.type != "content_block_delta" or delta is None:
            return []
        if delta.type == "text_delta" and delta.text:
            self._streamed_text += delta.text
            return [TextDelta(delta.text)]
        if delta.type == "thinking_delta" and delta.thinking:
            self._streamed_thinking += delta.thinking
            return [ThinkingDelta(delta.thinking)]
        return []

    def _assistant(self, event: AssistantEvent) -> list[Event]:
        if event.synthetic or event.parent_tool_use_id is not None:
            return []
        self.resume_point = event.uuid or self.resume_point
        out: list[Event] = []
        for block in event.message.content:
            if block.type == "text":
                rest, self._streamed_text = _unstreamed(block.text, self._streamed_text)
                if rest:
                    out.append(TextDelta(rest))
            elif block.type == "thinking":
                rest, self._streamed_thinking = _unstreamed(block.thinking, self._streamed_thinking)
                if rest:
                    out.append(ThinkingDelta(rest))
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


def _unstreamed(complete: str, streamed: str) -> tuple[str, str]:
    """What of a complete block was not streamed yet, and the streamed text left over."""
    if not streamed:
        return complete, ""
    if streamed.startswith(complete):
        return "", streamed[len(complete) :]
    if complete.startswith(streamed):
        return complete[len(streamed) :], ""
    # The complete text disagrees with what was streamed (a retried request): the client
    # already has the streamed version, so do not append a second, different one.
    return "", ""


def _final_text(result: ResultEvent) -> str:
    """The reply's final text: with --json-schema, the structured output as JSON."""
    if result.structured_output is not None:
        return json.dumps(result.structured_output, ensure_ascii=False, separators=(",", ":"))
    return result.result or ""
