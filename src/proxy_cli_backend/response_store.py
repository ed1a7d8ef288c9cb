"""A durable ResponseStore on stdlib sqlite3 (WAL): the Responses API's stored replies.

Its own database file beside the session database (`responses.sqlite3` in the state
directory), so neither schema's versioning constrains the other. As for sessions, one
worker thread owns the connection and each call is one transaction
(`sqlite_db.StoreDatabase`), and a call the database refuses (disk full, read-only)
raises ChatError(STORE_UNAVAILABLE).

Each row is one reply's own record and the id of the reply it continued
(`previous_id`): a chain of N replies is N rows, each the size of what it added, and
`chain` reads it back with one recursive query. Replies are bounded by idle time
(`sweep`) and by count (every `put` evicts the least recently used past the cap); a
reply is used when it is stored and whenever a later reply of its chain is stored or
its chain is read, so the links of a conversation in use stay together.
"""

from __future__ import annotations

import builtins
import os
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

from proxy_cli_backend.sqlite_db import StoreDatabase
from proxy_core import StoredResponse

T = TypeVar("T")

DATABASE_NAME = "responses.sqlite3"
DEFAULT_TTL_SECONDS = 7 * 86400
DEFAULT_MAX_RESPONSES = 10_000
# Each entry moves the schema from version i to i + 1 (see `sqlite_db`). Version 1:
# each row holds what its reply added, linked to the reply it continued.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # `data` last: refreshing `used_at` rewrites the row's first page only.
        """CREATE TABLE responses (
            namespace TEXT NOT NULL,
            id TEXT NOT NULL,
            previous_id TEXT,
            created_at REAL NOT NULL,
            used_at REAL NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (namespace, id)
        )""",
        "CREATE INDEX responses_by_use ON responses (used_at)",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)

# The rows of a chain, newest first, from the reply (namespace, id): each step follows
# `previous_id` within the namespace, up to `depth` rows (which also ends a cycle).
_CHAIN = """WITH RECURSIVE link(rid, namespace, previous_id, depth) AS (
        SELECT rowid, namespace, previous_id, 1 FROM responses WHERE namespace = ? AND id = ?
        UNION ALL
        SELECT r.rowid, r.namespace, r.previous_id, link.depth + 1
        FROM responses AS r JOIN link ON r.namespace = link.namespace AND r.id = link.previous_id
        WHERE link.depth < ?
    )"""


class ResponseStoreError(RuntimeError):
    """The response database cannot be opened; the message says what to do."""


class SqliteResponseStore:
    """Stored replies in one SQLite file (or `:memory:`).

    `ttl_seconds` is the idle time after which `sweep()` drops a reply (None keeps
    them); `max_responses` caps their count, enforced on every put by dropping the
    least recently used. `clock` gives wall-clock seconds, the time of each use.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        ttl_seconds: float | None = DEFAULT_TTL_SECONDS,
        max_responses: int = DEFAULT_MAX_RESPONSES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_responses < 1:
            raise ValueError("max_responses must be at least 1")
        if ttl_seconds is not None and ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive (or None for no expiry)")
        self.path = str(path)
        self.ttl_seconds = ttl_seconds
        self.max_responses = max_responses
        self._clock = clock
        try:
            self._database = StoreDatabase(
                self.path,
                _MIGRATIONS,
                what="response database",
                flag="--responses-db",
                too_new=ResponseStoreError,
            )
        except (OSError, sqlite3.Error) as error:
            raise ResponseStoreError(
                f"Cannot open the response database {self.path}: {error}. Make its directory "
                "writable, or choose another file with --responses-db (`:memory:` keeps "
                "stored responses until the server stops)."
            ) from error

    async def get(self, response_id: str, namespace: str) -> StoredResponse | None:
        return await self._call(_get, response_id, namespace)

    async def chain(
        self, response_id: str, namespace: str, *, limit: int
    ) -> builtins.list[StoredResponse]:
        """The reply and its ancestors, oldest first (at most `limit`), all used now."""
        return await self._call(_chain, response_id, namespace, limit, self._clock())

    async def put(self, response: StoredResponse) -> None:
        """Insert or replace a reply and use its chain, then drop the least recently
        used past the cap."""
        await self._call(_put, response, self._clock(), self.max_responses)

    async def delete(self, response_id: str, namespace: str) -> bool:
        return await self._call(_delete, response_id, namespace)

    async def sweep(self) -> int:
        """Drop replies unused for longer than the TTL, then the least recently used
        past the cap; how many."""
        cutoff = None if self.ttl_seconds is None else self._clock() - self.ttl_seconds
        return await self._call(_sweep, cutoff, self.max_responses)

    async def close(self) -> None:
        """Close the database; later calls raise RuntimeError. Safe to call twice."""
        await self._database.close()

    async def _call(self, operation: Callable[..., T], *args: object) -> T:
        return await self._database.call(operation, *args)


def _row(namespace: str, row: tuple[Any, ...]) -> StoredResponse:
    """A reply from its columns `id, previous_id, created_at, data`."""
    response_id, previous_id, created_at, data = row
    return StoredResponse(response_id, namespace, float(created_at), bytes(data), previous_id)


def _get(db: sqlite3.Connection, response_id: str, namespace: str) -> StoredResponse | None:
    row = db.execute(
        "SELECT id, previous_id, created_at, data FROM responses WHERE namespace = ? AND id = ?",
        (namespace, response_id),
    ).fetchone()
    return None if row is None else _row(namespace, row)


def _chain(
    db: sqlite3.Connection, response_id: str, namespace: str, limit: int, now: float
) -> list[StoredResponse]:
    if limit < 1:
        return []
    rows = db.execute(
        f"{_CHAIN} SELECT r.id, r.previous_id, r.created_at, r.data "
        "FROM link JOIN responses AS r ON r.rowid = link.rid ORDER BY link.depth DESC",
        (namespace, response_id, limit),
    ).fetchall()
    _use(db, namespace, response_id, limit, now)
    return [_row(namespace, row) for row in rows]


def _use(db: sqlite3.Connection, namespace: str, response_id: str, limit: int, now: float) -> None:
    """Mark the reply and its ancestors (up to `limit` of them) used at `now`."""
    db.execute(
        f"{_CHAIN} UPDATE responses SET used_at = ? WHERE rowid IN (SELECT rid FROM link)",
        (namespace, response_id, limit, now),
    )


def _put(db: sqlite3.Connection, response: StoredResponse, now: float, cap: int) -> None:
    db.execute(
        "INSERT OR REPLACE INTO responses "
        "(namespace, id, previous_id, created_at, used_at, data) VALUES (?, ?, ?, ?, ?, ?)",
        (
            response.namespace,
            response.id,
            response.previous_id,
            response.created_at,
            now,
            response.data,
        ),
    )
    if response.previous_id is not None:
        # The whole chain is used: as deep as the cap lets it be (a chain cannot hold
        # more rows than the table), which also ends a cycle.
        _use(db, response.namespace, response.previous_id, cap, now)
    _evict(db, cap)


def _delete(db: sqlite3.Connection, response_id: str, namespace: str) -> bool:
    cursor = db.execute(
        "DELETE FROM responses WHERE namespace = ? AND id = ?", (namespace, response_id)
    )
    return cursor.rowcount > 0


def _sweep(db: sqlite3.Connection, cutoff: float | None, cap: int) -> int:
    removed = 0
    if cutoff is not None:
        removed += db.execute("DELETE FROM responses WHERE used_at < ?", (cutoff,)).rowcount
    return removed + _evict(db, cap)


def _evict(db: sqlite3.Connection, cap: int) -> int:
    """Drop the least recently used replies past `cap` (of equally recent ones, the
    first stored: a chain's oldest links); how many."""
    (count,) = db.execute("SELECT COUNT(*) FROM responses").fetchone()
    if count <= cap:
        return 0
    return db.execute(
        "DELETE FROM responses WHERE rowid IN "
        "(SELECT rowid FROM responses ORDER BY used_at, rowid LIMIT ?)",
        (count - cap,),
    ).rowcount
