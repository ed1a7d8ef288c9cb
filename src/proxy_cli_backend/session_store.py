"""A durable SessionStore on stdlib sqlite3 (WAL), so conversations survive a restart.

One connection, owned by one worker thread (`sqlite_db.StoreDatabase`): every call
runs there in order, so the event loop never blocks on the disk and no two statements
ever interleave. Each write is one transaction, so a crash (or a kill) mid-write
leaves the previous good record. A call the database refuses (disk full, read-only,
I/O error) raises ChatError(STORE_UNAVAILABLE), which the service reports as such. The
schema is versioned with `PRAGMA user_version`; migrations run at open.

The most recently used records are kept in memory as well (`_RecentRecords`), so a
follow-up turn finds its conversation's record without waiting on the worker thread;
every write still goes to the file before it returns.
"""

from __future__ import annotations

import builtins
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import msgspec

from proxy_cli_backend.config import default_state_dir
from proxy_cli_backend.sqlite_db import StoreDatabase
from proxy_core import SessionRecord

T = TypeVar("T")

DEFAULT_TTL_SECONDS = 7 * 86400
DEFAULT_MAX_SESSIONS = 10_000
DATABASE_NAME = "sessions.sqlite3"
REMEMBERED_RECORDS = 256
"""Records kept in memory as well, the most recently read or written: a follow-up
turn reads its conversation's record from there, with no trip to the database's
worker thread before it starts."""

# Each entry moves the schema from version i to i + 1; the list index is the source
# version. Version 1 was the first layout; version 2 added the turn count, the
# backend's resume point and the recency index that eviction and listing use; version 3
# the backend ids of the client tool calls a reply ended with (NULL: none); version 4
# the backend's reading of what the CLI session has cost so far (NULL: none); version 5
# the index by CLI session id, which `references` asks after every discarded session
# and `forget`'s callers by id (without it, each was a scan of every record).
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE sessions (
            key TEXT PRIMARY KEY NOT NULL,
            cli_session_id TEXT NOT NULL,
            model TEXT NOT NULL,
            system_hash TEXT NOT NULL,
            fingerprints BLOB NOT NULL,
            created_at REAL NOT NULL,
            last_used_at REAL NOT NULL
        )""",
    ),
    (
        "ALTER TABLE sessions ADD COLUMN resume_point TEXT",
        "ALTER TABLE sessions ADD COLUMN turns INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX sessions_by_last_use ON sessions (last_used_at)",
    ),
    ("ALTER TABLE sessions ADD COLUMN pending_calls BLOB",),
    ("ALTER TABLE sessions ADD COLUMN meter TEXT",),
    ("CREATE INDEX sessions_by_cli_session ON sessions (cli_session_id)",),
)
SCHEMA_VERSION = len(_MIGRATIONS)

_FIELDS = (
    "key",
    "cli_session_id",
    "model",
    "system_hash",
    "fingerprints",
    "created_at",
    "last_used_at",
    "resume_point",
    "turns",
    "pending_calls",
    "meter",
)
_COLUMNS = ", ".join(_FIELDS)
_PLACEHOLDERS = ", ".join("?" for _ in _FIELDS)
_ENCODER = msgspec.msgpack.Encoder()
_FINGERPRINTS = msgspec.msgpack.Decoder(tuple[str, ...])


class SessionStoreError(RuntimeError):
    """The session database cannot be opened; the message says what to do."""


class SchemaTooNewError(SessionStoreError):
    """The database was written by a newer version of this program."""


def default_database_path() -> Path:
    """`$XDG_STATE_HOME/claude-max-api-proxy/sessions.sqlite3`, else under ~/.local/state."""
    return Path(default_state_dir()) / DATABASE_NAME


class SqliteSessionStore:
    """Session records in one SQLite file (or `:memory:`).

    `ttl_seconds` is the idle time after which `sweep()` drops a record (None keeps
    records forever); `max_sessions` caps the record count, enforced on every put by
    evicting the least recently used. `clock` gives wall-clock seconds, as the
    records' `last_used_at` does.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        ttl_seconds: float | None = DEFAULT_TTL_SECONDS,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        if ttl_seconds is not None and ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive (or None for no expiry)")
        self.path = str(default_database_path() if path is None else path)
        self.ttl_seconds = ttl_seconds
        self.max_sessions = max_sessions
        self._clock = clock
        # The connection is opened here, so a bad path or a too-new schema fails at
        # startup; afterwards only the single worker thread touches it.
        try:
            self._database = StoreDatabase(
                self.path,
                _MIGRATIONS,
                what="session database",
                flag="--sessions-db",
                too_new=SchemaTooNewError,
            )
        except (OSError, sqlite3.Error) as error:
            raise SessionStoreError(
                f"Cannot open the session database {self.path}: {error}. Make its directory "
                "writable, or choose another file with --sessions-db (`:memory:` keeps "
                "sessions until the server stops)."
            ) from error
        self._recent = _RecentRecords(REMEMBERED_RECORDS)

    # -- the SessionStore port ------------------------------------------------

    async def get(self, key: str) -> SessionRecord | None:
        remembered = self._recent.get(key)
        if remembered is not None and not self._database.closed:
            return remembered
        return await self._call(_get, key, after=lambda found: self._recent.keep(key, found))

    async def put(self, record: SessionRecord) -> None:
        """Insert or replace a record, then evict the least recently used past the cap."""
        await self._call(
            _put, record, self.max_sessions, after=lambda evicted: self._recent.put(record, evicted)
        )

    async def delete(self, key: str) -> SessionRecord | None:
        """Remove and return a record, or None when there was none."""
        return await self._call(_delete, key, after=lambda _: self._recent.drop(key))

    async def list(
        self, limit: int = 100, offset: int = 0, *, prefix: str = ""
    ) -> tuple[builtins.list[SessionRecord], int]:
        """A page of the records whose key starts with `prefix`, most recently used
        first, and how many such records there are."""
        # SQLite integers are 64-bit: a larger page bound means "all of them".
        return await self._call(_list, _bounded(limit), _bounded(offset), prefix)

    async def clear(self, *, prefix: str = "") -> builtins.list[SessionRecord]:
        """Remove and return every record whose key starts with `prefix`."""
        return await self._call(_clear, prefix, after=lambda _: self._recent.drop_prefix(prefix))

    async def count(self) -> int:
        return await self._call(_count)

    async def cli_session_ids(self) -> builtins.set[str]:
        """Every CLI session id a record points to (one column, no record decoding)."""
        return await self._call(_cli_session_ids)

    async def references(self, cli_session_id: str) -> bool:
        """Whether some record points to this CLI session (stops at the first one)."""
        return await self._call(_references, cli_session_id)

    async def sweep(self) -> int:
        """Drop records idle longer than the TTL, then the least recently used past the cap.

        Returns how many records were dropped.
        """
        cutoff = None if self.ttl_seconds is None else self._clock() - self.ttl_seconds
        return await self._call(_sweep, cutoff, self.max_sessions, after=self._recent.dropped)

    async def close(self) -> None:
        """Close the database; later calls raise RuntimeError. Safe to call twice."""
        await self._database.close()

    # -- internals ------------------------------------------------------------

    async def _call(
        self,
        operation: Callable[..., T],
        *args: object,
        after: Callable[[T], None] | None = None,
    ) -> T:
        return await self._database.call(operation, *args, after=after)


class _RecentRecords:
    """The most recently read or written records, as the database holds them.

    Only the database's worker thread changes it, after each committed operation and
    before the next one, so it never runs ahead of or behind the file's own order of
    changes; a failed write changes nothing. Operations that drop records the store
    does not name one by one (eviction past the cap, the TTL sweep) forget them all.
    The server is the file's only writer (each instance has a state dir of its own,
    docs/deploy.md), so what it remembers stays true.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._records: OrderedDict[str, SessionRecord] = OrderedDict()
        self._lock = threading.Lock()  # readers run on event loops, writers on the worker

    def get(self, key: str) -> SessionRecord | None:
        with self._lock:
            found = self._records.get(key)
            if found is not None:
                self._records.move_to_end(key)
            return found

    def keep(self, key: str, record: SessionRecord | None) -> None:
        if record is not None:
            with self._lock:
                self._keep(key, record)

    def put(self, record: SessionRecord, evicted: int) -> None:
        with self._lock:
            if evicted:
                self._records.clear()
            self._keep(record.key, record)

    def _keep(self, key: str, record: SessionRecord) -> None:
        self._records[key] = record
        self._records.move_to_end(key)
        while len(self._records) > self._capacity:
            self._records.popitem(last=False)

    def drop(self, key: str) -> None:
        with self._lock:
            self._records.pop(key, None)

    def drop_prefix(self, prefix: str) -> None:
        with self._lock:
            for key in [k for k in self._records if k.startswith(prefix)]:
                del self._records[key]

    def dropped(self, count: int) -> None:
        if count:
            with self._lock:
                self._records.clear()


def _row(record: SessionRecord) -> tuple[object, ...]:
    return (
        record.key,
        record.cli_session_id,
        record.model,
        record.system_hash,
        _ENCODER.encode(record.fingerprints),
        record.created_at,
        record.last_used_at,
        record.resume_point,
        record.turns,
        _ENCODER.encode(record.pending_calls) if record.pending_calls else None,
        record.meter,
    )


def _record(row: tuple[object, ...]) -> SessionRecord:
    fields = dict(zip(_FIELDS, row, strict=True))
    packed = fields["fingerprints"]
    assert isinstance(packed, bytes)
    fields["fingerprints"] = _FINGERPRINTS.decode(packed)
    pending = fields["pending_calls"]
    assert pending is None or isinstance(pending, bytes)
    fields["pending_calls"] = () if pending is None else _FINGERPRINTS.decode(pending)
    # convert() checks every column's type, so a damaged row fails loudly here.
    return msgspec.convert(fields, SessionRecord)


def _get(db: sqlite3.Connection, key: str) -> SessionRecord | None:
    row = db.execute(f"SELECT {_COLUMNS} FROM sessions WHERE key = ?", (key,)).fetchone()
    return None if row is None else _record(row)


def _put(db: sqlite3.Connection, record: SessionRecord, cap: int) -> int:
    """Write the record; returns how many others were evicted past the cap."""
    db.execute(
        f"INSERT OR REPLACE INTO sessions ({_COLUMNS}) VALUES ({_PLACEHOLDERS})",
        _row(record),
    )
    return _evict_beyond(db, cap, keep=record.key)


def _delete(db: sqlite3.Connection, key: str) -> SessionRecord | None:
    record = _get(db, key)
    if record is not None:
        db.execute("DELETE FROM sessions WHERE key = ?", (key,))
    return record


_MAX_SQLITE_INT = 2**63 - 1
# Keys that start with a prefix: compared with substr, not LIKE, so that `%` and `_`
# in a key are plain characters.
_WITH_PREFIX = "substr(key, 1, ?) = ?"


def _bounded(value: int) -> int:
    return min(max(0, value), _MAX_SQLITE_INT)


def _list(
    db: sqlite3.Connection, limit: int, offset: int, prefix: str
) -> tuple[list[SessionRecord], int]:
    match = (len(prefix), prefix)
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM sessions WHERE {_WITH_PREFIX} "
        "ORDER BY last_used_at DESC, key LIMIT ? OFFSET ?",
        (*match, limit, offset),
    ).fetchall()
    (total,) = db.execute(f"SELECT COUNT(*) FROM sessions WHERE {_WITH_PREFIX}", match).fetchone()
    return [_record(row) for row in rows], int(total)


def _clear(db: sqlite3.Connection, prefix: str) -> list[SessionRecord]:
    match = (len(prefix), prefix)
    rows = db.execute(f"SELECT {_COLUMNS} FROM sessions WHERE {_WITH_PREFIX}", match).fetchall()
    db.execute(f"DELETE FROM sessions WHERE {_WITH_PREFIX}", match)
    return [_record(row) for row in rows]


def _count(db: sqlite3.Connection) -> int:
    (count,) = db.execute("SELECT COUNT(*) FROM sessions").fetchone()
    return int(count)


def _cli_session_ids(db: sqlite3.Connection) -> set[str]:
    return {str(row[0]) for row in db.execute("SELECT DISTINCT cli_session_id FROM sessions")}


def _references(db: sqlite3.Connection, cli_session_id: str) -> bool:
    query = "SELECT 1 FROM sessions WHERE cli_session_id = ? LIMIT 1"
    return db.execute(query, (cli_session_id,)).fetchone() is not None


def _sweep(db: sqlite3.Connection, cutoff: float | None, cap: int) -> int:
    expired = 0
    if cutoff is not None:
        expired = db.execute("DELETE FROM sessions WHERE last_used_at < ?", (cutoff,)).rowcount
    return expired + _evict_beyond(db, cap, keep=None)


def _evict_beyond(db: sqlite3.Connection, cap: int, *, keep: str | None) -> int:
    excess = _count(db) - cap
    if excess <= 0:
        return 0
    # The record just written is never its own victim, even with an old timestamp.
    cursor = db.execute(
        "DELETE FROM sessions WHERE key IN (SELECT key FROM sessions WHERE key IS NOT ? "
        "ORDER BY last_used_at, key LIMIT ?)",
        (keep, excess),
    )
    return cursor.rowcount
