"""A reused process must be fit first: a stopped one is replaced, and the turn runs.

/proc tells at once whether a process was stopped or ended; one idle for `probe_after`
or more (or where /proc cannot tell) must also answer the `initialize` probe."""

from __future__ import annotations

import os
import signal
import uuid
from typing import Any

import pytest

from proxy_cli_backend import live_runner
from proxy_cli_backend.live import LiveProcess
from proxy_cli_backend.procfs import read_process
from proxy_core import Failed, Finished, TextDelta
from tests.unit.cli_backend import test_live_runner
from tests.unit.cli_backend.test_live_runner import (
    end,
    follow_up,
    pids,
    plan,
    run,
)
from tests.unit.cli_backend.test_process_cap import wait_until

# The stand-in CLI runner fixture, shared with the runner's other unit tests.
make_runner = test_live_runner.make_runner


def is_stopped(pid: int) -> bool:
    info = read_process(pid)
    return info is not None and info.state == "T"


def count_probes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The pids of the processes sent the `initialize` probe, in order."""
    probed: list[int] = []
    wait_ready = LiveProcess.wait_ready

    async def counted(self: LiveProcess, within: float) -> None:
        probed.append(self.pid)
        await wait_ready(self, within)

    monkeypatch.setattr(LiveProcess, "wait_ready", counted)
    return probed


async def test_a_stopped_idle_process_is_replaced_and_the_turn_runs_on_a_new_one(
    make_runner: Any,
) -> None:
    # With pausing, the runner continues an idle process before the check, which ends a
    # stranger's stop as well (test_pausing.py); without it, the check replaces it.
    runner = await make_runner(probe_timeout=0.5, pause_idle=False)
    session = str(uuid.uuid4())
    first = await run(runner, plan("one", session))
    stopped = runner._live[session]
    os.kill(stopped.pid, signal.SIGSTOP)
    await wait_until(lambda: is_stopped(stopped.pid))
    second = await follow_up(runner, session, first, "two")
    assert not any(isinstance(event, Failed) for event in second)
    assert [e.text for e in second if isinstance(e, TextDelta)] == ["echo: two"]
    assert list(pids(runner).values()) != [stopped.pid]
    assert runner.spawned == 2
    # It was ended before its replacement resumed the session: reaped, and not by SIGKILL.
    assert read_process(stopped.pid) is None
    assert stopped._process.returncode != -signal.SIGKILL


async def test_a_stopped_pooled_process_is_replaced_and_the_turn_runs_on_a_new_one(
    make_runner: Any,
) -> None:
    runner = await make_runner(pool_size=1, probe_timeout=0.5)
    await wait_until(lambda: runner.status().details.pool_ready == 1)
    (pooled,) = runner._pool.processes
    os.kill(pooled.pid, signal.SIGSTOP)
    await wait_until(lambda: is_stopped(pooled.pid))
    events = await run(runner, plan("hello", str(uuid.uuid4())))
    assert isinstance(end(events), Finished)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["echo: hello"]
    assert runner.spawned == 1
    await runner._ended(pooled.session_id)
    assert read_process(pooled.pid) is None
    assert pooled._process.returncode != -signal.SIGKILL


async def test_a_process_that_answers_the_probe_is_reused(make_runner: Any) -> None:
    runner = await make_runner(probe_timeout=5.0)
    session = str(uuid.uuid4())
    first = await run(runner, plan("one", session))
    before = pids(runner)
    second = await follow_up(runner, session, first, "two")
    assert isinstance(end(second), Finished)
    assert pids(runner) == before
    assert (runner.spawned, runner.reused) == (1, 1)


async def test_a_process_used_moments_ago_takes_its_turn_without_the_probe(
    make_runner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = await make_runner(probe_timeout=5.0, probe_after=60.0)
    session = str(uuid.uuid4())
    first = await run(runner, plan("one", session))
    probed = count_probes(monkeypatch)
    second = await follow_up(runner, session, first, "two")
    assert [e.text for e in second if isinstance(e, TextDelta)] == ["echo: two"]
    assert probed == []
    assert (runner.spawned, runner.reused) == (1, 1)


async def test_a_process_idle_for_probe_after_is_probed_before_its_turn(
    make_runner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = await make_runner(probe_timeout=5.0, probe_after=0.0)
    session = str(uuid.uuid4())
    first = await run(runner, plan("one", session))
    idle = runner._live[session]
    probed = count_probes(monkeypatch)
    second = await follow_up(runner, session, first, "two")
    assert isinstance(end(second), Finished)
    assert probed == [idle.pid]
    assert (runner.spawned, runner.reused) == (1, 1)


async def test_a_process_that_misses_the_probe_is_replaced(
    make_runner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where /proc cannot tell (or the process hangs without being stopped), the probe
    # decides: a stopped process that /proc is made to report as running must miss it.
    monkeypatch.setattr(live_runner, "halted", lambda pid: None)
    runner = await make_runner(probe_timeout=0.5, probe_after=60.0, pause_idle=False)
    session = str(uuid.uuid4())
    first = await run(runner, plan("one", session))
    stopped = runner._live[session]
    os.kill(stopped.pid, signal.SIGSTOP)
    second = await follow_up(runner, session, first, "two")
    assert [e.text for e in second if isinstance(e, TextDelta)] == ["echo: two"]
    assert list(pids(runner).values()) != [stopped.pid]
    assert runner.spawned == 2
