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


# Every character a client can smuggle into a path (%-decoded) or a header (latin-1).
HOSTILE = "/v1/\x1b[2J\x1b]0;owned\x07\x00\r\nforged=1 \x9b31m\x85\u2028\u202e"
RAW_CONTROLS = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))] + ["\u2028", "\u202e"]


def raw_controls_in(text: str) -> list[str]:
    """The control characters in `text`, other than the newlines that end its lines."""
    return [c for c in text.replace("\n", "") if c in RAW_CONTROLS]


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_control_characters_in_values_are_escaped(
    restore_logging: None, capsys: pytest.CaptureFixture[str], log_format: str
) -> None:
    configure_logging(log_format, "info")  # type: ignore[arg-type]
    structlog.get_logger("proxy_http.request").info(
        "request", path=HOSTILE, nested={"key": [HOSTILE]}
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert raw_controls_in(err) == []
    if log_format == "json":
        # Decoded, the value still holds no control character: `jq -r` prints it safely.
        record = json.loads(err)
        assert raw_controls_in(record["path"]) == []
        assert record["path"].startswith("/v1/\\x1b[2J\\x1b]0;owned\\x07\\x00\\x0d\\x0aforged")
    else:
        # The console quotes a value with spaces as Python would (so `\\` doubles).
        assert "path='/v1/\\\\x1b[2J\\\\x1b]0;owned\\\\x07\\\\x00\\\\x0d\\\\x0aforged" in err


def test_stdlib_lines_and_tracebacks_are_escaped_and_tracebacks_keep_their_lines(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("console", "info")
    try:
        raise ValueError(f"bad path {HOSTILE.replace(chr(10), '')}")
    except ValueError:
        logging.getLogger("uvicorn.error").exception("Exception at %s", HOSTILE)
    err = capsys.readouterr().err
    assert raw_controls_in(err) == []
    lines = err.splitlines()
    assert lines[0].endswith("[uvicorn.error]")
    assert "Exception at /v1/\\x1b[2J" in lines[0]
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1].startswith("ValueError: bad path /v1/\\x1b[2J")
    assert "\\x0dforged=1 \\x9b31m" in lines[-1]
