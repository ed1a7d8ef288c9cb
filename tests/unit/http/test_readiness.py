"""/health's readiness probe: doctor's checks, cached, never breaking /health."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec

from proxy_http.readiness import ReadinessProbe


class Finding(msgspec.Struct, frozen=True):
    name: str
    ok: bool
    detail: str
    fix: str | None = None


class Checks:
    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = list(findings)
        self.runs = 0

    def __call__(self) -> list[Finding]:
        self.runs += 1
        return self.findings


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


LOGGED_OUT = Finding("login", False, "not logged in", "run `claude` and /login")


async def test_failed_checks_become_problem_lines_with_their_fix() -> None:
    probe = ReadinessProbe(Checks([Finding("cli", True, "found"), LOGGED_OUT]))
    assert await probe.problems() == ("login: not logged in (fix: run `claude` and /login)",)


async def test_results_are_reused_until_the_ttl_passes() -> None:
    checks, clock = Checks([LOGGED_OUT]), Clock()
    probe = ReadinessProbe(checks, ttl=30, clock=clock)
    await probe.problems()
    clock.now = 29
    await probe.problems()
    assert checks.runs == 1
    checks.findings = [Finding("login", True, "logged in")]
    clock.now = 31
    assert await probe.problems() == ()
    assert checks.runs == 2


async def test_concurrent_callers_share_one_run() -> None:
    checks = Checks([LOGGED_OUT])
    probe = ReadinessProbe(checks)
    results = await asyncio.gather(*(probe.problems() for _ in range(5)))
    assert checks.runs == 1
    assert len(set(results)) == 1


async def test_a_check_that_raises_is_reported_not_raised() -> None:
    def broken() -> list[Finding]:
        raise OSError("no /proc")

    problems = await ReadinessProbe(broken).problems()
    assert len(problems) == 1
    assert "no /proc" in problems[0]
