"""LiveCliRunner: the Runner port over CLI processes kept alive per conversation.

A conversation's process stays alive after its turn, stdin open, so a follow-up
turn is one line written to it: no process start, no transcript reload. Around
that sit the capacity rules (a cap with least-recently-used eviction, an idle
timeout), the fallback (a process that was evicted, crashed or spent is replaced
by a new one with `--resume`, at the ledger's resume point), a model change by
`set_model` and an effort change by `apply_flag_settings` on the live process, and a
warm pool of ready processes for new conversations.

Start-up checks, transcript purges and the command line are the per-turn
runner's (`ClaudeCliRunner`, `build_command`); this module only decides which
process runs a turn and when processes end.

The cap is hard: `ProcessSlots` counts every CLI process from its start until it
is reaped (live, pooled and still ending), and a turn that needs a new process
when all slots are held evicts an idle one (a pooled one first) and waits for its
slot in arrival order.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Set
from contextlib import aclosing
from typing import Annotated

import msgspec
import structlog
from msgspec import Meta

from proxy_cli_backend import pausing
from proxy_cli_backend.background import detached_task
from proxy_cli_backend.client_tools import offered, tools_key
from proxy_cli_backend.config import CliRunnerConfig
from proxy_cli_backend.costs import CostMeter
from proxy_cli_backend.live import LiveProcess, LiveProcessError, LiveState
from proxy_cli_backend.memory import MemoryBudget, ReadRss
from proxy_cli_backend.pool import WarmPool, pool_key
from proxy_cli_backend.procfs import halted, tree_rss
from proxy_cli_backend.runner import ClaudeCliRunner, cannot_start, not_started
from proxy_cli_backend.slots import ProcessSlots
from proxy_core import (
    BackendStatus,
    ChatError,
    Event,
    Failed,
    FailureReason,
    Finished,
    LiveDetails,
    PlanKind,
    TurnPlan,
)

log = structlog.get_logger(__name__)

# How many unfinished new sessions may wait for the service's `discard` (a caller that
# never discards must not grow the table without end).
_MAX_UNRECORDED = 1024


class LiveConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How many processes live, for how long, and the warm pool.

    `max_live` caps the CLI processes alive at once: live, pooled and still ending
    (idle ones are evicted for a turn that needs a process, pooled first, then the
    least recently used; with every one busy, the turn waits for one to end);
    `live_memory_mb` bounds them by their resident memory too (see `MemoryBudget`);
    `live_idle_timeout` ends a process unused that long (seconds); `pool_size`
    ready processes wait for new conversations (0 disables the pool), started
    for `pool_model` until the pool learns a better key from `pool_window`
    recent new conversations. `control_timeout` bounds the answer to
    `initialize`, `set_model` and `apply_flag_settings`; `flush_wait` is how long
    an ended process may take to write its transcript after stdin closes.
    `probe_timeout` bounds the `initialize` probe that an idle or pooled process must
    answer before it takes a turn (a live CLI answers in a few milliseconds; one
    that does not, stopped or hung, is replaced); 0 turns the probe off.
    `suspended_timeout` is how long a turn suspended at client tool calls keeps its
    process while the client runs them.
    """

    max_live: Annotated[
        int,
        Meta(
            description="Most CLI processes alive at once (live, pooled, ending); turns beyond "
            "wait."
        ),
    ] = 8
    live_idle_timeout: Annotated[
        float, Meta(description="Seconds an idle live CLI process is kept before it is ended.")
    ] = 600.0
    pool_size: Annotated[
        int,
        Meta(
            description="Pre-started CLI processes waiting for new conversations (0 disables "
            "the pool)."
        ),
    ] = 1
    probe_timeout: Annotated[
        float,
        Meta(description="Seconds a reused CLI process has to answer a probe (0: no probe)."),
    ] = 2.0
    live_memory_mb: Annotated[
        int,
        Meta(
            ge=0,
            description="Most resident memory, in MiB, the live and pooled CLI processes may "
            "hold together (with their children); beyond it idle ones are evicted, least "
            "recently used first, and turns wait when all are busy (0: no budget).",
        ),
    ] = 0
    suspended_timeout: Annotated[
        float,
        Meta(
            gt=0,
            le=86_000,
            description="Seconds a turn that ended in client tool calls waits for their "
            "results before its CLI process is ended (a later result then starts a fresh "
            "CLI session with the whole history).",
        ),
    ] = 600.0
    # The fields below carry no description: they are tuning and wiring, not settings
    # an operator sets (the composition root fills `pool_model` from the catalog).
    pool_model: str = "sonnet"
    pool_window: int = 20
    control_timeout: float = 60.0
    flush_wait: float = 2.0
    # After a conversation whose process was evicted comes back, the live set is
    # thrashing for this long (a reuse ends it sooner): see `LiveCliRunner._headroom`.
    thrash_window: float = 30.0
    # A process that ended a turn (or became ready) less than this many seconds ago is
    # not sent the `initialize` probe: /proc tells whether it was stopped or ended since.
    probe_after: float = 10.0
    # An idle live process is stopped (SIGSTOP) between turns and continued for its
    # next, where `pausing.supported()`: idle CLIs otherwise take CPU from the running
    # ones (see `pausing`). While no other turn runs there is nothing to take it from:
    # the pause then waits `pause_after` seconds, and comes at once when a turn starts.
    pause_idle: bool = True
    pause_after: float = 0.25


class LiveCliRunner:
    """Runs turns on per-conversation live CLI processes. Instances share nothing."""

    def __init__(
        self,
        config: CliRunnerConfig | None = None,
        live: LiveConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        read_rss: ReadRss = tree_rss,
    ) -> None:
        """`read_rss` measures processes for the memory budget (a seam for tests)."""
        self.config = config or CliRunnerConfig()
        self.live_config = live or LiveConfig()
        self._clock = clock
        self._pausing = self.live_config.pause_idle and pausing.supported()
        self._base = ClaudeCliRunner(self.config)
        self._started = False
        # Session id -> process, least recently used first.
        self._live: collections.OrderedDict[str, LiveProcess] = collections.OrderedDict()
        self._endings: dict[LiveProcess, asyncio.Task[None]] = {}
        self._slots = ProcessSlots(self.live_config.max_live)
        self._memory = MemoryBudget(
            self.live_config.live_memory_mb * 2**20, read=read_rss, clock=clock
        )
        # A NEW/RESTART plan's session id -> the CLI sessions its unfinished turn ran in,
        # when they differ from it (a pooled process has a session id of its own).
        self._unrecorded: collections.OrderedDict[str, tuple[str, ...]] = collections.OrderedDict()
        self._running = 0  # turns between the start of `run` and their end
        self._pool = WarmPool(
            self.live_config.pool_size,
            self._start_ready,
            self._end,
            model=self.live_config.pool_model,
            tools=self.config.tools,
            window=self.live_config.pool_window,
        )
        # The pool's process being started (it holds a slot), and whether a waiting turn
        # had it ended.
        self._pool_starting: LiveProcess | None = None
        self._pool_start_abandoned = False
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False
        self.spawned = 0
        self.reused = 0
        self.evicted = 0
        self._thrashing_until = float("-inf")  # see `_headroom`
        # Sessions whose process was evicted lately (bounded): one coming back means the
        # conversations in use do not fit the cap.
        self._evicted_sessions: collections.OrderedDict[str, None] = collections.OrderedDict()

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """The per-turn runner's start-up checks, then the idle reaper and the pool."""
        await self._base.start()
        self._started = True
        self._reaper = detached_task(self._reap_idle(), name="live-cli-reaper")
        self._pool.fill()

    def status(self) -> BackendStatus:
        """The base status plus the live processes, the pool and their memory."""
        base = self._base.status()
        # The per-turn runner always reports its details; they are built once, there.
        assert base.details is not None
        now = self._clock()
        live = list(self._live.values())
        pooled = self._pool.processes
        rss = tree_rss([p.pid for p in [*live, *pooled]])
        details = LiveDetails(
            **msgspec.structs.asdict(base.details),
            live_processes=len(live),
            suspended_turns=sum(1 for p in live if p.state is LiveState.SUSPENDED),
            live_limit=max(1, self.live_config.max_live),
            memory_budget_bytes=self._memory.budget_bytes,
            memory_limit=self._memory.limit or 0,
            processes=self._slots.held,
            waiting_for_process=self._slots.waiting,
            live_rss_bytes=sum(rss.get(p.pid, 0) for p in live),
            pool_ready=len(pooled),
            pool_size=self._pool.size,
            pool_rss_bytes=sum(rss.get(p.pid, 0) for p in pooled),
            pool_taken=self._pool.taken,
            spawned=self.spawned,
            reused=self.reused,
            evicted=self.evicted,
            live=tuple(p.describe(now, rss.get(p.pid)) for p in live),
        )
        return msgspec.structs.replace(
            base,
            ready=base.ready and not self._closed,
            active_processes=len(live) + len(pooled) + len(self._endings),
            details=details,
        )

    async def forget(self, cli_session_id: str, *, purge: bool = False) -> bool:
        """End the session's process (waiting for it), then purge its transcript if asked.

        Returns whether a transcript was deleted.
        """
        live = self._live.get(cli_session_id)
        if live is not None and live.state is not LiveState.BUSY:
            self._end(live)
        await self._ended(cli_session_id)
        return await self._base.forget(cli_session_id, purge=purge)

    async def discard(self, plan: TurnPlan) -> None:
        """Delete the transcripts of a NEW or RESTART turn that no record points to.

        These are the plan's own session and, when a pooled process took the turn,
        that process's session; each after its process has ended. A CONTINUE's session
        is the conversation's own and is never touched.
        """
        if plan.kind is PlanKind.CONTINUE:
            return
        sessions = self._unrecorded.pop(plan.cli_session_id, (plan.cli_session_id,))
        for session in sessions:
            live = self._live.get(session)
            if live is not None and live.state is LiveState.BUSY:
                log.info("transcript_kept_turn_running", session=session)
                continue
            if await self.forget(session, purge=True):
                log.info("unrecorded_transcript_deleted", session=session)

    async def sweep_orphans(self, referenced: Set[str], *, grace: float) -> int:
        """Delete transcripts in the work directory's project folder that `referenced`
        does not name, untouched for `grace` seconds; never those of a live, pooled or
        ending process. Returns how many sessions were deleted.
        """
        running = {
            *self._live,
            *(live.session_id for live in self._pool.processes),
            *(live.session_id for live in self._endings),
        }
        # The base runner keeps its own running sessions too; it runs none of ours.
        return await self._base.sweep_orphans(set(referenced) | running, grace=grace)

    async def watch(self, interval: float) -> None:
        """Live, pooled and per-turn processes share the base runner's watchdog."""
        await self._base.watch(interval)

    def kill_orphans(self, *, root: int | None = None) -> int:
        """The shared watchdog's leftovers (see `ClaudeCliRunner.kill_orphans`)."""
        return self._base.kill_orphans(root=root)

    async def aclose(self) -> None:
        """End every process (live, pooled, ending) and wait until all are reaped."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        await self._pool.aclose()
        for live in list(self._live.values()):
            self._end(live)
        while self._endings:
            await asyncio.gather(*list(self._endings.values()), return_exceptions=True)
        await self._base.aclose()

    # -- turns -----------------------------------------------------------------

    async def run(self, plan: TurnPlan) -> AsyncGenerator[Event, None]:
        """Run a turn on the conversation's live process (or a new or pooled one)."""
        if self._closed or not self._started:
            raise not_started()
        sessions: list[str] = []  # the CLI sessions this turn ran in
        finished = False
        self._running += 1
        try:
            async with aclosing(self._turn(plan, sessions)) as events:
                async for event in events:
                    finished = isinstance(event, Finished)
                    yield event
        finally:
            self._running -= 1
            if plan.kind is not PlanKind.CONTINUE and not finished:
                self._note_unrecorded(plan.cli_session_id, sessions)

    async def _turn(self, plan: TurnPlan, sessions: list[str]) -> AsyncGenerator[Event, None]:
        if plan.tool_results:
            async for event in self._resume(plan):
                yield event
            return
        live, reused = await self._acquire(plan)
        sessions.append(live.session_id)
        retry = False
        try:
            yielded = False
            async with aclosing(live.turn(plan.prompt, self.config, plan.tools)) as events:
                async for event in events:
                    if reused and not yielded and _crashed(event):
                        # It died between turns (killed, OOM): nothing was shown, so
                        # replay the turn on a fresh process instead of failing it.
                        retry = True
                        break
                    yielded = True
                    yield event
        finally:
            self._release(live)
        if not retry:
            return
        log.info("live_cli_gone_resuming", pid=live.pid, session=live.session_id)
        await self._ended(live.session_id)
        fresh = await self._spawn(plan)
        sessions.append(fresh.session_id)
        try:
            async with aclosing(fresh.turn(plan.prompt, self.config, plan.tools)) as events:
                async for event in events:
                    yield event
        finally:
            self._release(fresh)

    async def _resume(self, plan: TurnPlan) -> AsyncGenerator[Event, None]:
        """Answer the suspended turn's tool calls and go on with it; a turn that is gone
        (expired, evicted, crashed, a restarted server) is reported as a missing
        session, which the service answers with a fresh CLI session and the history."""
        live = self._live.get(plan.cli_session_id)
        if live is None or live.state is not LiveState.SUSPENDED:
            yield _suspended_gone()
            return
        if live.resume_point != plan.resume_point:
            self._end(live)
            yield _suspended_gone()
            return
        self._live.move_to_end(plan.cli_session_id)
        self.reused += 1
        self._pause_the_idle()  # the others: this turn goes on
        yielded = False
        try:
            events = live.resume(plan.tool_results, self.config, plan.tools)
            async with aclosing(events) as events:
                async for event in events:
                    if not yielded and _crashed(event):
                        # It died while waiting: nothing shown, so start afresh instead.
                        log.info("suspended_cli_gone", pid=live.pid, session=live.session_id)
                        yield _suspended_gone()
                        return
                    yielded = True
                    yield event
        finally:
            self._release(live)

    def _note_unrecorded(self, plan_session: str, sessions: list[str]) -> None:
        """Remember where an unfinished new session's turn ran, for `discard`."""
        if not sessions or sessions == [plan_session]:
            return  # `discard` finds the plan's own session without help
        self._unrecorded[plan_session] = tuple(dict.fromkeys(sessions))
        while len(self._unrecorded) > _MAX_UNRECORDED:
            self._unrecorded.popitem(last=False)

    async def _acquire(self, plan: TurnPlan) -> tuple[LiveProcess, bool]:
        """The process for a turn, and whether it already existed (vs. spawned for it)."""
        live = self._live.get(plan.cli_session_id) if plan.kind is PlanKind.CONTINUE else None
        if live is not None:
            live.unpause()
        self._pause_the_idle()  # the others: this turn is starting
        if plan.kind is PlanKind.CONTINUE:
            if live is not None and self._fits(live, plan):
                self._live.move_to_end(plan.cli_session_id)
                if await self._prepare(live, plan):
                    self.reused += 1
                    self._thrashing_until = float("-inf")
                    return live, True
            if live is not None and live.state is not LiveState.BUSY:
                self._end(live)
            if live is None and plan.cli_session_id in self._evicted_sessions:
                del self._evicted_sessions[plan.cli_session_id]  # evicted, and back
                self._thrashing_until = self._clock() + self.live_config.thrash_window
            # A process of this session still flushing its transcript must finish first.
            await self._ended(plan.cli_session_id)
            return await self._spawn(plan), False
        self._pool.note(plan.model, plan.system)
        # Pooled processes run without a reply schema or client tools (both are fixed
        # at the start).
        key = pool_key(plan.model, plan.system, self.config.tools)
        plain = plan.json_schema is None and _tools_key(plan) is None
        pooled = self._pool.take(key) if plain else None
        if pooled is not None:
            self._admit(pooled)
            if await self._prepare(pooled, plan):
                return pooled, True
            self._end(pooled)
        return await self._spawn(plan), False

    def _pause_the_idle(self) -> None:
        """Pause now the idle processes whose pause is waiting: a turn is starting, and
        they would take CPU from it."""
        for live in self._live.values():
            if live.pause_due:
                live.pause()

    def _fits(self, live: LiveProcess, plan: TurnPlan) -> bool:
        """Same session state as the ledger expects: idle, same system, tools, resume point,
        and the same reply schema and client tools (fixed for a process's life)."""
        return (
            live.usable
            and live.system == plan.system
            and live.tools == self.config.tools
            and live.resume_point == plan.resume_point
            and live.json_schema == plan.json_schema
            and live.tools_key == _tools_key(plan)
        )

    async def _prepare(self, live: LiveProcess, plan: TurnPlan) -> bool:
        """Ready a reused process for the plan; False if it is spent (and must be replaced)."""
        return await self._answers(live) and await self._adjust(live, plan)

    async def _answers(self, live: LiveProcess) -> bool:
        """Whether the process may take a turn: not stopped or gone (/proc), and, once
        idle for `probe_after` (or where /proc cannot tell), answering the `initialize`
        probe within `probe_timeout`.

        The runner's own pause is over by then (`_acquire` continued the process), so
        a stopped one was stopped by someone else, or by a tracer SIGCONT does not end.
        A process stopped (SIGSTOP) or hung while idle would otherwise cost its next
        turn the whole first-event timeout; a live CLI answers within milliseconds,
        so a short bound tells the two apart, and a slow answer costs only a respawn.
        """
        within = self.live_config.probe_timeout
        if within <= 0:
            return True
        stopped = halted(live.pid)
        if stopped:
            log.warning("live_cli_halted_replacing", pid=live.pid)
            return False
        recent = self._clock() - live.last_used < self.live_config.probe_after
        if stopped is not None and recent:
            # The probe costs the CLI a 17 kB answer (2 ms quiet, 20-40 ms under load) on
            # every follow-up; a process that answered moments ago and is not stopped
            # now is as good as probed. Hung-while-running is left to the turn timeouts.
            return True
        try:
            await live.wait_ready(within)
        except LiveProcessError as error:
            log.warning("live_cli_probe_failed_replacing", pid=live.pid, error=str(error))
            return False
        return True

    async def _adjust(self, live: LiveProcess, plan: TurnPlan) -> bool:
        """Bring the process to the plan's model and effort; False if it failed (and is spent)."""
        effort = self.config.effort_for(plan)
        within = self.live_config.control_timeout
        try:
            if live.model != plan.model:
                await live.set_model(plan.model, within)
            if live.effort != effort:
                await live.set_effort(effort, within)
        except LiveProcessError as error:
            log.warning("live_cli_adjust_failed", pid=live.pid, error=str(error))
            return False
        return True

    async def _spawn(self, plan: TurnPlan) -> LiveProcess:
        """A new process for the plan: `--session-id` when new, `--resume` to continue.

        Waits (in arrival order) for a process slot first, evicting an idle process
        if every slot is held.
        """
        self._fit_memory()
        await self._slots.take(on_wait=self._make_room)
        if self._closed:
            self._slots.give_back()
            raise ChatError(FailureReason.BACKEND_UNAVAILABLE, "The Claude CLI backend is closed.")
        self._headroom()
        try:
            live = await self._launch(plan, owner="live")
        except BaseException as error:
            self._slots.give_back()
            if isinstance(error, OSError):
                raise cannot_start(error) from None
            raise
        self.spawned += 1
        self._admit(live)
        return live

    async def _start_ready(self, model: str, system: str | None) -> LiveProcess | None:
        """A pooled process: a new session for (model, system), answering `initialize`.

        None when no slot is free (a spare never waits, nor takes a turn's place).
        """
        if not self._slots.try_take():
            return None
        plan = TurnPlan(
            kind=PlanKind.NEW,
            session_key="warm-pool",
            cli_session_id=str(uuid.uuid4()),
            model=model,
            system=system,
            prompt=(),
            messages=(),
            seen=(),
        )
        try:
            live = await self._launch(plan, owner="pool")
        except BaseException:
            self._slots.give_back()
            raise
        if self._slots.waiting:
            # A turn came for a slot while this one launched, before `_make_room` could
            # see a start to abandon: it must not wait behind `initialize`.
            self._end(live)
            return None
        self._pool_starting, self._pool_start_abandoned = live, False
        try:
            await live.wait_ready(self.live_config.control_timeout)
        except LiveProcessError:
            if self._pool_start_abandoned:
                return None  # ended for a turn that needs its slot: no failure to retry
            self._end(live)
            raise
        except BaseException:
            self._end(live)
            raise
        finally:
            self._pool_starting = None
        if self._pool_start_abandoned or self._slots.waiting:
            # A turn queued for a process while this one started: its slot comes first.
            self._end(live)
            return None
        return live

    async def _launch(self, plan: TurnPlan, *, owner: str) -> LiveProcess:
        """Start the plan's command with stdin kept open; raises OSError if it cannot run."""
        return await LiveProcess.spawn(
            self._base.command_for(plan),
            self.config,
            session_id=plan.cli_session_id,
            model=plan.model,
            system=plan.system,
            resume_point=plan.resume_point if plan.kind is PlanKind.CONTINUE else None,
            effort=self.config.effort_for(plan),
            json_schema=plan.json_schema,
            client_tools=plan.tools,
            watchdog=self._base.watchdog,
            owner=owner,
            clock=self._clock,
            costs=CostMeter(
                self._base.costs, resumed=plan.kind is PlanKind.CONTINUE, saved=plan.meter
            ),
            pausable=self._pausing,
        )

    # -- capacity and endings ----------------------------------------------------

    def _admit(self, live: LiveProcess) -> None:
        self._live[live.session_id] = live
        self._live.move_to_end(live.session_id)

    def _release(self, live: LiveProcess) -> None:
        """After a turn: keep a clean or suspended process (most recently used), end any
        other."""
        live.last_used = self._clock()
        if live.state in (LiveState.IDLE, LiveState.SUSPENDED) and not self._closed:
            self._fit_memory()
            self._make_room()
            # An idle, pausable one only; continued by `_acquire` or when ended. Other
            # turns running (or starting: their processes may not be live yet) want
            # the CPU now.
            alone = self._running <= 1
            live.pause_later(self.live_config.pause_after if alone else 0.0)
        else:
            self._end(live)
        self._fill_pool()

    def _fit_memory(self) -> None:
        """Lower (or raise) the process cap to what the memory budget allows now.

        Never above `max_live`; evicting down to a lowered cap is `_make_room`'s.
        """
        if not self._memory.enabled:
            return  # no budget: no per-turn work at all
        pids = [p.pid for p in self._live.values()] + [p.pid for p in self._pool.processes]
        allowed = self._memory.allowed(pids)
        if allowed is None:
            return
        limit = max(1, min(self.live_config.max_live, allowed))
        if limit != self._slots.limit:
            log.info(
                "live_memory_budget_cap",
                processes=limit,
                mean_rss_mib=round((self._memory.mean_bytes or 0) / 2**20),
                budget_mib=self.live_config.live_memory_mb,
            )
            self._slots.resize(limit)
            self._make_room()

    def _make_room(self) -> None:
        """Evict idle processes while the slots held and wanted exceed the cap by more
        than the endings under way will free (turns wait for a slot, or a memory budget
        lowered the cap).

        The pool's start in progress goes first, then spare pooled processes, then the
        least recently used idle live ones,
        then suspended ones (their client's results will start afresh). Busy ones are
        left alone: their turn's end keeps them (and calls this again)
        or ends them (which frees their slot).
        """
        slots = self._slots
        while slots.held + slots.waiting - slots.limit > len(self._endings):
            before = len(self._endings)
            if not (self._abandon_pool_start() or self._pool.evict()):
                idle = self._least_recent(LiveState.IDLE) or self._least_recent(LiveState.SUSPENDED)
                if idle is None:
                    return
                self._evict(idle)
            if len(self._endings) == before:  # nothing started ending: stop, never spin
                return

    def _thrashing(self) -> bool:
        return self._clock() < self._thrashing_until

    def _headroom(self) -> None:
        """While the live set thrashes, end one more idle process as a turn starts its own.

        The set thrashes when conversations whose processes were evicted come back: more
        conversations in use than `max_live` (round-robin is the worst case) make every
        turn evict an idle process and wait for it to exit (about 50 ms: the CLI saves
        its transcript) before its own may start: a wait spawn-per-turn does not have
        before its start. Keeping one place free while turns keep evicting moves
        that exit into the turn that is starting anyway (hundreds of ms), so the next
        miss starts at once. It costs one fewer live process while it lasts; a reuse,
        or `thrash_window` without an eviction, ends it. The warm pool stays out of the
        free place meanwhile (`_fill_pool`): a pooled process would only be evicted.
        """
        if not self._thrashing():
            return
        slots = self._slots
        if slots.held - len(self._endings) < slots.limit or slots.waiting:
            return  # a place is free or freeing, or a waiting turn takes what frees
        idle = self._least_recent(LiveState.IDLE)
        if idle is not None:
            self._evict(idle)

    def _least_recent(self, state: LiveState) -> LiveProcess | None:
        """The least recently used live process in `state` (`_live` is kept in use order)."""
        return next((p for p in self._live.values() if p.state is state), None)

    def _evict(self, live: LiveProcess) -> None:
        """End a conversation's idle process for room, remembering whose it was."""
        self.evicted += 1
        self._evicted_sessions[live.session_id] = None
        while len(self._evicted_sessions) > 4 * max(1, self.live_config.max_live):
            self._evicted_sessions.popitem(last=False)
        self._end(live)

    def _fill_pool(self) -> None:
        """Refill the warm pool, except while the live set thrashes (see `_headroom`)."""
        if not self._thrashing():
            self._pool.fill()

    def _abandon_pool_start(self) -> bool:
        """End the process the pool is starting, for a turn that waits for its slot.

        A start takes 0.4-0.9 s (more on a loaded machine) before `initialize` is
        answered, and the pool would only end the process then, seeing the waiting turn:
        ending it now saves the turn that wait and the machine the rest of the start's
        CPU. False when no start is under way (or it is ending already).
        """
        starting = self._pool_starting
        if starting is None or self._pool_start_abandoned:
            return False
        self._pool_start_abandoned = True
        self._end(starting, flush_wait=0.0)  # it has no transcript to write yet
        return True

    def _end(self, live: LiveProcess, *, flush_wait: float | None = None) -> None:
        """Forget a process and end it in the background (graceful, then killed)."""
        if self._live.get(live.session_id) is live:
            del self._live[live.session_id]
        if live in self._endings or live.state is LiveState.CLOSED:
            return
        wait = self.live_config.flush_wait if flush_wait is None else flush_wait
        task = detached_task(
            live.close(flush_wait=wait, kill_grace=self.config.kill_grace),
            name=f"live-cli-end-{live.pid}",
        )
        self._endings[live] = task
        task.add_done_callback(lambda _: self._ended_one(live))

    def _ended_one(self, live: LiveProcess) -> None:
        """A process is reaped: its slot goes to the next waiting turn, else to the pool."""
        self._endings.pop(live, None)
        self._slots.give_back()
        self._fill_pool()

    async def _ended(self, session_id: str) -> None:
        """Wait until no process of this session is still ending."""
        waiting = [t for p, t in self._endings.items() if p.session_id == session_id]
        if waiting:
            await asyncio.gather(*(asyncio.shield(t) for t in waiting), return_exceptions=True)

    async def _reap_idle(self) -> None:
        """End processes idle for longer than the idle timeout, or found dead."""
        timeout = self.live_config.live_idle_timeout
        suspended = self.live_config.suspended_timeout
        period = max(0.05, min(timeout / 4, suspended / 4, 30.0))
        while True:
            await asyncio.sleep(period)
            self._fit_memory()  # processes grow (and shrink) while they run
            now = self._clock()
            for live in list(self._live.values()):
                if live.state is LiveState.BUSY:
                    continue
                if live.state is LiveState.SUSPENDED:
                    if now - live.suspended_at >= suspended:
                        log.info("suspended_turn_expired", pid=live.pid, session=live.session_id)
                        self._end(live)
                    elif not live.alive:
                        log.info("suspended_cli_gone", pid=live.pid, session=live.session_id)
                        self._end(live)
                elif not live.usable or now - live.last_used >= timeout:
                    self._end(live)


def _tools_key(plan: TurnPlan) -> str | None:
    return tools_key(offered(plan.tools))


def _suspended_gone() -> Failed:
    return Failed(
        FailureReason.SESSION_MISSING,
        "The turn that waited for these tool results is gone (expired, evicted or ended).",
    )


def _crashed(event: Event) -> bool:
    return isinstance(event, Failed) and event.reason is FailureReason.CLI_CRASHED
