"""ChatService: the application service every caller uses (HTTP, embedding apps, tests).

For each request it resolves the model, derives the session key, admits the turn
(a global concurrency limit with a bounded queue; one turn at a time per session,
in arrival order), plans it against the ledger, runs it, and advances the ledger
only when the turn finishes well.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing

import msgspec

from proxy_core.catalog import ModelCatalog, ResolvedModel
from proxy_core.conversation import Conversation, ParseLimits, parse_conversation
from proxy_core.effort import Effort, parse_effort
from proxy_core.errors import ChatError, FailureReason, no_result
from proxy_core.events import (
    Event,
    Failed,
    Finished,
    ReplyCollector,
    TextDelta,
    TextRetracted,
    ThinkingDelta,
    ToolActivity,
    Usage,
)
from proxy_core.ledger import SessionRecord, reply_fingerprint, system_hash
from proxy_core.openai_wire import ChatMessage, ResponseFormat
from proxy_core.planning import PlanKind, RestartReason, TurnPlan, plan_turn, restart_plan
from proxy_core.ports import BackendStatus, Runner, SessionStore
from proxy_core.reply_text import ReplyText
from proxy_core.session_key import SessionKey, derive_session_key, namespace_prefix
from proxy_core.stats import ServiceStats, StatsRecorder
from proxy_core.stops import parse_stop
from proxy_core.structured import parse_response_format

_CONTRADICTED = (
    "The upstream connection dropped mid-reply and the retried reply does not continue "
    "the text already streamed, so the reply cannot be completed. Send the request again."
)


class ServiceLimits(msgspec.Struct, frozen=True):
    """Admission limits and input bounds."""

    max_concurrent: int = 4
    max_queued: int = 8
    parse: ParseLimits = msgspec.field(default_factory=ParseLimits)
    busy_retry_after: float = 1.0


class ChatRequest(msgspec.Struct, frozen=True):
    """One chat completion request, as any caller states it.

    `messages` are OpenAI messages, typed (`proxy_core.openai_wire.ChatMessage`) or as
    plain JSON data; `session_id` pins the conversation like the `X-Session-Id`
    header; `reasoning_effort` is OpenAI's (`low`, `medium`, `high`, ...: see
    `parse_effort`), None for the default; `response_format` and `stop` are OpenAI's
    too, typed or plain (see `parse_response_format`, `parse_stop`). `namespace` says
    whose conversations these are (the HTTP server uses one per API key): the same
    session id, user or opening under two namespaces is two conversations; "" is the
    namespace every caller shares. `chat_request` builds one from a whole
    `ChatCompletionRequest`.
    """

    model: str
    messages: Sequence[ChatMessage] | Sequence[Mapping[str, object]]
    user: str | None = None
    session_id: str | None = None
    reasoning_effort: str | None = None
    response_format: ResponseFormat | Mapping[str, object] | None = None
    stop: str | Sequence[str] | None = None
    namespace: str = ""


class SessionReset(msgspec.Struct, frozen=True):
    """A forgotten conversation: its record, and whether its backend transcript was
    purged (deleted and checked gone, not merely asked for)."""

    record: SessionRecord
    purged: bool = False


class Completion(msgspec.Struct, frozen=True):
    """The collected outcome of a finished turn."""

    text: str
    thinking: str
    stop_reason: str | None
    usage: Usage
    model: str
    session_key: str


class ChatService:
    """Admits, plans, runs and records chat turns. Owns all its state."""

    def __init__(
        self,
        runner: Runner,
        store: SessionStore,
        *,
        catalog: ModelCatalog | None = None,
        limits: ServiceLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        new_session_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.runner = runner
        self.store = store
        self.catalog = catalog or ModelCatalog()
        self.limits = limits or ServiceLimits()
        self._clock = clock
        self._wall = wall_clock
        self._new_session_id = new_session_id
        self._started = clock()
        self._slots = asyncio.Semaphore(self.limits.max_concurrent)
        self._session_locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._discards: set[asyncio.Task[None]] = set()
        self._stats = StatsRecorder()
        self.active = 0
        self.queued = 0

    # -- turns -------------------------------------------------------------

    def open_turn(self, request: ChatRequest, *, whole: bool = False) -> Turn:
        """Validate and admit a request, without waiting.

        `whole`: the caller takes the reply at the end rather than streamed, so the
        turn holds the text back and can still drop what the backend withdraws (a
        reply redone after a dropped upstream connection) instead of failing.
        Raises ChatError for bad input, an unknown model (strict mode) or a full
        queue; otherwise the returned Turn holds a queue place until it ends.
        """
        self._stats.total += 1
        try:
            conversation = parse_conversation(request.messages, self.limits.parse)
            model = self.catalog.resolve(request.model)
            effort = parse_effort(request.reasoning_effort)
            json_schema = parse_response_format(request.response_format)
            stops = parse_stop(request.stop)
            key = derive_session_key(
                conversation,
                header=request.session_id,
                user=request.user,
                namespace=request.namespace,
            )
            capacity = self.limits.max_concurrent + self.limits.max_queued
            if self.active + self.queued >= capacity:
                raise ChatError(
                    FailureReason.BUSY,
                    f"The server is at capacity ({self.limits.max_concurrent} running, "
                    f"{self.limits.max_queued} queued). Retry shortly.",
                    retry_after=self.limits.busy_retry_after,
                )
        except ChatError:
            self._stats.errors += 1
            raise
        self.queued += 1
        return Turn(self, conversation, model, key, effort, json_schema, stops, whole=whole)

    async def complete(self, request: ChatRequest) -> Completion:
        """Run a request to the end and collect it; raises ChatError on failure."""
        turn = self.open_turn(request, whole=True)
        reply = ReplyCollector()
        async with aclosing(turn.events()) as events:
            async for event in events:
                finished = reply.add(event)
                if finished is not None:
                    return Completion(
                        text=reply.text,
                        thinking=reply.thinking,
                        stop_reason=finished.stop_reason,
                        usage=reply.usage,
                        model=turn.model.response_id,
                        session_key=turn.key.value,
                    )
        raise no_result()

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        """Admit a request and yield its events (admission errors are raised)."""
        turn = self.open_turn(request)
        async with aclosing(turn.events()) as events:
            async for event in events:
                yield event

    # -- sessions ----------------------------------------------------------

    async def forget_session(self, key: str, *, purge: bool = False) -> SessionReset | None:
        """Forget one conversation, after any turn of it in flight has ended.

        The next request of it starts a fresh CLI session with the full history;
        `purge` also deletes what the backend stored of it, and the answer says
        whether that really happened.
        """
        async with self._session_lock(key):
            record = await self.store.delete(key)
            if record is None:
                return None
            purged = await self.runner.forget(record.cli_session_id, purge=purge)
        return SessionReset(record, purged=bool(purged))

    async def forget_all(
        self, *, purge: bool = False, namespace: str | None = None
    ) -> list[SessionReset]:
        """Forget every conversation (of `namespace`, when given); each is deleted once
        its running turn ends."""
        prefix = "" if namespace is None else namespace_prefix(namespace)
        records, _ = await self.store.list(limit=1_000_000, prefix=prefix)
        removed: list[SessionReset] = []
        for record in records:
            gone = await self.forget_session(record.key, purge=purge)
            if gone is not None:
                removed.append(gone)
        for record in await self.store.clear(prefix=prefix):
            purged = await self.runner.forget(record.cli_session_id, purge=purge)
            removed.append(SessionReset(record, purged=bool(purged)))
        return removed

    async def reset_session(self, key: str, *, purge: bool = False) -> SessionRecord | None:
        """`forget_session`, answering only the forgotten record (or None)."""
        reset = await self.forget_session(key, purge=purge)
        return None if reset is None else reset.record

    async def reset_all(
        self, *, purge: bool = False, namespace: str | None = None
    ) -> list[SessionRecord]:
        """`forget_all`, answering only the forgotten records."""
        removed = await self.forget_all(purge=purge, namespace=namespace)
        return [reset.record for reset in removed]

    async def sweep_orphans(self, *, grace: float) -> int:
        """Delete what the backend stored of sessions no record points to, untouched for
        `grace` seconds (never a running process's); returns how many were deleted."""
        referenced = await self.store.cli_session_ids()
        return await self.runner.sweep_orphans(referenced, grace=grace)

    async def list_sessions(
        self, limit: int = 100, offset: int = 0, *, namespace: str | None = None
    ) -> tuple[list[SessionRecord], int]:
        """A page of conversations (of `namespace`, when given), most recent first, and
        their total count."""
        prefix = "" if namespace is None else namespace_prefix(namespace)
        return await self.store.list(limit=limit, offset=offset, prefix=prefix)

    # -- state -------------------------------------------------------------

    def count_refused(self) -> None:
        """Count in the stats a request its caller refused before `open_turn` (a body
        that failed decoding into the wire types), as `open_turn` counts its own."""
        self._stats.total += 1
        self._stats.errors += 1

    async def stats(self) -> ServiceStats:
        avg, p50, p95, sampled = self._stats.latency_summary()
        return ServiceStats(
            uptime_s=self._clock() - self._started,
            total=self._stats.total,
            completed=self._stats.completed,
            errors=self._stats.errors,
            active=self.active,
            queued=self.queued,
            concurrency_limit=self.limits.max_concurrent,
            queue_limit=self.limits.max_queued,
            sessions=await self.store.count(),
            input_tokens=self._stats.input_tokens,
            output_tokens=self._stats.output_tokens,
            avg_latency_ms=avg,
            p50_latency_ms=p50,
            p95_latency_ms=p95,
            sampled=sampled,
        )

    def backend_status(self) -> BackendStatus:
        return self.runner.status()

    async def aclose(self) -> None:
        """Finish pending discards, stop the runner and close the store."""
        while self._discards:
            await asyncio.gather(*list(self._discards), return_exceptions=True)
        await self.runner.aclose()
        await self.store.close()

    # -- internals ---------------------------------------------------------

    def _session_lock(self, key: str) -> _SessionLock:
        return _SessionLock(self._session_locks, key)

    def _discard_later(self, plan: TurnPlan) -> None:
        """Have the backend delete an unrecorded new session, without holding the caller
        (its process may still be ending); `aclose` waits for it."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # finalized outside the loop: the orphan sweep deletes it
            return
        task = loop.create_task(self._discard(plan), name=f"discard-{plan.cli_session_id}")
        self._discards.add(task)
        task.add_done_callback(self._discards.discard)

    async def _discard(self, plan: TurnPlan) -> None:
        try:
            # Session ids are fresh, but an injected `new_session_id` might repeat one:
            # what a record points to is never deleted.
            if plan.cli_session_id in await self.store.cli_session_ids():
                return
            await self.runner.discard(plan)
        except Exception:
            # Nothing to tell anyone: the backend logs its own failures, and the orphan
            # sweep deletes what is left once the store answers again.
            pass

    async def _plan(self, turn: Turn) -> TurnPlan:
        record = await self.store.get(turn.key.value)
        turn.previous = record
        plan = plan_turn(
            record,
            turn.conversation,
            session_key=turn.key.value,
            model=turn.model.cli_model,
            new_session_id=self._new_session_id(),
        )
        return msgspec.structs.replace(plan, effort=turn.effort, json_schema=turn.json_schema)

    async def _record(self, turn: Turn, plan: TurnPlan, finished: Finished, reply: str) -> None:
        now = self._wall()
        previous = turn.previous if plan.kind is PlanKind.CONTINUE else None
        record = SessionRecord(
            key=turn.key.value,
            cli_session_id=finished.session_id or plan.cli_session_id,
            model=plan.model,
            system_hash=system_hash(plan.system),
            fingerprints=(*plan.seen, reply_fingerprint(reply)),
            created_at=previous.created_at if previous else now,
            last_used_at=now,
            resume_point=finished.resume_point,
            turns=(previous.turns if previous else 0) + 1,
        )
        await self.store.put(record)
        if turn.previous is not None and turn.previous.cli_session_id != record.cli_session_id:
            await self.runner.forget(turn.previous.cli_session_id)


class _SessionLock:
    """A per-key FIFO lock whose table entry disappears when nobody holds or waits for it."""

    def __init__(self, table: dict[str, tuple[asyncio.Lock, int]], key: str) -> None:
        self.table = table
        self.key = key

    async def __aenter__(self) -> None:
        lock, users = self.table.get(self.key, (asyncio.Lock(), 0))
        self.table[self.key] = (lock, users + 1)
        try:
            await lock.acquire()
        except BaseException:
            self._leave(lock)
            raise

    async def __aexit__(self, *exc: object) -> None:
        lock, _ = self.table[self.key]
        lock.release()
        self._leave(lock)

    def _leave(self, lock: asyncio.Lock) -> None:
        _, users = self.table[self.key]
        if users <= 1:
            del self.table[self.key]
        else:
            self.table[self.key] = (lock, users - 1)


class Turn:
    """One admitted request. Iterate `events()` once; it ends with Finished or Failed.

    Closing the iterator early cancels the turn and frees its place. A `whole` turn
    yields its reply text at the end, in one piece; otherwise as it comes.
    """

    def __init__(
        self,
        service: ChatService,
        conversation: Conversation,
        model: ResolvedModel,
        key: SessionKey,
        effort: Effort | None = None,
        json_schema: str | None = None,
        stops: tuple[str, ...] = (),
        *,
        whole: bool = False,
    ) -> None:
        self._service = service
        self.conversation = conversation
        self.model = model
        self.key = key
        self.effort = effort
        self.json_schema = json_schema
        self.stops = stops
        self.whole = whole
        self.plan: TurnPlan | None = None
        self.previous: SessionRecord | None = None
        self.usage: Usage | None = None
        self.failure: Failed | None = None
        self._recorded: TurnPlan | None = None  # the plan whose outcome was recorded
        self._opened = service._clock()
        self._queued = True
        self._ended = False

    async def events(self) -> AsyncGenerator[Event, None]:
        """Wait for a place, plan, run, record; yield the runner's events in order."""
        service = self._service
        outcome: Finished | Failed | None = None
        try:
            async with service._session_lock(self.key.value), service._slots:
                self._leave_queue()
                service.active += 1
                try:
                    async with aclosing(self._run()) as run:
                        async for event in run:
                            if isinstance(event, Finished | Failed):
                                outcome = event
                            yield event
                finally:
                    service.active -= 1
        finally:
            self._end(outcome)

    async def _run(self) -> AsyncGenerator[Event, None]:
        service = self._service
        try:
            plan = await service._plan(self)
        except Exception as error:
            yield store_failure(error)
            return
        for attempt in range(2):
            self.plan = plan
            visible = False
            restart = False
            # A structured reply is the backend's final result, delivered whole at the
            # end: text the model wrote on the way is not part of it.
            structured = plan.json_schema is not None
            # Stop sequences cut the reply text (a structured reply is never cut).
            reply = ReplyText(() if structured else self.stops, whole=self.whole)
            async with aclosing(self._attempt(plan)) as events:
                async for event in events:
                    if isinstance(event, Failed):
                        if (
                            event.reason is FailureReason.SESSION_MISSING
                            and plan.kind is PlanKind.CONTINUE
                            and attempt == 0
                            and not visible
                        ):
                            restart = True
                            break
                        yield event
                        return
                    if isinstance(event, TextDelta | TextRetracted) and structured:
                        continue
                    if isinstance(event, TextRetracted):
                        if not reply.retract(event.chars):
                            # The client has text the backend's redone reply does not
                            # continue: end here rather than show a garbled reply (the
                            # ledger stays where it was).
                            yield Failed(FailureReason.UPSTREAM_ERROR, _CONTRADICTED)
                            return
                        continue
                    if isinstance(event, TextDelta):
                        passed = reply.add(event.text)
                        if passed:
                            visible = True
                            yield TextDelta(passed)
                        if reply.stopped:
                            # The client has its reply. The backend's turn is abandoned
                            # (closing the runner ends it) and the ledger stays where it
                            # was: the session saw more than the client did, so the next
                            # turn resumes before this one, with the cut reply as history.
                            rest = reply.finish()
                            if rest:
                                yield TextDelta(rest)
                            yield Finished("stop_sequence", reply.text)
                            return
                        continue
                    if isinstance(event, ThinkingDelta | ToolActivity):
                        visible = True
                    elif isinstance(event, Usage):
                        self.usage = event
                    elif isinstance(event, Finished):
                        rest = "" if structured else reply.finish()
                        if rest:
                            yield TextDelta(rest)
                        if reply.stopped:
                            # A sequence found only at the end (its cut waited for a
                            # longer one): cut, and not recorded, as a stop mid-reply.
                            yield Finished("stop_sequence", reply.text)
                            return
                        text = event.text if structured else reply.text or event.text
                        try:
                            await service._record(self, plan, event, text)
                        except Exception as error:
                            # The reply was paid for but cannot be remembered: say so,
                            # rather than let the next turn silently start over.
                            yield store_failure(error)
                            return
                        self._recorded = plan
                        if structured and text:
                            yield TextDelta(text)
                        yield event
                        return
                    yield event
            if not restart:
                break
            plan = restart_plan(
                plan, self.conversation, RestartReason.SESSION_MISSING, service._new_session_id()
            )
        yield Failed(FailureReason.CLI_CRASHED, "The backend ended the turn without a result.")

    async def _attempt(self, plan: TurnPlan) -> AsyncGenerator[Event, None]:
        """The runner's events for one plan. Once they are closed, a new session that no
        record points to (the turn failed, timed out, was cancelled or cut by a stop
        sequence) is discarded, so its transcript does not outlive it."""
        try:
            async with aclosing(_guarded(self._service.runner, plan)) as events:
                async for event in events:
                    yield event
        finally:
            if plan.kind is not PlanKind.CONTINUE and self._recorded is not plan:
                self._service._discard_later(plan)

    def _leave_queue(self) -> None:
        if self._queued:
            self._queued = False
            self._service.queued -= 1

    def _end(self, outcome: Finished | Failed | None) -> None:
        if self._ended:
            return
        self._ended = True
        self._leave_queue()
        stats = self._service._stats
        if isinstance(outcome, Finished):
            stats.completed_in(self._service._clock() - self._opened)
        else:
            stats.errors += 1
            self.failure = (
                outcome
                if isinstance(outcome, Failed)
                else Failed(FailureReason.CANCELLED, "The turn was cancelled.")
            )
        if self.usage is not None:
            stats.input_tokens += self.usage.prompt_tokens
            stats.output_tokens += self.usage.output_tokens

    def release(self) -> None:
        """End a turn whose events were never iterated (e.g. the client left first)."""
        self._end(None)

    def __del__(self) -> None:
        if not getattr(self, "_ended", True):
            self._end(None)


def store_failure(error: Exception) -> Failed:
    """The end of a turn whose session store call failed (a ChatError keeps its reason)."""
    if isinstance(error, ChatError):
        return Failed(error.reason, error.message, retry_after=error.retry_after)
    return Failed(
        FailureReason.STORE_UNAVAILABLE,
        f"The session store failed: {type(error).__name__}: {error}",
    )


async def _guarded(runner: Runner, plan: TurnPlan) -> AsyncGenerator[Event, None]:
    """The runner's events, with an unexpected exception turned into a typed failure."""
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
