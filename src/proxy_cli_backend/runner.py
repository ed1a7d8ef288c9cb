"""ClaudeCliRunner: the core's Runner port over `claude -p` with stream-json on both pipes.

Each turn runs one process: the prompt is written to stdin as one user message,
stdin is closed, stdout is decoded and translated until the `result`. Whatever ends
the turn (its result, a timeout, a cancelled or closed generator) ends with the
process group terminated and reaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import time
from collections.abc import AsyncGenerator, Set
from pathlib import Path

import structlog

from proxy_cli_backend.binary import CliBinary, find_cli
from proxy_cli_backend.client_tools import (
    ToolBridge,
    announce_line,
    bridge_for,
    instruction,
    with_instruction,
)
from proxy_cli_backend.command import (
    CliCommand,
    RootToolsRefused,
    build_command,
    child_env,
    remove_prompt_files,
)
from proxy_cli_backend.config import CliRunnerConfig
from proxy_cli_backend.costs import CostBook, CostMeter
from proxy_cli_backend.process import CliProcess
from proxy_cli_backend.protocol import EventDecoder, encode_user_message
from proxy_cli_backend.transcripts import (
    project_dir,
    projects_dir,
    purge_transcript,
    sweep_project,
)
from proxy_cli_backend.translate import TurnTranslator, crashed
from proxy_cli_backend.turn_reader import drive_turn, timed_out
from proxy_cli_backend.watchdog import ChildWatchdog
from proxy_core import (
    BackendDetails,
    BackendStatus,
    ChatError,
    Event,
    Failed,
    FailureReason,
    PlanKind,
    TurnPlan,
)

log = structlog.get_logger(__name__)

NAME = "claude-cli"


class BackendStartupError(RuntimeError):
    """The backend cannot work as configured; the message says how to fix it."""


class ClaudeCliRunner:
    """Runs planned turns with the Claude Code CLI. Independent instances share nothing."""

    def __init__(
        self,
        config: CliRunnerConfig | None = None,
        *,
        is_root: bool | None = None,
        watchdog: ChildWatchdog | None = None,
    ) -> None:
        """`is_root` overrides the detected effective user (for tests).

        Every process started is registered with `watchdog` (a private one by default).
        """
        self.config = config or CliRunnerConfig()
        self.watchdog = watchdog or ChildWatchdog(grace=self.config.kill_grace + 5.0)
        self._binary: CliBinary | None = None
        self._problems: tuple[str, ...] = ()
        self._processes: dict[CliProcess, str] = {}  # running process -> its CLI session
        self._answered: set[CliProcess] = set()  # processes whose turn got its result
        self._suspended: set[CliProcess] = set()  # processes waiting for tool results
        self._cleanups: dict[CliProcess, asyncio.Task[int]] = {}
        self._is_root = os.geteuid() == 0 if is_root is None else is_root
        self._closed = False
        # The CLI's running cost totals per session, to price a resumed process's turns.
        self.costs = CostBook()

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Locate the CLI, read its version, check the tools profile, create directories.

        Raises BackendStartupError naming the fix when the backend cannot work.
        """
        try:
            child_env(self.config, os.environ, is_root=self._is_root)
        except RootToolsRefused as refused:
            self._problems = (str(refused),)
            raise BackendStartupError(str(refused)) from None
        try:
            self._binary = await asyncio.to_thread(
                find_cli, self.config.cli_path, version_timeout=self.config.version_timeout
            )
        except ChatError as missing:
            self._problems = (missing.message,)
            raise BackendStartupError(missing.message) from None
        try:
            await asyncio.to_thread(_make_dirs, self.config.state_dir, self.config.resolved_workdir)
        except OSError as error:
            message = f"Cannot create the state or work directory: {error}"
            self._problems = (message,)
            raise BackendStartupError(message) from None
        try:
            removed = await asyncio.to_thread(remove_prompt_files, self.config.state_dir)
        except OSError as error:  # a leftover file must not stop the server
            log.warning("prompt_files_cleanup_failed", error=str(error))
        else:
            if removed:
                log.info("leftover_prompt_files_removed", count=removed)
        self._problems = ()

    def status(self) -> BackendStatus:
        binary = self._binary
        problems = self._problems or (() if binary else ("the backend is not started",))
        return BackendStatus(
            ready=binary is not None and not self._closed and not self._problems,
            name=NAME,
            version=binary.version if binary else None,
            problems=problems,
            active_processes=len(self._processes),
            details=self.details(),
        )

    def details(self) -> BackendDetails:
        """The binary, the tools profile, the work directory and the watchdog's counts."""
        binary = self._binary
        return BackendDetails(
            path=binary.path if binary else None,
            tools=self.config.tools,
            workdir=self.config.resolved_workdir,
            tracked_children=self.watchdog.tracked,
            orphans_killed=self.watchdog.orphans_killed,
        )

    async def forget(self, cli_session_id: str, *, purge: bool = False) -> bool:
        """This runner keeps nothing alive between turns; `purge` deletes the transcript.

        Returns whether a transcript was deleted (and checked gone); why not is logged.
        """
        if not purge:
            return False
        try:
            purged = await asyncio.to_thread(
                purge_transcript, self.projects, self.config.resolved_workdir, cli_session_id
            )
        except (ValueError, OSError) as error:
            log.warning("transcript_purge_failed", session=cli_session_id, error=str(error))
            return False
        if not purged:
            log.info("transcript_already_gone", session=cli_session_id)
        return purged

    async def discard(self, plan: TurnPlan) -> None:
        """Delete the transcript of a NEW or RESTART turn that no record points to.

        Waits until the turn's process is reaped (a cancelled turn may still be
        ending), so the CLI cannot write the file again afterwards. A CONTINUE's
        session is the conversation's own and is never touched.
        """
        if plan.kind is PlanKind.CONTINUE:
            return
        if not await self._settled(plan.cli_session_id):
            log.info("transcript_kept_turn_running", session=plan.cli_session_id)
            return
        if await self.forget(plan.cli_session_id, purge=True):
            log.info("unrecorded_transcript_deleted", session=plan.cli_session_id)

    async def _settled(self, cli_session_id: str) -> bool:
        """Wait for the session's processes being reaped; False if one still runs a turn."""
        processes = [p for p, session in self._processes.items() if session == cli_session_id]
        ending = [self._cleanups.get(p) for p in processes]
        if None in ending:
            return False
        await asyncio.gather(
            *(asyncio.shield(t) for t in ending if t is not None), return_exceptions=True
        )
        return True

    async def sweep_orphans(self, referenced: Set[str], *, grace: float) -> int:
        """Delete transcripts in the work directory's project folder that `referenced`
        does not name and no running process uses, untouched for `grace` seconds.

        Returns how many sessions were deleted.
        """
        keep = set(referenced) | set(self._processes.values())
        projects = self.projects
        folder = project_dir(projects, self.config.resolved_workdir)
        cutoff = time.time() - grace
        return await asyncio.to_thread(sweep_project, folder, projects, keep, cutoff)

    @property
    def projects(self) -> Path:
        """The CLI's projects directory, as the children see it."""
        return projects_dir(child_env(self.config, os.environ, is_root=False))

    async def watch(self, interval: float) -> None:
        """The watchdog's sweep every `interval` seconds, until cancelled."""
        await self.watchdog.watch(interval)

    def kill_orphans(self, *, root: int | None = None) -> int:
        """Kill whatever the watchdog tracks and, with `root`, every descendant of it."""
        return self.watchdog.kill_all(root=root)

    async def aclose(self) -> None:
        """Terminate every process still running and wait until all are reaped."""
        self._closed = True
        for process in list(self._processes):
            self._cleanup(process)
        if self._cleanups:
            await asyncio.gather(*self._cleanups.values(), return_exceptions=True)

    # -- turns -------------------------------------------------------------

    async def run(self, plan: TurnPlan) -> AsyncGenerator[Event, None]:
        """Run one turn in a fresh process; yields deltas, then Usage + Finished, or Failed."""
        if self._binary is None or self._closed:
            raise not_started()
        if plan.tool_results:
            yield Failed(
                FailureReason.SESSION_MISSING,
                "Tool results arrived, but a process per turn keeps no turn waiting for them.",
            )
            return
        try:
            process = await CliProcess.spawn(
                self.command_for(plan),
                max_line_bytes=self.config.max_line_bytes,
                stderr_tail_bytes=self.config.stderr_tail_bytes,
                watchdog=self.watchdog,
            )
        except OSError as error:
            raise cannot_start(error) from None
        self._processes[process] = plan.cli_session_id
        try:
            async for event in self._turn(process, plan):
                yield event
        finally:
            # Runs on normal end, timeout, aclose() and task cancellation alike; shielded
            # so a second cancellation cannot leave the group running.
            # If cancelled again meanwhile, the cleanup task still finishes (aclose awaits it).
            await asyncio.shield(self._cleanup(process))

    def command_for(self, plan: TurnPlan) -> CliCommand:
        """The command line and environment for a plan (the runner must be started)."""
        assert self._binary is not None, "start() the runner first"
        return build_command(
            self._binary.path, plan, self.config, base_env=os.environ, is_root=self._is_root
        )

    async def _turn(self, process: CliProcess, plan: TurnPlan) -> AsyncGenerator[Event, None]:
        config = self.config
        bridge = bridge_for(plan.tools)
        reminder = instruction(plan.tools)
        try:
            # A child that never reads its stdin must not hang the turn either.
            await asyncio.wait_for(
                _send_prompt(process, plan, bridge, reminder), config.first_event_timeout
            )
        except TimeoutError:
            yield timed_out("first-event", config)
            return
        meter = CostMeter(self.costs, resumed=plan.kind is PlanKind.CONTINUE, saved=plan.meter)
        translator = TurnTranslator.for_offer(plan.tools, meter)
        events = drive_turn(process, config, translator, EventDecoder(), bridge, reminder)
        async for event in events:
            yield event
            if isinstance(event, Failed):
                return  # a time limit or a 429 cut short: the cleanup ends the process
        if translator.suspended:
            # No process outlives its turn here, so none waits for the client's results:
            # they will start a fresh CLI session with the history (the cleanup ends it).
            self._suspended.add(process)
            for event in translator.suspension():
                yield event
            return
        if translator.result is not None:
            self._answered.add(process)
        else:
            code = await _bounded_wait(process, config.exit_wait)
            await process.stderr.finish(1.0)
            yield crashed(process.stderr.text(), code)
            return
        if translator.result.is_error:
            await _bounded_wait(process, config.exit_wait)
            await process.stderr.finish(1.0)
        for out in translator.outcome(process.stderr.text()):
            yield out

    def _cleanup(self, process: CliProcess) -> asyncio.Task[int]:
        """Terminate and reap a process in a task of its own (idempotent per process).

        A process that gave its result exits by itself once its transcript is saved;
        it gets `exit_wait` to do so before it is signalled, so the write is not cut.
        """
        task = self._cleanups.get(process)
        if task is not None:
            return task
        settle = self.config.exit_wait if process in self._answered else 0.0
        task = asyncio.create_task(
            # A turn waiting for a client tool's result must not go on with the turn.
            process.terminate(
                self.config.kill_grace, settle=settle, kill_first=process in self._suspended
            ),
            name=f"cli-cleanup-{process.pid}",
        )
        self._cleanups[process] = task

        def done(_: asyncio.Task[int]) -> None:
            self._cleanups.pop(process, None)
            self._processes.pop(process, None)
            self._answered.discard(process)
            self._suspended.discard(process)

        task.add_done_callback(done)
        return task


# A full or read-only disk stops the files written before a start (the system prompt):
# the CLI itself is there, so the answer must not advise installing it.
_DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def not_started() -> ChatError:
    """The error for a turn asked of a runner that is not started (or already closed)."""
    return ChatError(FailureReason.BACKEND_UNAVAILABLE, "The Claude CLI backend is not started.")


def cannot_start(error: OSError) -> ChatError:
    """The error for a CLI process that could not be started at all."""
    if error.errno in _DISK_ERRORS:
        return ChatError(
            FailureReason.STORE_UNAVAILABLE,
            f"Cannot write the Claude CLI's files to start it: {error}",
        )
    return ChatError(FailureReason.BACKEND_UNAVAILABLE, f"Cannot start the Claude CLI: {error}")


def _make_dirs(*paths: str) -> None:
    for path in paths:
        Path(path).mkdir(parents=True, exist_ok=True)


async def _send_prompt(
    process: CliProcess, plan: TurnPlan, bridge: ToolBridge | None, reminder: str | None
) -> None:
    """Write the turn. Stdin stays open while client tools are served: the CLI's MCP
    requests are answered on it."""
    if bridge is None:
        await process.send(encode_user_message(plan.prompt))
        await process.close_stdin()
        return
    await process.send(announce_line("proxy-1"))
    await process.send(encode_user_message(with_instruction(plan.prompt, reminder)))


async def _bounded_wait(process: CliProcess, limit: float) -> int | None:
    """The exit code, if the process exits within `limit` seconds."""
    if process.returncode is not None:
        return process.returncode
    with contextlib.suppress(TimeoutError):
        return await asyncio.wait_for(asyncio.shield(process.wait_exit()), limit)
    return None
