"""`live_memory_mb`: the live set bounded by its resident memory, with measured sizes faked.

The policy (`MemoryBudget`) with a fake reader, then the live runner over the stand-in
CLI with a fake reader of its processes' memory (the real reading is the contract test's).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from proxy_cli_backend.live_runner import LiveCliRunner
from proxy_cli_backend.memory import MemoryBudget
from proxy_core import Finished, LiveDetails
from tests.unit.cli_backend import test_live_runner
from tests.unit.cli_backend.test_live_runner import end, follow_up, pids, plan, run

make_runner = test_live_runner.make_runner
MIB = 2**20


class FakeMemory:
    """Reports every process at `each` bytes; counts its readings."""

    def __init__(self, each: int) -> None:
        self.each = each
        self.readings = 0

    def __call__(self, pids: list[int]) -> dict[int, int]:
        self.readings += 1
        return dict.fromkeys(pids, self.each)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_no_budget_reads_nothing_and_allows_any_count() -> None:
    memory = FakeMemory(100 * MIB)
    budget = MemoryBudget(0, read=memory)
    assert budget.allowed([1, 2, 3]) is None
    assert memory.readings == 0


def test_the_budget_allows_as_many_processes_as_fit_at_their_mean_size() -> None:
    budget = MemoryBudget(1000 * MIB, read=lambda pids: {1: 100 * MIB, 2: 300 * MIB})
    assert budget.allowed([1, 2]) == 5  # 1000 MiB / 200 MiB each on average


def test_one_process_is_always_allowed_however_large() -> None:
    budget = MemoryBudget(100 * MIB, read=FakeMemory(400 * MIB))
    assert budget.allowed([1]) == 1


def test_memory_is_read_at_most_once_an_interval_and_nothing_is_known_before() -> None:
    memory, clock = FakeMemory(100 * MIB), Clock()
    budget = MemoryBudget(1000 * MIB, read=memory, clock=clock, interval=1.0)
    assert budget.allowed([]) is None  # nothing measured yet: count alone bounds
    assert budget.allowed([1]) == 10
    memory.each = 250 * MIB
    assert budget.allowed([1]) == 10  # within the interval: the last reading stands
    clock.now += 1.0
    assert budget.allowed([1]) == 4
    assert memory.readings == 2


def test_a_reading_that_finds_every_process_gone_keeps_the_last_mean() -> None:
    clock = Clock()
    sizes: dict[int, int] = {1: 200 * MIB}
    budget = MemoryBudget(1000 * MIB, read=lambda pids: dict(sizes), clock=clock)
    assert budget.allowed([1]) == 5
    sizes.clear()
    clock.now += 5
    assert budget.allowed([1]) == 5


def details(runner: LiveCliRunner) -> LiveDetails:
    status = runner.status().details
    assert isinstance(status, LiveDetails)
    return status


async def test_a_new_process_beyond_the_budget_evicts_the_least_recently_used(
    make_runner: Any,
) -> None:
    memory = FakeMemory(100 * MIB)
    runner = await make_runner({"read_rss": memory}, max_live=8, live_memory_mb=300)
    sessions = [str(uuid.uuid4()) for _ in range(5)]
    most = 0
    for index, session in enumerate(sessions):
        assert isinstance(end(await run(runner, plan(f"c{index}", session))), Finished)
        await asyncio.sleep(0)
        most = max(most, details(runner).processes)
    assert most == 3  # 300 MiB at 100 MiB each, though --live-max allows 8
    assert set(pids(runner)) == set(sessions[2:])  # the least recently used went first
    assert runner.evicted == 2
    assert (details(runner).memory_limit, details(runner).memory_budget_bytes) == (3, 300 * MIB)


async def test_processes_that_grow_past_the_budget_lose_the_idle_least_recently_used(
    make_runner: Any,
) -> None:
    clock, memory = Clock(), FakeMemory(100 * MIB)
    runner = await make_runner({"read_rss": memory, "clock": clock}, max_live=8, live_memory_mb=300)
    sessions = [str(uuid.uuid4()) for _ in range(3)]
    turns = [await run(runner, plan(f"c{i}", s)) for i, s in enumerate(sessions)]
    assert len(pids(runner)) == 3
    memory.each = 150 * MIB  # each conversation grew: two fit now
    clock.now += 2
    await follow_up(runner, sessions[2], turns[2], "grown")
    for _ in range(200):  # the eviction ends the process in the background
        if details(runner).processes <= 2:
            break
        await asyncio.sleep(0.01)
    assert set(pids(runner)) == set(sessions[1:])
    assert details(runner).processes == 2
    assert details(runner).memory_limit == 2


async def test_turns_beyond_a_budget_for_one_process_wait_and_all_succeed(
    make_runner: Any,
) -> None:
    # Each process is larger than the whole budget.
    runner = await make_runner({"read_rss": FakeMemory(100 * MIB)}, max_live=8, live_memory_mb=50)
    first = str(uuid.uuid4())
    assert isinstance(end(await run(runner, plan("first", first))), Finished)
    outcomes = await asyncio.gather(
        *(run(runner, plan(f"at once {i}", str(uuid.uuid4()))) for i in range(3))
    )
    assert [type(end(events)) for events in outcomes] == [Finished] * 3
    assert details(runner).processes == 1
    assert details(runner).memory_limit == 1
