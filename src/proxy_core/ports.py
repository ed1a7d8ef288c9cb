"""Ports: what the service needs from the outside world, as protocols."""

from __future__ import annotations

import builtins
from collections.abc import AsyncGenerator
from typing import Protocol

import msgspec

from proxy_core.events import Event
from proxy_core.ledger import SessionRecord
from proxy_core.planning import TurnPlan


class BackendStatus(msgspec.Struct, frozen=True):
    """A runner's readiness, for /health and `doctor`.

    `details` carries backend-specific facts (binary path, live processes, RSS, ...).
    """

    ready: bool
    name: str
    version: str | None = None
    problems: tuple[str, ...] = ()
    active_processes: int = 0
    details: dict[str, object] = msgspec.field(default_factory=dict)


class Runner(Protocol):
    """Runs one planned turn and yields its events, ending with Finished or Failed.

    `run` returns an async generator; a caller that stops early must `aclose()` it,
    which cancels the turn and releases everything it holds (processes included).
    Failures are yielded as `Failed` events, not raised.
    """

    def run(self, plan: TurnPlan) -> AsyncGenerator[Event, None]: ...

    def status(self) -> BackendStatus: ...

    async def forget(self, cli_session_id: str, *, purge: bool = False) -> None:
        """Drop any live state for a CLI session (after a reset or delete).

        With `purge`, also delete what the backend stored of it (e.g. transcripts).
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
        self, limit: int = 100, offset: int = 0
    ) -> tuple[builtins.list[SessionRecord], int]:
        """A page of records, most recently used first, and the total count."""
        ...

    async def clear(self) -> builtins.list[SessionRecord]:
        """Remove and return every record."""
        ...

    async def count(self) -> int: ...

    async def close(self) -> None: ...
