"""Graceful shutdown of a real `serve` process with the real CLI: SIGTERM during streams.

Turns that finish within the grace period complete; the rest end with an error event
and `[DONE]`; no CLI process is left; the exit code is 0. A second signal forces it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from pathlib import Path

import httpx

from tests.contract.conftest import _cmdline, _start_time, live_descendants
from tests.support.server import ServerProcess

LONG = "[[slow-stream:3]] a long answer that outlasts the grace period"
SHORT = "[[slow-first:1]] a short answer"


def serve_args(claude_bin: str, tmp_path: Path, grace: float) -> list[str]:
    return [
        "--cli-path",
        claude_bin,
        "--state-dir",
        str(tmp_path / "state"),
        "--sessions-db",
        ":memory:",
        "--shutdown-grace",
        str(grace),
        "--kill-grace",
        "1",
        "--keepalive-interval",
        "1",
    ]


async def read_stream(client: httpx.AsyncClient, text: str, started: asyncio.Event) -> list[str]:
    """The `data:` payloads of one streamed completion, in order."""
    body = {"model": "sonnet", "stream": True, "messages": [{"role": "user", "content": text}]}
    payloads: list[str] = []
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                payloads.append(line[6:])
                started.set()
    return payloads


def cli_processes_of(pid: int) -> set[tuple[int, str]]:
    """(pid, start time) of the server's CLI processes and everything below them."""
    found: set[tuple[int, str]] = set()
    for child in live_descendants(pid):
        if "stream-json" in _cmdline(child):
            for member in [child, *live_descendants(child)]:
                started = _start_time(member)
                if started is not None:
                    found.add((member, started))
    return found


async def wait_for_clis(pid: int, count: int, within: float = 60.0) -> set[tuple[int, str]]:
    deadline = time.monotonic() + within
    while True:
        found = cli_processes_of(pid)
        if len({p for p, _ in found if "stream-json" in _cmdline(p)}) >= count:
            return found
        assert time.monotonic() < deadline, f"only {len(found)} CLI processes"
        await asyncio.sleep(0.1)


def still_alive(processes: set[tuple[int, str]]) -> list[int]:
    return sorted(pid for pid, started in processes if _start_time(pid) == started)


def refuses_connections(port: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
        except OSError:
            return True
        time.sleep(0.1)
    return False


def ended_cleanly(payloads: list[str]) -> str:
    """'complete' or 'error' for a stream that ended properly (fails otherwise)."""
    assert payloads, "no events"
    assert payloads[-1] == "[DONE]", payloads[-3:]
    last = json.loads(payloads[-2])
    if "error" in last:
        assert last["error"]["type"]
        assert last["error"]["message"]
        return "error"
    finishes = [json.loads(p)["choices"][0].get("finish_reason") for p in payloads[1:-1]]
    assert "stop" in finishes, payloads
    return "complete"


async def test_sigterm_lets_short_turns_finish_and_ends_long_ones_with_an_error(
    claude_bin: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    server = ServerProcess(
        serve_args(claude_bin, tmp_path, grace=5), env=cli_env, log_path=tmp_path / "log"
    ).start()
    assert server.process is not None
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            events = [asyncio.Event() for _ in range(3)]
            streams = [
                asyncio.create_task(read_stream(client, text, started))
                # Distinct texts: distinct conversations, so all three run at once.
                for text, started in zip([LONG + " 1", LONG + " 2", SHORT], events, strict=True)
            ]
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 60)
            clis = await wait_for_clis(server.process.pid, 3)
            server.process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(refuses_connections, server.port)
            results = await asyncio.wait_for(asyncio.gather(*streams), 60)
        outcomes = [ended_cleanly(payloads) for payloads in results]
        assert outcomes == ["error", "error", "complete"]
        cancelled = json.loads(results[0][-2])["error"]
        assert "shutting down" in cancelled["message"]
        assert await asyncio.to_thread(server.process.wait, 30) == 0, server.log()
        assert still_alive(clis) == []
    finally:
        server.stop()


async def test_a_second_signal_forces_the_exit_and_still_kills_the_children(
    claude_bin: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    server = ServerProcess(
        serve_args(claude_bin, tmp_path, grace=60), env=cli_env, log_path=tmp_path / "log"
    ).start()
    assert server.process is not None
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            started = asyncio.Event()
            stream = asyncio.create_task(read_stream(client, LONG, started))
            await asyncio.wait_for(started.wait(), 60)
            clis = await wait_for_clis(server.process.pid, 1)
            server.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            began = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(server.process.wait, 20)
            # Far sooner than the 60 s grace (generous for a loaded machine).
            assert time.monotonic() - began < 15
            stream.cancel()
            await asyncio.gather(stream, return_exceptions=True)
        assert still_alive(clis) == []
        assert code == 0  # README "Shutdown": a forced exit is still a clean one
        log = (tmp_path / "log").read_text(errors="replace")
        assert "forced_exit" in log
        # Quiet: what the forced exit cancels is not reported as an error.
        assert "Traceback" not in log, log
        assert "CancelledError" not in log, log
    finally:
        server.stop()
