"""The served proxy (`python -m proxy_http serve`) with live processes, through the SDK."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai

from tests.contract.conftest import ProcessWatch
from tests.support.fake_upstream import FakeAnthropic
from tests.support.server import ServerProcess


async def test_a_conversation_keeps_one_process_visible_in_health_and_none_outlive_the_server(
    claude_bin: str, cli_env: dict[str, str], tmp_path: Path, fake_upstream: FakeAnthropic
) -> None:
    args = ["--cli-path", claude_bin, "--state-dir", str(tmp_path / "state"), "--pool-size", "1"]
    server = ServerProcess(args, env=cli_env, log_path=tmp_path / "server.log")
    async with ProcessWatch() as watch:
        with server:
            client = openai.AsyncOpenAI(
                base_url=server.base_url + "/v1", api_key="unused", max_retries=0
            )
            http = httpx.AsyncClient(base_url=server.base_url)
            messages: list[Any] = []
            seen: list[list[dict[str, Any]]] = []
            for text in ("one", "two"):
                messages.append({"role": "user", "content": text})
                completion = await client.chat.completions.create(
                    model="sonnet", messages=messages, extra_headers={"X-Session-Id": "served"}
                )
                reply = completion.choices[0].message.content
                assert reply == f"echo: {text}"
                messages.append({"role": "assistant", "content": reply})
                health = (await http.get("/health")).json()
                seen.append(health["backend"]["details"]["live"])
            processes = (await http.get("/stats")).json()["processes"]
            watch.sample()
            await client.close()
            await http.aclose()
        assert server.process is not None
        assert server.process.returncode == 0, server.log()
        assert await watch.wait_gone(2.0) == []
    assert len(seen[0]) == 1
    assert [entry["pid"] for entry in seen[1]] == [seen[0][0]["pid"]]
    assert seen[1][0]["turns"] == 2
    assert processes["live"] == 1
    assert processes["live_rss_bytes"] > 50 * 2**20
