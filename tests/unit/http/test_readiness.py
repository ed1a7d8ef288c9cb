"""/health's readiness probe: doctor's checks, run in the background, never waited for."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence

import httpx
import msgspec
import pytest

from proxy_http.app import create_app
from proxy_http.readiness import Readiness, ReadinessProbe
from tests.support.server import fake_service, live_app


class Finding(msgspec.Struct, frozen=True):
    name: str
    ok: bool
    detail: str
    fix: str | None = None


class Checks:
    """A check function that counts its runs and, while `gate` is clear, blocks."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = list(findings)
        self.runs = 0
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self) -> list[Finding]:
        self.runs += 1
        # Bounded, so a failing test cannot hang the worker thread forever.
        self.gate.wait(timeout=30)
        return self.findings


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


LOGGED_OUT = Finding("login", False, "not logged in", "run `claude` and /login")
LOGGED_OUT_LINE = "login: not logged in (fix: run `claude` and /login)"


@pytest.fixture
async def blocked() -> AsyncIterator[Checks]:
    """Checks that block until the test opens the gate (always opened at the end)."""
    checks = Checks([LOGGED_OUT])
    checks.gate.clear()
    try:
        yield checks
    finally:
        checks.gate.set()


async def test_failed_checks_become_problem_lines_with_their_fix() -> None:
    probe = ReadinessProbe(Checks([Finding("cli", True, "found"), LOGGED_OUT]))
    probe.start()
    assert await probe.refreshed() == Readiness(problems=(LOGGED_OUT_LINE,), checked=True)
    assert await probe.problems() == (LOGGED_OUT_LINE,)


async def test_before_the_first_result_it_answers_at_once_that_checks_are_pending(
    blocked: Checks,
) -> None:
    probe = ReadinessProbe(blocked)
    assert probe.current() == Readiness(problems=(), checked=False)
    assert await probe.problems() == ()
    blocked.gate.set()
    assert await probe.refreshed() == Readiness(problems=(LOGGED_OUT_LINE,), checked=True)


async def test_a_stale_result_is_answered_while_the_refresh_runs_in_the_background(
    blocked: Checks,
) -> None:
    clock = Clock()
    probe = ReadinessProbe(blocked, ttl=30, clock=clock)
    blocked.gate.set()
    probe.start()
    first = await probe.refreshed()
    blocked.gate.clear()
    blocked.findings = [Finding("login", True, "logged in")]
    clock.now = 31
    assert probe.current() == first  # stale, answered at once; a refresh is started
    assert await _started(blocked, 2)
    assert probe.current() == first  # still running: the old result stands
    blocked.gate.set()
    assert await probe.refreshed() == Readiness(problems=(), checked=True)


async def test_results_are_reused_until_the_ttl_passes() -> None:
    checks, clock = Checks([LOGGED_OUT]), Clock()
    probe = ReadinessProbe(checks, ttl=30, clock=clock)
    probe.start()
    await probe.refreshed()
    clock.now = 29
    probe.current()
    await probe.refreshed()
    assert checks.runs == 1
    clock.now = 31
    probe.current()
    await probe.refreshed()
    assert checks.runs == 2


async def test_concurrent_callers_start_one_refresh(blocked: Checks) -> None:
    probe = ReadinessProbe(blocked)
    answers = await asyncio.gather(*(probe.problems() for _ in range(20)))
    answers += [probe.current().problems for _ in range(20)]
    await _started(blocked, 1)
    blocked.gate.set()
    await probe.refreshed()
    assert blocked.runs == 1
    assert set(answers) == {()}


async def test_a_check_that_raises_is_reported_not_raised() -> None:
    def broken() -> list[Finding]:
        raise OSError("no /proc")

    probe = ReadinessProbe(broken)
    probe.start()
    readiness = await probe.refreshed()
    assert readiness.checked
    [line] = readiness.problems
    assert line.startswith("readiness checks failed:")
    assert "no /proc" in line


async def test_closing_ends_a_running_refresh_and_starts_no_more(blocked: Checks) -> None:
    probe = ReadinessProbe(blocked)
    async with probe.running():
        await _started(blocked, 1)
    # Closed while the check was blocked: nothing waits on it, nothing new starts.
    assert probe.current() == Readiness(checked=False)
    blocked.gate.set()
    assert await probe.refreshed() == Readiness(checked=False)
    assert blocked.runs == 1


async def _started(checks: Checks, runs: int) -> bool:
    """Let the worker thread enter the check (bounded; the count is asserted after)."""
    for _ in range(500):
        if checks.runs >= runs:
            return True
        await asyncio.sleep(0.01)
    return False


# -- /health over HTTP -----------------------------------------------------------


def test_health_answers_while_the_first_check_is_blocked_then_reports_its_result() -> None:
    checks = Checks([LOGGED_OUT])
    checks.gate.clear()
    probe = ReadinessProbe(checks)
    try:
        with live_app(create_app(fake_service(), readiness=probe)) as server:
            # The app started the first run at start-up; it is blocked, and /health answers.
            pending = httpx.get(server.base_url + "/health", timeout=10).json()
            assert pending["status"] == "ok"
            assert pending["backend"]["checksPending"] is True
            assert pending["backend"]["problems"] == []
            checks.gate.set()
            server.run_coroutine(probe.refreshed())
            done = httpx.get(server.base_url + "/health", timeout=10).json()
    finally:
        checks.gate.set()
    assert checks.runs == 1
    assert done["status"] == "degraded"
    assert done["backend"]["problems"] == [LOGGED_OUT_LINE]
    assert "checksPending" not in done["backend"]
