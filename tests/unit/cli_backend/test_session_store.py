"""SqliteSessionStore: the SessionStore port on a SQLite file, its lifecycle and its safety."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
import textwrap
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from proxy_cli_backend.session_store import (
    REMEMBERED_RECORDS,
    SCHEMA_VERSION,
    SchemaTooNewError,
    SqliteSessionStore,
    default_database_path,
)
from proxy_core import ChatError, FailureReason, InMemorySessionStore, SessionRecord, SessionStore
from tests.support.store_faults import fill_up, make_read_only

DAY = 86400.0


def record(key: str, *, used: float = 1000.0, n: int = 2, tag: str = "") -> SessionRecord:
    """A record whose fields all carry `tag`, so a mixed-up write would show."""
    return SessionRecord(
        key=key,
        cli_session_id=f"cli-{key}-{tag}",
        model=f"sonnet{tag}",
        system_hash=f"sys-{tag}",
        fingerprints=tuple(f"fp-{tag}-{i}" for i in range(n)),
        created_at=used - 10,
        last_used_at=used,
        resume_point=f"rp-{tag}" if tag else None,
        turns=n // 2,
    )


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "sessions.sqlite3"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteSessionStore]:
    opened = SqliteSessionStore(db_path)
    yield opened
    await opened.close()


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


# -- the port -----------------------------------------------------------------


async def test_a_put_record_reads_back_equal(store: SqliteSessionStore) -> None:
    saved = record("h:a", tag="x", n=5)
    await store.put(saved)
    assert await store.get("h:a") == saved


async def test_the_backends_cost_reading_reads_back_with_its_record(
    store: SqliteSessionStore,
) -> None:
    saved = msgspec.structs.replace(record("h:a", tag="x"), meter='{"cost_usd":0.5}')
    await store.put(saved)
    assert await store.get("h:a") == saved


async def test_an_unknown_key_reads_as_none(store: SqliteSessionStore) -> None:
    assert await store.get("h:nobody") is None


async def test_a_put_replaces_the_record_of_the_same_key(store: SqliteSessionStore) -> None:
    await store.put(record("h:a", tag="old"))
    await store.put(record("h:a", tag="new", n=4))
    assert await store.get("h:a") == record("h:a", tag="new", n=4)
    assert await store.count() == 1


async def test_delete_returns_the_record_and_removes_it(store: SqliteSessionStore) -> None:
    await store.put(record("h:a", tag="x"))
    assert await store.delete("h:a") == record("h:a", tag="x")
    assert await store.get("h:a") is None
    assert await store.delete("h:a") is None


async def test_list_pages_most_recently_used_first_with_the_total(
    store: SqliteSessionStore,
) -> None:
    for i in range(5):
        await store.put(record(f"h:{i}", used=1000.0 + i))
    page, total = await store.list(limit=2, offset=1)
    assert [r.key for r in page] == ["h:3", "h:2"]
    assert total == 5
    assert (await store.list(limit=10, offset=10)) == ([], 5)


async def test_clear_returns_every_record_and_leaves_none(store: SqliteSessionStore) -> None:
    await store.put(record("h:a"))
    await store.put(record("u:b"))
    removed = await store.clear()
    assert sorted(r.key for r in removed) == ["h:a", "u:b"]
    assert await store.count() == 0


@pytest.mark.parametrize("kind", ["sqlite", "in-memory fake"])
async def test_list_and_clear_keep_to_the_records_under_a_prefix(kind: str) -> None:
    opened: SessionStore = (
        SqliteSessionStore(":memory:") if kind == "sqlite" else (InMemorySessionStore())
    )
    keys = ["ns:a:h:x", "ns:a:u:y", "ns:ab:h:x", "h:x", "ns:b:h:x%_"]
    for used, key in enumerate(keys):
        await opened.put(record(key, used=1000.0 + used))
    page, total = await opened.list(prefix="ns:a:")
    assert [r.key for r in page] == ["ns:a:u:y", "ns:a:h:x"]
    assert total == 2
    page, total = await opened.list(limit=1, offset=1, prefix="ns:a:")
    assert ([r.key for r in page], total) == (["ns:a:h:x"], 2)
    assert (await opened.list(prefix="ns:b:h:x%"))[1] == 1
    assert sorted(r.key for r in await opened.clear(prefix="ns:a:")) == ["ns:a:h:x", "ns:a:u:y"]
    assert sorted(r.key for r in (await opened.list())[0]) == ["h:x", "ns:ab:h:x", "ns:b:h:x%_"]
    await opened.close()


@pytest.mark.parametrize("kind", ["sqlite", "in-memory fake"])
async def test_references_tells_whether_some_record_points_to_a_cli_session(kind: str) -> None:
    opened: SessionStore = (
        SqliteSessionStore(":memory:") if kind == "sqlite" else (InMemorySessionStore())
    )
    # Two records share one CLI session; the point query must agree with the full set.
    await opened.put(record("h:a", tag="shared"))
    await opened.put(msgspec.structs.replace(record("h:b"), cli_session_id="cli-h:a-shared"))
    await opened.put(record("h:c", tag="other"))
    assert await opened.references("cli-h:a-shared")
    assert await opened.references("cli-h:c-other")
    assert not await opened.references("cli-h:nobody-")
    assert not await opened.references("cli-h:a")  # a prefix of an id is not the id
    assert await opened.cli_session_ids() == {"cli-h:a-shared", "cli-h:c-other"}
    await opened.delete("h:a")
    assert await opened.references("cli-h:a-shared")  # h:b still points to it
    await opened.delete("h:b")
    assert not await opened.references("cli-h:a-shared")
    await opened.close()


async def test_an_offset_beyond_sqlites_integers_is_an_empty_page(
    store: SqliteSessionStore,
) -> None:
    await store.put(record("a"))
    assert await store.list(limit=10**30, offset=10**30) == ([], 1)
    assert [r.key for r in (await store.list(limit=10**30))[0]] == ["a"]


async def test_an_in_memory_database_works() -> None:
    memory = SqliteSessionStore(":memory:")
    await memory.put(record("h:a", tag="m"))
    assert await memory.get("h:a") == record("h:a", tag="m")
    await memory.close()


async def test_a_closed_store_refuses_calls_and_closes_twice_quietly(
    store: SqliteSessionStore,
) -> None:
    await store.put(record("h:a"))  # remembered in memory too: still refused once closed
    await store.close()
    await store.close()
    with pytest.raises(RuntimeError, match="closed"):
        await store.get("h:a")


# -- the file -----------------------------------------------------------------


async def test_records_survive_closing_and_reopening_the_file(db_path: Path) -> None:
    first = SqliteSessionStore(db_path)
    await first.put(record("h:a", tag="kept", n=6))
    await first.close()
    second = SqliteSessionStore(db_path)
    assert await second.get("h:a") == record("h:a", tag="kept", n=6)
    await second.close()


async def test_the_file_uses_write_ahead_logging(store: SqliteSessionStore, db_path: Path) -> None:
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_default_file_lives_under_xdg_state_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_database_path() == tmp_path / "claude-max-api-proxy" / "sessions.sqlite3"


def test_without_xdg_state_home_the_file_lives_under_local_state(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    expected = tmp_path / ".local" / "state" / "claude-max-api-proxy" / "sessions.sqlite3"
    assert default_database_path() == expected


# -- schema versions ------------------------------------------------------------


def write_version_1_database(path: Path) -> None:
    """The first layout: no turn count, no resume point, no recency index."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE sessions (key TEXT PRIMARY KEY NOT NULL, cli_session_id TEXT NOT NULL,"
            " model TEXT NOT NULL, system_hash TEXT NOT NULL, fingerprints BLOB NOT NULL,"
            " created_at REAL NOT NULL, last_used_at REAL NOT NULL)"
        )
        packed = b"\x92\xa3fp1\xa3fp2"  # msgpack of ["fp1", "fp2"]
        db.execute(
            "INSERT INTO sessions VALUES ('h:old', 'cli-old', 'opus', 'sys', ?, 5.0, 6.0)",
            (packed,),
        )
        db.execute("PRAGMA user_version = 1")
    # sqlite3's context manager commits but does not close.
    sqlite3.connect(path).close()


async def test_opening_a_version_1_database_migrates_it_and_keeps_its_records(
    db_path: Path,
) -> None:
    write_version_1_database(db_path)
    migrated = SqliteSessionStore(db_path)
    assert await migrated.get("h:old") == SessionRecord(
        key="h:old",
        cli_session_id="cli-old",
        model="opus",
        system_hash="sys",
        fingerprints=("fp1", "fp2"),
        created_at=5.0,
        last_used_at=6.0,
        resume_point=None,
        turns=0,
    )
    await migrated.put(record("h:new", tag="t"))
    assert await migrated.get("h:new") == record("h:new", tag="t")
    await migrated.close()
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_finding_a_record_by_its_cli_session_uses_an_index(db_path: Path) -> None:
    write_version_1_database(db_path)
    await SqliteSessionStore(db_path).close()  # migrated to the current version
    with sqlite3.connect(db_path) as db:
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT 1 FROM sessions WHERE cli_session_id = ? LIMIT 1",
            ("cli-old",),
        ).fetchall()
    assert "sessions_by_cli_session" in " ".join(str(row[-1]) for row in plan)


def test_a_database_from_a_newer_version_is_refused_with_what_to_do(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaTooNewError, match="upgrade"):
        SqliteSessionStore(db_path)


# -- lifecycle: TTL and the cap -----------------------------------------------------


async def test_sweep_drops_records_idle_past_the_ttl_and_counts_them() -> None:
    clock = Clock(100 * DAY)
    store = SqliteSessionStore(":memory:", ttl_seconds=7 * DAY, clock=clock)
    await store.put(record("h:stale", used=clock.now - 8 * DAY))
    await store.put(record("h:fresh", used=clock.now - 6 * DAY))
    assert await store.sweep() == 1
    assert await store.get("h:stale") is None
    assert await store.get("h:fresh") is not None
    await store.close()


async def test_a_record_expires_once_the_clock_passes_its_ttl() -> None:
    clock = Clock(50 * DAY)
    store = SqliteSessionStore(":memory:", ttl_seconds=DAY, clock=clock)
    await store.put(record("h:a", used=clock.now))
    assert await store.sweep() == 0
    clock.now += DAY + 1
    assert await store.sweep() == 1
    assert await store.count() == 0
    await store.close()


async def test_without_a_ttl_sweep_keeps_idle_records() -> None:
    store = SqliteSessionStore(":memory:", ttl_seconds=None, clock=Clock(1e9))
    await store.put(record("h:ancient", used=1.0))
    assert await store.sweep() == 0
    await store.close()


async def test_a_put_past_the_cap_evicts_the_least_recently_used() -> None:
    store = SqliteSessionStore(":memory:", max_sessions=3)
    for key, used in (("h:b", 2.0), ("h:a", 1.0), ("h:c", 3.0), ("h:d", 4.0)):
        await store.put(record(key, used=used))
    page, total = await store.list()
    assert total == 3
    assert [r.key for r in page] == ["h:d", "h:c", "h:b"]
    await store.close()


async def test_the_record_being_put_is_never_evicted_by_its_own_put() -> None:
    store = SqliteSessionStore(":memory:", max_sessions=2)
    await store.put(record("h:a", used=10.0))
    await store.put(record("h:b", used=20.0))
    await store.put(record("h:old", used=1.0))
    assert await store.get("h:old") is not None
    assert await store.count() == 2
    await store.close()


async def test_sweep_trims_a_file_reopened_with_a_lower_cap(db_path: Path) -> None:
    big = SqliteSessionStore(db_path, max_sessions=10)
    for i in range(6):
        await big.put(record(f"h:{i}", used=float(i)))
    await big.close()
    small = SqliteSessionStore(db_path, max_sessions=4, ttl_seconds=None)
    assert await small.sweep() == 2
    page, _ = await small.list()
    assert [r.key for r in page] == ["h:5", "h:4", "h:3", "h:2"]
    await small.close()


# -- safety -------------------------------------------------------------------------


async def test_concurrent_tasks_and_threads_leave_whole_records_and_a_sound_file(
    db_path: Path,
) -> None:
    store = SqliteSessionStore(db_path, max_sessions=1000)
    keys = [f"h:k{i}" for i in range(8)]
    written: dict[str, set[SessionRecord]] = {k: set() for k in keys}
    written_lock = threading.Lock()

    async def writer(worker: int, rounds: int) -> None:
        for n in range(rounds):
            key = keys[(worker + n) % len(keys)]
            if n % 5 == 4:
                await store.delete(key)
                continue
            saved = record(key, used=1000.0 + n, n=1 + n % 7, tag=f"{worker}-{n}")
            with written_lock:
                written[key].add(saved)
            await store.put(saved)
            await store.get(key)

    def thread_writer(worker: int) -> None:
        # A thread with its own event loop shares the store with the main loop.
        asyncio.run(writer(worker, 25))

    threads = [threading.Thread(target=thread_writer, args=(100 + i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    await asyncio.gather(*(writer(i, 25) for i in range(16)))
    for thread in threads:
        await asyncio.to_thread(thread.join, 60)

    page, total = await store.list(limit=100)
    assert total == len(page) <= len(keys)
    for saved in page:
        assert saved in written[saved.key]
    await store.close()
    assert integrity(db_path) == "ok"


CRASHING_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from proxy_cli_backend.session_store import SqliteSessionStore
    from proxy_core import InMemorySessionStore, SessionRecord, SessionStore

    async def main() -> None:
        store = SqliteSessionStore(sys.argv[1])
        n = 0
        while True:
            n += 1
            await store.put(SessionRecord(
                key=f"h:{n % 3}", cli_session_id=f"c{n}", model="m", system_hash="s",
                fingerprints=tuple(f"{n}-{i}" for i in range(n % 50)),
                created_at=float(n), last_used_at=float(n), turns=n,
            ))
            if n == 20:
                print("writing", flush=True)

    asyncio.run(main())
    """
)


async def test_a_writer_killed_mid_write_leaves_whole_records(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASHING_WRITER, str(db_path), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), 60) == b"writing\n"
        await asyncio.sleep(0.2)
        child.send_signal(signal.SIGKILL)
    finally:
        if child.returncode is None:
            child.kill()
        await asyncio.wait_for(child.wait(), 30)

    reopened = SqliteSessionStore(db_path)
    page, total = await reopened.list()
    assert total == 3
    for saved in page:
        n = saved.turns
        assert saved.cli_session_id == f"c{n}"
        assert saved.fingerprints == tuple(f"{n}-{i}" for i in range(n % 50))
    await reopened.close()
    assert integrity(db_path) == "ok"


# -- a database that refuses --------------------------------------------------


async def test_a_full_database_refuses_writes_as_store_unavailable_and_keeps_reading(
    store: SqliteSessionStore,
) -> None:
    before = record("h:a", n=2, tag="before")
    await store.put(before)
    fitted = await fill_up(store)
    assert fitted > 0
    # The next turn: two more fingerprints, as the ledger writes them (32 hex digits).
    grown = msgspec.structs.replace(before, fingerprints=(*before.fingerprints, "a" * 32, "b" * 32))
    with pytest.raises(ChatError) as raised:
        await store.put(grown)
    assert raised.value.reason is FailureReason.STORE_UNAVAILABLE
    assert "database or disk is full" in raised.value.message
    assert store.path in raised.value.message
    # The failed write left the previous good record, and reads still work.
    assert await store.get("h:a") == before
    assert await store.count() == fitted + 1


@pytest.mark.parametrize(
    "call", ["get", "put", "delete", "list", "clear", "count", "references", "sweep"]
)
async def test_a_read_only_database_fails_every_call_as_store_unavailable(
    store: SqliteSessionStore, call: str
) -> None:
    await store.put(record("h:a"))
    await make_read_only(store)
    calls = {
        # A record read or written lately is answered from memory (below): one that
        # is not asks the database.
        "get": lambda: store.get("h:elsewhere"),
        "put": lambda: store.put(record("h:b")),
        "delete": lambda: store.delete("h:a"),
        "list": lambda: store.list(),
        "clear": lambda: store.clear(),
        "count": lambda: store.count(),
        "references": lambda: store.references("cli-h:a-"),
        "sweep": lambda: store.sweep(),
    }
    with pytest.raises(ChatError) as raised:
        await calls[call]()
    assert raised.value.reason is FailureReason.STORE_UNAVAILABLE
    assert "readonly" in raised.value.message


# -- records kept in memory ---------------------------------------------------------


class CountedCalls:
    """Counts the operations the store sends to its database's worker thread."""

    def __init__(self, store: SqliteSessionStore) -> None:
        self.count = 0
        database = store._database
        call = database.call

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await call(*args, **kwargs)

        database.call = counted  # type: ignore[method-assign]


async def test_a_record_just_written_or_read_is_read_without_asking_the_database(
    db_path: Path,
) -> None:
    first = SqliteSessionStore(db_path)
    await first.put(record("h:a", tag="x"))
    await first.close()
    store = SqliteSessionStore(db_path)
    calls = CountedCalls(store)
    assert await store.get("h:a") == record("h:a", tag="x")  # from the file
    assert calls.count == 1
    assert await store.get("h:a") == record("h:a", tag="x")  # from memory
    await store.put(record("h:a", tag="y", n=4))
    assert calls.count == 2
    assert await store.get("h:a") == record("h:a", tag="y", n=4)
    assert await store.get("h:unknown") is None  # an unknown key always asks
    assert await store.get("h:unknown") is None
    assert calls.count == 4
    await store.close()


async def test_a_remembered_record_is_gone_once_deleted_cleared_swept_or_evicted() -> None:
    clock = Clock(100 * DAY)
    store = SqliteSessionStore(":memory:", ttl_seconds=DAY, max_sessions=3, clock=clock)
    for key in ("h:a", "h:b", "x:c"):
        await store.put(record(key, used=clock.now))
    assert await store.delete("h:a") is not None
    assert await store.get("h:a") is None
    assert [r.key for r in await store.clear(prefix="h:")] == ["h:b"]
    assert await store.get("h:b") is None
    assert await store.get("x:c") is not None  # another prefix stays
    await store.put(record("h:old", used=clock.now - 2 * DAY))
    assert await store.sweep() == 1
    assert await store.get("h:old") is None
    for key in ("h:d", "h:e", "h:f"):  # the cap is 3: x:c is evicted from the file
        await store.put(record(key, used=clock.now + 1))
    assert await store.get("x:c") is None
    assert await store.count() == 3
    await store.close()


async def test_a_write_the_database_refuses_leaves_the_remembered_record_as_the_file_has_it(
    store: SqliteSessionStore,
) -> None:
    before = record("h:a", tag="before")
    await store.put(before)
    await make_read_only(store)
    with pytest.raises(ChatError):
        await store.put(record("h:a", tag="after"))
    assert await store.get("h:a") == before


async def test_memory_holds_the_most_recently_used_records_only(db_path: Path) -> None:
    store = SqliteSessionStore(db_path)
    for i in range(REMEMBERED_RECORDS + 1):
        await store.put(record(f"h:{i}", used=float(i)))
    calls = CountedCalls(store)
    await store.get(f"h:{REMEMBERED_RECORDS}")
    await store.get("h:1")
    assert calls.count == 0
    assert await store.get("h:0") == record("h:0", used=0.0)  # forgotten: from the file
    assert calls.count == 1
    await store.close()
