"""One CLI child process: spawned in its own process group, read line by line, always reaped.

Nothing here knows the protocol, so the same class serves a process per turn and,
later, a process kept alive across turns (stdin left open).
"""

from __future__ import annotations

import asyncio
import collections
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


class LineReader(asyncio.Protocol):
    """The CLI's stdout pipe as bounded lines: an over-long line is skipped whole (and
    logged).

    It is the pipe's own protocol: what the pipe delivers is split into lines as it
    arrives and wakes the reader at once. (Through asyncio's subprocess streams, each
    chunk took one more trip round the event loop before any reader saw it.) Reading
    pauses while `high_water` bytes of lines wait unread.
    """

    def __init__(self, max_line_bytes: int, high_water: int = 4 * _CHUNK) -> None:
        self._max = max_line_bytes
        self._high_water = high_water
        self._buffer = bytearray()  # the line being received
        self._lines: collections.deque[bytes] = collections.deque()
        self._waiting = 0  # bytes in `_lines`
        self._skipping = False
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None
        self._transport: asyncio.ReadTransport | None = None
        self._paused = False

    # -- the pipe's side ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.ReadTransport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        start = 0
        while (newline := self._buffer.find(b"\n", start)) >= 0:
            self._take(start, newline)
            start = newline + 1
        del self._buffer[:start]
        if len(self._buffer) > self._max:
            # Drop what we hold of an over-long line, and the rest of it as it arrives.
            if not self._skipping:
                log.warning("cli_line_skipped", limit=self._max)
            self._skipping = True
            self._buffer.clear()
        if self._waiting > self._high_water and self._transport is not None and not self._paused:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._end()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()

    # -- the reader's side -------------------------------------------------------

    async def readline(self) -> bytes | None:
        """The next complete line without its newline, or None at end of stream."""
        while not self._lines:
            if self._eof:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        line = self._lines.popleft()
        self._waiting -= len(line)
        if self._paused and self._waiting <= self._high_water // 2:
            self._paused = False
            if self._transport is not None:
                self._transport.resume_reading()
        return line

    def close(self) -> None:
        """Stop reading the pipe (closing it): nothing more is wanted from it."""
        if self._transport is not None:
            self._transport.close()

    # -- splitting -----------------------------------------------------------------

    def _take(self, start: int, end: int) -> None:
        if self._skipping:
            self._skipping = False  # the over-long line's rest ends here
            return
        if end - start > self._max:
            log.warning("cli_line_skipped", bytes=end - start, limit=self._max)
            return
        self._lines.append(bytes(self._buffer[start:end]))
        self._waiting += end - start

    def _end(self) -> None:
        if self._eof:
            return
        self._eof = True
        if self._buffer and not self._skipping:
            # A last line without a newline still counts (unless over-long).
            self._take(0, len(self._buffer))
        self._buffer.clear()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done() and (self._lines or self._eof):
            self._waiter.set_result(None)


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
        stdout: LineReader,
        stderr_limit: int,
        files: tuple[str, ...] = (),
        watchdog: ChildWatchdog | None = None,
    ):
        assert proc.stdin is not None
        assert proc.stderr is not None
        self._proc = proc
        self._files = files
        self._watchdog = watchdog
        self._stdin = proc.stdin
        self.stdout = stdout
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
        stdout, write_end = await _stdout_pipe(max_line_bytes)
        try:
            await asyncio.to_thread(_write_files, command.files)
            proc = await asyncio.create_subprocess_exec(
                *command.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=write_end,
                stderr=asyncio.subprocess.PIPE,
                env=command.env,
                cwd=command.cwd,
                start_new_session=True,
                # Continued if this server dies while it is paused (see `pausing`).
                preexec_fn=pausing.continue_on_parent_death if pausable else None,
            )
        except BaseException:
            stdout.close()
            _remove_files(files)
            raise
        finally:
            os.close(write_end)  # the child's copy is the only writer left
        if watchdog is not None:
            watchdog.register(proc.pid, owner=owner)
        return cls(proc, stdout, stderr_tail_bytes, files, watchdog)

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
        self.stdout.close()
        _remove_files(self._files)
        if self._watchdog is not None:
            self._watchdog.release(self._proc.pid)
        return code

    def _signal_group(self, sig: signal.Signals) -> None:
        # The child leads its own session, so its pid is its process group id. The group
        # id stays reserved while any member lives, so this never hits a stranger.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)


async def _stdout_pipe(max_line_bytes: int) -> tuple[LineReader, int]:
    """A pipe for a child's stdout, its read end already read by a `LineReader`; and
    its write end, for the child (both ends are close-on-exec: the child gets the
    write end as its fd 1 only)."""
    read_end, write_end = os.pipe()
    try:
        pipe = os.fdopen(read_end, "rb", buffering=0)
    except BaseException:
        os.close(read_end)
        os.close(write_end)
        raise
    try:
        loop = asyncio.get_running_loop()
        _, reader = await loop.connect_read_pipe(lambda: LineReader(max_line_bytes), pipe)
    except BaseException:
        pipe.close()
        os.close(write_end)
        raise
    return reader, write_end


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
