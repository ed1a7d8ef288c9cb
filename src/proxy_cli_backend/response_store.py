"""A durable ResponseStore on stdlib sqlite3 (WAL): the Responses API's stored replies.

Its own database file beside the session database (`responses.sqlite3` in the state
directory), so neither schema's versioning constrains the other. As in
`session_store`, one worker thread owns the connection, each call is one transaction,
and a call the database refuses (disk full, read-only) raises
ChatError(STORE_UNAVAILABLE). Replies are bounded by age (`sweep`) and by count
(every `put` evicts the oldest past the cap).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from proxy_core import ChatError, FailureReason, StoredResponse

T = TypeVar("T")

MEMORY = ":memory:"
DATABASE_NAME = "responses.sqlite3"
DEFAULT_TTL_SECONDS = 7 * 86400
DEFAULT_MAX_RESPONSES = 10_000
SCHEMA_VERSION = 1

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS responses (
        namespace TEXT NOT NULL,
        id TEXT NOT NULL,
        created_at REAL NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (namespace, id)
    )""",
    "CREATE INDEX IF NOT EXISTS responses_by_age ON responses (created_at)",
)


class ResponseStoreError(RuntimeError):
    """The response database cannot be opened; the message says what to do."""


class SqliteResponseStore:
    """Stored replies in one SQLite file (or `:memory:`).

    `ttl_seconds` is the age after which `sweep()` drops a reply (None keeps them);
    `max_responses` caps their count, enforced on every put by dropping the oldest.
    `clock` gives wall-clock seconds, as `StoredResponse.created_at` does.
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
            self._db = _open(self.path)
        except (OSError, sqlite3.Error) as error:
            raise ResponseStoreError(
                f"Cannot open the response database {self.path}: {error}. Make its directory "
                "writable, or choose another file with --responses-db (`:memory:` keeps "
                "stored responses until the server stops)."
            ) from error
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="response-store")
        self._closed = False

    async def get(self, response_id: str, namespace: str) -> StoredResponse | None:
        return await self._call(_get, response_id, namespace)

    async def put(self, response: StoredResponse) -> None:
        """Insert or replace a reply, then drop the oldest past the cap."""
        await self._call(_put, response, self.max_responses)

    async def delete(self, response_id: str, namespace: str) -> bool:
        return await self._call(_delete, response_id, namespace)

    async def sweep(self) -> int:
        """Drop replies older than the TTL, then the oldest past the cap; how many."""
        cutoff = None if self.ttl_seconds is None else self._clock() - self.ttl_seconds
        return await self._call(_sweep, cutoff, self.max_responses)

    async def close(self) -> None:
        """Close the database; later calls raise RuntimeError. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._worker, self._db.close)
        self._worker.shutdown(wait=True)

    async def _call(self, operation: Callable[..., T], *args: object) -> T:
        if self._closed:
            raise RuntimeError("the response store is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._worker, _in_transaction, self._db, operation, args
            )
        except (sqlite3.Error, OSError) as error:
            raise ChatError(
                FailureReason.STORE_UNAVAILABLE,
                f"The response database {self.path} refused the operation: {error}.",
            ) from error


def _open(path: str) -> sqlite3.Connection:
    if path != MEMORY and not path.startswith("file:"):
        Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise ResponseStoreError(
                f"The response database has schema version {version}, newer than this "
                f"program's {SCHEMA_VERSION}: upgrade claude-max-api-proxy, or point "
                "--responses-db at another file."
            )
        for statement in _SCHEMA:
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        db.close()
        raise
    return db


def _in_transaction(
    db: sqlite3.Connection, operation: Callable[..., T], args: tuple[object, ...]
) -> T:
    db.execute("BEGIN IMMEDIATE")
    try:
        result = operation(db, *args)
        db.execute("COMMIT")
    except BaseException:
        # SQLite may have rolled back already (after SQLITE_FULL, say).
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise
    return result


def _get(db: sqlite3.Connection, response_id: str, namespace: str) -> StoredResponse | None:
    row = db.execute(
        "SELECT created_at, data FROM responses WHERE namespace = ? AND id = ?",
        (namespace, response_id),
    ).fetchone()
    if row is None:
        return None
    return StoredResponse(response_id, namespace, float(row[0]), bytes(row[1]))


def _put(db: sqlite3.Connection, response: StoredResponse, cap: int) -> None:
    db.execute(
        "INSERT OR REPLACE INTO responses (namespace, id, created_at, data) VALUES (?, ?, ?, ?)",
        (response.namespace, response.id, response.created_at, response.data),
    )
    _evict(db, cap)


def _delete(db: sqlite3.Connection, response_id: str, namespace: str) -> bool:
    cursor = db.execute(
        "DELETE FROM responses WHERE namespace = ? AND id = ?", (namespace, response_id)
    )
    return cursor.rowcount > 0


def _sweep(db: sqlite3.Connection, cutoff: float | None, cap: int) -> int:
    removed = 0
    if cutoff is not None:
        removed += db.execute("DELETE FROM responses WHERE created_at < ?", (cutoff,)).rowcount
    return removed + _evict(db, cap)


def _evict(db: sqlite3.Connection, cap: int) -> int:
    """Drop the oldest replies past `cap`; how many."""
    (count,) = db.execute("SELECT COUNT(*) FROM responses").fetchone()
    if count <= cap:
        return 0
    return db.execute(
        "DELETE FROM responses WHERE rowid IN "
        "(SELECT rowid FROM responses ORDER BY created_at, rowid LIMIT ?)",
        (count - cap,),
    ).rowcount
