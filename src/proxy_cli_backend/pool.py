"""A warm pool: pre-started CLI processes, ready for new conversations.

Starting `claude` costs most of a first turn's time (about 0.3-1 s), so the pool
keeps `size` processes started with their own `--session-id`, already answering
`initialize`, for the key new conversations most often need: (model, system
prompt hash, tools profile), learnt from the recent NEW turns. A new conversation
with that key takes one and the pool refills in the background.

Pooled processes count towards the runner's cap on CLI processes: the pool starts
one only into a free slot, and gives its processes up first when a turn needs room.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable

import msgspec
import structlog

from proxy_cli_backend.background import detached_task
from proxy_cli_backend.live import LiveProcess
from proxy_core import system_hash

log = structlog.get_logger(__name__)

# After a failed start, wait this long before trying again (a broken CLI must not spin).
_RETRY_AFTER = 5.0


class PoolKey(msgspec.Struct, frozen=True):
    """What a pooled process was started for; only a turn with the same key may take it."""

    model: str
    system_hash: str
    tools: str


def pool_key(model: str, system: str | None, tools: str) -> PoolKey:
    return PoolKey(model=model, system_hash=system_hash(system), tools=tools)


StartProcess = Callable[[str, str | None], Awaitable[LiveProcess | None]]
"""Starts a ready process for (model, system prompt); None when there is no room for
one now (the pool stops filling until the next `fill()`); raises on failure."""
EndProcess = Callable[[LiveProcess], None]
"""Ends a process in the background (the runner's graceful ending)."""


class WarmPool:
    """Ready processes for the most wanted key. `size` 0 disables the pool."""

    def __init__(
        self,
        size: int,
        start: StartProcess,
        end: EndProcess,
        *,
        model: str,
        tools: str,
        window: int = 20,
    ) -> None:
        self.size = max(0, size)
        self._start = start
        self._end = end
        self._tools = tools
        self.target = pool_key(model, None, tools)
        self._systems: dict[PoolKey, str | None] = {self.target: None}
        self._recent: collections.deque[PoolKey] = collections.deque(maxlen=max(1, window))
        self._ready: list[tuple[PoolKey, LiveProcess]] = []
        self._filler: asyncio.Task[None] | None = None
        self._closed = False
        self.taken = 0
        self.started = 0

    @property
    def processes(self) -> list[LiveProcess]:
        return [live for _, live in self._ready]

    def note(self, model: str, system: str | None) -> PoolKey:
        """Record a new conversation's key; the pool follows the most frequent recent one."""
        key = pool_key(model, system, self._tools)
        self._systems[key] = system
        self._recent.append(key)
        counts = collections.Counter(self._recent)
        best, best_count = counts.most_common(1)[0]
        # Keep the current target on a tie, so alternating keys do not churn processes.
        if best != self.target and best_count > counts.get(self.target, 0):
            self.target = best
            self._forget_systems()
        return key

    def take(self, key: PoolKey) -> LiveProcess | None:
        """A ready process for `key`, or None. Call `fill()` later to replace it."""
        for index, (ready_key, live) in enumerate(self._ready):
            if ready_key == key and live.usable:
                del self._ready[index]
                self.taken += 1
                return live
        return None

    def evict(self) -> bool:
        """End one ready process (a dead or unwanted one first); False if there is none."""
        if not self._ready:
            return False
        spare = [entry for entry in self._ready if entry[0] != self.target or not entry[1].usable]
        entry = spare[0] if spare else self._ready[0]
        self._ready.remove(entry)
        self._end(entry[1])
        return True

    def fill(self) -> None:
        """Start refilling in the background (no-op when full, filling, off or closed)."""
        if self._closed or self.size == 0:
            return
        if self._filler is not None and not self._filler.done():
            return
        if self._full():
            return
        self._filler = detached_task(self._refill(), name="warm-pool-refill")

    def _full(self) -> bool:
        return sum(1 for key, live in self._ready if key == self.target and live.usable) >= (
            self.size
        )

    async def _refill(self) -> None:
        while not self._closed:
            self._drop_unwanted()
            if self._full():
                return
            key = self.target
            try:
                live = await self._start(key.model, self._systems.get(key))
            except Exception as error:  # the next turn spawns its own; retry later
                log.warning("pool_spawn_failed", error=str(error))
                await asyncio.sleep(_RETRY_AFTER)
                continue
            if live is None:
                return
            self.started += 1
            if self._closed or key != self.target:
                self._end(live)
            else:
                self._ready.append((key, live))

    def _drop_unwanted(self) -> None:
        """End processes of an old key or that died, so memory follows the target."""
        keep: list[tuple[PoolKey, LiveProcess]] = []
        for key, live in self._ready:
            if key == self.target and live.usable:
                keep.append((key, live))
            else:
                self._end(live)
        self._ready = keep

    def _forget_systems(self) -> None:
        wanted = set(self._recent) | {self.target}
        self._systems = {k: v for k, v in self._systems.items() if k in wanted}

    async def aclose(self) -> None:
        """Stop refilling and end every pooled process (the runner awaits the endings)."""
        self._closed = True
        if self._filler is not None:
            self._filler.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._filler
        for _, live in self._ready:
            self._end(live)
        self._ready = []
