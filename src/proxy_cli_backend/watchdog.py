"""A watchdog against leaked CLI processes: every child is registered, none outlives its owner.

Whoever starts a CLI process (a per-turn runner, a live process, the warm pool)
registers its pid, and releases it once it has ended and reaped it. The watchdog
notes the descendants of each registered process while it lives, because the
CLI runs tool commands in sessions of their own, outside its process group: once
the CLI dies they are reparented away and can no longer be found by ancestry.

A sweep (periodically, and at shutdown) kills what outlived its owner: anything
still alive in the group or among the noted descendants of a process that was
released, or whose leader died, more than `grace` seconds ago. Every pid is
matched with its start time, so a recycled pid is never mistaken for ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable

import structlog

from proxy_cli_backend.procfs import (
    ProcessInfo,
    ProcessTable,
    descendants_in,
    process_table,
    read_process,
)

log = structlog.get_logger(__name__)

MAX_RELEASED = 1000
"""Released children remembered until a sweep; beyond it the oldest are forgotten."""


class _Child:
    """What the watchdog knows of one registered process."""

    def __init__(self, info: ProcessInfo, owner: str) -> None:
        self.info = info
        self.owner = owner
        self.members: dict[int, str] = {}  # descendants seen: pid -> start time
        self.released_at: float | None = None
        self.leader_gone_at: float | None = None

    def ended_at(self) -> float | None:
        """When the owner's hold ended: released, or the leader seen dead."""
        times = [t for t in (self.released_at, self.leader_gone_at) if t is not None]
        return min(times) if times else None


class ChildWatchdog:
    """Tracks the CLI processes this server started and kills the ones that outlive their owner.

    Not thread-safe: call it from the event loop that runs the runners.
    """

    def __init__(
        self,
        *,
        grace: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        read_table: Callable[[], ProcessTable] = process_table,
        kill: Callable[[int, int], None] = os.kill,
    ) -> None:
        """`grace`: how long a process may outlive its owner; the rest is for tests."""
        self.grace = grace
        self._clock = clock
        self._read_table = read_table
        self._kill = kill
        self._children: dict[int, _Child] = {}
        self.orphans_killed = 0

    @property
    def tracked(self) -> int:
        """Registered processes whose owner has not released them yet."""
        return sum(1 for child in self._children.values() if child.released_at is None)

    def register(self, pid: int, *, owner: str = "turn") -> None:
        """Track a just-started child (leader of its own session, so its group id is `pid`)."""
        info = read_process(pid)
        if info is None:
            # Gone already (or no /proc): track it anyway so release() stays symmetric.
            info = ProcessInfo(pid, os.getpid(), pid, "?", "")
        self._children[pid] = _Child(info, owner)

    def release(self, pid: int) -> None:
        """The owner is done with `pid` (it ended it and reaped it)."""
        child = self._children.get(pid)
        if child is not None and child.released_at is None:
            child.released_at = self._clock()
        released = [p for p, c in self._children.items() if c.released_at is not None]
        # Without a running watch nothing sweeps: keep memory bounded all the same.
        for stale in released[: max(0, len(released) - MAX_RELEASED)]:
            del self._children[stale]

    def sweep(self, table: ProcessTable | None = None) -> int:
        """Note descendants; kill leftovers of children whose owner ended > grace ago.

        Returns how many processes were killed.
        """
        if not self._children:
            return 0
        table = self._read_table() if table is None else table
        now = self._clock()
        killed = 0
        for pid, child in list(self._children.items()):
            self._observe(child, table, now)
            ended = child.ended_at()
            if ended is None or now - ended < self.grace:
                continue
            leftovers = self._leftovers(child, table)
            for victim in leftovers:
                log.warning("orphan_killed", pid=victim, owner=child.owner, owner_pid=pid)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    self._kill(victim, signal.SIGKILL)
            killed += len(leftovers)
            # Its owner is done, or its leader is dead: nothing more to watch for.
            del self._children[pid]
        self.orphans_killed += killed
        return killed

    def kill_all(self, *, root: int | None = None) -> int:
        """At shutdown: kill everything tracked, and with `root`, every descendant of it.

        Owners should have ended their processes first; whatever is left is an orphan.
        """
        table = self._read_table()
        victims: set[int] = set()
        for child in self._children.values():
            self._observe(child, table, self._clock())
            victims.update(self._leftovers(child, table))
            if self._is_ours(child, table) and table[child.info.pid].alive:
                victims.add(child.info.pid)
        if root is not None:
            victims.update(info.pid for info in descendants_in(table, root) if info.alive)
        victims.discard(os.getpid())
        for victim in sorted(victims):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                self._kill(victim, signal.SIGKILL)
        self.orphans_killed += len(victims)
        self._children = {
            pid: child for pid, child in self._children.items() if child.released_at is None
        }
        return len(victims)

    async def watch(self, interval: float) -> None:
        """Sweep every `interval` seconds until cancelled (run it as a task)."""
        while True:
            await asyncio.sleep(interval)
            try:
                if self._children:
                    table = await asyncio.to_thread(self._read_table)
                    self.sweep(table)
            except Exception as error:  # one failed sweep must not stop the watch
                log.warning("watchdog_sweep_failed", error=repr(error))

    # -- internals ---------------------------------------------------------

    def _is_ours(self, child: _Child, table: ProcessTable) -> bool:
        info = table.get(child.info.pid)
        return info is not None and info.started == child.info.started

    def _observe(self, child: _Child, table: ProcessTable, now: float) -> None:
        if self._is_ours(child, table) and table[child.info.pid].alive:
            for info in descendants_in(table, child.info.pid):
                child.members.setdefault(info.pid, info.started)
        elif child.leader_gone_at is None:
            child.leader_gone_at = now

    def _leftovers(self, child: _Child, table: ProcessTable) -> list[int]:
        """Living noted descendants and group members (never a stranger with a recycled id)."""
        found = {
            pid
            for pid, started in child.members.items()
            if (info := table.get(pid)) is not None and info.started == started and info.alive
        }
        group = child.info.pgid
        leader = table.get(group)
        # A group id stays reserved while any member lives; it is only reused once its
        # old members are gone and a new leader took the pid, which its start time shows.
        if leader is None or leader.started == child.info.started:
            found.update(
                info.pid
                for info in table.values()
                if info.pgid == group and info.alive and info.pid != child.info.pid
            )
        released = child.released_at is not None
        if released and self._is_ours(child, table) and table[child.info.pid].alive:
            found.add(child.info.pid)  # released but still running: its owner lost it
        return sorted(found)
