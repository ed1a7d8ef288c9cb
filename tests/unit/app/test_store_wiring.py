"""How `serve` wires the durable store: where the file goes, the settings, the sweep."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from litestar import Litestar

from claude_max_api.bootstrap import (
    BackendStartupError,
    build_response_store,
    build_store,
    response_store_lifespan,
    service_lifespan,
)
from claude_max_api.settings import Settings
from proxy_cli_backend.response_store import SqliteResponseStore
from proxy_cli_backend.session_store import SqliteSessionStore
from proxy_core import ChatService, FakeRunner, SessionRecord, StoredResponse


async def test_serve_keeps_sessions_in_the_state_dir_by_default(tmp_path: Path) -> None:
    store = build_store(Settings.from_values(state_dir=str(tmp_path)))
    assert isinstance(store, SqliteSessionStore)
    assert store.path == str(tmp_path / "sessions.sqlite3")
    assert (tmp_path / "sessions.sqlite3").exists()
    await store.close()


async def test_the_sessions_db_setting_chooses_the_file_and_the_limits(tmp_path: Path) -> None:
    settings = Settings.from_values(sessions_db=":memory:", session_ttl=60, max_sessions=5)
    store = build_store(settings)
    assert isinstance(store, SqliteSessionStore)
    assert (store.path, store.ttl_seconds, store.max_sessions) == (":memory:", 60, 5)
    await store.close()


async def test_a_ttl_of_zero_keeps_idle_sessions_forever() -> None:
    store = build_store(Settings.from_values(sessions_db=":memory:", session_ttl=0))
    assert isinstance(store, SqliteSessionStore)
    assert store.ttl_seconds is None
    await store.close()


def test_a_database_that_cannot_be_opened_stops_the_start_with_what_to_do(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(BackendStartupError, match="--sessions-db"):
        build_store(Settings.from_values(sessions_db=str(blocker / "sessions.sqlite3")))


async def test_the_server_sweeps_expired_sessions_in_the_background(tmp_path: Path) -> None:
    settings = Settings.from_values(
        sessions_db=str(tmp_path / "s.sqlite3"), session_ttl=60, session_sweep_interval=0.05
    )
    store = build_store(settings)
    service = ChatService(FakeRunner(), store)
    stale = SessionRecord("h:stale", "c", "sonnet", "s", ("f",), 1.0, time.time() - 3600)
    fresh = SessionRecord("h:fresh", "c2", "sonnet", "s", ("f",), 1.0, time.time())
    await store.put(stale)
    await store.put(fresh)
    async with service_lifespan(service, settings)(Litestar()):
        for _ in range(400):  # up to 20 s on a busy machine; a sweep is due every 0.05 s
            if await store.get("h:stale") is None:
                break
            await asyncio.sleep(0.05)
        assert await store.get("h:stale") is None
        assert await store.get("h:fresh") == fresh


class WatchedRunner(FakeRunner):
    """A FakeRunner that records the watchdog calls the server makes."""

    def __init__(self) -> None:
        super().__init__()
        self.watching: list[float] = []
        self.killed_at_close: list[int | None] = []

    async def watch(self, interval: float) -> None:
        self.watching.append(interval)
        await asyncio.Event().wait()  # a watch runs until cancelled

    def kill_orphans(self, *, root: int | None = None) -> int:
        self.killed_at_close.append(root)
        return 0


async def test_the_server_runs_the_runners_watchdog_and_kills_its_orphans_when_it_stops() -> None:
    settings = Settings.from_values(sessions_db=":memory:", watchdog_interval=0.25)
    runner = WatchedRunner()
    service = ChatService(runner, build_store(settings))
    async with service_lifespan(service, settings)(Litestar()):
        for _ in range(400):
            if runner.watching:
                break
            await asyncio.sleep(0.05)
        assert runner.watching == [0.25]
        assert runner.killed_at_close == []
    assert runner.killed_at_close == [None]  # what it tracked, not every descendant


async def test_stored_responses_go_beside_the_sessions_bounded_and_swept(tmp_path: Path) -> None:
    settings = Settings.from_values(
        state_dir=str(tmp_path), response_ttl=60, max_responses=5, session_sweep_interval=0.05
    )
    store = build_response_store(settings)
    assert isinstance(store, SqliteResponseStore)
    assert (store.path, store.ttl_seconds, store.max_responses) == (
        str(tmp_path / "responses.sqlite3"),
        60,
        5,
    )
    # The TTL counts from a reply's last use, by the store's clock: resp_old was last
    # used an hour ago.
    store._clock = lambda: time.time() - 3600
    await store.put(StoredResponse("resp_old", "", time.time() - 3600, b"{}"))
    store._clock = time.time
    await store.put(StoredResponse("resp_new", "", time.time(), b"{}"))
    async with response_store_lifespan(store, 0.05)(Litestar()):
        for _ in range(200):
            if await store.get("resp_old", "") is None:
                break
            await asyncio.sleep(0.02)
        assert await store.get("resp_old", "") is None
        assert await store.get("resp_new", "") is not None
    with pytest.raises(RuntimeError, match="closed"):
        await store.get("resp_new", "")
    unbounded = build_response_store(Settings.from_values(responses_db=":memory:", response_ttl=0))
    assert isinstance(unbounded, SqliteResponseStore)
    assert unbounded.ttl_seconds is None
    await unbounded.close()
