"""LiveCliRunner over a stand-in CLI (tests/unit/cli_backend/fake_cli.py): no model, fast."""

from __future__ import annotations

import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from proxy_cli_backend.config import CliRunnerConfig
from proxy_cli_backend.live_runner import LiveCliRunner, LiveConfig
from proxy_cli_backend.procfs import tree_rss
from proxy_core import (
    Event,
    Failed,
    FailureReason,
    Finished,
    LiveDetails,
    PlanKind,
    TextBlock,
    TextDelta,
    TurnPlan,
)

FAKE_CLI = Path(__file__).with_name("fake_cli.py")


def fake_launcher(directory: Path) -> Path:
    """`directory/claude`: runs the stand-in CLI under this interpreter, whatever
    `python3` is on PATH (by exec, so the launcher's pid is the stand-in's)."""
    launcher = directory / "claude"
    launcher.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE_CLI} "$@"\n')
    launcher.chmod(0o755)
    return launcher


@pytest.fixture
async def make_runner(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    runners: list[LiveCliRunner] = []
    launcher = fake_launcher(tmp_path)

    async def factory(
        runner_args: dict[str, Any] | None = None,
        cli_env: dict[str, str] | None = None,
        **live: Any,
    ) -> LiveCliRunner:
        config = CliRunnerConfig(
            cli_path=str(launcher),
            state_dir=str(tmp_path),
            kill_grace=1.0,
            extra_env=cli_env or {},
        )
        live_config = LiveConfig(**{"pool_size": 0, **live})
        runner = LiveCliRunner(config, live_config, **(runner_args or {}))
        await runner.start()
        runners.append(runner)
        return runner

    yield factory
    for runner in runners:
        await runner.aclose()


def plan(
    text: str,
    session: str,
    *,
    kind: PlanKind = PlanKind.NEW,
    resume_point: str | None = None,
    model: str = "sonnet",
) -> TurnPlan:
    return TurnPlan(
        kind=kind,
        session_key="unit",
        cli_session_id=session,
        model=model,
        system=None,
        prompt=(TextBlock(text),),
        messages=(),
        seen=(),
        resume_point=resume_point,
    )


async def run(runner: LiveCliRunner, turn: TurnPlan) -> list[Event]:
    return [event async for event in runner.run(turn)]


def end(events: list[Event]) -> Finished | Failed:
    last = events[-1]
    assert isinstance(last, Finished | Failed)
    return last


async def follow_up(
    runner: LiveCliRunner, session: str, previous: list[Event], text: str
) -> list[Event]:
    point = end(previous)
    assert isinstance(point, Finished)
    turn = plan(text, session, kind=PlanKind.CONTINUE, resume_point=point.resume_point)
    return await run(runner, turn)


def pids(runner: LiveCliRunner) -> dict[str, int]:
    details = runner.status().details
    assert isinstance(details, LiveDetails)
    return {e.session_id: e.pid for e in details.live}


async def test_a_continue_at_the_same_resume_point_reuses_the_process(make_runner: Any) -> None:
    runner = await make_runner()
    session = str(uuid.uuid4())
    first = await run(runner, plan("one", session))
    before = pids(runner)
    second = await follow_up(runner, session, first, "two")
    assert [e.text for e in second if isinstance(e, TextDelta)] == ["echo: two"]
    assert pids(runner) == before
    assert runner.spawned == 1


async def test_a_continue_at_another_resume_point_gets_a_new_process(make_runner: Any) -> None:
    runner = await make_runner()
    session = str(uuid.uuid4())
    await run(runner, plan("one", session))
    before = pids(runner)
    turn = plan("two", session, kind=PlanKind.CONTINUE, resume_point="an-older-reply")
    assert isinstance(end(await run(runner, turn)), Finished)
    assert pids(runner) != before
    assert runner.spawned == 2


async def test_a_failed_turn_spends_the_process(make_runner: Any) -> None:
    runner = await make_runner()
    session = str(uuid.uuid4())
    first = await run(runner, plan("one", session))
    failed = await follow_up(runner, session, first, "fail")
    failure = end(failed)
    assert isinstance(failure, Failed)
    assert failure.reason is FailureReason.OVERLOADED
    assert pids(runner) == {}
    assert isinstance(end(await follow_up(runner, session, first, "again")), Finished)
    assert runner.spawned == 2


async def test_a_model_change_keeps_the_process_and_its_output_stays_out_of_the_turn(
    make_runner: Any,
) -> None:
    runner = await make_runner()
    session = str(uuid.uuid4())
    first = await run(runner, plan("one", session))
    point = end(first)
    assert isinstance(point, Finished)
    turn = plan(
        "two", session, kind=PlanKind.CONTINUE, resume_point=point.resume_point, model="haiku"
    )
    events = await run(runner, turn)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["echo: two"]
    assert runner.spawned == 1
    assert runner.status().details.live[0].model == "haiku"


async def test_the_least_recently_used_process_is_evicted_beyond_the_cap(make_runner: Any) -> None:
    runner = await make_runner(max_live=2)
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    first_a = await run(runner, plan("a", a))
    await run(runner, plan("b", b))
    await follow_up(runner, a, first_a, "a again")  # b is now the least recently used
    await run(runner, plan("c", c))
    assert set(pids(runner)) == {a, c}
    assert runner.evicted == 1


async def test_an_abandoned_turn_is_interrupted_and_its_process_ended(make_runner: Any) -> None:
    runner = await make_runner()
    session = str(uuid.uuid4())
    first = await run(runner, plan("one", session))
    (pid,) = pids(runner).values()
    point = end(first)
    assert isinstance(point, Finished)
    stream = runner.run(
        plan("hang", session, kind=PlanKind.CONTINUE, resume_point=point.resume_point)
    )
    assert isinstance(await anext(stream), TextDelta)
    await stream.aclose()
    await runner._ended(session)
    assert pids(runner) == {}
    assert tree_rss([pid]) == {}


async def test_a_process_that_died_between_turns_is_replaced_transparently(
    make_runner: Any,
) -> None:
    runner = await make_runner()
    session = str(uuid.uuid4())
    first = await run(runner, plan("one", session))
    (pid,) = pids(runner).values()
    os.killpg(pid, signal.SIGKILL)
    second = await follow_up(runner, session, first, "two")
    assert [e.text for e in second if isinstance(e, TextDelta)] == ["echo: two"]
    assert list(pids(runner).values()) != [pid]


async def test_a_crash_during_a_turn_is_reported_as_cli_crashed(make_runner: Any) -> None:
    runner = await make_runner()
    events = await run(runner, plan("die", str(uuid.uuid4())))
    failure = end(events)
    assert isinstance(failure, Failed)
    assert failure.reason is FailureReason.CLI_CRASHED
    assert pids(runner) == {}


async def test_status_reports_live_processes_and_their_memory(make_runner: Any) -> None:
    runner = await make_runner()
    await run(runner, plan("one", str(uuid.uuid4())))
    details = runner.status().details
    assert details.live_processes == 1
    assert isinstance(details.live_rss_bytes, int)
    assert details.live_rss_bytes > 0


async def test_closing_the_runner_leaves_no_process(make_runner: Any) -> None:
    runner = await make_runner(pool_size=1)
    await run(runner, plan("one", str(uuid.uuid4())))
    all_pids = [*pids(runner).values(), *(p.pid for p in runner._pool.processes)]
    await runner.aclose()
    assert tree_rss(all_pids) == {}
    assert runner.status().active_processes == 0
