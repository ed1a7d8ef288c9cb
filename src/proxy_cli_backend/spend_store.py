"""A durable SpendStore on stdlib sqlite3 (WAL): what each caller spent, per model and
per UTC day, so budgets and `/v1/usage` survive restarts.

Its own database file beside the session and response databases (`spend.sqlite3` in
the state directory, `--spend-db`): spend is money, kept for a year and more, so it
must outlive a session database that is reset, moved to `:memory:` or swept, and
neither schema's versioning constrains the other. As for the other stores, one worker
thread owns the connection and each call is one transaction
(`sqlite_db.StoreDatabase`); a call the database refuses (disk full, read-only)
raises ChatError(STORE_UNAVAILABLE).

One row per (key, day, model) holds that day's sums: a year of a dozen keys using
three models is some thirteen thousand rows; `prune` drops the days past retention.
"""

from __future__ import annotations

import builtins
import os
import sqlite3
from collections.abc import Sequence
from typing import Any

from proxy_cli_backend.sqlite_db import StoreDatabase
from proxy_core import SpendEntry

DATABASE_NAME = "spend.sqlite3"
# Each entry moves the schema from version i to i + 1 (see `sqlite_db`).
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE spend (
            key TEXT NOT NULL,
            day TEXT NOT NULL,
            model TEXT NOT NULL,
            requests INTEGER NOT NULL DEFAULT 0,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cache_read_tokens INTEGER NOT NULL DEFAULT 0,
            cache_creation_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL NOT NULL DEFAULT 0,
            PRIMARY KEY (key, day, model)
        )""",
        "CREATE INDEX spend_by_day ON spend (day)",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)

_COLUMNS = (
    "key, day, model, requests, input_tokens, output_tokens, cache_read_tokens, "
    "cache_creation_tokens, cost_usd"
)
_ADD = f"""INSERT INTO spend ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (key, day, model) DO UPDATE SET
        requests = requests + excluded.requests,
        input_tokens = input_tokens + excluded.input_tokens,
        output_tokens = output_tokens + excluded.output_tokens,
        cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
        cache_creation_tokens = cache_creation_tokens + excluded.cache_creation_tokens,
        cost_usd = cost_usd + excluded.cost_usd"""


class SpendStoreError(RuntimeError):
    """The spend database cannot be opened; the message says what to do."""


class SqliteSpendStore:
    """Spend rows in one SQLite file (or `:memory:`)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        try:
            self._database = StoreDatabase(
                self.path,
                _MIGRATIONS,
                what="spend database",
                flag="--spend-db",
                too_new=SpendStoreError,
            )
        except (OSError, sqlite3.Error) as error:
            raise SpendStoreError(
                f"Cannot open the spend database {self.path}: {error}. Make its directory "
                "writable, or choose another file with --spend-db (`:memory:` keeps spend "
                "and budgets only until the server stops)."
            ) from error

    async def add(self, entries: Sequence[SpendEntry]) -> None:
        await self._database.call(_add, list(entries))

    async def entries(self, *, since: str, key: str | None = None) -> builtins.list[SpendEntry]:
        return await self._database.call(_entries, since, key)

    async def prune(self, *, before: str) -> int:
        return await self._database.call(_prune, before)

    async def close(self) -> None:
        """Close the database; later calls raise RuntimeError. Safe to call twice."""
        await self._database.close()


def _add(db: sqlite3.Connection, entries: list[SpendEntry]) -> None:
    db.executemany(
        _ADD,
        [
            (
                e.key,
                e.day,
                e.model,
                e.requests,
                e.input_tokens,
                e.output_tokens,
                e.cache_read_tokens,
                e.cache_creation_tokens,
                e.cost_usd,
            )
            for e in entries
        ],
    )


def _entry(row: tuple[Any, ...]) -> SpendEntry:
    key, day, model, requests, uncached, output, cache_read, cache_creation, cost = row
    return SpendEntry(
        key=key,
        day=day,
        model=model,
        requests=requests,
        input_tokens=uncached,
        output_tokens=output,
        cache_read_tokens=cache_read,
        cache_creation_tokens=cache_creation,
        cost_usd=cost,
    )


def _entries(db: sqlite3.Connection, since: str, key: str | None) -> list[SpendEntry]:
    if key is None:
        rows = db.execute(f"SELECT {_COLUMNS} FROM spend WHERE day >= ?", (since,))
    else:
        rows = db.execute(f"SELECT {_COLUMNS} FROM spend WHERE day >= ? AND key = ?", (since, key))
    return [_entry(row) for row in rows]


def _prune(db: sqlite3.Connection, before: str) -> int:
    return db.execute("DELETE FROM spend WHERE day < ?", (before,)).rowcount
