"""A streamed request that fails before any content gets the status, body and headers the
same request gets whole: the openai SDK -> `serve` -> the real CLI -> the fake upstream."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.contract.conftest import (
    _cmdline,
    live_descendants,
    process_groups_of,
    processes_in_groups,
)
from tests.support.fake_upstream import FakeAnthropic
from tests.support.server import ServerProcess

StartProxy = Callable[..., ServerProcess]


@pytest.fixture
def start_proxy(claude_bin: str, cli_env: dict[str, str], tmp_path: Path) -> Iterator[StartProxy]:
    """Start `serve` over the real CLI with the given settings; all are stopped at the end."""
    servers: list[ServerProcess] = []

    def start(*, retries: int = 0, **settings: str) -> ServerProcess:
        env = {
            "CLAUDE_PROXY_CLI_PATH": claude_bin,
            "CLAUDE_PROXY_STATE_DIR": str(tmp_path / "state"),
            "CLAUDE_PROXY_SESSIONS_DB": ":memory:",
            # One upstream retry: the CLI's retry notice carries the back-off that
            # becomes Retry-After.
            "CLAUDE_PROXY_CLI_EXTRA_ENV": json.dumps(
                {**cli_env, "CLAUDE_CODE_MAX_RETRIES": str(retries)}
            ),
            "CLAUDE_PROXY_FIRST_EVENT_TIMEOUT": "60",
            "CLAUDE_PROXY_POOL_SIZE": "0",
            **{f"CLAUDE_PROXY_{name.upper()}": value for name, value in settings.items()},
        }
        server = ServerProcess(env=env, log_path=tmp_path / f"server-{len(servers)}.log")
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.base_url + "/v1", api_key="unused", max_retries=0, timeout=90
    )


def failure(server: ServerProcess, text: str, *, stream: bool) -> openai.APIStatusError:
    """The status error the SDK raises for a request (a streamed one as it is opened)."""
    with pytest.raises(openai.APIStatusError) as caught:
        client(server).chat.completions.create(
            model="sonnet", messages=[{"role": "user", "content": text}], stream=stream
        )
    return caught.value


def test_a_streamed_upstream_rate_limit_raises_rate_limit_error_with_retry_after(
    start_proxy: StartProxy, fake_upstream: FakeAnthropic
) -> None:
    # A hold far beyond the turn's time: the test is about the status, not the timing.
    server = start_proxy(retries=1, stream_hold="60")
    whole = failure(server, "[[error:429]] [[retry-after:1]] whole", stream=False)
    streamed = failure(server, "[[error:429]] [[retry-after:1]] streamed", stream=True)
    for error in (whole, streamed):
        assert isinstance(error, openai.RateLimitError)
        assert error.status_code == 429
        assert error.code == "rate_limit_exceeded"
        assert int(error.response.headers["retry-after"]) >= 1
        assert error.response.headers["content-type"].startswith("application/json")
    assert streamed.type == whole.type


def test_a_streamed_authentication_failure_maps_as_the_whole_one_does(
    start_proxy: StartProxy, fake_upstream: FakeAnthropic
) -> None:
    server = start_proxy(stream_hold="60")
    whole = failure(server, "[[error:401]] whole", stream=False)
    streamed = failure(server, "[[error:401]] streamed", stream=True)
    # not_logged_in is the server's own problem (503), not the client's key (401).
    assert type(streamed) is type(whole) is openai.InternalServerError
    assert (streamed.status_code, streamed.code) == (whole.status_code, whole.code)
    assert (streamed.status_code, streamed.code) == (503, "not_logged_in")
    assert streamed.message == whole.message


def test_a_reply_slower_than_the_hold_is_a_200_with_keepalives_then_the_reply(
    start_proxy: StartProxy, fake_upstream: FakeAnthropic
) -> None:
    server = start_proxy(stream_hold="0.5", keepalive_interval="0.5")
    text = "[[slow-first:4]] patience"
    body = {"model": "sonnet", "stream": True, "messages": [{"role": "user", "content": text}]}
    lines: list[str] = []
    with httpx.stream(
        "POST", server.base_url + "/v1/chat/completions", json=body, timeout=90
    ) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    contents = [content_of(line) for line in lines]
    assert json.loads(lines[0][6:])["choices"][0]["delta"]["role"] == "assistant"
    first_content = next(i for i, content in enumerate(contents) if content)
    # Headers and the role chunk went out once the hold passed; keep-alives followed.
    assert ": keep-alive" in lines[1:first_content]
    assert "".join(contents) == f"echo: {text}"
    assert lines[-1] == "data: [DONE]"


def content_of(line: str) -> str:
    """The reply text an SSE line carries (none for comments, the role chunk, [DONE])."""
    if not line.startswith("data: {"):
        return ""
    choices = json.loads(line[6:]).get("choices") or [{}]
    return str(choices[0].get("delta", {}).get("content") or "")


def cli_pids(server: ServerProcess) -> list[int]:
    assert server.process is not None
    return [p for p in live_descendants(server.process.pid) if "stream-json" in _cmdline(p)]


def wait_until(check: Callable[[], bool], within: float) -> bool:
    """Poll `check` until it holds (True) or `within` seconds pass (False)."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_client_gone_during_the_hold_ends_the_turn_and_its_cli_process_group(
    start_proxy: StartProxy, fake_upstream: FakeAnthropic
) -> None:
    server = start_proxy(stream_hold="60")
    body = json.dumps(
        {
            "model": "sonnet",
            "stream": True,
            "messages": [{"role": "user", "content": "[[slow-first:90]] never mind"}],
        }
    ).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as client:
        client.sendall(head + body)
        # The CLI has the turn and the upstream is answering slowly: mid-hold, no headers.
        assert wait_until(lambda: bool(fake_upstream.message_requests), 60)
        running = cli_pids(server)
        groups = process_groups_of(running)
        assert running
        assert groups
        client.setblocking(False)
        with pytest.raises(BlockingIOError):
            client.recv(1)  # nothing was sent back yet
    # Well before the upstream would answer (90 s): the turn was cancelled, not finished.
    assert wait_until(lambda: not processes_in_groups(groups), 20), processes_in_groups(groups)
    assert wait_until(lambda: "outcome=cancelled" in server.log(), 30), server.log()
