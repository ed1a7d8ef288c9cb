"""MemoryBudget: how many live CLI processes fit a memory budget.

The live runner bounds its processes by count (`max_live`) and, with a budget, by
their resident memory too. A process's memory is known only once it runs, so the
budget is turned into a count: the budget divided by the mean resident memory (each
process with its descendants, the tools it started) of the processes measured last.
The runner lowers its process cap to that count, so the cap's machinery does the
rest: a new process evicts an idle one (least recently used) when the set is full,
and turns wait in order when every process is busy; a request never fails for memory.

Reading /proc costs about 0.4 ms a process on a loaded 2-core machine (a CLI has about
ten threads whose children lists are read), so measurements are at most one per
`interval`, taken only where a process starts or a turn ends; with no budget nothing
is read at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from proxy_cli_backend.procfs import tree_rss

ReadRss = Callable[[list[int]], dict[int, int]]
"""Resident bytes of each pid with its descendants (gone ones absent): `procfs.tree_rss`."""


class MemoryBudget:
    """`budget_bytes` for all live and pooled processes together; 0 means no budget."""

    def __init__(
        self,
        budget_bytes: int,
        *,
        read: ReadRss = tree_rss,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 1.0,
    ) -> None:
        self.budget_bytes = max(0, budget_bytes)
        self._read = read
        self._clock = clock
        self._interval = interval
        self._measured_at: float | None = None
        self.mean_bytes: float | None = None  # per process, from the last measurement
        self.limit: int | None = None  # processes the budget allows (None: not known yet)

    @property
    def enabled(self) -> bool:
        return self.budget_bytes > 0

    def allowed(self, pids: Sequence[int]) -> int | None:
        """Processes that fit the budget, re-measuring `pids` if the last reading is
        older than the interval; None with no budget or before any process was measured.

        Never below 1: one process always runs, whatever its size (the budget then
        behaves as `max_live` 1 does).
        """
        if not self.enabled:
            return None
        now = self._clock()
        if pids and (self._measured_at is None or now - self._measured_at >= self._interval):
            self._measured_at = now
            sizes = [size for size in self._read(list(pids)).values() if size > 0]
            if sizes:
                # The last mean stays when nothing could be read (all gone meanwhile).
                self.mean_bytes = sum(sizes) / len(sizes)
        if self.mean_bytes is not None:
            self.limit = max(1, int(self.budget_bytes // self.mean_bytes))
        return self.limit
