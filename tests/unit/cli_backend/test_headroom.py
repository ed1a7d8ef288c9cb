"""While turns keep evicting conversations' processes, one place stays free.

Round-robin over more conversations than `max_live` makes every turn a miss. Without
headroom each miss waits for the process it evicts to exit before its own may start;
with it, the exit happens during the previous miss's turn, and the next miss starts
at once. A reuse ends the thrashing, and the place goes back to live processes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from proxy_cli_backend.live_runner import LiveCliRunner
from proxy_core import Finished, TextDelta
from tests.unit.cli_backend import test_live_runner
from tests.unit.cli_backend.test_live_runner import end, follow_up, plan, run
from tests.unit.cli_backend.test_process_cap import wait_until

# The stand-in CLI runner fixture, shared with the runner's other unit tests.
make_runner = test_live_runner.make_runner


def count_waits(runner: LiveCliRunner, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per turn that had to queue for a process slot (and evict for it)."""
    waits: list[int] = []
    take = runner._slots.take

    async def counted(on_wait: Callable[[], None] | None = None) -> None:
        def queued() -> None:
            waits.append(1)
            if on_wait is not None:
                on_wait()

        await take(on_wait=queued)

    monkeypatch.setattr(runner._slots, "take", counted)
    return waits


async def thrash(runner: LiveCliRunner) -> tuple[list[str], dict[str, list[Any]]]:
    """Three conversations at `max_live` 2: A and B start, C evicts A, A comes back."""
    names = [str(uuid.uuid4()) for _ in range(3)]
    a, b, c = names
    turns = {a: await run(runner, plan("a", a)), b: await run(runner, plan("b", b))}
    turns[c] = await run(runner, plan("c", c))
    assert not runner._thrashing()  # one eviction for a new conversation is no thrashing
    turns[a] = await follow_up(runner, a, turns[a], "a again")
    await wait_until(lambda: not runner._endings)
    return names, turns


async def test_a_returning_conversation_ends_one_more_idle_process_so_the_next_miss_does_not_wait(
    make_runner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = await make_runner(max_live=2)
    (a, b, _), turns = await thrash(runner)
    # A came back after its eviction: it evicted B for its place, and its start ended
    # C too, keeping a place free.
    assert runner._thrashing()
    assert list(runner._live) == [a]
    assert runner.evicted == 3
    # B comes back: the free place is taken at once, without queueing for an exit.
    waits = count_waits(runner, monkeypatch)
    again = await follow_up(runner, b, turns[b], "b again")
    assert [e.text for e in again if isinstance(e, TextDelta)] == ["echo: b again"]
    assert isinstance(end(again), Finished)
    assert waits == []


async def test_a_reuse_ends_the_thrashing_and_the_place_goes_back_to_live_processes(
    make_runner: Any,
) -> None:
    runner = await make_runner(max_live=2)
    (a, _, _), turns = await thrash(runner)
    evicted = runner.evicted
    # A is live: its follow-up reuses it, which ends the thrashing.
    await follow_up(runner, a, turns[a], "a once more")
    assert not runner._thrashing()
    # A new conversation now finds a free place and ends nobody: both stay live.
    d = str(uuid.uuid4())
    await run(runner, plan("d", d))
    await wait_until(lambda: not runner._endings)
    assert set(runner._live) == {a, d}
    assert runner.evicted == evicted


async def test_the_warm_pool_does_not_take_the_free_place_while_the_set_thrashes(
    make_runner: Any,
) -> None:
    runner = await make_runner(max_live=2, pool_size=1, thrash_window=60.0)
    await thrash(runner)
    assert runner._thrashing()
    assert runner._pool.processes == []
    assert runner._slots.held == 1
