"""A session database that fills up or turns read-only: 503 `store_unavailable`, never a
crash or a 500. The openai SDK and httpx against a live server over the real CLI (and the
fake upstream), its SQLite store made to fail by SQLite itself (tests/support/store_faults).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionChunk
from structlog.testing import capture_logs

from claude_max_api.bootstrap import (
    build_app,
    build_catalog,
    build_limits,
    build_runner,
    build_store,
)
from claude_max_api.settings import Settings
from proxy_cli_backend.session_store import SqliteSessionStore
from proxy_core import ChatService
from proxy_http.auth import api_keys_of
from tests.support.fake_upstream import FakeAnthropic
from tests.support.server import LiveServer, live_app
from tests.support.store_faults import fill_up, make_read_only

Proxy = tuple[LiveServer, SqliteSessionStore]


@pytest.fixture
def proxy(claude_bin: str, cli_env: dict[str, str], tmp_path: Path) -> Iterator[Proxy]:
    """The served app over the real CLI and a SQLite file, in this process (so the test
    can reach the store's connection); yields the server and its store."""
    settings = Settings.from_values(
        cli_path=claude_bin,
        state_dir=str(tmp_path / "state"),
        sessions_db=str(tmp_path / "state" / "sessions.sqlite3"),
        cli_extra_env=cli_env,
        first_event_timeout=60,
        pool_size=0,
        stream_hold=60,
    )
    store = build_store(settings)
    assert isinstance(store, SqliteSessionStore)
    catalog = build_catalog(settings)
    runner = build_runner(settings, catalog)
    service = ChatService(runner, store, catalog=catalog, limits=build_limits(settings))
    keys = api_keys_of(settings.security.access)
    with live_app(build_app(service, settings, keys=keys)) as server:
        server.run_coroutine(runner.start(), timeout=60)
        yield server, store


def sdk(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.base_url + "/v1", api_key="unused", max_retries=0, timeout=90
    )


SESSION = {"X-Session-Id": "filling"}
FIRST = [{"role": "user", "content": "alpha"}]
SECOND = [
    *FIRST,
    {"role": "assistant", "content": "echo: alpha"},
    {"role": "user", "content": "beta"},
]


def first_turn(server: LiveServer) -> None:
    reply = sdk(server).chat.completions.create(
        model="sonnet",
        messages=FIRST,  # type: ignore[arg-type]
        extra_headers=SESSION,
    )
    assert reply.choices[0].message.content == "echo: alpha"


def request_line(logs: list[dict[str, Any]], status: int) -> dict[str, Any]:
    """The request log line of the chat completion answered with `status`."""
    deadline = time.monotonic() + 10  # it is written once the response has gone out
    while time.monotonic() < deadline:
        for line in logs:
            if line.get("event") == "request" and line.get("status") == status:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no request line with status {status}: {logs}")


def message_count(server: LiveServer) -> int:
    sessions = httpx.get(server.base_url + "/v1/sessions", timeout=30).json()["sessions"]
    (session,) = [s for s in sessions if s["externalId"] == "h:filling"]
    return int(session["messageCount"])


def test_a_store_full_mid_conversation_answers_503_store_unavailable(
    proxy: Proxy, fake_upstream: FakeAnthropic
) -> None:
    server, store = proxy
    first_turn(server)
    assert server.run_coroutine(fill_up(store), timeout=60)
    with capture_logs() as logs:
        with pytest.raises(openai.InternalServerError) as caught:
            sdk(server).chat.completions.create(
                model="sonnet",
                messages=SECOND,  # type: ignore[arg-type]
                extra_headers=SESSION,
            )
        # Waited for while still capturing: the line is written after the response.
        line = request_line(logs, 503)
    assert caught.value.status_code == 503
    assert caught.value.code == "store_unavailable"
    assert "database or disk is full" in caught.value.message
    assert "free disk space" in caught.value.message
    assert line["outcome"] == "store_unavailable"
    # The upstream answered, but the ledger did not move: the conversation is at turn one.
    assert [r.user_text for r in fake_upstream.message_requests] == ["alpha", "beta"]
    assert message_count(server) == 2


def test_a_store_full_mid_stream_ends_the_stream_with_a_store_unavailable_event(
    proxy: Proxy, fake_upstream: FakeAnthropic
) -> None:
    server, store = proxy
    first_turn(server)
    assert server.run_coroutine(fill_up(store), timeout=60)
    received: list[str] = []

    def contents(chunks: Iterable[ChatCompletionChunk]) -> Iterator[str]:
        for chunk in chunks:
            text = "".join(c.delta.content or "" for c in chunk.choices)
            received.append(text)  # kept even when the stream then raises
            yield text

    with capture_logs() as logs:
        stream = sdk(server).chat.completions.create(
            model="sonnet",
            messages=SECOND,  # type: ignore[arg-type]
            extra_headers=SESSION,
            stream=True,
        )
        with pytest.raises(openai.APIError) as caught:
            list(contents(stream))
        line = request_line(logs, 200)
    # The reply went out before the record failed; the stream says it was not kept.
    assert "".join(received) == "echo: beta"
    assert caught.value.code == "store_unavailable"
    assert line["outcome"] == "store_unavailable"
    assert message_count(server) == 2


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/v1/sessions/filling"),
        ("DELETE", "/v1/sessions/filling?purge=true"),
        ("DELETE", "/v1/sessions"),
        ("GET", "/v1/sessions"),
    ],
)
def test_the_session_endpoints_on_a_read_only_store_answer_503(
    proxy: Proxy, fake_upstream: FakeAnthropic, method: str, path: str
) -> None:
    server, store = proxy
    first_turn(server)
    server.run_coroutine(make_read_only(store), timeout=30)
    response = httpx.request(method, server.base_url + path, timeout=30)
    assert response.status_code == 503
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("service_unavailable_error", "store_unavailable")
    assert "readonly" in error["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_chat_turn_on_a_read_only_store_answers_503_before_reaching_the_upstream(
    proxy: Proxy, fake_upstream: FakeAnthropic, stream: bool
) -> None:
    server, store = proxy
    server.run_coroutine(make_read_only(store), timeout=30)
    with pytest.raises(openai.InternalServerError) as caught:
        sdk(server).chat.completions.create(
            model="sonnet",
            messages=FIRST,  # type: ignore[arg-type]
            stream=stream,
        )
    assert (caught.value.status_code, caught.value.code) == (503, "store_unavailable")
    assert fake_upstream.message_requests == []
