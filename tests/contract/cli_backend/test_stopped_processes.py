"""A stopped (SIGSTOP) idle or pooled CLI process, with the real binary: found, replaced
(or, for an idle one the runner paused itself, continued), and the pause between turns.

The first-event timeout stays at the fixtures' usual value: a turn that ran on the
stopped process would fail with a timeout, so a reply proves the check replaced it.
Each test waits until /proc shows the process stopped: a turn that began before the
signal took effect would be a turn on a running process.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proxy_cli_backend.live import LiveProcess
from proxy_cli_backend.procfs import read_process
from tests.contract.cli_backend.conftest import Chat, live_pids, live_runner, wait_for
from tests.contract.cli_backend.test_live_sessions import history
from tests.contract.conftest import ProcessWatch
from tests.support.fake_upstream import FakeAnthropic

Factory = Callable[..., Any]


def stopped_now(pid: int) -> bool:
    info = read_process(pid)
    return info is not None and info.state == "T"


def gone(pid: int) -> bool:
    """No such process, not even a zombie: it was ended and reaped."""
    return not Path(f"/proc/{pid}").exists()


async def test_a_stopped_idle_process_is_replaced_and_the_turn_resumes_the_conversation(
    make_live_service: Factory, fake_upstream: FakeAnthropic
) -> None:
    # Without pausing: with it, the runner continues an idle process before it checks
    # (the test below).
    service = await make_live_service(pause_idle=False)
    runner = live_runner(service)
    async with ProcessWatch() as watch:
        chat = Chat(service, "stopped-idle")
        assert await chat.say("one") == "echo: one"
        (stopped,) = live_pids(service).values()
        process = runner._live[await chat.cli_session()]
        os.kill(stopped, signal.SIGSTOP)
        await wait_for(lambda: stopped_now(stopped))
        assert await chat.say("two") == "echo: two"
        # Ended and reaped before the fresh process resumed the session, and by
        # SIGTERM or its own exit, not SIGKILL (SIGCONT came with the SIGTERM).
        assert gone(stopped)
        assert process._process.returncode != -signal.SIGKILL
        assert list(live_pids(service).values()) != [stopped]
        assert runner.spawned == 2
        assert history(fake_upstream)[-3:] == ["one", "echo: one", "two"]
        watch.sample()
        await service.aclose()
        assert await watch.wait_gone(2.0) == []


async def test_a_stopped_pooled_process_is_replaced_and_the_new_conversation_runs(
    make_live_service: Factory, fake_upstream: FakeAnthropic
) -> None:
    service = await make_live_service(pool_size=1)
    runner = live_runner(service)
    async with ProcessWatch() as watch:
        await wait_for(lambda: runner.status().details.pool_ready == 1)
        (pooled,) = runner._pool.processes
        assert isinstance(pooled, LiveProcess)
        os.kill(pooled.pid, signal.SIGSTOP)
        await wait_for(lambda: stopped_now(pooled.pid))
        chat = Chat(service, "stopped-pooled")
        assert await chat.say("hello") == "echo: hello"
        assert await chat.cli_session() != pooled.session_id
        assert runner.spawned == 1
        await wait_for(lambda: gone(pooled.pid))
        assert pooled._process.returncode != -signal.SIGKILL
        watch.sample()
        await service.aclose()
        assert await watch.wait_gone(2.0) == []


async def test_an_idle_process_is_paused_between_turns_and_its_next_turn_continues_it(
    make_live_service: Factory, fake_upstream: FakeAnthropic
) -> None:
    service = await make_live_service()
    runner = live_runner(service)
    async with ProcessWatch() as watch:
        chat = Chat(service, "paused")
        assert await chat.say("one") == "echo: one"
        (pid,) = live_pids(service).values()
        await wait_for(lambda: stopped_now(pid))
        # A stranger's SIGSTOP on top of the pause changes nothing: it is continued too.
        os.kill(pid, signal.SIGSTOP)
        assert await chat.say("two") == "echo: two"
        assert list(live_pids(service).values()) == [pid]
        assert runner.spawned == 1
        await wait_for(lambda: stopped_now(pid))
        assert history(fake_upstream)[-3:] == ["one", "echo: one", "two"]
        watch.sample()
        await service.aclose()
        assert gone(pid)
        assert await watch.wait_gone(2.0) == []
