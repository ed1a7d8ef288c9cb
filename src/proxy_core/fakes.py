"""In-process implementations of the ports, for embedding apps and tests."""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import AsyncGenerator, Callable, Sequence, Set
from typing import TYPE_CHECKING

import msgspec

from proxy_core.errors import ChatError, FailureReason
from proxy_core.events import Event, Failed, Finished, TextDelta, Usage
from proxy_core.ledger import SessionRecord
from proxy_core.planning import PlanKind, TurnPlan
from proxy_core.ports import (
    BackendStatus,
    ResponseStore,
    Runner,
    SessionStore,
    SpendStore,
    StoredResponse,
)
from proxy_core.spend import SpendEntry


class _FailSwitch:
    """What makes a fake store fail as a full (or lost) disk would."""

    def __init__(self) -> None:
        self._write_error: str | None = None
        self._read_error: str | None = None

    def fail(self, message: str = "database or disk is full", *, reads: bool = False) -> None:
        """Make writes (with `reads`, every call) raise ChatError(STORE_UNAVAILABLE)."""
        self._write_error = message
        self._read_error = message if reads else None

    def _check(self, *, write: bool) -> None:
        error = self._write_error if write else self._read_error
        if error is not None:
            raise ChatError(FailureReason.STORE_UNAVAILABLE, error)


class InMemorySessionStore(_FailSwitch):
    """A SessionStore in a dict; each instance is independent.

    `fail()` makes it refuse calls as a full or read-only disk makes a real store do.
    """

    def __init__(self) -> None:
        self._records: dict[str, SessionRecord] = {}
        super().__init__()

    async def get(self, key: str) -> SessionRecord | None:
        self._check(write=False)
        return self._records.get(key)

    async def put(self, record: SessionRecord) -> None:
        self._check(write=True)
        self._records[record.key] = record

    async def delete(self, key: str) -> SessionRecord | None:
        self._check(write=True)
        return self._records.pop(key, None)

    async def list(
        self, limit: int = 100, offset: int = 0, *, prefix: str = ""
    ) -> tuple[builtins.list[SessionRecord], int]:
        self._check(write=False)
        mine = [r for r in self._records.values() if r.key.startswith(prefix)]
        ordered = sorted(mine, key=lambda r: r.last_used_at, reverse=True)
        return ordered[offset : offset + limit], len(ordered)

    async def clear(self, *, prefix: str = "") -> builtins.list[SessionRecord]:
        self._check(write=True)
        records = [r for r in self._records.values() if r.key.startswith(prefix)]
        for record in records:
            del self._records[record.key]
        return records

    async def count(self) -> int:
        self._check(write=False)
        return len(self._records)

    async def cli_session_ids(self) -> builtins.set[str]:
        self._check(write=False)
        return {record.cli_session_id for record in self._records.values()}

    async def references(self, cli_session_id: str) -> bool:
        self._check(write=False)
        return any(r.cli_session_id == cli_session_id for r in self._records.values())

    async def sweep(self) -> int:
        """It keeps every record (no TTL, no cap)."""
        self._check(write=True)
        return 0

    async def close(self) -> None:
        return None


class _Kept(msgspec.Struct):
    """A reply as the in-memory store keeps it: when it was last used, and its place in
    storing order (which settles ties of use, as a table's row order does)."""

    response: StoredResponse
    used_at: float
    order: int


class InMemoryResponseStore(_FailSwitch):
    """A ResponseStore in a dict, with the semantics of the durable one: chains by
    `previous_id`, at most `max_responses` kept (the least recently used go first), and
    with `ttl_seconds`, `sweep` drops the replies unused for that long (by `clock`).
    `fail()` makes it refuse calls as a full (or unreadable) disk would."""

    def __init__(
        self,
        max_responses: int = 1000,
        *,
        ttl_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_responses < 1:
            raise ValueError("max_responses must be at least 1")
        self.max_responses = max_responses
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._kept: dict[tuple[str, str], _Kept] = {}
        self._stored = 0
        super().__init__()

    async def get(self, response_id: str, namespace: str) -> StoredResponse | None:
        self._check(write=False)
        kept = self._kept.get((namespace, response_id))
        return None if kept is None else kept.response

    async def chain(
        self, response_id: str, namespace: str, *, limit: int
    ) -> builtins.list[StoredResponse]:
        self._check(write=True)  # it marks every reply returned as used
        links = self._walk(response_id, namespace, limit)
        self._use(links, self._clock())
        return [kept.response for kept in reversed(links)]

    async def put(self, response: StoredResponse) -> None:
        self._check(write=True)
        now = self._clock()
        self._stored += 1
        self._kept[(response.namespace, response.id)] = _Kept(response, now, self._stored)
        if response.previous_id is not None:
            chain = self._walk(response.previous_id, response.namespace, self.max_responses)
            self._use(chain, now)
        while len(self._kept) > self.max_responses:
            del self._kept[min(self._kept, key=lambda k: self._lru(self._kept[k]))]

    async def delete(self, response_id: str, namespace: str) -> bool:
        self._check(write=True)
        return self._kept.pop((namespace, response_id), None) is not None

    async def sweep(self) -> int:
        """Drop the replies unused for longer than the TTL (none without one)."""
        self._check(write=True)
        if self.ttl_seconds is None:
            return 0
        cutoff = self._clock() - self.ttl_seconds
        idle = [key for key, kept in self._kept.items() if kept.used_at < cutoff]
        for key in idle:
            del self._kept[key]
        return len(idle)

    async def close(self) -> None:
        return None

    def _walk(self, response_id: str, namespace: str, limit: int) -> builtins.list[_Kept]:
        """The reply and its ancestors, newest first, up to `limit` or a missing link."""
        links: list[_Kept] = []
        next_id: str | None = response_id
        while next_id is not None and len(links) < limit:
            kept = self._kept.get((namespace, next_id))
            if kept is None:
                break
            links.append(kept)
            next_id = kept.response.previous_id
        return links

    @staticmethod
    def _use(links: builtins.list[_Kept], now: float) -> None:
        for kept in links:
            kept.used_at = now

    @staticmethod
    def _lru(kept: _Kept) -> tuple[float, int]:
        return (kept.used_at, kept.order)


class InMemorySpendStore(_FailSwitch):
    """A SpendStore in a dict, summing per (key, day, model) as the durable one does.

    `fail()` makes it refuse writes (with `reads`, every call) as a full disk would.
    """

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str, str], SpendEntry] = {}
        super().__init__()

    async def add(self, entries: Sequence[SpendEntry]) -> None:
        self._check(write=True)
        for entry in entries:
            row = (entry.key, entry.day, entry.model)
            kept = self._rows.get(row)
            self._rows[row] = entry if kept is None else _summed(kept, entry)

    async def entries(self, *, since: str, key: str | None = None) -> builtins.list[SpendEntry]:
        self._check(write=False)
        return [
            entry
            for entry in self._rows.values()
            if entry.day >= since and (key is None or entry.key == key)
        ]

    async def prune(self, *, before: str) -> int:
        self._check(write=True)
        old = [row for row, entry in self._rows.items() if entry.day < before]
        for row in old:
            del self._rows[row]
        return len(old)

    async def close(self) -> None:
        return None


def _summed(kept: SpendEntry, added: SpendEntry) -> SpendEntry:
    return msgspec.structs.replace(
        kept,
        requests=kept.requests + added.requests,
        input_tokens=kept.input_tokens + added.input_tokens,
        output_tokens=kept.output_tokens + added.output_tokens,
        cache_read_tokens=kept.cache_read_tokens + added.cache_read_tokens,
        cache_creation_tokens=kept.cache_creation_tokens + added.cache_creation_tokens,
        cost_usd=kept.cost_usd + added.cost_usd,
    )


Script = Callable[[TurnPlan], Sequence[Event]]


def echo_script(plan: TurnPlan) -> Sequence[Event]:
    """Reply with the text of the last message sent, in small deltas."""
    last = plan.messages[-1].text if plan.messages else ""
    reply = f"echo: {last}"
    deltas: list[Event] = [TextDelta(reply[i : i + 8]) for i in range(0, len(reply), 8)]
    tokens = max(1, len(reply) // 4)
    return [
        *deltas,
        Usage(input_tokens=10, output_tokens=tokens),
        Finished("end_turn", reply, plan.cli_session_id),
    ]


class FakeRunner:
    """A scripted Runner: each turn yields what `script(plan)` returns.

    `delay` is slept before each event, so tests can hold turns open; `plans`
    records every plan run, and `active`/`closed` count turns in flight and ended.
    `stored` holds the sessions it "keeps on disk" (each session it ran, until purged,
    discarded or swept), so tests can check what would be left behind.
    """

    def __init__(self, script: Script = echo_script, *, delay: float = 0.0) -> None:
        self.script = script
        self.delay = delay
        self.plans: list[TurnPlan] = []
        self.active = 0
        self.closed = 0
        self.forgotten: list[str] = []
        self.purged: list[str] = []
        self.discarded: list[str] = []
        self.stored: set[str] = set()
        self.running: set[str] = set()
        self.gate: asyncio.Event | None = None

    async def run(self, plan: TurnPlan) -> AsyncGenerator[Event, None]:
        self.plans.append(plan)
        self.active += 1
        self.stored.add(plan.cli_session_id)
        self.running.add(plan.cli_session_id)
        try:
            if self.gate is not None:
                await self.gate.wait()
            for event in self.script(plan):
                if self.delay:
                    await asyncio.sleep(self.delay)
                yield event
                if isinstance(event, Finished | Failed):
                    return
        finally:
            self.active -= 1
            self.closed += 1
            self.running.discard(plan.cli_session_id)

    def status(self) -> BackendStatus:
        return BackendStatus(ready=True, name="fake", version="0", active_processes=self.active)

    async def forget(self, cli_session_id: str, *, purge: bool = False) -> bool:
        self.forgotten.append(cli_session_id)
        if not purge:
            return False
        self.purged.append(cli_session_id)
        if cli_session_id not in self.stored:
            return False
        self.stored.discard(cli_session_id)
        return True

    async def discard(self, plan: TurnPlan) -> None:
        if plan.kind is not PlanKind.CONTINUE:
            self.discarded.append(plan.cli_session_id)
            self.stored.discard(plan.cli_session_id)

    async def sweep_orphans(self, referenced: Set[str], *, grace: float) -> int:
        """Drops every stored session not referenced nor running (it has no clock)."""
        orphans = self.stored - set(referenced) - self.running
        self.stored -= orphans
        return len(orphans)

    async def watch(self, interval: float) -> None:
        """It starts no processes: nothing to watch."""

    def kill_orphans(self, *, root: int | None = None) -> int:
        """It starts no processes: none to kill."""
        return 0

    async def aclose(self) -> None:
        return None


if TYPE_CHECKING:  # the fakes implement every method of the ports, capabilities included
    _store: SessionStore = InMemorySessionStore()
    _runner: Runner = FakeRunner()
    _responses: ResponseStore = InMemoryResponseStore()
    _spend: SpendStore = InMemorySpendStore()
