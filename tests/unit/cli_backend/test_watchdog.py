"""The child watchdog: tracks what the server started, kills what outlives its owner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from proxy_cli_backend.procfs import ProcessInfo, ProcessTable, descendants_in, read_process
from proxy_cli_backend.watchdog import ChildWatchdog

ME = os.getpid()


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def table(*rows: tuple[int, int, int, str, str]) -> ProcessTable:
    return {
        pid: ProcessInfo(pid, ppid, pgid, state, started)
        for pid, ppid, pgid, state, started in rows
    }


class Harness:
    """A watchdog over a scripted process table, recording the kills it makes."""

    def __init__(self, grace: float = 5.0) -> None:
        self.clock = FakeClock()
        self.table: ProcessTable = {}
        self.killed: list[int] = []
        self.watchdog = ChildWatchdog(
            grace=grace,
            clock=self.clock,
            read_table=lambda: self.table,
            kill=lambda pid, sig: self.killed.append(pid),
        )

    def register(self, pid: int, started: str) -> None:
        # register() reads /proc for the real pid; give it the scripted row instead.
        self.watchdog.register(pid)
        child = self.watchdog._children[pid]
        child.info = self.table[pid]
        assert child.info.started == started


def test_a_released_child_with_nothing_left_is_dropped_without_kills() -> None:
    h = Harness()
    h.table = table((500, ME, 500, "S", "1"))
    h.register(500, "1")
    assert h.watchdog.tracked == 1
    h.table = {}
    h.watchdog.release(500)
    h.clock.now += 6
    assert h.watchdog.sweep() == 0
    assert h.watchdog.tracked == 0
    assert h.killed == []


def test_a_descendant_that_escaped_the_group_is_killed_after_the_grace() -> None:
    h = Harness()
    # 500 leads group 500; its tool 501 runs in a session (group) of its own.
    h.table = table((500, ME, 500, "S", "1"), (501, 500, 501, "S", "2"))
    h.register(500, "1")
    h.watchdog.sweep()  # notes 501 while 500 lives
    # 500 dies; 501 is reparented to init and would be invisible by ancestry.
    h.table = table((501, 1, 501, "S", "2"))
    h.watchdog.release(500)
    h.clock.now += 1
    assert h.watchdog.sweep() == 0  # still within the grace
    h.clock.now += 5
    assert h.watchdog.sweep() == 1
    assert h.killed == [501]
    assert h.watchdog.orphans_killed == 1


def test_a_group_member_left_behind_is_killed() -> None:
    h = Harness()
    h.table = table((500, ME, 500, "S", "1"), (502, 500, 500, "S", "3"))
    h.register(500, "1")
    h.table = table((502, 1, 500, "S", "3"))  # leader gone, a member stays in its group
    h.watchdog.release(500)
    h.clock.now += 10
    assert h.watchdog.sweep() == 1
    assert h.killed == [502]


def test_a_dead_leader_counts_as_its_owner_ending_even_without_release() -> None:
    h = Harness()
    h.table = table((500, ME, 500, "S", "1"), (501, 500, 501, "S", "2"))
    h.register(500, "1")
    h.watchdog.sweep()
    h.table = table((500, ME, 500, "Z", "1"), (501, 1, 501, "S", "2"))  # a zombie leader
    h.watchdog.sweep()
    h.clock.now += 6
    assert h.watchdog.sweep() == 1
    assert h.killed == [501]


def test_a_released_child_still_running_is_killed() -> None:
    h = Harness()
    h.table = table((500, ME, 500, "S", "1"))
    h.register(500, "1")
    h.watchdog.release(500)
    h.clock.now += 6
    assert h.watchdog.sweep() == 1
    assert h.killed == [500]


def test_a_running_owned_child_and_its_tools_are_left_alone() -> None:
    h = Harness()
    h.table = table((500, ME, 500, "S", "1"), (501, 500, 501, "S", "2"))
    h.register(500, "1")
    h.clock.now += 1000
    assert h.watchdog.sweep() == 0
    assert h.watchdog.tracked == 1


def test_a_recycled_pid_is_never_killed() -> None:
    h = Harness()
    h.table = table((500, ME, 500, "S", "1"), (501, 500, 501, "S", "2"))
    h.register(500, "1")
    h.watchdog.sweep()
    # Both exited; their pids now belong to strangers (other start times), one leading
    # a new group 500 with a member.
    h.table = table((500, 7, 500, "S", "9"), (501, 7, 501, "S", "9"), (600, 500, 500, "S", "9"))
    h.watchdog.release(500)
    h.clock.now += 6
    assert h.watchdog.sweep() == 0
    assert h.killed == []


def test_kill_all_ends_tracked_children_and_the_roots_descendants() -> None:
    h = Harness()
    h.table = table(
        (500, ME, 500, "S", "1"),
        (501, 500, 501, "S", "2"),
        (700, ME, 700, "S", "4"),  # not registered (e.g. started by another component)
        (701, 700, 700, "Z", "5"),  # a zombie needs no kill
    )
    h.register(500, "1")
    assert h.watchdog.kill_all(root=ME) == 3
    assert sorted(h.killed) == [500, 501, 700]


def test_descendants_are_found_across_levels() -> None:
    rows = table((2, 1, 2, "S", "a"), (3, 2, 3, "S", "b"), (4, 3, 3, "S", "c"), (5, 1, 5, "S", "d"))
    assert [info.pid for info in descendants_in(rows, 2)] == [3, 4]


def _wait_gone(pid: int, started: str, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        info = read_process(pid)
        if info is None or info.started != started or not info.alive:
            return True
        time.sleep(0.02)
    return False


def test_a_real_escaped_grandchild_is_killed_once_its_parent_is_gone() -> None:
    # A leader that starts a tool in a new session, as the CLI does, then sleeps.
    tool = "import os, time; os.setsid(); print(os.getpid(), flush=True); time.sleep(60)"
    leader = subprocess.Popen(
        ["sh", "-c", f'"{sys.executable}" -c "{tool}" & exec sleep 60'],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert leader.stdout is not None
    escaped = int(leader.stdout.readline())
    clock = FakeClock()
    watchdog = ChildWatchdog(grace=1.0, clock=clock)
    try:
        watchdog.register(leader.pid)
        deadline = time.monotonic() + 5
        while read_process(escaped) is None or read_process(escaped).ppid != leader.pid:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the tool did not start"
            time.sleep(0.02)
        watchdog.sweep()
        os.killpg(leader.pid, signal.SIGKILL)
        leader.wait(5)
        watchdog.release(leader.pid)
        escaped_info = read_process(escaped)
        assert escaped_info is not None
        assert escaped_info.alive, "the tool should have escaped the group kill"
        clock.now += 2
        assert watchdog.sweep() == 1
        assert _wait_gone(escaped, escaped_info.started)
    finally:
        with_leftover = read_process(escaped)
        if with_leftover is not None and with_leftover.alive:
            os.kill(escaped, signal.SIGKILL)
        if leader.poll() is None:
            leader.kill()
            leader.wait(5)


def test_released_children_are_bounded_without_a_sweep() -> None:
    watchdog = ChildWatchdog(read_table=dict, kill=lambda pid, sig: None)
    for pid in range(10_000_000, 10_001_500):  # pids no process has
        watchdog.register(pid)
        watchdog.release(pid)
    assert watchdog.tracked == 0
    assert len(watchdog._children) <= 1000
