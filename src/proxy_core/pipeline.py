"""The reply pipeline: a turn's events pass through steps, each with one job.

A step takes the events of one attempt (one plan run once) and yields the events
its caller sees. Steps compose by wrapping: `step(attempt, events)` is again a
stream of events, so a new job (another surface's shaping, a turn that suspends at
tool calls) is a new step in the one place that composes them (`Turn._attempt`),
without touching the others. What steps learn that a later one needs (the reply
text to remember, whether the reply was cut) travels on the `Attempt`.

Every step ends after the first Finished or Failed (nothing follows an end), and
closes what it reads when it ends, so an early end reaches the runner at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing

import msgspec

from proxy_core.conversation import ToolCall
from proxy_core.errors import NO_RESULT, ChatError, FailureReason
from proxy_core.events import (
    Event,
    Failed,
    Finished,
    TextDelta,
    TextRetracted,
    ThinkingDelta,
    ToolActivity,
    ToolCallStarted,
)
from proxy_core.ledger import SessionRecord, reply_fingerprint, system_hash
from proxy_core.planning import PlanKind, TurnPlan
from proxy_core.ports import Runner, SessionStore
from proxy_core.reply_text import ReplyText

Events = AsyncGenerator[Event, None]

_CONTRADICTED = (
    "The upstream connection dropped mid-reply and the retried reply does not continue "
    "the text already streamed, so the reply cannot be completed. Send the request again."
)


class Attempt:
    """One plan run once, and what the steps learn of it on the way."""

    def __init__(self, plan: TurnPlan) -> None:
        self.plan = plan
        self.reply: str | None = None  # the reply to remember; None: the Finished's own text
        self.cut = False  # the reply ended early (a stop sequence): not remembered
        self.recorded = False  # the ledger holds this attempt's reply


Step = Callable[[Attempt, Events], Events]


def store_failure(error: Exception) -> Failed:
    """The end of a turn whose session store call failed (a ChatError keeps its reason)."""
    if isinstance(error, ChatError):
        return Failed(error.reason, error.message, retry_after=error.retry_after)
    return Failed(
        FailureReason.STORE_UNAVAILABLE,
        f"The session store failed: {type(error).__name__}: {error}",
    )


async def guarded(runner: Runner, plan: TurnPlan) -> Events:
    """The source: the runner's events, with an unexpected exception turned into a
    typed failure."""
    try:
        async with aclosing(runner.run(plan)) as events:
            async for event in events:
                yield event
    except (asyncio.CancelledError, GeneratorExit):
        raise
    except ChatError as error:
        yield Failed(error.reason, error.message, retry_after=error.retry_after)
    except Exception as error:  # a runner bug must still end the turn cleanly
        yield Failed(
            FailureReason.CLI_CRASHED, f"The backend failed: {type(error).__name__}: {error}"
        )


def reply_text(stops: Sequence[str], *, whole: bool) -> Step:
    """Step: the reply text as the caller receives it, cut at the first stop sequence.

    A cut ends the turn with Finished("stop_sequence"): the backend's turn is
    abandoned (closing the events ends it) and the reply is not remembered, so the
    next turn resumes before this one with the cut reply as history. Text the backend
    withdraws is dropped, or the turn fails when the caller was already given it.
    The text before a client tool call is settled when the call starts: a stop
    sequence in it cuts the reply there, without its calls and before the backend's
    turn is suspended at them; otherwise the caller gets all of it before the call.
    """

    async def step(attempt: Attempt, events: Events) -> Events:
        reply = ReplyText(stops, whole=whole)
        async with aclosing(events):
            async for event in events:
                if isinstance(event, TextRetracted):
                    if not reply.retract(event.chars):
                        # The client has text the redone reply does not continue: end
                        # here rather than show a garbled reply.
                        yield Failed(FailureReason.UPSTREAM_ERROR, _CONTRADICTED)
                        return
                    continue
                if isinstance(event, TextDelta | ToolCallStarted):
                    # A call ends the text before it: what was held back is decided.
                    passed = (
                        reply.add(event.text) if isinstance(event, TextDelta) else reply.settle()
                    )
                    if passed:
                        yield TextDelta(passed)
                    if reply.stopped:
                        for end in _cut(attempt, reply):
                            yield end
                        return
                    if isinstance(event, TextDelta):
                        continue
                if isinstance(event, Finished):
                    if rest := reply.finish():
                        yield TextDelta(rest)
                    if reply.stopped:
                        # A sequence found only at the end (its cut waited for a
                        # longer one): cut, as a stop mid-reply is.
                        attempt.cut = True
                        yield Finished(
                            "stop_sequence", reply.text, stop_sequence=reply.stop_sequence
                        )
                        return
                    attempt.reply = reply.text or event.text
                yield event
                if isinstance(event, Finished | Failed):
                    return

    return step


def _cut(attempt: Attempt, reply: ReplyText) -> list[Event]:
    """The end of a reply cut at a stop sequence: the rest of its text (all of it when
    held whole) and Finished("stop_sequence"); the reply is not remembered."""
    attempt.cut = True
    rest = reply.finish()
    end = Finished("stop_sequence", reply.text, stop_sequence=reply.stop_sequence)
    return [*([TextDelta(rest)] if rest else []), end]


async def structured_output(attempt: Attempt, events: Events) -> Events:
    """Step: a structured reply is the backend's final result, delivered whole at the
    end; text the model wrote on the way is not part of it."""
    async with aclosing(events):
        async for event in events:
            if isinstance(event, TextDelta | TextRetracted):
                continue
            # A reply that ends in tool calls has no structured result yet.
            if isinstance(event, Finished) and event.text and not event.tool_calls:
                yield TextDelta(event.text)
            yield event
            if isinstance(event, Finished | Failed):
                return


class Recording:
    """Step: a reply that finished well advances the ledger; nothing else does."""

    def __init__(
        self,
        store: SessionStore,
        runner: Runner,
        wall_clock: Callable[[], float],
        key: str,
        previous: SessionRecord | None,
    ) -> None:
        self._store = store
        self._runner = runner
        self._wall = wall_clock
        self._key = key
        self._previous = previous

    async def __call__(self, attempt: Attempt, events: Events) -> Events:
        async with aclosing(events):
            async for event in events:
                if isinstance(event, Finished) and not attempt.cut:
                    try:
                        await self._record(attempt, event)
                    except Exception as error:
                        # The reply was paid for but cannot be remembered: say so,
                        # rather than let the next turn silently start over.
                        yield store_failure(error)
                        return
                    attempt.recorded = True
                yield event
                if isinstance(event, Finished | Failed):
                    return

    async def _record(self, attempt: Attempt, finished: Finished) -> None:
        plan, now = attempt.plan, self._wall()
        reply = finished.text if attempt.reply is None else attempt.reply
        previous = self._previous if plan.kind is PlanKind.CONTINUE else None
        cli_session_id = finished.session_id or plan.cli_session_id
        # A reply that priced nothing (one that stops at tool calls) leaves the
        # session's reading as it was.
        meter = finished.meter
        if meter is None and previous is not None and previous.cli_session_id == cli_session_id:
            meter = previous.meter
        record = SessionRecord(
            key=self._key,
            cli_session_id=cli_session_id,
            model=plan.model,
            system_hash=system_hash(plan.system),
            fingerprints=(*plan.seen, reply_fingerprint(reply, _as_echoed(plan, finished))),
            created_at=previous.created_at if previous else now,
            last_used_at=now,
            resume_point=finished.resume_point,
            turns=(previous.turns if previous else 0) + 1,
            pending_calls=finished.pending,
            meter=meter,
        )
        await self._store.put(record)
        if self._previous is not None and self._previous.cli_session_id != record.cli_session_id:
            await self._runner.forget(self._previous.cli_session_id)


def _as_echoed(plan: TurnPlan, finished: Finished) -> tuple[ToolCall, ...]:
    """The reply's calls as its client will send them back: a legacy client echoes its
    one call as `function_call`, which has no id, so the call is known by its name."""
    if plan.tools is not None and plan.tools.legacy:
        return tuple(msgspec.structs.replace(c, id=c.name) for c in finished.tool_calls)
    return finished.tool_calls


async def restart_once(
    plan: TurnPlan,
    attempt: Callable[[TurnPlan], Events],
    restarted: Callable[[TurnPlan], TurnPlan],
) -> Events:
    """The attempts of a turn: a continued session the backend no longer has is
    started again once, with the full history, if the caller has seen nothing yet."""
    for first in (True, False):
        shown = False
        async with aclosing(attempt(plan)) as events:
            async for event in events:
                if (
                    isinstance(event, Failed)
                    and event.reason is FailureReason.SESSION_MISSING
                    and plan.kind is PlanKind.CONTINUE
                    and first
                    and not shown
                ):
                    break
                shown = shown or _shows(event)
                yield event
                if isinstance(event, Finished | Failed):
                    return
            else:
                return
        plan = restarted(plan)


async def must_end(events: Events) -> Events:
    """Step: a turn always ends with Finished or Failed, even when its backend did not."""
    async with aclosing(events):
        async for event in events:
            yield event
            if isinstance(event, Finished | Failed):
                return
    yield Failed(FailureReason.CLI_CRASHED, NO_RESULT)


def _shows(event: Event) -> bool:
    """Whether the caller has seen something of the reply (so it cannot be redone)."""
    if isinstance(event, TextDelta):
        return bool(event.text)
    return isinstance(event, ThinkingDelta | ToolActivity | ToolCallStarted)
