"""`--live-max` is a hard cap on the served proxy's CLI processes, pool included.

10 concurrent requests for 10 conversations with `--live-max 2 --max-concurrent 10`
and the default pool: /proc, sampled in a thread throughout, never shows more than
2 CLI processes (live, pooled and still ending alike; zombies count), and every
request gets its reply: the turns beyond the cap wait for a process.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx

from tests.contract.conftest import ProcessWatch, _cmdline, live_descendants
from tests.support.fake_upstream import FakeAnthropic
from tests.support.server import ServerProcess

CONVERSATIONS = 10
LIVE_MAX = 2


class CliCounter:
    """The most CLI processes seen at once under `root`, sampled from /proc in a thread."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.most = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CliCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            clis = [p for p in live_descendants(self.root) if "stream-json" in _cmdline(p)]
            self.most = max(self.most, len(clis))
            self.samples += 1


async def ask(client: httpx.AsyncClient, index: int) -> str:
    response = await client.post(
        "/v1/chat/completions",
        json={"model": "sonnet", "messages": [{"role": "user", "content": f"capped {index}"}]},
        headers={"X-Session-Id": f"capped-{index}"},
    )
    assert response.status_code == 200, response.text
    content: str = response.json()["choices"][0]["message"]["content"]
    return content


async def test_no_more_cli_processes_than_live_max_are_ever_alive(
    claude_bin: str, cli_env: dict[str, str], tmp_path: Path, fake_upstream: FakeAnthropic
) -> None:
    args = [
        "--cli-path", claude_bin,
        "--state-dir", str(tmp_path / "state"),
        "--sessions-db", ":memory:",
        "--live-max", str(LIVE_MAX),
        "--max-concurrent", str(CONVERSATIONS),
        "--pool-size", "1",
        "--log-level", "warning",
    ]  # fmt: skip
    server = ServerProcess(args, env=cli_env, log_path=tmp_path / "server.log")
    async with ProcessWatch() as watch:
        with server:
            assert server.process is not None
            with CliCounter(server.process.pid) as counter:
                async with httpx.AsyncClient(
                    base_url=server.base_url, timeout=httpx.Timeout(120, connect=10)
                ) as client:
                    replies = await asyncio.gather(*(ask(client, i) for i in range(CONVERSATIONS)))
                    processes = (await client.get("/health")).json()["backend"]["details"]
            watch.sample()
        assert server.process.returncode == 0, server.log()
        assert await watch.wait_gone(2.0) == []
    assert replies == [f"echo: capped {i}" for i in range(CONVERSATIONS)]
    assert counter.samples > 0
    assert counter.most == LIVE_MAX  # reached (the sampler sees them), never passed
    assert processes["processes"] <= LIVE_MAX
    assert processes["live_limit"] == LIVE_MAX
