"""ProcessSlots: a hard cap on the CLI processes alive at once.

One slot is one CLI process from just before it is started until it is reaped,
whatever it does meanwhile (pooled, running a turn, idle, ending). A turn that
needs a new process waits for a slot; waiters are served in arrival order, and a
waiter that is cancelled leaves no slot behind. A background start (the warm
pool) never waits: it takes a slot only if one is free and nobody is waiting.

The limit may move (`resize`: the live runner's memory budget lowers it as processes
grow): above the new limit, returned slots are freed rather than handed on, until
the held ones fit again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable


class ProcessSlots:
    """`limit` slots; `take` waits in arrival order, `try_take` never waits."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.held = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def waiting(self) -> int:
        """Takers waiting for a slot now."""
        return sum(1 for waiter in self._waiters if not waiter.done())

    def try_take(self) -> bool:
        """Take a free slot if there is one and nobody waits for it (no jumping the queue)."""
        if self.held < self.limit and not self.waiting:
            self.held += 1
            return True
        return False

    async def take(self, on_wait: Callable[[], None] | None = None) -> None:
        """Take a slot, waiting behind earlier takers if none is free.

        `on_wait` runs once this taker is queued (the runner evicts an idle process
        there, so that the slot it frees goes to the queue in order).
        """
        if self.try_take():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if on_wait is not None:
            on_wait()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give_back()  # handed over just as the taker was cancelled: pass it on
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def give_back(self) -> None:
        """Return a slot: it goes to the longest waiting taker, else it is free (always
        freed while more are held than the limit allows)."""
        if self.held <= self.limit and self._hand_over():
            return  # the slot changes hands; `held` stays
        self.held = max(0, self.held - 1)

    def resize(self, limit: int) -> None:
        """Change the limit (at least 1); a raised one serves waiting takers at once."""
        self.limit = max(1, limit)
        while self.held < self.limit and self._hand_over():
            self.held += 1

    def _hand_over(self) -> bool:
        """Give a slot to the longest waiting taker; False if nobody waits."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return True
        return False
