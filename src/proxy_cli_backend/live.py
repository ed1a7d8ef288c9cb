"""A live CLI process: one `claude` kept running across the turns of one conversation.

The process reads stream-json from a stdin that stays open. A turn writes one
user line and reads stdout until that turn's `result`; control requests
(`initialize`, `set_model`, `apply_flag_settings`, `interrupt`) are read until their
`control_response`.

A turn that ends in client tool calls is suspended: the process waits, SUSPENDED, with
the CLI's `tools/call` requests held, until `resume` brings the client's results and
the same CLI turn goes on.

Turn isolation rests on one rule: a process takes another turn only after the
previous one was read through its successful `result`. A turn that failed, timed
out or was abandoned leaves the CLI's conversation holding things the ledger does
not know (the cancelled prompt, a partial reply, `[Request interrupted by user]`),
so the process is spent: it is interrupted, drained and ended, and the next turn
resumes the transcript at the last good reply (`--resume-session-at`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

import structlog

from proxy_cli_backend.client_tools import (
    announce,
    announce_line,
    bridge_for,
    instruction,
    offered,
    tools_key,
    with_instruction,
)
from proxy_cli_backend.command import CliCommand
from proxy_cli_backend.config import CliRunnerConfig
from proxy_cli_backend.costs import CostMeter
from proxy_cli_backend.process import CliProcess
from proxy_cli_backend.protocol import (
    ControlCancel,
    ControlRequest,
    ControlResponse,
    EventDecoder,
    ResultEvent,
    encode_control_request,
    encode_user_message,
)
from proxy_cli_backend.translate import TurnTranslator, crashed
from proxy_cli_backend.turn_reader import answer_control, drive_turn
from proxy_cli_backend.watchdog import ChildWatchdog
from proxy_core import (
    Block,
    Effort,
    Event,
    Failed,
    LiveProcessInfo,
    ToolOffer,
    ToolResult,
)

log = structlog.get_logger(__name__)

# After an error result or stdout's end, how long to wait for the exit and stderr.
_EXIT_WAIT = 5.0


class LiveProcessError(RuntimeError):
    """A live process did not answer a control request as expected (or died)."""


class LiveState(enum.Enum):
    """IDLE takes turns; BUSY runs one; SUSPENDED waits for client tool results (only
    `resume` goes on); SPENT must be ended; CLOSED is ended."""

    IDLE = "idle"
    BUSY = "busy"
    SUSPENDED = "suspended"
    SPENT = "spent"
    CLOSED = "closed"


class LiveProcess:
    """One persistent CLI process holding one CLI session.

    `resume_point` is the uuid of the last message (assistant reply or tool results)
    the process's conversation ends with (None before the first turn of a new session): a
    CONTINUE plan may use this process only if its ledger says the same. `effort`
    is the reasoning level its next turn runs at (None: the CLI's default);
    `json_schema` the schema it was started with (`--json-schema`), fixed for its life,
    as are the client tools it serves (`tools`, whose digest is `tools_key`).
    """

    def __init__(
        self,
        process: CliProcess,
        *,
        session_id: str,
        model: str,
        system: str | None,
        tools: str,
        resume_point: str | None = None,
        effort: Effort | None = None,
        json_schema: str | None = None,
        client_tools: ToolOffer | None = None,
        clock: Callable[[], float] = time.monotonic,
        costs: CostMeter | None = None,
        pausable: bool = False,
    ) -> None:
        """`costs` prices the process's turns (default: a process of a new session);
        a `pausable` one was started so that `pause` may stop it (see `pausing`)."""
        self._process = process
        self._pausable = pausable
        self._costs = costs or CostMeter()
        self._decoder = EventDecoder()
        self._clock = clock
        self._requests = 0
        self.session_id = session_id
        self.model = model
        self.system = system
        self.tools = tools
        self.resume_point = resume_point
        self.effort = effort
        self.json_schema = json_schema
        self.tools_key = tools_key(offered(client_tools))
        self.bridge = bridge_for(client_tools)
        self._announced = False  # `initialize` told the CLI we serve its tools
        self._suspended: TurnTranslator | None = None  # the suspended turn's state
        self.suspended_at = 0.0
        self.state = LiveState.IDLE
        self.turns = 0
        self.unfinished = False  # a turn was abandoned before its result was read
        self.unresponsive = False  # a control request went unanswered (stopped, hung)
        self.paused = False  # stopped by the runner while idle (`pause`)
        self._pause_timer: asyncio.TimerHandle | None = None  # a `pause_later` due
        self.last_used = clock()

    @classmethod
    async def spawn(
        cls,
        command: CliCommand,
        config: CliRunnerConfig,
        *,
        session_id: str,
        model: str,
        system: str | None,
        resume_point: str | None = None,
        effort: Effort | None = None,
        json_schema: str | None = None,
        client_tools: ToolOffer | None = None,
        watchdog: ChildWatchdog | None = None,
        owner: str = "live",
        clock: Callable[[], float] = time.monotonic,
        costs: CostMeter | None = None,
        pausable: bool = False,
    ) -> LiveProcess:
        """Start the command with stdin kept open; raises OSError if it cannot run.

        Only a `pausable` process may be paused between turns (see `pausing`)."""
        process = await CliProcess.spawn(
            command,
            max_line_bytes=config.max_line_bytes,
            stderr_tail_bytes=config.stderr_tail_bytes,
            watchdog=watchdog,
            owner=owner,
            pausable=pausable,
        )
        return cls(
            process,
            pausable=pausable,
            session_id=session_id,
            model=model,
            system=system,
            tools=config.tools,
            resume_point=resume_point,
            effort=effort,
            json_schema=json_schema,
            client_tools=client_tools,
            clock=clock,
            costs=costs,
        )

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        """The CLI process has not exited."""
        return self._process.returncode is None

    @property
    def usable(self) -> bool:
        """Idle and still running: it can take a turn."""
        return self.state is LiveState.IDLE and self.alive

    # -- pausing between turns ----------------------------------------------

    def pause(self) -> None:
        """Stop an idle process until its next turn (see `pausing`); a no-op otherwise."""
        self._cancel_pause()
        if self._pausable and self.state is LiveState.IDLE and self.alive and not self.paused:
            self._process.pause()
            self.paused = True

    def pause_later(self, delay: float) -> None:
        """`pause` once the process has stayed idle for `delay` seconds (at once for 0).

        The wait lets the CLI finish what it does just after a turn, which a pause would
        only defer to the start of its next one, and spares a follow-up that comes
        sooner (an agent's next step) the stop and continue altogether.
        """
        if delay <= 0:
            self.pause()
        elif self._pausable and self._pause_timer is None:
            self._pause_timer = asyncio.get_running_loop().call_later(delay, self.pause)

    @property
    def pause_due(self) -> bool:
        """A `pause_later` is waiting for its time."""
        return self._pause_timer is not None

    def unpause(self) -> None:
        """Continue a paused process (or forget a pause that is due), before anything is
        asked of it."""
        self._cancel_pause()
        if self.paused:
            self.paused = False
            self._process.unpause()

    def _cancel_pause(self) -> None:
        if self._pause_timer is not None:
            self._pause_timer.cancel()
            self._pause_timer = None

    # -- control requests --------------------------------------------------

    async def control(self, subtype: str, within: float, **fields: Any) -> dict[str, Any]:
        """Send a control request and read until its response (other lines are dropped).

        Raises LiveProcessError (and marks the process spent) on an error answer,
        on stdout's end or when no answer comes `within` seconds.
        """
        if self.state is not LiveState.IDLE:
            raise LiveProcessError(f"a {self.state.value} process takes no control request")
        self._requests += 1
        request_id = f"proxy-{self._requests}"
        self.state = LiveState.BUSY
        try:
            await self._process.send(encode_control_request(request_id, subtype, **fields))
            answer = await asyncio.wait_for(self._response_to(request_id), within)
        except TimeoutError:
            self.state = LiveState.SPENT
            self.unresponsive = True
            raise LiveProcessError(f"no answer to {subtype} within {within:g}s") from None
        except BaseException:
            self.state = LiveState.SPENT
            raise
        if answer.get("subtype") != "success":
            self.state = LiveState.SPENT
            raise LiveProcessError(f"{subtype} failed: {answer.get('error') or answer}")
        self.state = LiveState.IDLE
        inner = answer.get("response")
        return inner if isinstance(inner, dict) else {}

    async def _response_to(self, request_id: str) -> dict[str, Any]:
        while True:
            line = await self._process.readline()
            if line is None:
                raise LiveProcessError("the CLI exited while answering a control request")
            event = self._decoder.decode(line)
            if isinstance(event, ControlRequest | ControlCancel):
                await answer_control(self._process, event, self.bridge)
                continue
            # set_model also reports a `user` line (`/model` output): not ours to relay.
            if (
                isinstance(event, ControlResponse)
                and event.response.get("request_id") == request_id
            ):
                return event.response

    async def wait_ready(self, within: float) -> None:
        """Probe readiness with `initialize` (answered once the CLI has loaded)."""
        if self.bridge is None:
            await self.control("initialize", within, hooks=None)
            return
        await self.control("initialize", within, hooks=None, sdkMcpServers=announce())
        self._announced = True

    async def set_model(self, model: str, within: float) -> None:
        """Switch the model for the following turns of this process."""
        await self.control("set_model", within, model=model)
        self.model = model

    async def set_effort(self, effort: Effort | None, within: float) -> None:
        """Set the reasoning level of the following turns (None: back to the CLI's default).

        `apply_flag_settings` changes it for this session only; nothing is written to
        the CLI's settings files.
        """
        level = None if effort is None else effort.value
        await self.control("apply_flag_settings", within, settings={"effortLevel": level})
        self.effort = effort

    # -- turns ---------------------------------------------------------------

    async def turn(
        self, prompt: Sequence[Block], config: CliRunnerConfig, tools: ToolOffer | None = None
    ) -> AsyncGenerator[Event, None]:
        """Run one turn: write the user line, yield its events through Finished or Failed.

        The process stays IDLE after a successful result, and is SUSPENDED when the
        reply ends in client tool calls (`tools` is the request's offer: its rules for
        calling); anything else spends it.
        """
        if not self.usable:
            raise LiveProcessError(f"a {self.state.value} process takes no turn")
        self.state = LiveState.BUSY
        self.turns += 1
        reminder = instruction(tools)
        translator = TurnTranslator.for_offer(tools, self._costs)
        blocks = with_instruction(prompt, reminder)
        try:
            if self.bridge is not None and not self._announced:
                # Not awaited: the CLI answers once it has served its MCP handshake,
                # which `drive_turn` answers as it reads.
                self._requests += 1
                await self._process.send(announce_line(f"proxy-{self._requests}"))
                self._announced = True
            await self._process.send(encode_user_message(blocks))
            async for event in self._segment(translator, config, reminder):
                yield event
        finally:
            self._left_turn()

    async def resume(
        self,
        results: Sequence[ToolResult],
        config: CliRunnerConfig,
        tools: ToolOffer | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Go on with the suspended turn: answer its tool calls with the client's
        `results`, then yield the rest of the turn as `turn` does."""
        translator = self._suspended
        if self.state is not LiveState.SUSPENDED or translator is None or self.bridge is None:
            raise LiveProcessError(f"a {self.state.value} process has no suspended turn")
        self.state = LiveState.BUSY
        self._suspended = None
        reminder = instruction(tools)
        translator.resume(tools)
        try:
            for line in self.bridge.supply(results):
                await self._process.send(line)
            async for event in self._segment(translator, config, reminder):
                yield event
        finally:
            self._left_turn()

    async def _segment(
        self, translator: TurnTranslator, config: CliRunnerConfig, reminder: str | None
    ) -> AsyncGenerator[Event, None]:
        """Read the turn to its result, a failure or a suspension at client calls."""
        events = drive_turn(self._process, config, translator, self._decoder, self.bridge, reminder)
        async for event in events:
            # A time limit or a 429 cut short: the turn is still running in the CLI.
            if isinstance(event, Failed):
                self.state = LiveState.SPENT
                self.unfinished = True
                yield event
                return
            yield event
        if translator.suspended and self.bridge is not None:
            # Calls beyond the reply's limit are answered now, as not run.
            for line in self.bridge.refuse(translator.refused):
                await self._process.send(line)
            self.state = LiveState.SUSPENDED
            self._suspended = translator
            self.suspended_at = self._clock()
            self.resume_point = translator.resume_point
            for event in translator.suspension():
                yield event
            return
        result = translator.result
        if result is None:
            self.state = LiveState.SPENT
            yield await self._crash_report()
            return
        # Set before yielding the outcome: a caller may stop right after Finished.
        if result.is_error:
            self.state = LiveState.SPENT
            await self._process.stderr.finish(0.2)
        else:
            self.state = LiveState.IDLE
            self.resume_point = translator.resume_point
        for event in translator.outcome(self._process.stderr.text()):
            yield event

    def _left_turn(self) -> None:
        if self.state is LiveState.BUSY:  # abandoned before the result
            self.state = LiveState.SPENT
            self.unfinished = True
        self.last_used = self._clock()

    async def _crash_report(self) -> Failed:
        code: int | None = None
        with contextlib.suppress(TimeoutError):
            code = await asyncio.wait_for(self._process.wait(), _EXIT_WAIT)
        await self._process.stderr.finish(1.0)
        return crashed(self._process.stderr.text(), code)

    # -- ending --------------------------------------------------------------

    async def interrupt(self, grace: float) -> bool:
        """Stop an unfinished turn: send `interrupt` and drain to its result.

        Returns whether the result came within `grace` (observed: within ~20 ms).
        """
        if self._process.returncode is not None:
            return False
        self._requests += 1
        await self._process.send(encode_control_request(f"proxy-{self._requests}", "interrupt"))
        try:
            await asyncio.wait_for(self._drain_to_result(), grace)
        except TimeoutError:
            return False
        self.unfinished = False
        return True

    async def _drain_to_result(self) -> None:
        while (line := await self._process.readline()) is not None:
            event = self._decoder.decode(line)
            if isinstance(event, ControlRequest | ControlCancel):
                await answer_control(self._process, event, self.bridge)
            elif isinstance(event, ResultEvent):
                return

    async def close(self, *, flush_wait: float, kill_grace: float) -> None:
        """End the process: stop an unfinished turn, close stdin, let it flush, end the group.

        Closing stdin makes the CLI write its transcript's trailer and exit 0; after
        `flush_wait` the whole process group is terminated and reaped regardless. A
        process that left a control request unanswered gets no such wait: it is
        terminated at once.
        """
        if self.state is LiveState.CLOSED:
            return
        unfinished = self.unfinished
        # A suspended turn is never resumed from its transcript (a lost one starts a
        # fresh session), so nothing is worth the wait of a flush.
        suspended = self.state is LiveState.SUSPENDED
        self.state = LiveState.CLOSED
        self._cancel_pause()
        self.paused = False  # `terminate` continues the group before anything else
        settle = 0.0 if self.unresponsive or suspended else flush_wait
        try:
            if unfinished and not await self.interrupt(kill_grace):
                log.info("live_cli_turn_not_stopped_killing", pid=self.pid)
                settle = 0.0
        finally:
            ending = self._process.terminate(kill_grace, settle=settle, kill_first=suspended)
            await asyncio.shield(ending)

    def describe(self, now: float, rss: int | None) -> LiveProcessInfo:
        """This process as /health lists it."""
        return LiveProcessInfo(
            session_id=self.session_id,
            pid=self.pid,
            state=self.state.value,
            model=self.model,
            effort=None if self.effort is None else self.effort.value,
            turns=self.turns,
            idle_s=round(now - self.last_used, 1),
            rss_bytes=rss,
            paused=self.paused,
        )
