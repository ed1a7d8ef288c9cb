"""One admitted request, from its queue place to its recorded reply.

A Turn is an async context manager: entering takes a queue place (or raises
ChatError(BUSY)), `events()` waits for a slot and runs the reply pipeline, and
leaving closes whatever still runs and frees the place, on every path (a normal
end, a failure, a cancellation, events never iterated):

    async with service.open_turn(request) as turn:
        async for event in turn.events():
            ...
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass
from types import TracebackType

import msgspec

from proxy_core.admission import Admission, Place
from proxy_core.catalog import ResolvedModel
from proxy_core.conversation import Conversation
from proxy_core.effort import Effort
from proxy_core.errors import ChatError, FailureReason
from proxy_core.events import Failed, Finished, PlanStatus, Usage
from proxy_core.ledger import SessionRecord
from proxy_core.pipeline import (
    Attempt,
    Events,
    Recording,
    Step,
    guarded,
    must_end,
    reply_text,
    restart_once,
    store_failure,
    structured_output,
)
from proxy_core.plan import PlanState, PlanTracker
from proxy_core.planning import PlanKind, RestartReason, TurnPlan, plan_turn, restart_plan
from proxy_core.ports import Runner, SessionStore
from proxy_core.session_key import SessionKey
from proxy_core.spend_ledger import SpendLedger
from proxy_core.stats import StatsRecorder
from proxy_core.tools import ToolOffer


class Discards:
    """Deletes new backend sessions no record points to, without holding any caller."""

    def __init__(self, store: SessionStore, runner: Runner) -> None:
        self._store = store
        self._runner = runner
        self._tasks: set[asyncio.Task[None]] = set()

    def later(self, plan: TurnPlan) -> None:
        """Discard `plan`'s session in the background (its process may still be ending)."""
        task = asyncio.get_running_loop().create_task(
            self._discard(plan), name=f"discard-{plan.cli_session_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait(self) -> None:
        """Until every pending discard is done."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _discard(self, plan: TurnPlan) -> None:
        try:
            # Session ids are fresh, but an injected `new_session_id` might repeat one:
            # what a record points to is never deleted.
            if await self._store.references(plan.cli_session_id):
                return
            await self._runner.discard(plan)
        except Exception:
            # Nothing to tell anyone: the backend logs its own failures, and the orphan
            # sweep deletes what is left once the store answers again.
            pass


@dataclass(frozen=True)
class TurnEnv:
    """What every turn of one service shares (the service owns it)."""

    runner: Runner
    store: SessionStore
    admission: Admission
    stats: StatsRecorder
    discards: Discards
    plan_windows: PlanTracker
    spend: SpendLedger
    clock: Callable[[], float]
    wall_clock: Callable[[], float]
    new_session_id: Callable[[], str]


class Turn:
    """One validated request. Enter it once (`async with`), iterate `events()` once
    inside; they end with Finished or Failed. A `whole` turn yields its reply text at
    the end, in one piece. After leaving, `plan`, `usage` and `failure` tell how it went,
    and `window_warning` is the plan state when this turn saw the account's windows turn
    to a warning (for the caller to log once). A caller over its budget is refused
    before anything runs; a turn whose usage has a cost adds it to its caller's spend
    (`spend_error` says why that failed, if it did: the reply stands). `seen` are the
    conversation's fingerprints when the caller has them (planning computes them else)."""

    def __init__(
        self,
        env: TurnEnv,
        conversation: Conversation,
        model: ResolvedModel,
        key: SessionKey,
        effort: Effort | None = None,
        json_schema: str | None = None,
        stops: tuple[str, ...] = (),
        tools: ToolOffer | None = None,
        *,
        whole: bool = False,
        seen: tuple[str, ...] | None = None,
    ) -> None:
        self._env = env
        self.conversation = conversation
        self.model = model
        self.key = key
        self.effort = effort
        self.json_schema = json_schema
        self.stops = stops
        self.tools = tools
        self.whole = whole
        self._seen = seen
        self.plan: TurnPlan | None = None
        self.previous: SessionRecord | None = None
        self.usage: Usage | None = None
        self.failure: Failed | None = None
        self.window_warning: PlanState | None = None
        self.spend_error: str | None = None
        self._opened = env.clock()
        self._place: Place | None = None
        self._events: Events | None = None
        self._outcome: Finished | Failed | None = None
        self._left = False

    async def __aenter__(self) -> Turn:
        if self._place is not None:
            raise RuntimeError("a turn is entered once")
        try:
            self._place = self._env.admission.reserve()
        except ChatError:
            self._env.stats.errors += 1
            raise
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._left = True
        try:
            if self._events is not None:
                await self._events.aclose()  # ends the backend's turn if it still runs
        finally:
            self._end()

    def events(self) -> Events:
        """Wait for the session's turn and a slot, plan, run, record; the events in order."""
        if self._place is None or self._left:
            raise RuntimeError("iterate a turn inside `async with service.open_turn(...)`")
        if self._events is not None:
            raise RuntimeError("a turn's events are iterated once")
        self._events = self._run(self._place)
        return self._events

    async def _run(self, place: Place) -> Events:
        async with place.running(self.key.value), aclosing(self._pipeline()) as events:
            # Checked once this turn's session is free, so the spend of the session's
            # previous turn (recorded before it let go) counts.
            refusal = await self._env.spend.refusal(self.key.namespace)
            if refusal is not None:
                self._outcome = refusal
                yield refusal
                return
            try:
                async for event in events:
                    if isinstance(event, Usage):
                        self.usage = event
                    elif isinstance(event, PlanStatus):
                        if self._env.plan_windows.update(event.state):
                            self.window_warning = event.state
                    elif isinstance(event, Finished | Failed):
                        self._outcome = event
                    yield event
            finally:
                # Whatever the turn cost is spent, however it ended.
                if self.usage is not None:
                    self.spend_error = await self._env.spend.record(
                        self.key.namespace, self.usage, self.model.cli_model
                    )

    async def _pipeline(self) -> Events:
        try:
            plan = await self._plan()
        except Exception as error:
            yield store_failure(error)
            return
        attempts = must_end(restart_once(plan, self._attempt, self._restarted))
        async with aclosing(attempts):
            async for event in attempts:
                yield event

    def _attempt(self, plan: TurnPlan) -> Events:
        """The one place the reply pipeline is composed: the runner's events for `plan`,
        through each step in order."""
        self.plan = plan
        attempt = Attempt(plan)
        events = self._source(attempt)
        for step in self._steps():
            events = step(attempt, events)
        return events

    def _steps(self) -> list[Step]:
        env = self._env
        recording = Recording(env.store, env.runner, env.wall_clock, self.key.value, self.previous)
        if self.json_schema is not None:
            # A structured reply is never cut by stop sequences.
            return [recording, structured_output]
        return [reply_text(self.stops, whole=self.whole), recording]

    async def _source(self, attempt: Attempt) -> Events:
        """The runner's events. Once they are closed, a new session that no record points
        to (the turn failed, timed out, was cancelled or cut) is discarded, so its
        transcript does not outlive it."""
        try:
            async with aclosing(guarded(self._env.runner, attempt.plan)) as events:
                async for event in events:
                    yield event
        finally:
            if attempt.plan.kind is not PlanKind.CONTINUE and not attempt.recorded:
                self._env.discards.later(attempt.plan)

    async def _plan(self) -> TurnPlan:
        env = self._env
        self.previous = await env.store.get(self.key.value)
        plan = plan_turn(
            self.previous,
            self.conversation,
            session_key=self.key.value,
            model=self.model.cli_model,
            new_session_id=env.new_session_id(),
            seen=self._seen,
        )
        return msgspec.structs.replace(
            plan, effort=self.effort, json_schema=self.json_schema, tools=self.tools
        )

    def _restarted(self, plan: TurnPlan) -> TurnPlan:
        session_id = self._env.new_session_id()
        return restart_plan(plan, self.conversation, RestartReason.SESSION_MISSING, session_id)

    def _end(self) -> None:
        """Leave admission and count the outcome (a turn that did not finish is an error)."""
        assert self._place is not None
        self._place.leave()
        stats = self._env.stats
        if isinstance(self._outcome, Finished):
            stats.completed_in(self._env.clock() - self._opened)
        else:
            stats.errors += 1
            self.failure = self._outcome or Failed(
                FailureReason.CANCELLED, "The turn was cancelled."
            )
        if self.usage is not None:
            stats.input_tokens += self.usage.prompt_tokens
            stats.output_tokens += self.usage.output_tokens
            stats.cost_usd += self.usage.cost_usd or 0.0
