"""One CLI child process: spawned in its own process group, read line by line, always reaped.

Nothing here knows the protocol, so the same class serves a process per turn and,
later, a process kept alive across turns (stdin left open).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

import structlog

from proxy_cli_backend import pausing
from proxy_cli_backend.background import detached_task
from proxy_cli_backend.command import CliCommand
from proxy_cli_backend.procfs import descendants, kill_unchanged
from proxy_cli_backend.watchdog import ChildWatchdog

log = structlog.get_logger(__name__)
# Only asked whether debug is on: CLI stderr is decoded for the log only then.
_stdlib_log = logging.getLogger(__name__)

_CHUNK = 64 * 1024


class LineReader:
    """Bounded line reads from a stream: an over-long line is skipped whole (and logged)."""

    def __init__(self, stream: asyncio.StreamReader, max_line_bytes: int) -> None:
        self._stream = stream
        self._max = max_line_bytes
        self._buffer = bytearray()
        self._skipping = False
        self._eof = False

    async def readline(self) -> bytes | None:
        """The next complete line without its newline, or None at end of stream."""
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                if self._skipping:
                    self._skipping = False
                    continue
                if len(line) > self._max:
                    log.warning("cli_line_skipped", bytes=len(line), limit=self._max)
                    continue
                return line
            if self._eof:
                rest = bytes(self._buffer)
                self._buffer.clear()
                return rest if rest and not self._skipping and len(rest) <= self._max else None
            if len(self._buffer) > self._max:
                # Drop what we hold of an over-long line, and the rest of it as it arrives.
                if not self._skipping:
                    log.warning("cli_line_skipped", limit=self._max)
                self._skipping = True
                self._buffer.clear()
            chunk = await self._stream.read(_CHUNK)
            if not chunk:
                self._eof = True
            self._buffer += chunk


class StderrTail:
    """Drains a stream in the background, keeping only its last `limit` bytes.

    Each chunk is also logged at debug level (the operator's window into the CLI).
    """

    def __init__(self, stream: asyncio.StreamReader, limit: int, pid: int | None = None) -> None:
        self._limit = limit
        self._pid = pid
        self._data = bytearray()
        self._task = detached_task(self._drain(stream), name=f"cli-stderr-{pid}")

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(_CHUNK):
            if _stdlib_log.isEnabledFor(logging.DEBUG):
                text = chunk[:_CHUNK].decode("utf-8", "replace").rstrip()
                log.debug("cli_stderr", pid=self._pid, text=text)
            self._data += chunk
            if len(self._data) > self._limit:
                del self._data[: len(self._data) - self._limit]

    async def finish(self, wait: float) -> None:
        """Wait (bounded) for the stream's end, so the tail is complete."""
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._task), wait)

    def cancel(self) -> None:
        self._task.cancel()

    def text(self) -> str:
        return self._data.decode("utf-8", "replace")


class CliProcess:
    """A running `claude` child in its own session (so its whole group can be killed)."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        max_line_bytes: int,
        stderr_limit: int,
        files: tuple[str, ...] = (),
        watchdog: ChildWatchdog | None = None,
    ):
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert proc.stderr is not None
        self._proc = proc
        self._files = files
        self._watchdog = watchdog
        self._stdin = proc.stdin
        self.stdout = LineReader(proc.stdout, max_line_bytes)
        self.stderr = StderrTail(proc.stderr, stderr_limit, proc.pid)

    @classmethod
    async def spawn(
        cls,
        command: CliCommand,
        *,
        max_line_bytes: int,
        stderr_tail_bytes: int,
        watchdog: ChildWatchdog | None = None,
        owner: str = "turn",
        pausable: bool = False,
    ) -> CliProcess:
        """Start the command (writing its files first); raises OSError if it cannot.

        With a `watchdog`, the child is registered there (as `owner`) until terminated.
        A `pausable` child (one that may be `pause`d) gets SIGCONT as its parent-death
        signal (see `pausing`); that costs a fork instead of a vfork (about 3 ms of the
        server's CPU with 150 MB resident), so other children go without.
        """
        files = tuple(command.files)
        try:
            await asyncio.to_thread(_write_files, command.files)
            proc = await asyncio.create_subprocess_exec(
                *command.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=command.env,
                cwd=command.cwd,
                start_new_session=True,
                # Continued if this server dies while it is paused (see `pausing`).
                preexec_fn=pausing.continue_on_parent_death if pausable else None,
            )
        except BaseException:
            _remove_files(files)
            raise
        if watchdog is not None:
            watchdog.register(proc.pid, owner=owner)
        return cls(proc, max_line_bytes, stderr_tail_bytes, files, watchdog)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    def pause(self) -> None:
        """Stop the group (SIGSTOP) until `unpause`: an idle CLI then uses no CPU.

        Only for a child started `pausable`: the server's death continues it.
        """
        if self._proc.returncode is None:
            self._signal_group(signal.SIGSTOP)

    def unpause(self) -> None:
        """Continue the group (SIGCONT) after `pause`."""
        if self._proc.returncode is None:
            self._signal_group(signal.SIGCONT)

    async def send(self, data: bytes) -> None:
        """Write to stdin; a child that already exited is not an error here (EOF tells)."""
        try:
            self._stdin.write(data)
            await self._stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            log.debug("cli_stdin_closed_early")

    async def close_stdin(self) -> None:
        if not self._stdin.is_closing():
            self._stdin.close()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await self._stdin.wait_closed()

    async def readline(self) -> bytes | None:
        return await self.stdout.readline()

    async def wait(self) -> int:
        """Wait for the child to exit; also kills anything it left in its group."""
        code = await self._proc.wait()
        self._signal_group(signal.SIGKILL)
        return code

    async def wait_exit(self) -> int:
        """Wait for the child to exit by itself; returns its exit code."""
        return await self._proc.wait()

    async def terminate(
        self, grace: float, *, settle: float = 0.0, kill_first: bool = False
    ) -> int:
        """Close stdin, SIGTERM the group, SIGKILL it after `grace`; always reaps.

        With `kill_first`, the group is killed (SIGKILL) before anything else: a CLI
        waiting for a client tool's result takes a closed stdin, or a SIGTERM, as the
        end of that call and goes on with the turn, sending the upstream a paid request
        nobody will read. (Such a turn's transcript is never resumed.)

        With `settle`, the child first gets that long to exit by itself (after a
        closed stdin the CLI ends on its own). The CLI runs tool commands in sessions
        of their own, outside its group, so its descendants are noted first and
        killed too if they outlive it (SIGKILL needs no SIGCONT: it ends a stopped
        process too).

        A stopped (SIGSTOP) process can neither exit by itself nor handle SIGTERM, so
        the group gets SIGCONT first and along with SIGTERM: it then ends as a running
        one would, instead of waiting for SIGKILL.
        """
        if self._proc.returncode is None:
            self._signal_group(signal.SIGKILL if kill_first else signal.SIGCONT)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.close_stdin(), 0.5)
        if settle > 0 and self._proc.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._proc.wait()), settle)
        stragglers = descendants(self._proc.pid)
        if self._proc.returncode is None:
            self._signal_group(signal.SIGTERM)
            # Stopped again since (or never resumed): a pending SIGTERM acts once continued.
            self._signal_group(signal.SIGCONT)
            try:
                await asyncio.wait_for(asyncio.shield(self._proc.wait()), grace)
            except TimeoutError:
                log.warning("cli_sigterm_ignored_killing", pid=self.pid, grace_s=grace)
        # Leftover children (tools the agent started) die with the group, leader or not.
        self._signal_group(signal.SIGKILL)
        kill_unchanged(stragglers)
        code = await self._proc.wait()
        self.stderr.cancel()
        _remove_files(self._files)
        if self._watchdog is not None:
            self._watchdog.release(self._proc.pid)
        return code

    def _signal_group(self, sig: signal.Signals) -> None:
        # The child leads its own session, so its pid is its process group id. The group
        # id stays reserved while any member lives, so this never hits a stranger.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)


def _write_files(files: dict[str, str]) -> None:
    for path, text in files.items():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # Private: a system prompt may hold what the operator would not share.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogatepass") as handle:
            handle.write(text)


def _remove_files(paths: tuple[str, ...]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
