"""An idle live process is stopped between turns and continued for the next; a server
that dies continues its paused processes (their parent-death signal), so none is left
stopped for good."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import uuid
from contextlib import aclosing
from pathlib import Path
from typing import Any

from proxy_cli_backend import pausing
from proxy_cli_backend.live import LiveProcess
from proxy_cli_backend.live_runner import LiveCliRunner
from proxy_cli_backend.procfs import read_process
from proxy_core import Finished, LiveDetails, TextDelta
from tests.unit.cli_backend import test_live_runner
from tests.unit.cli_backend.test_live_runner import end, fake_launcher, follow_up, pids, plan, run
from tests.unit.cli_backend.test_probe import is_stopped
from tests.unit.cli_backend.test_process_cap import wait_until

make_runner = test_live_runner.make_runner


def test_pausing_is_available_on_linux() -> None:
    # The rest of this file tests it: CI runs on Linux, where it must not be off.
    assert pausing.supported() is sys.platform.startswith("linux")


def state(pid: int) -> str | None:
    info = read_process(pid)
    return None if info is None else info.state


def ended(pid: int) -> bool:
    """Exited: gone, or a zombie nobody has reaped yet."""
    info = read_process(pid)
    return info is None or not info.alive


def paused_flags(runner: LiveCliRunner) -> dict[int, bool]:
    details = runner.status().details
    assert isinstance(details, LiveDetails)
    return {e.pid: e.paused for e in details.live}


async def test_an_idle_process_is_stopped_after_its_turn_and_continued_for_the_next(
    make_runner: Any,
) -> None:
    runner = await make_runner()
    session = str(uuid.uuid4())
    first = await run(runner, plan("one", session))
    (pid,) = pids(runner).values()
    await wait_until(lambda: is_stopped(pid))
    assert paused_flags(runner) == {pid: True}
    second = await follow_up(runner, session, first, "two")
    assert [e.text for e in second if isinstance(e, TextDelta)] == ["echo: two"]
    assert pids(runner) == {session: pid}  # the same process took the turn
    assert (runner.spawned, runner.reused) == (1, 1)
    await wait_until(lambda: is_stopped(pid))  # and is paused again


async def test_the_pause_waits_until_the_process_has_been_idle_for_pause_after(
    make_runner: Any,
) -> None:
    runner = await make_runner(pause_after=0.5)
    await run(runner, plan("one", str(uuid.uuid4())))
    (pid,) = pids(runner).values()
    # Right after its turn the CLI is still at work (its transcript, its timers).
    assert state(pid) in ("S", "R")
    assert paused_flags(runner) == {pid: False}
    await wait_until(lambda: is_stopped(pid))
    assert paused_flags(runner) == {pid: True}


async def test_a_follow_up_before_the_pause_is_due_finds_the_process_never_stopped(
    make_runner: Any,
) -> None:
    runner = await make_runner(pause_after=30.0)
    session = str(uuid.uuid4())
    first = await run(runner, plan("one", session))
    (pid,) = pids(runner).values()
    live = runner._live[session]
    assert isinstance(live, LiveProcess)
    due = live._pause_timer
    assert due is not None
    second = await follow_up(runner, session, first, "two")
    assert [e.text for e in second if isinstance(e, TextDelta)] == ["echo: two"]
    assert pids(runner) == {session: pid}
    # The first turn's pause was called off by the second; only the second's is due.
    assert due.cancelled()
    assert live._pause_timer is not None
    assert live._pause_timer is not due
    assert state(pid) in ("S", "R")
    assert paused_flags(runner) == {pid: False}


async def test_a_turn_that_starts_or_runs_elsewhere_pauses_an_idle_process_at_once(
    make_runner: Any,
) -> None:
    runner = await make_runner(pause_after=30.0)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    before = await run(runner, plan("one", first))
    assert paused_flags(runner) == {pids(runner)[first]: False}  # alone: its pause waits
    other = aclosing(runner.run(plan("two", second)))
    async with other as events:
        assert isinstance(await anext(events), TextDelta)  # the second turn is running
        # It started: the first conversation's idle process was paused for it.
        assert paused_flags(runner)[pids(runner)[first]] is True
        # A turn that ends while another runs is paused at once too.
        after = await follow_up(runner, first, before, "three")
        assert isinstance(end(after), Finished)
        assert paused_flags(runner)[pids(runner)[first]] is True
        await wait_until(lambda: is_stopped(pids(runner)[first]))
        rest = [event async for event in events]
    assert isinstance(end(rest), Finished)


async def test_a_process_ended_with_its_pause_due_is_never_stopped(make_runner: Any) -> None:
    runner = await make_runner(pause_after=0.3)
    await run(runner, plan("one", str(uuid.uuid4())))
    (live,) = runner._live.values()
    assert isinstance(live, LiveProcess)
    await runner.aclose()
    assert live._pause_timer is None
    assert live._process.returncode == 0  # it read the end of its stdin and exited
    await asyncio.sleep(0.4)
    assert not live.paused


async def test_a_paused_process_someone_else_stopped_too_is_continued_and_reused(
    make_runner: Any,
) -> None:
    runner = await make_runner(probe_timeout=0.5)
    session = str(uuid.uuid4())
    first = await run(runner, plan("one", session))
    (pid,) = pids(runner).values()
    await wait_until(lambda: paused_flags(runner) == {pid: True})
    os.kill(pid, signal.SIGSTOP)
    await wait_until(lambda: is_stopped(pid))
    second = await follow_up(runner, session, first, "two")
    assert isinstance(end(second), Finished)
    assert pids(runner) == {session: pid}
    assert runner.spawned == 1


async def test_without_pausing_an_idle_process_keeps_running(make_runner: Any) -> None:
    runner = await make_runner(pause_idle=False)
    await run(runner, plan("one", str(uuid.uuid4())))
    (pid,) = pids(runner).values()
    await asyncio.sleep(0.2)
    assert state(pid) in ("S", "R")
    assert paused_flags(runner) == {pid: False}


async def test_a_paused_process_ends_by_itself_when_the_runner_closes(make_runner: Any) -> None:
    runner = await make_runner()
    await run(runner, plan("one", str(uuid.uuid4())))
    (pid,) = pids(runner).values()
    await wait_until(lambda: is_stopped(pid))
    live = next(iter(runner._live.values()))
    assert isinstance(live, LiveProcess)
    await runner.aclose()
    assert read_process(pid) is None
    # Continued, it read the end of its stdin and exited 0: no SIGTERM, no SIGKILL.
    assert live._process.returncode == 0


# A server in a process of its own: it runs one turn on a live process (paused after
# it), prints the process's pid, then waits to be killed.
SERVER = textwrap.dedent(
    """
    import asyncio, sys, uuid
    from proxy_cli_backend.config import CliRunnerConfig
    from proxy_cli_backend.live_runner import LiveCliRunner, LiveConfig
    from tests.unit.cli_backend.test_live_runner import plan, run

    async def main() -> None:
        config = CliRunnerConfig(cli_path=sys.argv[1], state_dir=sys.argv[2], kill_grace=1.0)
        runner = LiveCliRunner(config, LiveConfig(pool_size=0))
        await runner.start()
        await run(runner, plan("one", str(uuid.uuid4())))
        (live,) = runner._live.values()
        print(live.pid, flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


async def test_a_paused_process_of_a_server_killed_with_sigkill_is_continued_and_exits(
    tmp_path: Path,
) -> None:
    launcher = fake_launcher(tmp_path)
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVER,
        str(launcher),
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert server.stdout is not None
    pid = int(await asyncio.wait_for(server.stdout.readline(), 60))
    try:
        await wait_until(lambda: is_stopped(pid))
        server.kill()
        await server.wait()
        # Continued by its parent-death signal, it sees its stdin closed and exits.
        await wait_until(lambda: ended(pid))
    finally:
        if not ended(pid):
            os.kill(pid, signal.SIGKILL)
