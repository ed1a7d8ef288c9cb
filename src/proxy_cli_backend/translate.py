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

In subscription mode each `rate_limit_event` becomes a `PlanStatus`; a request the plan
refuses (status `rejected`) fails as RATE_LIMITED with the wait until the window's
reset, and the account's credit refusing it (extra usage, credit too low) as
INSUFFICIENT_QUOTA. The turn's `Usage` carries its cost (`costs.CostMeter`): a
suspension's has none (no result has priced it yet), and the request that completes the
turn reports the cost of all of it, suspended parts and reminder turns included.

Calls of client tools (`mcp__client__<name>`) are the client's to run: they are
forwarded as ToolCallStarted / ToolArguments as the model writes them, and a message
that ends with them (stop reason `tool_use`) suspends the turn (`suspended`): the CLI
waits for their results, which a later request brings.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

import msgspec
import structlog

from proxy_cli_backend.attempts import Change, MessageText
from proxy_cli_backend.client_tools import client_name
from proxy_cli_backend.costs import ZERO, CostMeter, Totals, add, read_totals
from proxy_cli_backend.plan_info import plan_state, window_refusal
from proxy_cli_backend.protocol import (
    AssistantEvent,
    CliEvent,
    ContentBlock,
    RateLimitEvent,
    ResultEvent,
    ResultUsage,
    StreamEvent,
    SystemEvent,
    UserEvent,
)
from proxy_core import (
    CREDIT_HELP,
    Event,
    Failed,
    FailureReason,
    Finished,
    PlanState,
    PlanStatus,
    TextDelta,
    TextRetracted,
    ThinkingDelta,
    ToolActivity,
    ToolArguments,
    ToolCall,
    ToolCallStarted,
    ToolOffer,
    Usage,
)

log = structlog.get_logger(__name__)

NOT_LOGGED_IN_MESSAGE = "The Claude CLI is not logged in."
CALLS_CONTRADICTED = (
    "The upstream connection dropped while the model was writing tool calls, and its "
    "retried reply does not continue them, so the reply cannot be completed. Send the "
    "request again."
)
# Words of the upstream (or of the CLI, which rewrites some) when the account's credit or
# extra usage refuses a request: Anthropic's 400 for subscription traffic outside the
# plan, the API's "credit balance is too low", and the CLI's credit notices.
_QUOTA_WORDS = (
    "third-party apps now draw from your extra usage",
    "credit balance is too low",
    "out of usage credits",
    "out of extra usage",
    "usage credits are required",
    "extra usage is required",
)
_SUMMARY_CHARS = 120
_SUMMARY_KEYS = ("file_path", "path", "pattern", "command", "url", "query", "description")


MAX_BUDGET_MESSAGE = (
    "this server caps what one request may cost (--max-budget-usd); a live CLI process "
    "counts it over all its turns, and the next request starts a fresh count."
)
"""Said with the CLI's `Reached maximum budget ($X)` (see docs/usage.md)."""


def classify_failure(status: int | None, text: str) -> FailureReason:
    """The failure reason for an error result, from the upstream status and the text."""
    lowered = text.lower()
    if "reached maximum budget" in lowered:  # the CLI's --max-budget-usd was reached
        return FailureReason.BUDGET_EXCEEDED
    if "no conversation found" in lowered:
        return FailureReason.SESSION_MISSING
    if any(words in lowered for words in _QUOTA_WORDS):
        return FailureReason.INSUFFICIENT_QUOTA
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


class _Call:
    """A client tool call the model is writing: its place in the reply and its input."""

    def __init__(self, ordinal: int, tool_use_id: str, name: str, shown: bool) -> None:
        self.ordinal = ordinal
        self.id = tool_use_id
        self.name = name
        self.shown = shown  # handed to the client (else beyond the reply's limit)
        self.json: list[str] = []  # the input's fragments as streamed (the client's copy)

    def call(self) -> ToolCall:
        # Exactly what was streamed: a client sends its copy back in the next request's
        # history, where any other spacing would not match the ledger's copy.
        return ToolCall(id=self.id, name=self.name, arguments="".join(self.json) or "{}")


class TurnTranslator:
    """Turns one turn's CLI events into core events. One instance per CLI turn.

    `max_calls` bounds the client tool calls one reply hands over (the rest are
    refused, see `refused`); `hold_text` keeps a message's text back until it calls a
    client tool, and drops it if it does not (a reply that must call a tool).
    """

    @classmethod
    def for_offer(cls, offer: ToolOffer | None, costs: CostMeter | None = None) -> TurnTranslator:
        """A translator under the rules of a request's tool offer (None: no tools), pricing
        turns with the process's `costs` (default: a process of a new session)."""
        return cls(max_calls=_max_calls(offer), hold_text=_must_call(offer), costs=costs)

    def __init__(
        self,
        *,
        max_calls: int | None = None,
        hold_text: bool = False,
        costs: CostMeter | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._costs = costs or CostMeter()
        self._wall_clock = wall_clock
        self._cost: Totals | None = ZERO  # cost of earlier CLI turns of this reply
        self._rejected: PlanState | None = None  # the plan refused this turn's request
        self._max_calls = max_calls
        self._hold_text = hold_text
        self._held: list[Event] = []
        self._withheld: list[Event] = []
        self._calls: dict[int, _Call] = {}  # block index -> client call, this message
        self._whole = False  # a message printed whole (not streamed) ended in client calls
        self.suspended = False  # the message ended with client calls: the turn waits
        self.called = False  # some message of this CLI turn called a client tool
        self._usage = Usage()  # what the messages streamed since the last report used
        self._reported = Usage()  # usage already reported by suspensions of this CLI turn
        self._carried = Usage()  # usage of earlier CLI turns of this reply, not reported
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
        if isinstance(event, RateLimitEvent):
            return self._plan(event)
        return []

    def _plan(self, event: RateLimitEvent) -> list[Event]:
        state = plan_state(event.rate_limit_info, self._wall_clock())
        if state is None:
            return []
        if state.status == "rejected":
            self._rejected = state
        return [PlanStatus(state)]

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
        cut = self._message_cut()
        if cut or event.error_status is None or event.retry_delay_ms is None:
            return cut
        # The CLI backs off as the upstream's retry-after says, plus up to 25% jitter.
        delay = max(0.0, event.retry_delay_ms / 1000)
        self._retry_delays[event.error_status] = delay
        if event.error_status != 429:
            return []  # 5xx and 529: the CLI's bounded retries go on
        if self._rejected is not None:
            # The plan refused: the wait is until its window resets, whatever the CLI's
            # own back-off (it may wait for the reset).
            return [window_refusal(self._rejected, self._wall_clock())]
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
            if raw.message is not None and raw.message.usage is not None:
                self._count(raw.message.usage, output=False)
            return self._message_start()
        if raw.type == "message_delta" and delta is not None and delta.stop_reason:
            self._open = False  # the upstream finished this message
            if raw.usage is not None:
                self._count(raw.usage, output=True)
            out = self._text_out(_text_events(self._text.leftover()))
            return out + self._message_end(delta.stop_reason)
        if raw.type == "message_stop":
            return self._message_cut()
        if raw.type == "content_block_start" and raw.content_block is not None:
            return self._block_start(raw.index, raw.content_block)
        if raw.type == "content_block_delta" and delta is not None:
            if delta.type == "text_delta" and delta.text:
                return self._text_out(_text_events(self._text.delta(delta.text)))
            if delta.type == "thinking_delta" and delta.thinking:
                return _thinking_events(self._thinking.delta(delta.thinking))
            if delta.type == "input_json_delta" and delta.partial_json:
                return self._arguments(raw.index, delta.partial_json)
        return []

    def _message_start(self) -> list[Event]:
        out = self._message_cut()  # a start while one is open: the open one was cut off
        if not self._cut:
            self._text.new_message()
            self._thinking.new_message()
        self._calls = {}
        self._whole = False
        # `_held` stays: a retry continues the cut message, whose text counts as written.
        self._cut = False
        self._open = True
        return out

    def _message_cut(self) -> list[Event]:
        """An open message ends without its stop reason: the CLI will try it again."""
        if not self._open:
            return []
        self._open = False
        self._cut = True
        self._text.retry()
        self._thinking.retry()
        if any(call.shown for call in self._calls.values()):
            # The retry writes its calls afresh (new ids): those shown cannot be withdrawn.
            return [Failed(FailureReason.UPSTREAM_ERROR, CALLS_CONTRADICTED)]
        return []

    def _message_end(self, stop_reason: str) -> list[Event]:
        """The model finished a message: with client calls, the turn now waits for them."""
        held, self._held = self._held, []
        if stop_reason == "tool_use" and self._calls:
            self.suspended = True
            self.called = True
            return held
        # Text held for a call that never came waits: a reminder drops it, giving up on
        # the call shows it (`withheld`). A turn that runs built-in tools writes several
        # messages: all of their text is the reply's.
        self._withheld += held
        return []

    def _text_out(self, events: list[Event]) -> list[Event]:
        """Text as it may go out now: held back while a reply must still call a tool."""
        if not self._hold_text or any(c.shown for c in self._calls.values()):
            return events
        self._held += events
        return []

    def _block_start(self, index: int, block: ContentBlock) -> list[Event]:
        name = client_name(block.name) if block.type == "tool_use" else None
        if name is None:
            return []
        return self._new_call(index, block.id, name)

    def _new_call(self, key: int, tool_use_id: str, name: str) -> list[Event]:
        """A client call begins: the next of this reply, shown unless beyond the limit."""
        ordinal = len(self._calls)
        shown = self._max_calls is None or ordinal < self._max_calls
        self._calls[key] = _Call(ordinal, tool_use_id, name, shown)
        if not shown:
            return []
        # The reply calls: the text it wrote before its first call (this message's, and
        # earlier messages' of the same turn) goes out ahead of the call.
        held = [*self._withheld, *self._held]
        self._withheld, self._held = [], []
        return [*held, ToolCallStarted(index=ordinal, id=tool_use_id, name=name)]

    def _arguments(self, index: int, fragment: str) -> list[Event]:
        call = self._calls.get(index)
        if call is None:
            return []
        call.json.append(fragment)
        return [ToolArguments(index=call.ordinal, text=fragment)] if call.shown else []

    def _count(self, usage: ResultUsage, *, output: bool) -> None:
        """Add an upstream message's usage (its start's input, its end's output)."""
        counted = _usage(usage)
        if output:
            counted = Usage(output_tokens=counted.output_tokens)
        else:
            counted = msgspec.structs.replace(counted, output_tokens=0)
        self._usage = _plus(self._usage, counted)

    # -- suspension ----------------------------------------------------------

    @property
    def calls(self) -> list[ToolCall]:
        """The client calls the suspending message hands over, in order."""
        return [c.call() for c in sorted(self._calls.values(), key=_order) if c.shown]

    @property
    def refused(self) -> list[str]:
        """The ids of the suspending message's calls beyond the reply's limit."""
        return [c.id for c in self._calls.values() if not c.shown]

    def suspension(self) -> list[Event]:
        """Usage so far and the Finished that hands the client its calls. Its cost is not
        known yet (no result has priced it): the request that completes the turn reports
        the cost of the whole turn."""
        usage = _plus(self._usage, self._carried)
        self._reported = _plus(self._reported, self._usage)
        self._usage, self._carried = Usage(), Usage()
        calls = self.calls
        finished = Finished(
            stop_reason="tool_use",
            session_id=self.session_id,
            resume_point=self.resume_point,
            tool_calls=tuple(calls),
        )
        return [usage, finished]

    def resume(self, offer: ToolOffer | None) -> None:
        """The client's results arrive: the suspended turn goes on, timed afresh, under
        the rules of the request that brought them (its tool `offer`)."""
        self.suspended = False
        self.progressed = False
        self.called = False
        self._calls = {}
        self._whole = False
        self._max_calls = _max_calls(offer)
        self._hold_text = _must_call(offer)

    def call_asked(self) -> list[Event]:
        """The CLI asks for a client call's result. A message printed whole ends in its
        calls here: the CLI prints all of its blocks before it runs any."""
        if not self._whole:
            return []
        self._whole = False
        return self._message_end("tool_use")

    def withheld(self) -> list[Event]:
        """The reply's text, held for a call that did not come (now given up)."""
        out = [*self._withheld, *self._held]
        self._withheld, self._held = [], []
        return out

    def next_turn(self) -> None:
        """A follow-up CLI turn in the same process (a reminder to call a tool) begins;
        the usage of the one that ended is kept."""
        if self.result is not None:
            spent = _minus(_usage(self.result.usage), self._reported)
            self._carried = _plus(self._carried, spent)
            self._cost = _with(self._cost, self._price(self.result))
        self._reported, self._usage = Usage(), Usage()
        self._withheld, self._held = [], []
        self.result = None
        self.progressed = False

    def _assistant(self, event: AssistantEvent) -> list[Event]:
        if event.synthetic or event.parent_tool_use_id is not None:
            return []
        self.resume_point = event.uuid or self.resume_point
        out: list[Event] = []
        for block in event.message.content:
            if block.type == "text":
                out += self._text_out(_text_events(self._text.complete(block.text)))
            elif block.type == "thinking":
                out += _thinking_events(self._thinking.complete(block.thinking))
            elif block.type == "tool_use" and client_name(block.name) is not None:
                out += self._complete_call(block)
            elif block.type == "tool_use":
                out.append(ToolActivity(block.name, summarize_input(block.input)))
        if event.message.stop_reason is not None and not self._open:
            # Printed whole (the non-streaming fallback of a cut message): that message is
            # complete, so the next message_start begins a new one, not another retry.
            self._cut = False
            self._whole = event.message.stop_reason == "tool_use" and bool(self._calls)
        return out

    def _complete_call(self, block: ContentBlock) -> list[Event]:
        """The CLI's complete copy of a client call: its input becomes the arguments of a
        call that streamed none (an empty input may come without a fragment), or of a
        call of a message that was not streamed at all (the CLI's non-streaming fallback)."""
        call = next((c for c in self._calls.values() if c.id == block.id), None)
        out: list[Event] = []
        if call is None and not self._open:
            name = client_name(block.name)
            assert name is not None
            if not self._whole:
                self._calls = {}  # what a cut attempt began is not this message's
            key = -1 - len(self._calls)  # apart from streamed blocks' indexes
            out = self._new_call(key, block.id, name)
            call = self._calls[key]
        if call is None or call.json:
            return out
        whole = json.dumps(block.input or {}, ensure_ascii=False, separators=(",", ":"))
        call.json.append(whole)
        return [*out, ToolArguments(index=call.ordinal, text=whole)] if call.shown else out

    def outcome(self, stderr: str) -> list[Event]:
        """Usage and the end event, once the result has arrived (else a crash)."""
        result = self.result
        if result is None:
            return [crashed(stderr)]
        # What suspensions of this turn reported already is not counted twice.
        usage = _plus(_minus(_usage(result.usage), self._reported), self._carried)
        cost = _with(self._cost, self._price(result))
        if cost is not None:
            usage = msgspec.structs.replace(usage, cost_usd=cost.cost_usd, models=cost.models)
        if not result.is_error:
            finished = Finished(
                stop_reason=result.stop_reason,
                text=_final_text(result),
                session_id=result.session_id,
                resume_point=self.resume_point,
                meter=self._costs.reading,
            )
            return [usage, finished]
        failed = self._failure(result, stderr)
        # A failed turn may still have been paid for (an answer that crossed
        # --max-budget-usd): what it cost is spent all the same.
        return [usage, failed] if usage.cost_usd else [failed]

    def _failure(self, result: ResultEvent, stderr: str) -> Failed:
        """The typed failure of an error result."""
        text = "\n".join([result.result or "", *(str(e) for e in result.errors), stderr]).strip()
        reason = classify_failure(result.api_error_status, text)
        if reason is FailureReason.RATE_LIMITED and self._rejected is not None:
            # The plan refused: the CLI's "You've hit your ... limit" is not the reply.
            return window_refusal(self._rejected, self._wall_clock())
        if reason is FailureReason.INSUFFICIENT_QUOTA:
            return Failed(reason, quota_message(result.result or text))
        message = result.result or "; ".join(str(e) for e in result.errors) or _last(stderr)
        if reason is FailureReason.NOT_LOGGED_IN and result.api_error_status is None:
            # The CLI's "Please run /login" is for its interactive mode; the caller is
            # told what to do in the proxy's own words (proxy_core.LOGIN_HELP).
            message = NOT_LOGGED_IN_MESSAGE
        if reason is FailureReason.BUDGET_EXCEEDED:
            message = f"{message.rstrip('.')}: {MAX_BUDGET_MESSAGE}"
        retry_after = None
        if reason in (FailureReason.RATE_LIMITED, FailureReason.OVERLOADED):
            retry_after = self._retry_delays.get(result.api_error_status or 0)
        return Failed(
            reason,
            message or f"The CLI reported an error ({result.subtype}).",
            retry_after=retry_after,
        )

    def _price(self, result: ResultEvent) -> Totals | None:
        """The cost of the CLI turn that `result` ends (None: not known)."""
        totals = read_totals(result.total_cost_usd, result.model_usage)
        turn = _usage(result.usage)
        tokens = turn.prompt_tokens + turn.output_tokens
        return self._costs.turn_cost(totals, tokens, result.session_id or self.session_id)


def quota_message(words: str) -> str:
    """The message for a request the account's credit refused: the upstream's own words
    (without the CLI's "API Error: 400" prefix) and what to do."""
    said = words.strip()
    if said.lower().startswith("api error:"):
        said = said.split(":", 1)[1].strip()
        head, _, rest = said.partition(" ")
        said = rest if head.isdigit() else said
    said = said.rstrip(".") or "the account's usage credit is used up"
    return f"The Claude account's credit refused the request: {said}. {CREDIT_HELP}"


def _with(a: Totals | None, b: Totals | None) -> Totals | None:
    """Costs together; not known if either is not."""
    return None if a is None or b is None else add(a, b)


def _max_calls(offer: ToolOffer | None) -> int | None:
    return None if offer is None else offer.max_calls


def _must_call(offer: ToolOffer | None) -> bool:
    """The reply must call a tool: its text is held until it does."""
    return offer is not None and offer.must_call


def _order(call: _Call) -> int:
    return call.ordinal


def _usage(usage: ResultUsage) -> Usage:
    """The CLI's usage figures (a result's, or an upstream message's) as the core's."""
    return Usage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_read_tokens=usage.cache_read_input_tokens or 0,
        cache_creation_tokens=usage.cache_creation_input_tokens or 0,
    )


def _plus(a: Usage, b: Usage) -> Usage:
    return Usage(
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cache_read_tokens=a.cache_read_tokens + b.cache_read_tokens,
        cache_creation_tokens=a.cache_creation_tokens + b.cache_creation_tokens,
    )


def _minus(a: Usage, b: Usage) -> Usage:
    """`a` less `b`, never below zero (a total can only include what was reported)."""
    return Usage(
        input_tokens=max(0, a.input_tokens - b.input_tokens),
        output_tokens=max(0, a.output_tokens - b.output_tokens),
        cache_read_tokens=max(0, a.cache_read_tokens - b.cache_read_tokens),
        cache_creation_tokens=max(0, a.cache_creation_tokens - b.cache_creation_tokens),
    )


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
