"""Real failures of the SQLite session store, caused through SQLite itself.

Tests run as root in CI, where file permissions stop no write, so a full disk and a
read-only database are made on the store's own connection (through its worker, the
only thread that may touch it): `PRAGMA max_page_count` caps the file at its current
size, so SQLite answers SQLITE_FULL ("database or disk is full") as on a full disk;
`PRAGMA query_only` makes it refuse every transaction ("attempt to write a readonly
database") as a read-only file does.
"""

from __future__ import annotations

import sqlite3

from proxy_cli_backend.session_store import SqliteSessionStore
from proxy_core import ChatError, FailureReason, SessionRecord

# Far more than one page of the smallest records needs; reaching it means the cap failed.
_MOST_BALLAST = 10_000


def _cap_pages(db: sqlite3.Connection) -> None:
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.execute(f"PRAGMA max_page_count = {int(pages)}")


def _query_only(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA query_only = ON")


def ballast(n: int) -> SessionRecord:
    """A record as small as a record gets (under any real record's growth per turn)."""
    return SessionRecord(
        key=f"ballast-{n:05d}",
        cli_session_id="",
        model="",
        system_hash="",
        fingerprints=(),
        created_at=0.0,
        last_used_at=0.0,
    )


async def fill_up(store: SqliteSessionStore) -> int:
    """Fill the database as a full disk would: no page can be added, and the pages there
    are full to within one ballast record. Returns how many ballast records fit.

    A later turn's record grows by two fingerprints (66 bytes), more than the room a
    ballast record (about 40 bytes) could leave, so writing it fails with SQLITE_FULL.
    """
    await store._call(_cap_pages)
    for n in range(_MOST_BALLAST):
        try:
            await store.put(ballast(n))
        except ChatError as error:
            if error.reason is not FailureReason.STORE_UNAVAILABLE or "full" not in error.message:
                raise AssertionError(f"filling the store failed otherwise: {error!r}") from error
            return n
    raise AssertionError("the capped session database never filled up")


async def make_read_only(store: SqliteSessionStore) -> None:
    """From now on every call of the store fails as on a read-only database."""
    await store._call(_query_only)
