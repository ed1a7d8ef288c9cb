"""ChatService: the application service every caller uses (HTTP, embedding apps, tests).

For each request it resolves the model and derives the session key; the Turn it
opens is admitted (`admission`), planned against the ledger, run through the reply
pipeline (`pipeline`) and recorded only when it finishes well (`turn`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping

from proxy_core.admission import Admission, ServiceLimits
from proxy_core.budget import Budget
from proxy_core.catalog import ModelCatalog
from proxy_core.effort import parse_effort
from proxy_core.errors import ChatError, no_result
from proxy_core.events import Event, ReplyCollector
from proxy_core.fakes import InMemorySpendStore
from proxy_core.history import HistoryMemo
from proxy_core.ledger import SessionRecord
from proxy_core.plan import PlanState, PlanTracker
from proxy_core.ports import BackendStatus, Runner, SessionStore, SpendStore
from proxy_core.request import ChatRequest, Completion
from proxy_core.session_key import derive_session_key
from proxy_core.sessions import SessionReset, Sessions
from proxy_core.spend_ledger import SpendLedger
from proxy_core.stats import ServiceStats, StatsRecorder
from proxy_core.stops import parse_stop
from proxy_core.structured import parse_response_format
from proxy_core.tools import parse_tool_offer
from proxy_core.turn import Discards, Turn, TurnEnv

__all__ = ["ChatRequest", "ChatService", "Completion", "ServiceLimits", "SessionReset", "Turn"]


class ChatService:
    """Admits, plans, runs and records chat turns. Owns all its state.

    `spend` keeps what each caller's turns cost (in memory when not given); `budgets`
    caps callers by namespace (the API key's id): see `SpendLedger`. `spend_ledger`
    is the service's view of both.
    """

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
        spend: SpendStore | None = None,
        budgets: Mapping[str, Budget] | None = None,
    ) -> None:
        self.runner = runner
        self.store = store
        self.catalog = catalog or ModelCatalog()
        self.limits = limits or ServiceLimits()
        self._clock = clock
        self._started = clock()
        self._admission = Admission(self.limits)
        self._stats = StatsRecorder()
        self._history = HistoryMemo()
        self._discards = Discards(store, runner)
        self.sessions = Sessions(store, runner, self._admission)
        self._plan_windows = PlanTracker()
        self.spend_ledger = SpendLedger(
            spend if spend is not None else InMemorySpendStore(), budgets, wall_clock=wall_clock
        )
        self._env = TurnEnv(
            runner=runner,
            store=store,
            admission=self._admission,
            stats=self._stats,
            discards=self._discards,
            plan_windows=self._plan_windows,
            spend=self.spend_ledger,
            clock=clock,
            wall_clock=wall_clock,
            new_session_id=new_session_id,
        )

    @property
    def active(self) -> int:
        """Turns running now."""
        return self._admission.active

    @property
    def queued(self) -> int:
        """Turns admitted and waiting for a slot (or for their session's previous turn)."""
        return self._admission.queued

    # -- turns -------------------------------------------------------------

    def open_turn(self, request: ChatRequest, *, whole: bool = False) -> Turn:
        """Validate a request into a Turn, to be entered (`async with`) and iterated.

        `whole`: the caller takes the reply at the end rather than streamed, so the
        turn holds the text back and can still drop what the backend withdraws (a
        reply redone after a dropped upstream connection) instead of failing.
        Raises ChatError for bad input or an unknown model (strict mode); entering
        the turn raises it when the queue is full.
        """
        self._stats.received(request.endpoint)
        try:
            # What the request's caller and session hint are: a conversation's memo is
            # never reached from another's (see `HistoryMemo`).
            scope = (request.namespace, request.session_id, request.session_key, request.user)
            history = self._history.read(request.messages, self.limits.parse, scope)
            conversation = history.conversation
            model = self.catalog.resolve(request.model)
            effort = parse_effort(request.reasoning_effort)
            json_schema = parse_response_format(request.response_format)
            stops = parse_stop(request.stop)
            tools = parse_tool_offer(
                request.tools,
                request.tool_choice,
                request.parallel_tool_calls,
                functions=request.functions,
                function_call=request.function_call,
            )
            key = derive_session_key(
                conversation,
                header=request.session_id,
                user=request.user,
                namespace=request.namespace,
                exact=request.session_key,
            )
        except ChatError:
            self._stats.errors += 1
            raise
        return Turn(
            self._env,
            conversation,
            model,
            key,
            effort,
            json_schema,
            stops,
            tools,
            whole=whole,
            seen=history.seen,
        )

    async def complete(self, request: ChatRequest) -> Completion:
        """Run a request to the end and collect it; raises ChatError on failure."""
        async with self.open_turn(request, whole=True) as turn:
            reply = ReplyCollector()
            async for event in turn.events():
                if (finished := reply.add(event)) is not None:
                    return Completion(
                        text=reply.text,
                        thinking=reply.thinking,
                        stop_reason=finished.stop_reason,
                        usage=reply.usage,
                        model=turn.model.response_id,
                        session_key=turn.key.value,
                        tool_calls=finished.tool_calls,
                    )
        raise no_result()

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        """Admit a request and yield its events (admission errors are raised)."""
        async with self.open_turn(request) as turn:
            async for event in turn.events():
                yield event

    # -- sessions (see `Sessions`) ---------------------------------------------

    async def forget_session(self, key: str, *, purge: bool = False) -> SessionReset | None:
        """Forget one conversation once its turn in flight ends (`Sessions.forget`)."""
        return await self.sessions.forget(key, purge=purge)

    async def forget_all(
        self, *, purge: bool = False, namespace: str | None = None
    ) -> list[SessionReset]:
        """Forget every conversation (of `namespace`, when given)."""
        return await self.sessions.forget_all(purge=purge, namespace=namespace)

    async def reset_session(self, key: str, *, purge: bool = False) -> SessionRecord | None:
        """`forget_session`, answering only the forgotten record (or None)."""
        reset = await self.forget_session(key, purge=purge)
        return None if reset is None else reset.record

    async def reset_all(
        self, *, purge: bool = False, namespace: str | None = None
    ) -> list[SessionRecord]:
        """`forget_all`, answering only the forgotten records."""
        return [reset.record for reset in await self.forget_all(purge=purge, namespace=namespace)]

    async def sweep_orphans(self, *, grace: float) -> int:
        """Delete unreferenced backend sessions older than `grace` s (`Sessions`)."""
        return await self.sessions.sweep_orphans(grace=grace)

    async def list_sessions(
        self, limit: int = 100, offset: int = 0, *, namespace: str | None = None
    ) -> tuple[list[SessionRecord], int]:
        """A page of conversations, most recent first, and their total count."""
        return await self.sessions.list(limit, offset, namespace=namespace)

    # -- state -------------------------------------------------------------

    def count_refused(self, endpoint: str = "chat.completions") -> None:
        """Count in the stats a request its caller refused before `open_turn` (a body
        that failed decoding into the wire types), as `open_turn` counts its own;
        `endpoint` names the API surface it came through."""
        self._stats.received(endpoint)
        self._stats.errors += 1

    async def stats(self) -> ServiceStats:
        """Counters since start, the admission state and latency percentiles."""
        return self._stats.snapshot(
            uptime_s=self._clock() - self._started,
            active=self.active,
            queued=self.queued,
            limits=(self.limits.max_concurrent, self.limits.max_queued),
            sessions=await self.store.count(),
        )

    @property
    def subscription(self) -> PlanState | None:
        """The account's plan windows as last reported (None: none seen yet, e.g. an API
        key rather than a subscription)."""
        return self._plan_windows.latest

    def backend_status(self) -> BackendStatus:
        """The backend's own view of its health."""
        return self.runner.status()

    async def aclose(self) -> None:
        """Finish pending discards, stop the runner and close the stores."""
        await self._discards.wait()
        await self.runner.aclose()
        await self.store.close()
        await self.spend_ledger.close()
