"""Process hygiene with the real CLI: timeouts and cancellation kill the whole group."""

from __future__ import annotations

import asyncio
import json

import pytest

from proxy_cli_backend.runner import BackendStartupError
from proxy_core import FailureReason, TextDelta
from tests.contract.cli_backend.helpers import failed, finished, plan, run_turn, text_of
from tests.contract.conftest import ProcessWatch, RunnerFactory, cli_processes
from tests.support.fake_upstream import FakeAnthropic

pytestmark = pytest.mark.cli


async def test_first_event_timeout_fails_the_turn_and_kills_the_group(
    make_runner: RunnerFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = make_runner(first_event_timeout=3.0)
    await runner.start()
    async with ProcessWatch() as watch:
        events = await run_turn(runner, plan("[[slow-first:30]]"))
    assert failed(events).reason is FailureReason.TIMEOUT
    assert "first_event_timeout" in failed(events).message
    assert watch.groups, "the CLI process was never seen"
    assert await watch.wait_gone(2.0) == []
    assert cli_processes() == []


async def test_idle_timeout_kills_the_cli_and_the_tool_command_it_started(
    make_runner: RunnerFactory, fake_upstream: FakeAnthropic
) -> None:
    # `full` tools let the agent run a shell command; as root that needs the opt-in.
    runner = make_runner(idle_timeout=3.0, tools="full", allow_root_tools=True)
    await runner.start()
    command = json.dumps({"command": 'python3 -c "import time; time.sleep(300)"'})
    async with ProcessWatch() as watch:
        events = await run_turn(runner, plan(f"[[tool-use:Bash:{command}]]"))
        watch.sample()
    assert failed(events).reason is FailureReason.TIMEOUT
    assert "idle_timeout" in failed(events).message
    assert len(watch.seen) > 1, "the tool command was never seen running"
    assert await watch.wait_gone(2.0) == []


async def test_closing_the_stream_mid_reply_kills_the_group(
    make_runner: RunnerFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = make_runner()
    await runner.start()
    async with ProcessWatch() as watch:
        stream = runner.run(plan("[[slow-stream:2]] a long reply"))
        first = await anext(stream)
        while not isinstance(first, TextDelta):
            first = await anext(stream)
        assert runner.status().active_processes == 1
        await stream.aclose()
    assert await watch.wait_gone(2.0) == []
    assert runner.status().active_processes == 0


async def test_cancelling_the_task_mid_reply_kills_the_group(
    make_runner: RunnerFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = make_runner()
    await runner.start()
    got_text = asyncio.Event()

    async def consume() -> None:
        async for event in runner.run(plan("[[slow-stream:2]] a long reply")):
            if isinstance(event, TextDelta):
                got_text.set()

    async with ProcessWatch() as watch:
        task = asyncio.create_task(consume())
        await asyncio.wait_for(got_text.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert await watch.wait_gone(2.0) == []
    assert runner.status().active_processes == 0


async def test_twenty_parallel_turns_complete_and_leave_no_process(
    make_runner: RunnerFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = make_runner(first_event_timeout=90.0, idle_timeout=90.0, total_timeout=110.0)
    await runner.start()
    async with ProcessWatch() as watch:
        results = await asyncio.gather(*(run_turn(runner, plan(f"turn {n}")) for n in range(20)))
    for n, events in enumerate(results):
        assert finished(events).text == f"echo: turn {n}"
        assert text_of(events) == f"echo: turn {n}"
    assert len(watch.groups) == 20
    assert await watch.wait_gone(2.0) == []
    assert cli_processes() == []


async def test_full_tools_as_root_without_opt_in_fails_at_start_naming_both_fixes(
    make_runner: RunnerFactory,
) -> None:
    runner = make_runner(tools="full")
    runner._is_root = True  # the same check whether or not the suite runs as root
    with pytest.raises(BackendStartupError) as refused:
        await runner.start()
    assert "allow_root_tools" in str(refused.value)
    assert "non-root" in str(refused.value)
    assert runner.status().ready is False


async def test_full_tools_as_root_with_opt_in_runs(
    make_runner: RunnerFactory, fake_upstream: FakeAnthropic
) -> None:
    runner = make_runner(tools="full", allow_root_tools=True)
    runner._is_root = True  # as in CI here; IS_SANDBOX=1 is then passed
    await runner.start()
    assert finished(await run_turn(runner, plan("hi"))).text == "echo: hi"
