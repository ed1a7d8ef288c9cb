"""The warm pool's rules, with fake processes: keys, learning, refill, ending."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from proxy_cli_backend.live import LiveProcess
from proxy_cli_backend.pool import WarmPool, pool_key


class FakeProcess:
    def __init__(self, model: str, system: str | None) -> None:
        self.model = model
        self.system = system
        self.usable = True


class Harness:
    """A pool whose processes are FakeProcess objects; records starts and endings."""

    def __init__(self, size: int = 1, **options: Any) -> None:
        self.started: list[FakeProcess] = []
        self.ended: list[FakeProcess] = []
        self.room = True  # False: the runner has no free process slot
        self.asked = 0
        self.pool = WarmPool(size, self.start, self.end, model="sonnet", tools="none", **options)

    async def start(self, model: str, system: str | None) -> LiveProcess | None:
        self.asked += 1
        if not self.room:
            return None
        process = FakeProcess(model, system)
        self.started.append(process)
        return cast(LiveProcess, process)

    def end(self, live: LiveProcess) -> None:
        self.ended.append(cast(FakeProcess, live))

    async def filled(self) -> None:
        self.pool.fill()
        for _ in range(100):
            await asyncio.sleep(0)


async def test_the_pool_starts_processes_for_the_default_key() -> None:
    harness = Harness(size=2)
    await harness.filled()
    assert [(p.model, p.system) for p in harness.started] == [("sonnet", None)] * 2


async def test_a_turn_with_the_pooled_key_takes_a_process_and_the_pool_refills() -> None:
    harness = Harness()
    await harness.filled()
    taken = harness.pool.take(pool_key("sonnet", None, "none"))
    assert taken is cast(LiveProcess, harness.started[0])
    await harness.filled()
    assert len(harness.started) == 2
    assert len(harness.pool.processes) == 1


async def test_a_turn_with_another_key_takes_nothing() -> None:
    harness = Harness()
    await harness.filled()
    assert harness.pool.take(pool_key("haiku", None, "none")) is None
    assert harness.pool.take(pool_key("sonnet", "be brief", "none")) is None
    assert len(harness.pool.processes) == 1


async def test_the_pool_follows_the_most_frequent_recent_key() -> None:
    harness = Harness(window=5)
    await harness.filled()
    for _ in range(3):
        harness.pool.note("haiku", "be brief")
    await harness.filled()
    assert harness.pool.target == pool_key("haiku", "be brief", "none")
    assert [(p.model, p.system) for p in harness.pool.processes] == [("haiku", "be brief")]
    assert [(p.model, p.system) for p in harness.ended] == [("sonnet", None)]


async def test_a_tie_keeps_the_current_key() -> None:
    harness = Harness(window=4)
    harness.pool.note("sonnet", None)
    harness.pool.note("haiku", None)
    assert harness.pool.target == pool_key("sonnet", None, "none")


async def test_a_dead_pooled_process_is_not_handed_out_and_is_replaced() -> None:
    harness = Harness()
    await harness.filled()
    harness.started[0].usable = False
    assert harness.pool.take(pool_key("sonnet", None, "none")) is None
    await harness.filled()
    assert harness.ended == [harness.started[0]]
    assert len(harness.started) == 2


async def test_size_zero_disables_the_pool() -> None:
    harness = Harness(size=0)
    await harness.filled()
    assert harness.started == []


async def test_closing_ends_every_pooled_process() -> None:
    harness = Harness(size=2)
    await harness.filled()
    await harness.pool.aclose()
    await harness.filled()
    assert sorted(map(id, harness.ended)) == sorted(map(id, harness.started))
    assert harness.pool.processes == []


async def test_without_a_free_slot_the_pool_stops_filling_until_asked_again() -> None:
    harness = Harness(size=2)
    harness.room = False
    await harness.filled()
    assert (harness.asked, harness.started) == (1, [])
    harness.room = True
    await harness.filled()
    assert len(harness.pool.processes) == 2


async def test_evicting_ends_an_unwanted_process_first_then_any() -> None:
    harness = Harness(size=2)
    await harness.filled()
    harness.started[1].usable = False
    assert harness.pool.evict()
    assert harness.ended == [harness.started[1]]
    assert harness.pool.evict()
    assert harness.ended == [harness.started[1], harness.started[0]]
    assert not harness.pool.evict()
    assert harness.pool.processes == []
