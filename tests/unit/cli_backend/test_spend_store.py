"""The spend stores, the SQLite one and the in-memory fake alike: rows summed per
(key, day, model), read from a day on (of one key), pruned before a day; and the SQLite
one's durability across a reopen and its refusals (a read-only database, a newer
schema) as STORE_UNAVAILABLE / a clear start-up error."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from proxy_cli_backend.spend_store import SCHEMA_VERSION, SpendStoreError, SqliteSpendStore
from proxy_core import ChatError, FailureReason, InMemorySpendStore, SpendEntry, SpendStore

Build = Callable[[], SpendStore]


@pytest.fixture(params=["sqlite", "memory"])
async def build(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Build]:
    opened: list[SpendStore] = []

    def make() -> SpendStore:
        store: SpendStore
        if request.param == "sqlite":
            store = SqliteSpendStore(tmp_path / f"spend-{len(opened)}.sqlite3")
        else:
            store = InMemorySpendStore()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


def entry(key: str, day: str, model: str = "sonnet", cost: float = 0.25) -> SpendEntry:
    return SpendEntry(
        key=key,
        day=day,
        model=model,
        requests=1,
        input_tokens=10,
        output_tokens=5,
        cache_read_tokens=100,
        cache_creation_tokens=3,
        cost_usd=cost,
    )


def ordered(rows: list[SpendEntry]) -> list[SpendEntry]:
    return sorted(rows, key=lambda e: (e.key, e.day, e.model))


async def test_entries_of_one_row_are_summed(build: Build) -> None:
    store = build()
    await store.add([entry("k", "2026-12-02"), entry("k", "2026-12-02", cost=0.5)])
    await store.add([entry("k", "2026-12-02", model="haiku")])
    rows = ordered(await store.entries(since="2026-12-01"))
    assert rows == [
        entry("k", "2026-12-02", model="haiku"),
        SpendEntry(
            key="k",
            day="2026-12-02",
            model="sonnet",
            requests=2,
            input_tokens=20,
            output_tokens=10,
            cache_read_tokens=200,
            cache_creation_tokens=6,
            cost_usd=0.75,
        ),
    ]


async def test_entries_are_read_from_a_day_on_and_of_one_key(build: Build) -> None:
    store = build()
    await store.add([entry("a", "2026-11-30"), entry("a", "2026-12-01"), entry("b", "2026-12-02")])
    assert ordered(await store.entries(since="2026-12-01")) == [
        entry("a", "2026-12-01"),
        entry("b", "2026-12-02"),
    ]
    assert await store.entries(since="2026-01-01", key="b") == [entry("b", "2026-12-02")]


async def test_prune_drops_the_days_before_a_day(build: Build) -> None:
    store = build()
    await store.add([entry("a", "2025-10-01"), entry("a", "2025-10-02"), entry("b", "2026-12-02")])
    assert await store.prune(before="2025-10-02") == 1
    assert {e.day for e in await store.entries(since="2000-01-01")} == {"2025-10-02", "2026-12-02"}


async def test_spend_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state" / "spend.sqlite3"
    store = SqliteSpendStore(path)
    await store.add([entry("k", "2026-12-02")])
    await store.close()
    reopened = SqliteSpendStore(path)
    assert await reopened.entries(since="2026-12-01") == [entry("k", "2026-12-02")]
    await reopened.close()


async def test_a_read_only_database_refuses_every_call_as_store_unavailable(
    tmp_path: Path,
) -> None:
    # Every call takes the write lock (BEGIN IMMEDIATE), reads too: a read-only spend
    # database makes capped keys' budget checks fail, closed (see SpendLedger).
    store = SqliteSpendStore(tmp_path / "spend.sqlite3")
    await store.add([entry("k", "2026-12-02")])

    def query_only(db: sqlite3.Connection) -> None:
        db.execute("PRAGMA query_only = ON")

    await store._database.call(query_only)
    with pytest.raises(ChatError) as raised:
        await store.add([entry("k", "2026-12-02")])
    assert raised.value.reason is FailureReason.STORE_UNAVAILABLE
    assert "--spend-db" in raised.value.message  # which database, and its flag
    with pytest.raises(ChatError) as unread:
        await store.entries(since="2026-12-01")
    assert unread.value.reason is FailureReason.STORE_UNAVAILABLE
    await store.close()


async def test_a_database_of_a_newer_program_is_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "spend.sqlite3"
    newer = sqlite3.connect(path)
    newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    newer.close()
    with pytest.raises(SpendStoreError, match="--spend-db"):
        SqliteSpendStore(path)


async def test_a_database_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(SpendStoreError, match="Cannot open the spend database"):
        SqliteSpendStore(blocker / "spend.sqlite3")
