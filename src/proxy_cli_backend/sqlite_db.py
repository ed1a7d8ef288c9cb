"""What the SQLite stores share: a database file opened in WAL mode with a versioned
schema, and the one worker thread that owns its connection.

Every call runs on that thread, in order, so the event loop never blocks on the disk
and no two statements interleave. Each call is one transaction (`BEGIN IMMEDIATE`), so
a crash or a kill mid-write leaves the previous good state. A call the database
refuses (disk full, read-only, I/O error) raises ChatError(STORE_UNAVAILABLE) with a
message naming the database and the flag that chooses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from proxy_core import ChatError, FailureReason

T = TypeVar("T")

MEMORY = ":memory:"

Migrations = Sequence[Sequence[str]]
"""Entry i moves a schema from version i to i + 1 (`PRAGMA user_version`)."""


class StoreDatabase:
    """One SQLite file (or `:memory:`), its connection owned by one worker thread.

    Opening creates the file's directory (mode 0700) and brings the schema to
    `len(migrations)`; it raises OSError or sqlite3.Error when the file cannot be
    used, and `too_new(message)` when a newer program wrote it. `what` names the
    database in messages ("session database"), `flag` the setting that chooses it.
    """

    def __init__(
        self,
        path: str,
        migrations: Migrations,
        *,
        what: str,
        flag: str,
        too_new: Callable[[str], Exception],
    ) -> None:
        self.path = path
        self.what = what
        self.flag = flag
        self.connection = _open(
            path, migrations, lambda found: too_new(self._too_new(found, len(migrations)))
        )
        thread = what.replace(" ", "-")
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread)
        self._closed = False

    def _too_new(self, found: int, ours: int) -> str:
        return (
            f"The {self.what} has schema version {found}, newer than this program's "
            f"{ours}: upgrade claude-max-api-proxy, or point {self.flag} at another file."
        )

    @property
    def closed(self) -> bool:
        return self._closed

    async def call(
        self,
        operation: Callable[..., T],
        *args: object,
        after: Callable[[T], None] | None = None,
    ) -> T:
        """Run `operation(connection, *args)` in one transaction on the worker thread.

        `after(result)` runs there too, once the transaction has committed and before
        the next call starts: what it keeps follows the database, in the order of the
        database's own changes.
        """
        if self._closed:
            raise RuntimeError(f"the {self.what} is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._worker, _committed, self.connection, operation, args, after
            )
        except (sqlite3.Error, OSError) as error:
            raise ChatError(
                FailureReason.STORE_UNAVAILABLE,
                f"The {self.what} {self.path} ({self.flag}) refused the operation: {error}.",
            ) from error

    async def close(self) -> None:
        """Close the connection; later calls raise RuntimeError. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._worker, self.connection.close)
        self._worker.shutdown(wait=True)


def _open(
    path: str, migrations: Migrations, too_new: Callable[[int], Exception]
) -> sqlite3.Connection:
    if path != MEMORY and not path.startswith("file:"):
        Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is
    # exactly one store operation. The timeout waits out another process's write.
    db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
        in_transaction(db, _migrate, (migrations, too_new))
    except BaseException:
        db.close()
        raise
    return db


def _migrate(
    db: sqlite3.Connection, migrations: Migrations, too_new: Callable[[int], Exception]
) -> None:
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > len(migrations):
        raise too_new(version)
    for statements in migrations[version:]:
        for statement in statements:
            db.execute(statement)
    db.execute(f"PRAGMA user_version = {len(migrations)}")


def _committed(
    db: sqlite3.Connection,
    operation: Callable[..., T],
    args: tuple[object, ...],
    after: Callable[[T], None] | None,
) -> T:
    result = in_transaction(db, operation, args)
    if after is not None:
        after(result)
    return result


def in_transaction(
    db: sqlite3.Connection, operation: Callable[..., T], args: tuple[object, ...]
) -> T:
    """`operation(db, *args)` as one transaction: committed, or rolled back on any error."""
    # IMMEDIATE takes the write lock up front, so a read-then-write never has to
    # upgrade (which could deadlock with another process) and sees a stable state.
    db.execute("BEGIN IMMEDIATE")
    try:
        result = operation(db, *args)
        db.execute("COMMIT")
    except BaseException:
        # SQLite may have rolled back already (e.g. after SQLITE_FULL); a failing
        # ROLLBACK must not hide the error that caused it.
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise
    return result
