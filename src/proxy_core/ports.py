"""Ports: what the service needs from the outside world, as protocols."""

from __future__ import annotations

import builtins
from collections.abc import AsyncGenerator, Sequence, Set
from typing import Literal, Protocol, runtime_checkable

import msgspec

from proxy_core.events import Event
from proxy_core.ledger import SessionRecord
from proxy_core.planning import TurnPlan
from proxy_core.spend import SpendEntry


class LiveProcessInfo(msgspec.Struct, frozen=True):
    """One live CLI process, as /health lists it."""

    session_id: str
    pid: int
    state: str
    model: str
    effort: str | None
    turns: int
    idle_s: float
    rss_bytes: int | None
    paused: bool = False  # stopped between turns, continued for the next (Linux)


class BackendDetails(msgspec.Struct, frozen=True, kw_only=True):
    """The facts a backend that runs local CLI processes reports (for /health).

    Key holders see them as `backend.details`, field for field.
    """

    path: str | None
    tools: str
    workdir: str
    tracked_children: int = 0  # CLI processes the watchdog tracks
    orphans_killed: int = 0  # processes it killed for outliving their turn


class LiveDetails(BackendDetails, frozen=True, kw_only=True):
    """BackendDetails plus the live processes, the warm pool and their memory."""

    mode: Literal["live"] = "live"
    live_processes: int = 0
    suspended_turns: int = 0  # live processes waiting for client tool results
    live_limit: int = 0  # --live-max
    memory_budget_bytes: int = 0  # --live-memory-mb (0: none)
    memory_limit: int = 0  # processes the memory budget allows now (0: none or not known)
    processes: int = 0  # process slots held (live, pooled and starting)
    waiting_for_process: int = 0
    live_rss_bytes: int = 0
    pool_ready: int = 0
    pool_size: int = 0
    pool_rss_bytes: int = 0
    pool_taken: int = 0
    spawned: int = 0
    reused: int = 0
    evicted: int = 0
    live: tuple[LiveProcessInfo, ...] = ()


class BackendStatus(msgspec.Struct, frozen=True):
    """A runner's readiness, for /health and `doctor`.

    `details` carries backend-specific facts (binary path, live processes, RSS, ...);
    None for a backend that has none to report.
    """

    ready: bool
    name: str
    version: str | None = None
    problems: tuple[str, ...] = ()
    active_processes: int = 0
    details: BackendDetails | None = None


class Runner(Protocol):
    """Runs one planned turn and yields its events, ending with Finished or Failed.

    `run` returns an async generator; a caller that stops early must `aclose()` it,
    which cancels the turn and releases everything it holds (processes included).
    Failures are yielded as `Failed` events, not raised.
    """

    def run(self, plan: TurnPlan) -> AsyncGenerator[Event, None]: ...

    def status(self) -> BackendStatus: ...

    async def forget(self, cli_session_id: str, *, purge: bool = False) -> bool:
        """Drop any live state for a CLI session (after a reset or delete).

        With `purge`, also delete what the backend stored of it (e.g. transcripts).
        Returns True only if something stored was deleted and is verifiably gone.
        """
        ...

    async def discard(self, plan: TurnPlan) -> None:
        """Delete what the turn of a NEW or RESTART plan stored, once it has ended.

        The service calls it when no record points to the plan's fresh session (the
        turn failed, timed out, was cancelled or cut by a stop sequence). A CONTINUE
        plan's session is the conversation's own and must be left alone.
        """
        ...

    async def sweep_orphans(self, referenced: Set[str], *, grace: float) -> int:
        """Delete stored sessions that `referenced` does not name, untouched for `grace`
        seconds, never those of processes alive now; returns how many were deleted.
        """
        ...

    async def watch(self, interval: float) -> None:
        """Until cancelled, every `interval` seconds, kill the processes that outlived
        their turn (run it as a task). A runner that starts no processes returns at once.
        """
        ...

    def kill_orphans(self, *, root: int | None = None) -> int:
        """At shutdown, after `aclose`: kill every process the runner started that is
        still alive and, with `root`, every descendant of that pid. Returns how many.
        """
        ...

    async def aclose(self) -> None:
        """Stop everything the runner started."""
        ...


class SessionStore(Protocol):
    """Durable session records, keyed by session key.

    A call the store cannot serve (disk full, read-only, database gone) raises
    ChatError(STORE_UNAVAILABLE) with a message saying what failed.
    """

    async def get(self, key: str) -> SessionRecord | None: ...

    async def put(self, record: SessionRecord) -> None: ...

    async def delete(self, key: str) -> SessionRecord | None:
        """Remove and return a record, or None when there was none."""
        ...

    async def list(
        self, limit: int = 100, offset: int = 0, *, prefix: str = ""
    ) -> tuple[builtins.list[SessionRecord], int]:
        """A page of the records whose key starts with `prefix`, most recently used
        first, and how many such records there are."""
        ...

    async def clear(self, *, prefix: str = "") -> builtins.list[SessionRecord]:
        """Remove and return every record whose key starts with `prefix`."""
        ...

    async def count(self) -> int: ...

    async def cli_session_ids(self) -> builtins.set[str]:
        """Every backend session id a record points to."""
        ...

    async def references(self, cli_session_id: str) -> bool:
        """Whether some record points to this backend session."""
        ...

    async def sweep(self) -> int:
        """Drop the records idle past the store's TTL, then the least recently used past
        its cap; returns how many. A store with neither drops nothing.
        """
        ...

    async def close(self) -> None: ...


class StoredResponse(msgspec.Struct, frozen=True):
    """One finished reply of the Responses API, kept so its client can fetch it again
    or continue from it (`previous_response_id`). `data` is the API surface's own
    record of it (opaque to the store): what this reply added to its conversation, not
    the conversation before it, which its ancestors hold. `previous_id` is the reply it
    continued (None: it opened its conversation), in the same namespace. `namespace`
    is whose it is (the API key's session namespace), and only that namespace reaches
    it. `created_at` is wall-clock seconds since the epoch."""

    id: str
    namespace: str
    created_at: float
    data: bytes
    previous_id: str | None = None


@runtime_checkable  # the HTTP adapter receives it as a typed dependency
class ResponseStore(Protocol):
    """Stored Responses API replies, by id within a namespace, linked into chains by
    `previous_id`, bounded by idle time and count: the least recently used go first,
    where storing a reply or reading its chain uses every reply of that chain.

    A call the store cannot serve (disk full, read-only) raises
    ChatError(STORE_UNAVAILABLE) with a message saying what failed.
    """

    async def get(self, response_id: str, namespace: str) -> StoredResponse | None:
        """The reply `response_id` of `namespace`; None when it is unknown, expired or
        another namespace's. Reading it alone is not a use."""
        ...

    async def chain(
        self, response_id: str, namespace: str, *, limit: int
    ) -> builtins.list[StoredResponse]:
        """The reply `response_id` of `namespace` and the replies it continues, oldest
        first, following `previous_id` within `namespace`: at most `limit` of them (the
        newest). Empty when `response_id` is unknown. It stops early at a link that is
        gone (then its first reply's `previous_id` is not None). Every reply returned is
        used now."""
        ...

    async def put(self, response: StoredResponse) -> None:
        """Keep a reply, used now with every reply of its chain; past the store's cap,
        the least recently used go."""
        ...

    async def delete(self, response_id: str, namespace: str) -> bool:
        """Drop the reply `response_id` of `namespace` (only it: the replies that
        continue it keep their `previous_id`); whether there was one."""
        ...

    async def sweep(self) -> int:
        """Drop the replies unused for longer than the store's TTL, then the least
        recently used past its cap; returns how many."""
        ...

    async def close(self) -> None: ...


@runtime_checkable  # the HTTP adapter and the composition root receive it typed
class SpendStore(Protocol):
    """What callers spent, as `SpendEntry` rows summed per (key, day, model): adding an
    entry for a row that exists adds its counts and cost to it. Days are UTC dates.

    A call the store cannot serve (disk full, read-only) raises
    ChatError(STORE_UNAVAILABLE) with a message saying what failed.
    """

    async def add(self, entries: Sequence[SpendEntry]) -> None:
        """Add the entries (one turn's, in one write)."""
        ...

    async def entries(self, *, since: str, key: str | None = None) -> builtins.list[SpendEntry]:
        """The rows from day `since` on (of `key` only, when given)."""
        ...

    async def prune(self, *, before: str) -> int:
        """Drop the rows of days before `before`; returns how many."""
        ...

    async def close(self) -> None: ...
