"""The in-process fakes implement the ports' capabilities as their docstrings say."""

from __future__ import annotations

import pytest

from proxy_core import (
    ChatError,
    FailureReason,
    FakeRunner,
    InMemoryResponseStore,
    InMemorySessionStore,
    SessionRecord,
    StoredResponse,
)


async def test_the_in_memory_store_sweeps_nothing_and_keeps_every_record() -> None:
    store = InMemorySessionStore()
    record = SessionRecord("h:a", "c", "sonnet", "s", ("f",), 1.0, 0.0)
    await store.put(record)
    assert await store.sweep() == 0
    assert await store.get("h:a") == record


async def test_a_failing_in_memory_store_refuses_to_sweep_as_a_full_disk_would() -> None:
    store = InMemorySessionStore()
    store.fail()
    with pytest.raises(ChatError) as caught:
        await store.sweep()
    assert caught.value.reason is FailureReason.STORE_UNAVAILABLE


async def test_a_failing_in_memory_store_refuses_reads_only_when_told_to() -> None:
    store = InMemorySessionStore()
    await store.put(SessionRecord("h:a", "c", "sonnet", "s", ("f",), 1.0, 0.0))
    store.fail()
    assert await store.references("c")  # a full disk still reads
    store.fail(reads=True)
    with pytest.raises(ChatError) as caught:
        await store.references("c")
    assert caught.value.reason is FailureReason.STORE_UNAVAILABLE


async def test_the_fake_runner_has_no_processes_to_watch_or_kill() -> None:
    runner = FakeRunner()
    await runner.watch(0.01)  # returns at once: a runner without processes has no watch
    assert runner.kill_orphans() == 0
    assert runner.kill_orphans(root=1) == 0


async def test_the_in_memory_response_store_keeps_the_newest_per_namespace_and_can_fail() -> None:
    store = InMemoryResponseStore(max_responses=2)
    for n in range(3):
        await store.put(StoredResponse(f"resp_{n}", "k1", float(n), b"{}"))
    assert await store.get("resp_0", "k1") is None  # the oldest went past the cap
    assert await store.get("resp_2", "k1") == StoredResponse("resp_2", "k1", 2.0, b"{}")
    assert await store.get("resp_2", "k2") is None
    assert not await store.delete("resp_2", "k2")
    store.fail()
    with pytest.raises(ChatError) as raised:
        await store.put(StoredResponse("resp_3", "k1", 3.0, b"{}"))
    assert raised.value.reason is FailureReason.STORE_UNAVAILABLE
    assert await store.get("resp_1", "k1") is not None  # reads still work
