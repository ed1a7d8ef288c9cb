"""One structured line per request, and one log format for every logger."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from litestar.testing import TestClient
from structlog.testing import capture_logs

from proxy_core import ChatService, FakeRunner, InMemorySessionStore
from proxy_http.app import create_app
from proxy_http.logging import configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("uvicorn.access").disabled = False
    structlog.reset_defaults()


def test_chat_request_logs_one_line_with_its_facts() -> None:
    app = create_app(ChatService(FakeRunner(), InMemorySessionStore()))
    # A loopback base URL: the test client's default Host (testserver.local) is refused.
    with TestClient(app, base_url="http://127.0.0.1") as client, capture_logs() as logs:
        response = client.post(
            "/v1/chat/completions",
            json={"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]},
            headers={"X-Session-Id": "abc"},
        )
    lines = [e for e in logs if e["event"] == "request"]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == response.headers["x-request-id"]
    assert (line["session_key"], line["model"], line["plan"], line["status"]) == (
        "h:abc",
        "sonnet",
        "NEW",
        200,
    )
    assert line["prompt_tokens"] == 10
    assert line["latency_ms"] >= 0


def test_json_format_renders_stdlib_records_as_json(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json", "debug")
    logging.getLogger("proxy_cli_backend.process").debug("cli stderr: %s", "hello")
    record = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert record["event"] == "cli stderr: hello"
    assert record["level"] == "debug"
    assert record["logger"] == "proxy_cli_backend.process"


def test_level_setting_filters_debug(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json", "info")
    logging.getLogger("proxy_cli_backend.process").debug("hidden")
    assert "hidden" not in capsys.readouterr().err
