"""The warm pool with the real binary: a ready process is taken by a new conversation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.contract.cli_backend.conftest import Chat, live_runner, wait_for
from tests.support.fake_upstream import FakeAnthropic


async def test_a_new_conversation_takes_the_ready_process_and_the_pool_refills(
    make_live_service: Callable[..., Any], fake_upstream: FakeAnthropic
) -> None:
    service = await make_live_service(pool_size=1, pool_model="sonnet")
    runner = live_runner(service)
    await wait_for(lambda: runner.status().details.pool_ready == 1)
    (pooled,) = runner._pool.processes
    chat = Chat(service, "pooled")
    assert await chat.say("hello") == "echo: hello"
    # The conversation continues in the pooled process's own session.
    assert await chat.cli_session() == pooled.session_id
    assert runner.status().details.pool_taken == 1
    assert runner.spawned == 0
    await wait_for(lambda: runner.status().details.pool_ready == 1)
    (refill,) = runner._pool.processes
    assert refill.pid != pooled.pid
    assert await chat.say("again") == "echo: again"
    assert runner.spawned == 0
