"""Admission: who runs now, who waits, who is turned away.

A global number of slots with a bounded queue in front of them, and one turn at a
time per session key, later ones waiting in arrival order. A turn takes a `Place`
(refused as busy when the queue is full), waits in it, runs in a slot, and leaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import msgspec
from msgspec import Meta

from proxy_core.conversation import ParseLimits
from proxy_core.errors import ChatError, FailureReason


class ServiceLimits(msgspec.Struct, frozen=True):
    """Admission limits and input bounds."""

    max_concurrent: Annotated[
        int, Meta(description="Turns running at once (CLI processes busy).")
    ] = 4
    max_queued: Annotated[
        int, Meta(description="Turns waiting for a slot; beyond it requests get 429.")
    ] = 8
    parse: ParseLimits = msgspec.field(default_factory=ParseLimits)
    busy_retry_after: Annotated[
        float, Meta(description="Retry-After seconds sent with a 429 busy answer.")
    ] = 1.0


class Admission:
    """The slots, the queue and the per-session order; `active` and `queued` count them."""

    def __init__(self, limits: ServiceLimits) -> None:
        self.limits = limits
        self.active = 0
        self.queued = 0
        self._slots = asyncio.Semaphore(limits.max_concurrent)
        self._sessions: dict[str, tuple[asyncio.Lock, int]] = {}

    def reserve(self) -> Place:
        """A place in the queue, without waiting; raises ChatError(BUSY) when it is full."""
        capacity = self.limits.max_concurrent + self.limits.max_queued
        if self.active + self.queued >= capacity:
            raise ChatError(
                FailureReason.BUSY,
                f"The server is at capacity ({self.limits.max_concurrent} running, "
                f"{self.limits.max_queued} queued). Retry shortly.",
                retry_after=self.limits.busy_retry_after,
            )
        self.queued += 1
        return Place(self)

    @asynccontextmanager
    async def session(self, key: str) -> AsyncIterator[None]:
        """Hold `key`'s turn: wait, in arrival order, until no one else holds it."""
        lock, users = self._sessions.get(key, (asyncio.Lock(), 0))
        self._sessions[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            # The entry goes once nobody holds or waits for it, so the table stays small.
            _, users = self._sessions[key]
            if users <= 1:
                del self._sessions[key]
            else:
                self._sessions[key] = (lock, users - 1)


class Place:
    """One turn's place: queued until it runs in a slot, gone once it `leave`s."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._queued = True

    @asynccontextmanager
    async def running(self, key: str) -> AsyncIterator[None]:
        """Wait for `key`'s turn and a free slot, then hold both (and count as active).

        The place is gone afterwards, also when the wait was cancelled.
        """
        admission = self._admission
        try:
            async with admission.session(key), admission._slots:
                self.leave()
                admission.active += 1
                try:
                    yield
                finally:
                    admission.active -= 1
        finally:
            self.leave()

    def leave(self) -> None:
        """Give up the queue place, if still holding it (safe to call more than once)."""
        if self._queued:
            self._queued = False
            self._admission.queued -= 1
