"""`max_live` is a hard cap on CLI processes alive at once: live, pooled and still ending."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from proxy_cli_backend.live_runner import LiveCliRunner
from proxy_cli_backend.procfs import process_table
from proxy_core import Finished, TextDelta
from tests.unit.cli_backend import test_live_runner
from tests.unit.cli_backend.test_live_runner import (
    FAKE_CLI,
    end,
    follow_up,
    plan,
    run,
)

# The stand-in CLI runner fixture, shared with the runner's other unit tests.
make_runner = test_live_runner.make_runner


class ProcessSampler:
    """Counts, from /proc in a thread of its own, this test's stand-in CLI processes.

    Zombies count: a process holds its place until it is reaped.
    """

    def __init__(self) -> None:
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ProcessSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def count(self) -> int:
        me = os.getpid()
        children = [info.pid for info in process_table().values() if info.ppid == me]
        return sum(1 for pid in children if str(FAKE_CLI) in _cmdline(pid))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.most = max(self.most, self.count())
            time.sleep(0.001)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


async def conversation(runner: LiveCliRunner, index: int) -> list[str]:
    """Two turns; the first makes its process slow to end (so endings overlap turns)."""
    session = str(uuid.uuid4())
    first = await run(runner, plan(f"linger {index}", session))
    second = await follow_up(runner, session, first, f"again {index}")
    return [e.text for e in [*first, *second] if isinstance(e, TextDelta)]


async def wait_until(check: Any, polls: int = 3000) -> None:
    """Poll `check` until it holds (bounded: fails after `polls` polls 10 ms apart)."""
    for _ in range(polls):
        if check():
            return
        await asyncio.sleep(0.01)
    pytest.fail("the condition never held")


async def test_processes_alive_never_exceed_the_cap_with_more_conversations_than_slots(
    make_runner: Any,
) -> None:
    runner = await make_runner(max_live=2, pool_size=1)
    with ProcessSampler() as sampler:
        replies = await asyncio.gather(*(conversation(runner, i) for i in range(6)))
    assert replies == [[f"echo: linger {i}", f"echo: again {i}"] for i in range(6)]
    assert sampler.most == 2  # reached, never passed (the sampler sees what it counts)
    assert runner.evicted > 0


async def test_turns_waiting_for_a_process_are_served_in_arrival_order(make_runner: Any) -> None:
    runner = await make_runner(max_live=1)
    holder = runner.run(plan("hang", str(uuid.uuid4())))
    assert isinstance(await anext(holder), TextDelta)  # the only slot is busy
    served: list[int] = []

    async def turn(index: int) -> None:
        events = await run(runner, plan(f"turn {index}", str(uuid.uuid4())))
        assert isinstance(end(events), Finished)
        served.append(index)

    tasks = []
    for index in range(3):
        tasks.append(asyncio.create_task(turn(index)))
        await wait_until(lambda n=index + 1: runner._slots.waiting == n)
    await holder.aclose()  # the abandoned turn's process ends and frees the slot
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert served == [0, 1, 2]
    assert runner.status().details.processes == 1


async def test_a_turn_cancelled_while_waiting_for_a_process_leaks_no_slot(
    make_runner: Any,
) -> None:
    runner = await make_runner(max_live=1)
    holder = runner.run(plan("hang", str(uuid.uuid4())))
    assert isinstance(await anext(holder), TextDelta)
    waiting = asyncio.create_task(run(runner, plan("never", str(uuid.uuid4()))))
    await wait_until(lambda: runner._slots.waiting == 1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert runner._slots.waiting == 0
    await holder.aclose()
    events = await asyncio.wait_for(run(runner, plan("after", str(uuid.uuid4()))), 30)
    assert isinstance(end(events), Finished)
    assert runner.status().details.processes == 1
    assert runner.spawned == 2


async def test_the_pool_does_not_fill_a_slot_an_idle_conversation_holds(
    make_runner: Any,
) -> None:
    runner = await make_runner(max_live=1, pool_size=1)
    await wait_until(lambda: runner.status().details.pool_ready == 1)
    session = str(uuid.uuid4())
    first = await run(runner, plan("one", session))  # takes the pooled process
    for _ in range(20):  # give a refill every chance to start
        await asyncio.sleep(0.01)
    details = runner.status().details
    assert (details.pool_ready, details.live_processes, details.processes) == (0, 1, 1)
    taken = end(first)
    assert isinstance(taken, Finished)
    assert taken.session_id is not None  # the pooled process's own session
    second = await follow_up(runner, taken.session_id, first, "two")
    assert isinstance(end(second), Finished)
    assert runner.spawned == 0


async def test_a_turn_that_needs_the_slot_while_the_pools_process_launches_does_not_wait_for_it(
    make_runner: Any,
) -> None:
    # The turn asks for the slot while the pooled process is being launched, before there
    # is a start to abandon; its `initialize` answer takes a minute, so a turn that waited
    # for it would fail the guard below.
    runner = await make_runner(
        cli_env={"FAKE_CLI_SLOW_INIT": "60"}, max_live=1, pool_size=0, probe_timeout=0
    )
    launched, go_on = asyncio.Event(), asyncio.Event()
    launch = runner._launch

    async def held_launch(plan: Any, *, owner: str) -> Any:
        live = await launch(plan, owner=owner)
        if owner == "pool":
            launched.set()
            await go_on.wait()
        return live

    runner._launch = held_launch
    runner._pool.size = 1
    runner._pool.fill()
    await asyncio.wait_for(launched.wait(), 30)
    turn = asyncio.create_task(run(runner, plan("now", str(uuid.uuid4()))))
    await wait_until(lambda: runner._slots.waiting > 0)
    go_on.set()
    events = await asyncio.wait_for(turn, 30)
    assert isinstance(end(events), Finished)
    assert runner._pool.started == 0
    assert runner.spawned == 1


async def test_a_turn_that_needs_the_slot_of_a_starting_pooled_process_does_not_wait_for_its_start(
    make_runner: Any,
) -> None:
    # The stand-in answers `initialize` (which only a pooled start waits for) after a
    # minute: without ending the pooled start, the turn would wait that long for its
    # slot (the guard below fails first).
    runner = await make_runner(cli_env={"FAKE_CLI_SLOW_INIT": "60"}, max_live=1, pool_size=1)
    await wait_until(lambda: runner.status().details.processes == 1)  # the pool's start
    events = await asyncio.wait_for(run(runner, plan("now", str(uuid.uuid4()))), 30)
    assert isinstance(end(events), Finished)
    assert runner.spawned == 1
    assert runner._pool.started == 0  # the slow start was abandoned, not completed
    assert runner.evicted == 0  # a start is no conversation: nothing was evicted
