"""The stores of Responses API replies, the SQLite one and the in-memory fake alike:
chains by `previous_id` within a namespace, bounded by idle time and count with the
least recently used going first (a chain in use stays together), a missing link and
the depth bound seen by the caller, failing as STORE_UNAVAILABLE on a full disk; and
the SQLite one's durability and its schema rebuild."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from proxy_cli_backend.response_store import (
    SCHEMA_VERSION,
    ResponseStoreError,
    SqliteResponseStore,
)
from proxy_core import (
    ChatError,
    FailureReason,
    InMemoryResponseStore,
    ResponseStore,
    StoredResponse,
)


class Clock:
    """A wall clock the test moves: each reading is one second after the last, so
    every use of a store is at a distinct time."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


Build = Callable[..., ResponseStore]


@pytest.fixture(params=["sqlite", "memory"])
async def build(request: pytest.FixtureRequest) -> AsyncIterator[Build]:
    """Builds a store of the parametrized kind with the given cap, TTL and clock."""
    opened: list[ResponseStore] = []

    def make(*, max_responses: int = 100, ttl: float | None = None, clock: Clock) -> ResponseStore:
        store: ResponseStore
        if request.param == "sqlite":
            store = SqliteResponseStore(
                ":memory:", ttl_seconds=ttl, max_responses=max_responses, clock=clock
            )
        else:
            store = InMemoryResponseStore(max_responses, ttl_seconds=ttl, clock=clock)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


def reply(
    response_id: str, previous: str | None = None, namespace: str = "", size: int = 10
) -> StoredResponse:
    return StoredResponse(response_id, namespace, 1.0, response_id.encode() * size, previous)


async def put_chain(store: ResponseStore, *ids: str, namespace: str = "") -> None:
    """Store `ids` as one conversation, each continuing the one before."""
    previous = None
    for response_id in ids:
        await store.put(reply(response_id, previous, namespace))
        previous = response_id


async def kept(store: ResponseStore, *ids: str) -> list[str]:
    return [i for i in ids if await store.get(i, "") is not None]


def ids(chain: list[StoredResponse]) -> list[str]:
    return [link.id for link in chain]


async def test_a_chain_is_read_back_oldest_first_from_any_of_its_replies(build: Build) -> None:
    store = build(clock=Clock())
    await put_chain(store, "a", "b", "c")
    await store.put(reply("b2", "b"))  # a branch from b
    assert ids(await store.chain("c", "", limit=10)) == ["a", "b", "c"]
    assert ids(await store.chain("b2", "", limit=10)) == ["a", "b", "b2"]
    assert ids(await store.chain("b", "", limit=10)) == ["a", "b"]
    assert await store.chain("a", "", limit=10) == [reply("a")]
    assert await store.chain("unknown", "", limit=10) == []
    # Each link comes back as it was stored.
    assert (await store.chain("c", "", limit=10))[1] == reply("b", "a")


async def test_every_link_of_a_chain_is_read_within_its_namespace(build: Build) -> None:
    store = build(clock=Clock())
    await put_chain(store, "a", "b", "c", namespace="k1")
    await put_chain(store, "a", "x", namespace="k2")  # the same id, another key's
    await store.put(reply("y", "b", namespace="k2"))  # naming k1's reply as its previous
    assert ids(await store.chain("c", "k1", limit=10)) == ["a", "b", "c"]
    assert [link.namespace for link in await store.chain("c", "k1", limit=10)] == ["k1"] * 3
    assert await store.chain("c", "k2", limit=10) == []
    assert ids(await store.chain("x", "k2", limit=10)) == ["a", "x"]
    assert (await store.chain("x", "k2", limit=10))[0] == reply("a", namespace="k2")
    # k1's b is not reachable from k2: k2's chain stops, its first link naming b.
    broken = await store.chain("y", "k2", limit=10)
    assert ids(broken) == ["y"]
    assert broken[0].previous_id == "b"
    assert not await store.delete("c", "k2")
    assert await store.get("c", "k1") is not None


async def test_a_chain_stops_at_a_link_that_is_gone(build: Build) -> None:
    store = build(clock=Clock())
    await put_chain(store, "a", "b", "c", "d")
    assert await store.delete("b", "")
    chain = await store.chain("d", "", limit=10)
    assert ids(chain) == ["c", "d"]
    assert chain[0].previous_id == "b"  # the caller sees the conversation is not whole
    assert await kept(store, "a", "c", "d") == ["a", "c", "d"]  # only b was deleted


async def test_a_chain_is_read_at_most_limit_deep_newest_links_first(build: Build) -> None:
    store = build(clock=Clock())
    await put_chain(store, "a", "b", "c", "d", "e")
    chain = await store.chain("e", "", limit=3)
    assert ids(chain) == ["c", "d", "e"]
    assert chain[0].previous_id == "b"
    # Links that name each other in a loop (forged: the API never stores one) end at
    # the limit too.
    await store.put(reply("p", "q"))
    await store.put(reply("q", "p"))
    assert ids(await store.chain("q", "", limit=5)) == ["q", "p", "q", "p", "q"]


async def test_past_the_cap_the_least_recently_used_go_and_a_chain_in_use_stays(
    build: Build,
) -> None:
    store = build(max_responses=4, clock=Clock())
    await store.put(reply("a1"))
    await store.put(reply("x"))
    await store.put(reply("a2", "a1"))  # uses a1 again
    await store.put(reply("y"))
    await store.put(reply("z"))  # five: x, the least recently used, goes (not a1)
    assert await kept(store, "a1", "x", "a2", "y", "z") == ["a1", "a2", "y", "z"]
    assert ids(await store.chain("a2", "", limit=10)) == ["a1", "a2"]  # a read is a use
    await store.put(reply("v"))
    await store.put(reply("w"))  # y and z go, unused since
    assert await kept(store, "a1", "a2", "y", "z", "v", "w") == ["a1", "a2", "v", "w"]
    assert ids(await store.chain("a2", "", limit=10)) == ["a1", "a2"]
    # Without those uses, the oldest would have gone first: the cap counts uses.
    assert await store.get("x", "") is None


async def test_a_reply_expires_when_unused_for_the_ttl_and_its_chain_is_kept_alive(
    build: Build,
) -> None:
    clock = Clock()
    store = build(ttl=100, clock=clock)
    await store.put(reply("alone"))  # used at 1001
    await put_chain(store, "a", "b")  # a: 1002, then 1003 when b is stored
    clock.now = 1050.0
    await store.chain("b", "", limit=10)  # a and b: used at 1051
    clock.now = 1110.0  # alone is 109 s idle, a and b 59 s
    assert await store.sweep() == 1
    assert await kept(store, "alone", "a", "b") == ["a", "b"]
    clock.now = 1160.0
    assert await store.sweep() == 2
    assert await kept(store, "a", "b") == []


async def test_a_store_without_ttl_keeps_idle_replies(build: Build) -> None:
    clock = Clock()
    store = build(clock=clock)
    await store.put(reply("a"))
    clock.now += 10 * 365 * 86400
    assert await store.sweep() == 0
    assert await kept(store, "a") == ["a"]


async def test_a_reply_stored_again_replaces_the_first(build: Build) -> None:
    store = build(clock=Clock())
    await store.put(reply("a", size=1))
    await store.put(reply("a", size=2))
    assert await store.get("a", "") == reply("a", size=2)


# -- failures -------------------------------------------------------------------------


async def test_a_full_disk_refuses_writes_as_store_unavailable(tmp_path: Path) -> None:
    store = SqliteResponseStore(tmp_path / "responses.sqlite3")
    await put_chain(store, "resp_root", "resp_kept")

    def cap_pages(db: sqlite3.Connection) -> None:
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        db.execute(f"PRAGMA max_page_count = {int(pages)}")

    await store._call(cap_pages)

    async def fill() -> None:
        previous = "resp_kept"
        for n in range(1000):  # far more than the pages left can hold
            await store.put(StoredResponse(f"resp_{n}", "", 2.0, b"x" * 4096, previous))
            previous = f"resp_{n}"

    with pytest.raises(ChatError) as raised:
        await fill()
    assert raised.value.reason is FailureReason.STORE_UNAVAILABLE
    assert "full" in raised.value.message
    assert "--responses-db" in raised.value.message  # which database, and its flag
    assert ids(await store.chain("resp_kept", "", limit=10)) == ["resp_root", "resp_kept"]
    await store.close()


async def test_a_failing_fake_refuses_writes_and_with_reads_every_call() -> None:
    store = InMemoryResponseStore()
    await put_chain(store, "a", "b")
    store.fail()
    for call in (
        store.put(reply("c", "b")),
        store.chain("b", "", limit=10),  # it records a use
        store.delete("a", ""),
        store.sweep(),
    ):
        with pytest.raises(ChatError) as raised:
            await call
        assert raised.value.reason is FailureReason.STORE_UNAVAILABLE
    assert await store.get("b", "") == reply("b", "a")  # a full disk still reads
    store.fail(reads=True)
    with pytest.raises(ChatError):
        await store.get("b", "")


# -- the SQLite file ------------------------------------------------------------------


async def test_a_chain_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state" / "responses.sqlite3"
    store = SqliteResponseStore(path)
    await put_chain(store, "a", "b", namespace="k1")
    await store.close()
    reopened = SqliteResponseStore(path)
    assert await reopened.chain("b", "k1", limit=10) == [
        reply("a", namespace="k1"),
        reply("b", "a", namespace="k1"),
    ]
    await reopened.close()


async def test_a_database_of_a_newer_program_is_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "responses.sqlite3"
    newer = sqlite3.connect(path)
    newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    newer.close()
    with pytest.raises(ResponseStoreError, match="--responses-db"):
        SqliteResponseStore(path)
