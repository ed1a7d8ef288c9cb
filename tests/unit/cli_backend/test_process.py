"""CliProcess supervision with plain shell children (no CLI needed)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from proxy_cli_backend.command import CliCommand
from proxy_cli_backend.process import CliProcess
from proxy_cli_backend.procfs import descendants


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def spawn(script: str, tmp_path: Path) -> CliProcess:
    command = CliCommand(argv=("/bin/sh", "-c", script), env=dict(os.environ), cwd=str(tmp_path))
    return await CliProcess.spawn(command, max_line_bytes=1024, stderr_tail_bytes=64)


async def test_the_child_leads_its_own_process_group(tmp_path: Path) -> None:
    process = await spawn("sleep 30", tmp_path)
    try:
        assert os.getpgid(process.pid) == process.pid
    finally:
        await process.terminate(1.0)


async def test_a_child_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    process = await spawn("trap '' TERM; echo ready; while :; do sleep 0.1; done", tmp_path)
    assert await process.readline() == b"ready"
    started = time.monotonic()
    code = await process.terminate(0.5)
    assert code == -9
    assert 0.4 < time.monotonic() - started < 5.0
    assert not alive(process.pid)


async def test_descendants_in_other_sessions_are_killed_too(tmp_path: Path) -> None:
    # Like the CLI's tool commands: a grandchild in a session of its own, outside the
    # group, that outlives its parent unless killed by pid.
    code = "import os,time; os.setsid(); print(os.getpid(), flush=True); time.sleep(60)"
    setsid = f"{sys.executable} -c '{code}'"
    process = await spawn(f"trap '' TERM; {setsid} & wait", tmp_path)
    line = await asyncio.wait_for(process.readline(), 10)
    assert line is not None
    grandchild = int(line)
    assert grandchild in [info.pid for info in descendants(process.pid)]
    await process.terminate(0.5)
    for _ in range(40):
        if not alive(grandchild):
            break
        await asyncio.sleep(0.05)
    assert not alive(grandchild)


async def test_stderr_keeps_only_its_tail(tmp_path: Path) -> None:
    process = await spawn("for i in $(seq 1 200); do echo line$i >&2; done", tmp_path)
    assert await process.readline() is None
    await process.wait_exit()
    await process.stderr.finish(2.0)
    tail = process.stderr.text()
    assert len(tail.encode()) <= 64
    assert tail.endswith("line200\n")
    await process.terminate(0.5)


async def test_a_stopped_child_is_continued_and_ends_at_sigterm_not_sigkill(
    tmp_path: Path,
) -> None:
    # The child ignores stdin's end and exits 7 on SIGTERM. Stopped, it could handle
    # neither until SIGCONT, and would only die at SIGKILL after the grace (-9).
    code = (
        "import signal,sys,time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(7)); "
        "print('ready', flush=True); time.sleep(60)"
    )
    process = await spawn(f'exec {sys.executable} -c "{code}"', tmp_path)
    assert await asyncio.wait_for(process.readline(), 10) == b"ready"
    os.kill(process.pid, signal.SIGSTOP)
    assert await process.terminate(5.0) == 7
    assert not alive(process.pid)
