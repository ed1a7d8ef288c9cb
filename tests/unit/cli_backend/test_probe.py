"""A reused process must answer a probe first: a stopped one is replaced, and the turn runs."""

from __future__ import annotations

import os
import signal
import uuid
from typing import Any

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


async def test_a_stopped_idle_process_is_replaced_and_the_turn_runs_on_a_new_one(
    make_runner: Any,
) -> None:
    runner = await make_runner(probe_timeout=0.5)
    session = str(uuid.uuid4())
    first = await run(runner, plan("one", session))
    stopped = runner._live[session]
    os.kill(stopped.pid, signal.SIGSTOP)
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
