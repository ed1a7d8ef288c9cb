"""A server killed with SIGKILL (a crash) leaves no CLI process behind, paused ones included.

Between turns a live CLI process is paused (SIGSTOP), so it cannot see its stdin close
when its server dies; its parent-death signal continues it, and it exits by itself.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from proxy_cli_backend.procfs import read_process
from tests.contract.conftest import cli_processes
from tests.support.fake_upstream import FakeAnthropic
from tests.support.server import ServerProcess, cli_server_env


def running(pid: int) -> bool:
    info = read_process(pid)
    return info is not None and info.alive


def test_the_paused_cli_of_a_killed_server_exits_by_itself(
    claude_bin: str, fake_upstream: FakeAnthropic, tmp_path: Path
) -> None:
    env = cli_server_env(tmp_path, claude_bin, fake_upstream.base_url)
    server = ServerProcess(env=env, log_path=tmp_path / "server.log").start()
    assert server.process is not None
    leftover: list[int] = []
    try:
        answer = httpx.post(
            f"{server.base_url}/v1/chat/completions",
            json={"model": "sonnet", "messages": [{"role": "user", "content": "one"}]},
            headers={"X-Session-Id": "crash"},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        (cli,) = cli_processes(server.process.pid)
        deadline = time.monotonic() + 30
        while (info := read_process(cli)) is not None and info.state != "T":
            assert time.monotonic() < deadline, "the idle CLI process was never paused"
            time.sleep(0.05)
        server.process.kill()
        server.process.wait(10)
        deadline = time.monotonic() + 30
        while running(cli) and time.monotonic() < deadline:
            time.sleep(0.1)
        leftover = [cli] if running(cli) else []
        assert leftover == [], "the paused CLI process outlived its server"
    finally:
        for pid in leftover:
            os.kill(pid, signal.SIGKILL)
        server.stop()
