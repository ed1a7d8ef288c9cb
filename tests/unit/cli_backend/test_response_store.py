"""The SQLite store of Responses API replies: kept per namespace, bounded by age and
count, durable across a reopen, and failing as STORE_UNAVAILABLE on a full disk."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from proxy_cli_backend.response_store import SqliteResponseStore
from proxy_core import ChatError, FailureReason, StoredResponse


def reply(response_id: str, at: float, namespace: str = "", size: int = 10) -> StoredResponse:
    return StoredResponse(response_id, namespace, at, b"x" * size)


async def test_a_reply_belongs_to_its_namespace_and_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state" / "responses.sqlite3"
    store = SqliteResponseStore(path)
    await store.put(reply("resp_1", 1.0, namespace="k1"))
    assert await store.get("resp_1", "") is None
    assert await store.get("resp_1", "k2") is None
    assert not await store.delete("resp_1", "k2")
    await store.close()
    reopened = SqliteResponseStore(path)
    assert await reopened.get("resp_1", "k1") == reply("resp_1", 1.0, namespace="k1")
    assert await reopened.delete("resp_1", "k1")
    assert await reopened.get("resp_1", "k1") is None
    await reopened.close()


async def test_the_oldest_go_past_the_cap_and_the_expired_at_a_sweep() -> None:
    now = [1000.0]
    store = SqliteResponseStore(":memory:", ttl_seconds=100, max_responses=3, clock=lambda: now[0])
    for n, at in enumerate((950.0, 910.0, 990.0, 980.0)):
        await store.put(reply(f"resp_{n}", at))
    # The cap of 3 dropped the oldest (resp_1), whatever the order they came in.
    kept = [n for n in range(4) if await store.get(f"resp_{n}", "") is not None]
    assert kept == [0, 2, 3]
    now[0] = 1060.0  # resp_0 (950) is now older than the TTL
    assert await store.sweep() == 1
    assert [n for n in range(4) if await store.get(f"resp_{n}", "") is not None] == [2, 3]
    await store.close()


async def test_a_full_disk_refuses_writes_as_store_unavailable(tmp_path: Path) -> None:
    store = SqliteResponseStore(tmp_path / "responses.sqlite3")
    await store.put(reply("resp_kept", 1.0))

    def cap_pages(db: sqlite3.Connection) -> None:
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        db.execute(f"PRAGMA max_page_count = {int(pages)}")

    await store._call(cap_pages)

    async def fill() -> None:
        for n in range(1000):  # far more than the pages left can hold
            await store.put(reply(f"resp_{n}", 2.0, size=4096))

    with pytest.raises(ChatError) as raised:
        await fill()
    assert raised.value.reason is FailureReason.STORE_UNAVAILABLE
    assert "full" in raised.value.message
    assert await store.get("resp_kept", "") == reply("resp_kept", 1.0)
    await store.close()
