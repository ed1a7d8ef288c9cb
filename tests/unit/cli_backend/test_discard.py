"""LiveCliRunner's transcript clean-up over the stand-in CLI (tests/unit/cli_backend/fake_cli.py).

The stand-in writes no transcripts, so each test lays the files out where the real
CLI would (`transcript_path`) and checks which of them the runner deletes.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from proxy_cli_backend.config import CliRunnerConfig
from proxy_cli_backend.live_runner import LiveCliRunner, LiveConfig
from proxy_cli_backend.transcripts import transcript_path
from proxy_core import Failed, Finished, PlanKind
from tests.unit.cli_backend.test_live_runner import end, fake_launcher, plan, run

OLD = 7200.0


@pytest.fixture
async def make_runner(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    runners: list[LiveCliRunner] = []
    launcher = fake_launcher(tmp_path)

    async def factory(**live: Any) -> LiveCliRunner:
        config = CliRunnerConfig(
            cli_path=str(launcher),
            state_dir=str(tmp_path / "state"),
            extra_env={"HOME": str(tmp_path / "home")},
            kill_grace=1.0,
        )
        runner = LiveCliRunner(config, LiveConfig(**{"pool_size": 0, **live}))
        await runner.start()
        runners.append(runner)
        return runner

    yield factory
    for runner in runners:
        await runner.aclose()


def transcript(runner: LiveCliRunner, session: str, *, age: float = 0.0) -> Path:
    """Lay out a transcript for `session` as the CLI would, last modified `age` s ago."""
    path = transcript_path(runner._base.projects, runner.config.resolved_workdir, session)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}\n")
    if age:
        stamp = time.time() - age
        os.utime(path, (stamp, stamp))
    return path


async def wait_pool_ready(runner: LiveCliRunner, *, besides: str = "") -> str:
    """The session of a ready pooled process (other than `besides`)."""
    deadline = time.monotonic() + 30
    while True:
        ready = [p.session_id for p in runner._pool.processes if p.session_id != besides]
        if ready:
            return ready[0]
        assert time.monotonic() < deadline, "the pool never filled"
        await asyncio.sleep(0.02)


async def test_a_failed_new_turn_on_a_pooled_process_discards_that_process_session(
    make_runner: Any,
) -> None:
    runner = await make_runner(pool_size=1)
    pooled = await wait_pool_ready(runner)
    turn = plan("fail", str(uuid.uuid4()))
    file = transcript(runner, pooled)
    assert isinstance(end(await run(runner, turn)), Failed)
    await runner.discard(turn)
    assert not file.exists()


async def test_a_failed_continue_is_never_discarded(make_runner: Any) -> None:
    runner = await make_runner()
    session = str(uuid.uuid4())
    first = end(await run(runner, plan("hi", session)))
    assert isinstance(first, Finished)
    file = transcript(runner, session)
    turn = plan("fail", session, kind=PlanKind.CONTINUE, resume_point=first.resume_point)
    assert isinstance(end(await run(runner, turn)), Failed)
    await runner.discard(turn)
    assert file.exists()


async def test_the_sweep_spares_live_and_pooled_processes_and_deletes_old_orphans(
    make_runner: Any,
) -> None:
    runner = await make_runner(pool_size=1)
    live = await wait_pool_ready(runner)  # the new conversation takes it
    assert isinstance(end(await run(runner, plan("hi", str(uuid.uuid4())))), Finished)
    assert live in runner._live
    pooled = await wait_pool_ready(runner, besides=live)
    files = {
        "live": transcript(runner, live, age=OLD),
        "pooled": transcript(runner, pooled, age=OLD),
        "orphan": transcript(runner, str(uuid.uuid4()), age=OLD),
        "young": transcript(runner, str(uuid.uuid4())),
    }
    assert await runner.sweep_orphans(set(), grace=3600) == 1
    assert {name for name, path in files.items() if path.exists()} == {"live", "pooled", "young"}
