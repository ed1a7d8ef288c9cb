"""Soak: up to 300 requests through a real `serve` process and the real CLI, 8 clients at once.

The mix: streaming and not, clients that disconnect after the first chunk, first-token
timeouts, upstream 429/500/529 and mid-stream disconnects, and CLI processes killed
from outside. Afterwards nothing leaks: no CLI process, no file descriptor, and the
statistics add up; every request was answered exactly once, with a completion or a
documented OpenAI error.

It counts outcomes and asserts no deadline, so a loaded machine makes it slower, not
red: the clients start no new request after `ISSUE_BUDGET` seconds (the whole mix is
always issued at least once), each turn is bounded by the server's timeouts and each
wait below by a count or a bound, so the soak stops by itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.contract.conftest import _cmdline, _start_time, live_descendants
from tests.support.server import ServerProcess

TOTAL = 300
CONCURRENCY = 8
ISSUE_BUDGET = 30.0
KILLS = 5
FIRST_EVENT_TIMEOUT = 6.0

# The errors the README documents for a chat completion that reached a turn, by status.
DOCUMENTED_ERRORS: dict[int, set[str]] = {
    429: {"server_busy", "rate_limit_exceeded"},
    502: {"upstream_error", "cli_crashed", "session_missing"},
    503: {"overloaded", "backend_unavailable", "not_logged_in", "cancelled", "store_unavailable"},
    504: {"timeout"},
}
# What a request with no upstream marker may end in: its reply, or what load (busy,
# timeout) or a CLI killed from outside (cli_crashed) makes of it; nothing else.
PLAIN_OUTCOMES = {"completed", "dropped", "error 429 server_busy", "error 504 timeout"}
PLAIN_OUTCOMES |= {"error 502 cli_crashed", "stream error timeout", "stream error cli_crashed"}

# One request in each 20 of the mix: (kind, marker); kinds say how the client behaves.
MIX: list[tuple[str, str]] = [
    *[("whole", "")] * 6,
    *[("stream", "")] * 5,
    ("stream-drop", "[[slow-stream:0.4]]"),
    ("stream-drop", ""),
    ("stream", "[[slow-first:30]]"),  # the first-token timeout
    ("whole", "[[error:429]]"),
    ("stream", "[[error:500]]"),
    ("whole", "[[error:529]]"),
    ("stream", "[[slow-stream:0.4]]"),  # long enough to be killed from outside
    ("whole", "[[slow-stream:0.4]]"),
    ("stream", "[[disconnect]]"),
]


def is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def cli_pids(server_pid: int) -> list[int]:
    return [pid for pid in live_descendants(server_pid) if "stream-json" in _cmdline(pid)]


def documented_error(status: int, text: str) -> str:
    """The error's code, asserting an OpenAI error body with a documented status and code."""
    error = json.loads(text)["error"]
    assert isinstance(error["message"], str), text
    assert error["message"], text
    assert error["type"], text
    assert error["code"] in DOCUMENTED_ERRORS.get(status, set()), (status, text)
    code: str = error["code"]
    return code


async def one_request(client: httpx.AsyncClient, index: int) -> str:
    """Send one request of the mix; returns its outcome, raising if the answer is malformed.

    Outcomes: `completed`, `dropped` (the client left), `error <status> <code>`,
    `stream error <code>` (an error event after the stream started).
    """
    kind, marker = MIX[index % len(MIX)]
    body = {
        "model": "sonnet",
        "stream": kind != "whole",
        "messages": [{"role": "user", "content": f"{marker} soak request {index}"}],
    }
    if kind == "whole":
        response = await client.post("/v1/chat/completions", json=body)
        if response.status_code == 200:
            reply = response.json()
            assert reply["object"] == "chat.completion"
            assert isinstance(reply["choices"][0]["message"]["content"], str)
            return "completed"
        code = documented_error(response.status_code, response.text)
        return f"error {response.status_code} {code}"
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            text = (await response.aread()).decode()
            return f"error {response.status_code} {documented_error(response.status_code, text)}"
        payloads: list[str] = []
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            payloads.append(line[6:])
            if kind == "stream-drop" and len(payloads) == 2:
                return "dropped"  # closing the stream here disconnects the client
    # Answered exactly once: one [DONE], last, and at most one error event, just before it.
    assert payloads.count("[DONE]") == 1, payloads[-3:]
    assert payloads[-1] == "[DONE]", payloads[-3:]
    errors = [p for p in payloads[:-1] if "error" in json.loads(p)]
    assert errors in ([], [payloads[-2]]), errors
    last = json.loads(payloads[-2])
    if "error" in last:
        assert last["error"]["message"]
        code = last["error"].get("code")
        assert any(code in codes for codes in DOCUMENTED_ERRORS.values()), last
        return f"stream error {code}"
    assert any(
        json.loads(p)["choices"] and json.loads(p)["choices"][0]["finish_reason"]
        for p in payloads[:-1]
    ), payloads
    return "completed"


async def kill_clis(server_pid: int, times: int, stop: asyncio.Event) -> int:
    """SIGKILL a running CLI process `times` times, spread over the soak."""
    killed = 0
    chooser = random.Random(7)
    while killed < times and not stop.is_set():
        await asyncio.sleep(3)
        running = cli_pids(server_pid)
        if running:
            os.kill(chooser.choice(running), signal.SIGKILL)
            killed += 1
    return killed


async def sample_clis(server_pid: int, seen: set[tuple[int, str | None]]) -> None:
    """Note every CLI process (and its descendants) the server runs, with start times."""
    while True:
        for cli in cli_pids(server_pid):
            for member in [cli, *live_descendants(cli)]:
                seen.add((member, _start_time(member)))
        await asyncio.sleep(0.1)


async def soak(client: httpx.AsyncClient) -> tuple[Counter[str], Counter[str]]:
    """Run the mix with CONCURRENCY clients until TOTAL requests or the issue budget.

    Returns the outcomes, overall and of the requests with no upstream marker.
    """
    began = time.monotonic()
    issued = iter(range(TOTAL))
    outcomes: Counter[str] = Counter()
    plain: Counter[str] = Counter()

    def next_index() -> int | None:
        index = next(issued, None)
        late = time.monotonic() - began > ISSUE_BUDGET
        return None if index is None or (late and index >= len(MIX)) else index

    async def client_loop() -> None:
        while (index := next_index()) is not None:
            outcome = await one_request(client, index)
            outcomes[outcome] += 1
            if not MIX[index % len(MIX)][1]:
                plain[outcome] += 1

    await asyncio.gather(*(client_loop() for _ in range(CONCURRENCY)))
    return outcomes, plain


async def wait_until(check: object, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.2)
    return False


# Bounded by itself: ISSUE_BUDGET, then the turns in flight (each within --total-timeout)
# and the bounded waits after them; this limit is only a backstop.
@pytest.mark.timeout(600)
async def test_soak_leaves_no_process_no_fd_and_consistent_stats(
    claude_bin: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    args = [
        "--cli-path", claude_bin,
        "--state-dir", str(tmp_path / "state"),
        "--sessions-db", ":memory:",
        "--max-concurrent", "8",
        "--max-queued", "32",
        "--first-event-timeout", str(FIRST_EVENT_TIMEOUT),
        "--idle-timeout", "10",
        "--total-timeout", "40",
        "--kill-grace", "1",
        "--cli-exit-wait", "2",
        "--watchdog-interval", "2",
        "--log-level", "warning",
        # A process per request, so "nothing left" holds right after the last turn (live
        # processes stay for --live-idle-timeout).
        "--spawn-per-turn",
    ]  # fmt: skip
    server = ServerProcess(args, env=cli_env, log_path=tmp_path / "server.log").start()
    assert server.process is not None
    pid = server.process.pid
    seen: set[tuple[int, str | None]] = set()
    sampling = asyncio.create_task(sample_clis(pid, seen))
    began = time.monotonic()
    try:
        async with httpx.AsyncClient(
            base_url=server.base_url,
            timeout=httpx.Timeout(120, connect=30),
            limits=httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=0),
        ) as client:
            await client.get("/health")
            baseline = open_fds(pid)
            stop = asyncio.Event()
            killer = asyncio.create_task(kill_clis(pid, KILLS, stop))
            outcomes, plain = await soak(client)
            stop.set()
            killed = await killer
            soak_seconds = time.monotonic() - began

            total = sum(outcomes.values())
            assert len(MIX) <= total <= TOTAL, outcomes
            assert outcomes["completed"] > 0, outcomes
            assert set(plain) <= PLAIN_OUTCOMES, plain
            assert killed == KILLS
            # Nothing left running: no CLI, and the fds back near the baseline.
            assert await wait_until(lambda: not cli_pids(pid) and not live_descendants(pid), 30), [
                (p, _cmdline(p)[:3]) for p in live_descendants(pid)
            ]
            assert await wait_until(lambda: open_fds(pid) <= baseline + 5, 30), (
                baseline,
                open_fds(pid),
            )

            async def settled() -> dict[str, int]:
                return dict((await client.get("/stats")).json()["requests"])

            requests = await settled()
            for _ in range(150):
                if requests["active"] == 0 and requests["queued"] == 0:
                    break
                await asyncio.sleep(0.2)
                requests = await settled()
            # Every request reached the service and was counted once, as done or failed.
            assert requests["total"] == total, (requests, outcomes)
            assert requests["completed"] + requests["errors"] == requests["total"], requests
            health = (await client.get("/health")).json()
            assert health["activeSubprocesses"] == 0
            assert health["trackedChildren"] == 0
        print(
            f"\nsoak: {total} requests in {soak_seconds:.1f}s, outcomes {dict(outcomes)}, "
            f"stats {requests}, orphans killed {health['orphansKilled']}"
        )
    finally:
        sampling.cancel()
        await asyncio.gather(sampling, return_exceptions=True)
        assert server.stop() == 0, server.log()
    assert seen, "no CLI process was ever seen"

    def left() -> list[tuple[int, list[str]]]:
        return [
            (p, _cmdline(p)[:3])
            for p, started in seen
            if _start_time(p) == started and not is_zombie(p)
        ]

    # Killed processes need a moment to be gone. A zombie is gone too: it has exited and
    # only waits for its parent (init, for the CLI's orphaned helpers) to reap it.
    assert await wait_until(lambda: not left(), 30), left()
