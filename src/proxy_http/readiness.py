"""Readiness facts for /health: the same checks `doctor` runs, refreshed in the background.

The checks (the CLI binary, the login state from `claude auth status`, root
without the tools opt-in, CLAUDECODE, writable dirs) cost a subprocess and can take
seconds, so /health never waits for them: it answers from the last result, and a
result older than `ttl` seconds starts one refresh in the background for the next
caller. The app starts the first run at start-up (`running`), and ends a run still
going when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol

import msgspec


class Check(Protocol):
    """One finding of a readiness check (the backend's `Finding` fits)."""

    @property
    def name(self) -> str: ...

    @property
    def ok(self) -> bool: ...

    @property
    def detail(self) -> str: ...

    @property
    def fix(self) -> str | None: ...


class Readiness(msgspec.Struct, frozen=True):
    """What the last run of the checks found: one line per problem, each with what to
    run; `checked` is False until the first run has finished (then `problems` is ())."""

    problems: tuple[str, ...] = ()
    checked: bool = False


class ReadinessProbe:
    """Runs `checks` in a worker thread, in the background, at most once per `ttl` seconds.

    `current()` never waits: it returns the last result and, when that is older than
    `ttl` (or there is none yet), starts a refresh unless one is already running.
    """

    def __init__(
        self,
        checks: Callable[[], Sequence[Check]],
        *,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._checks = checks
        self._ttl = ttl
        self._clock = clock
        self._last = Readiness()
        self._checked_at: float | None = None
        self._refresh: asyncio.Task[None] | None = None
        self._closed = False

    def current(self) -> Readiness:
        """The last result, at once; a stale or missing one starts a background refresh."""
        stale = self._checked_at is None or self._clock() - self._checked_at >= self._ttl
        idle = self._refresh is None or self._refresh.done()
        if stale and idle and not self._closed:
            self._refresh = asyncio.get_running_loop().create_task(self._run())
        return self._last

    async def problems(self) -> tuple[str, ...]:
        """One line per failed check, from the last result (() before the first one)."""
        return self.current().problems

    async def refreshed(self) -> Readiness:
        """Wait for the refresh running now, if any; then the last result."""
        task = self._refresh
        if task is not None:
            await asyncio.wait({task})  # a cancelled waiter leaves the refresh running
        return self._last

    def start(self) -> None:
        """Start the first run (at app start-up), so /health soon has a result."""
        self.current()

    async def aclose(self) -> None:
        """Cancel a refresh still running and wait for it (at app shutdown); start no more."""
        self._closed = True
        task, self._refresh = self._refresh, None
        if task is not None and not task.done():
            task.cancel()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ReadinessProbe]:
        """The probe for an app's life: the first run starts now, a last one ends with it."""
        self.start()
        try:
            yield self
        finally:
            await self.aclose()

    async def _run(self) -> None:
        try:
            findings = await asyncio.to_thread(self._checks)
            problems = tuple(
                f"{f.name}: {f.detail}" + (f" (fix: {f.fix})" if f.fix else "")
                for f in findings
                if not f.ok
            )
        except Exception as error:  # a broken check must not break /health
            problems = (f"readiness checks failed: {error!r}",)
        self._last = Readiness(problems=problems, checked=True)
        self._checked_at = self._clock()
