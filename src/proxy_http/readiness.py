"""Readiness facts for /health: the same checks `doctor` runs, cached briefly.

The checks (the CLI binary, the login state from `claude auth status`, root
without the tools opt-in, CLAUDECODE, writable dirs) cost a subprocess, so a
result is reused for `ttl` seconds and concurrent callers share one run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Protocol


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


class ReadinessProbe:
    """Runs `checks` in a worker thread at most once per `ttl` seconds."""

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
        self._problems: tuple[str, ...] = ()
        self._checked_at: float | None = None
        self._running: asyncio.Task[tuple[str, ...]] | None = None

    async def problems(self) -> tuple[str, ...]:
        """One line per failed check, each with what to run; () when all is well."""
        fresh = self._checked_at is not None and self._clock() - self._checked_at < self._ttl
        if fresh:
            return self._problems
        if self._running is None:
            self._running = asyncio.create_task(self._run())
        task = self._running
        try:
            return await asyncio.shield(task)
        finally:
            if task.done() and self._running is task:
                self._running = None

    async def _run(self) -> tuple[str, ...]:
        try:
            findings = await asyncio.to_thread(self._checks)
            problems = tuple(
                f"{f.name}: {f.detail}" + (f" (fix: {f.fix})" if f.fix else "")
                for f in findings
                if not f.ok
            )
        except Exception as error:  # a broken check must not break /health
            problems = (f"readiness checks failed: {error!r}",)
        self._problems = problems
        self._checked_at = self._clock()
        return problems
