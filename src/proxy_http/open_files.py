"""Open files (descriptors): as many as the system lets us have, and a quiet log when
they run out.

Every client connection and every CLI process (three pipes) holds descriptors. The
soft limit is often 1,024 while the hard one is far higher, so `serve` raises the soft
limit to the hard one. When they still run out, asyncio's accept loop reports each
failed accept() to the loop's exception handler with a full traceback, and schedules
a retry for each; Python 3.11 keeps trying the rest of the backlog after the first
failure, so that made 20,000 tracebacks (86 MB of log) in 70 s, and the thousands of
retries waiting at shutdown add one each. `AcceptFailureLog` turns them into one line
per interval that says how many it stands for.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Callable
from typing import Any

import structlog

ACCEPT_FAILURE = "socket.accept() out of system resource"
"""What asyncio's accept loop says (with the OSError) when accept() finds no descriptor."""

ACCEPT_RETRY = "_start_serving"
"""The callback each failed accept schedules to listen again a second later.

One is scheduled per failure, so thousands wait; once the listening socket is closed
(at shutdown) each fails with its own traceback.
"""

DESCRIPTORS_RESERVED = 128
"""Descriptors kept for CLI processes, the session store and logs when capping connections."""

ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


class OpenFilesLimit:
    """The soft limit on open files before and after `raise_open_files_limit`, and the hard one."""

    def __init__(self, before: int, soft: int, hard: int) -> None:
        self.before = before
        self.soft = soft
        self.hard = hard


def _shown(limit: int) -> int:
    return -1 if limit == resource.RLIM_INFINITY else limit


def raise_open_files_limit() -> OpenFilesLimit:
    """Raise the soft RLIMIT_NOFILE to the hard limit (keeping it when that fails)."""
    before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = before
    # An unlimited hard limit cannot be a soft one on every system: aim high but finite.
    target = hard if hard != resource.RLIM_INFINITY else max(before, 1 << 20)
    if target > before:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            soft = before
    return OpenFilesLimit(_shown(before), _shown(soft), _shown(hard))


def connection_cap(max_connections: int, soft_limit: int) -> int:
    """`max_connections`, lowered so that connections alone cannot use every descriptor.

    0 (no cap) and an unlimited `soft_limit` (-1) leave it as it is.
    """
    if max_connections <= 0 or soft_limit < 0:
        return max_connections
    return min(max_connections, max(soft_limit - DESCRIPTORS_RESERVED, 16))


def _about_accept(message: str, error: object) -> bool:
    """Whether a loop error report is a failed accept, or a retry of one that failed."""
    if message == ACCEPT_FAILURE:
        return isinstance(error, OSError)
    return ACCEPT_RETRY in message and isinstance(error, OSError | ValueError)


class AcceptFailureLog:
    """A loop exception handler: failed accepts make one line per `interval` seconds.

    The line counts the failures since the previous one (`repeated`; the retries that
    fail once the listening socket is closed count too). A failure inside the interval
    is counted, and a last line is written when the interval ends, so none goes
    unreported. Every other report goes to `previous` (or the loop's default handler).
    """

    def __init__(
        self,
        previous: ExceptionHandler | None = None,
        *,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        logger: Any = None,
    ) -> None:
        self._previous = previous
        self._interval = interval
        self._clock = clock
        self._log = logger or structlog.get_logger("proxy_http")
        self._last_line: float | None = None
        self._repeated = 0
        self._last_error = ""
        self._flush: asyncio.TimerHandle | None = None

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if not _about_accept(str(context.get("message", "")), error):
            if self._previous is not None:
                self._previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        if context.get("message") == ACCEPT_FAILURE:
            self._last_error = str(error)  # (a retry's error only says the socket closed)
        now = self._clock()
        if self._last_line is None or now - self._last_line >= self._interval:
            self._write(now)
            return
        self._repeated += 1
        if self._flush is None:
            delay = self._last_line + self._interval - now
            self._flush = loop.call_later(delay, self.flush)

    def flush(self) -> None:
        """Write the failures counted since the last line, if any (at exit, say)."""
        self._flush = None
        if self._repeated:
            self._write(self._clock())

    def _write(self, now: float) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        self._log.error(
            "out_of_file_descriptors",
            detail="new connections wait in the backlog until descriptors free up",
            error=self._last_error,
            repeated=self._repeated,
            interval_s=self._interval,
        )
        self._last_line = now
        self._repeated = 0
