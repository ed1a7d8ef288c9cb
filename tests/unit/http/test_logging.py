"""One structured line per request, and one log format for every logger."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import structlog
from litestar.testing import TestClient
from structlog.testing import capture_logs

from claude_max_api.bootstrap import http_app
from claude_max_api.settings import Settings
from proxy_core import (
    ChatService,
    Event,
    Failed,
    FailureReason,
    FakeRunner,
    Finished,
    InMemorySessionStore,
    ModelCatalog,
    TextDelta,
    TurnPlan,
    Usage,
)
from proxy_core.fakes import echo_script
from proxy_http.app import create_app
from proxy_http.logging import MESSAGE_LIMIT, configure_logging, note, request_scope


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
    app = http_app(ChatService(FakeRunner(), InMemorySessionStore()), Settings())
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


def test_a_streamed_request_logs_the_outcome_and_tokens_its_body_noted() -> None:
    # Litestar iterates a stream's body in a task of its own: what the body notes there
    # still reaches the line the request log writes once the response is complete.
    app = http_app(ChatService(FakeRunner(), InMemorySessionStore()), Settings())
    with TestClient(app, base_url="http://127.0.0.1") as client, capture_logs() as logs:
        response = client.post(
            "/v1/chat/completions",
            json={
                "model": "sonnet",
                "messages": [{"role": "user", "content": "hi"}],
                "stream": True,
            },
            headers={"X-Session-Id": "abc"},
        )
    assert response.text.endswith("data: [DONE]\n\n")
    (line,) = [e for e in logs if e["event"] == "request"]
    assert line["request_id"] == response.headers["x-request-id"]
    assert (line["session_key"], line["stream"], line["outcome"], line["plan"]) == (
        "h:abc",
        True,
        "ok",
        "NEW",
    )
    assert (line["prompt_tokens"], line["completion_tokens"]) == (10, 2)


def test_a_turn_s_cached_input_tokens_are_on_its_line() -> None:
    def cached(plan: TurnPlan) -> Sequence[Event]:
        return [
            TextDelta("ok"),
            Usage(input_tokens=4, output_tokens=1, cache_read_tokens=30),
            Finished("end_turn", "ok", plan.cli_session_id),
        ]

    app = http_app(ChatService(FakeRunner(cached), InMemorySessionStore()), Settings())
    with TestClient(app, base_url="http://127.0.0.1") as client, capture_logs() as logs:
        client.post(
            "/v1/chat/completions",
            json={"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]},
        )
    (line,) = [e for e in logs if e["event"] == "request"]
    assert (line["prompt_tokens"], line["cached_tokens"]) == (34, 30)


def test_backend_lines_logged_during_a_request_carry_its_request_id(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json", "info")

    def logging_script(plan: TurnPlan) -> Sequence[Event]:
        # The runner runs in the turn's own task, as the CLI backend does.
        logging.getLogger("proxy_cli_backend.fake").warning("turn_started")
        return echo_script(plan)

    app = http_app(ChatService(FakeRunner(logging_script), InMemorySessionStore()), Settings())
    with TestClient(app, base_url="http://127.0.0.1") as client:
        ids = [
            client.post(
                "/v1/chat/completions",
                json={"model": "sonnet", "messages": [{"role": "user", "content": "hi"}], **extra},
            ).headers["x-request-id"]
            for extra in ({}, {"stream": True})
        ]
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    backend = [r for r in records if r["event"] == "turn_started"]
    assert [r["request_id"] for r in backend] == ids
    assert all(r["session_key"].startswith("auto:") for r in backend)


HI = [{"role": "user", "content": "hi"}]


def request_line(logs: list[dict[str, object]]) -> dict[str, object]:
    (line,) = [e for e in logs if e["event"] == "request"]
    return line


def test_a_refused_request_logs_the_error_code_and_the_message_the_client_got() -> None:
    app = http_app(ChatService(FakeRunner(), InMemorySessionStore()), Settings())
    with TestClient(app, base_url="http://127.0.0.1") as client, capture_logs() as logs:
        response = client.post("/v1/chat/completions", json={"model": "sonnet", "messages": []})
    assert response.status_code == 400
    line = request_line(logs)
    assert (line["status"], line["error"]) == (400, "invalid_request")
    assert line["message"] == response.json()["error"]["message"]
    assert "messages" in str(line["message"])


def test_an_unknown_model_logs_model_not_found_with_its_message() -> None:
    service = ChatService(FakeRunner(), InMemorySessionStore(), catalog=ModelCatalog(strict=True))
    app = http_app(service, Settings())
    with TestClient(app, base_url="http://127.0.0.1") as client, capture_logs() as logs:
        response = client.post("/v1/chat/completions", json={"model": "gpt-9", "messages": HI})
    assert response.status_code == 404
    line = request_line(logs)
    assert (line["error"], line["message"]) == (
        "model_not_found",
        response.json()["error"]["message"],
    )
    assert "gpt-9" in str(line["message"])


def test_a_stream_that_fails_midway_logs_the_error_event_it_sent() -> None:
    def fails_midway(plan: TurnPlan) -> Sequence[Event]:
        return [TextDelta("partial "), Failed(FailureReason.UPSTREAM_ERROR, "upstream said 500")]

    app = http_app(ChatService(FakeRunner(fails_midway), InMemorySessionStore()), Settings())
    with TestClient(app, base_url="http://127.0.0.1") as client, capture_logs() as logs:
        response = client.post(
            "/v1/chat/completions", json={"model": "sonnet", "messages": HI, "stream": True}
        )
    assert response.status_code == 200
    (sent,) = [
        json.loads(data)["error"]
        for data in (ln.removeprefix("data: ") for ln in response.text.splitlines())
        if data.startswith('{"error"')
    ]
    line = request_line(logs)
    assert (line["status"], line["outcome"], line["error"]) == (200, "upstream_error", sent["code"])
    assert line["message"] == sent["message"]
    assert "upstream said 500" in str(line["message"])


def test_a_refusal_by_an_outer_layer_logs_its_message_too() -> None:
    settings = Settings.from_values(api_keys="sk-right")
    app = http_app(ChatService(FakeRunner(), InMemorySessionStore()), settings)
    with TestClient(app, base_url="http://127.0.0.1") as client, capture_logs() as logs:
        response = client.get("/v1/models", headers={"Authorization": "Bearer sk-wrong"})
    assert response.status_code == 401
    line = request_line(logs)
    assert (line["error"], line["message"]) == (
        "invalid_api_key",
        response.json()["error"]["message"],
    )


@pytest.mark.parametrize(
    ("headers", "content", "status", "code"),
    [
        ({"content-type": "text/plain"}, b"{}", 415, "unsupported_media_type"),
        ({"content-type": "application/json"}, b"x" * 2048, 413, "request_too_large"),
        ({"content-type": "application/json"}, b'{"model": ', 400, "invalid_request"),
    ],
)
def test_refusals_before_the_handler_log_their_message(
    headers: dict[str, str], content: bytes, status: int, code: str
) -> None:
    settings = Settings.from_values(max_body_bytes=1024)
    app = http_app(ChatService(FakeRunner(), InMemorySessionStore()), settings)
    with TestClient(app, base_url="http://127.0.0.1") as client, capture_logs() as logs:
        response = client.post("/v1/chat/completions", content=content, headers=headers)
    assert response.status_code == status
    line = request_line(logs)
    assert (line["error"], line["message"]) == (code, response.json()["error"]["message"])


def test_a_long_error_message_is_cut_on_the_line_but_not_in_the_answer() -> None:
    service = ChatService(FakeRunner(), InMemorySessionStore(), catalog=ModelCatalog(strict=True))
    model = "m" * 5000
    app = http_app(service, Settings())
    with TestClient(app, base_url="http://127.0.0.1") as client, capture_logs() as logs:
        response = client.post("/v1/chat/completions", json={"model": model, "messages": HI})
    assert model in response.json()["error"]["message"]
    message = str(request_line(logs)["message"])
    assert len(message) == MESSAGE_LIMIT
    assert message.endswith("…")
    assert response.json()["error"]["message"].startswith(message[:-1])


def test_a_successful_request_logs_no_error() -> None:
    app = http_app(ChatService(FakeRunner(), InMemorySessionStore()), Settings())
    with TestClient(app, base_url="http://127.0.0.1") as client, capture_logs() as logs:
        client.post("/v1/chat/completions", json={"model": "sonnet", "messages": HI})
    line = request_line(logs)
    assert "error" not in line
    assert "message" not in line


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_a_line_reads_status_latency_outcome_tokens_error_first_and_the_ids_last(
    restore_logging: None, capsys: pytest.CaptureFixture[str], log_format: str
) -> None:
    configure_logging(log_format, "info")  # type: ignore[arg-type]
    app = http_app(ChatService(FakeRunner(), InMemorySessionStore()), Settings())
    with TestClient(app, base_url="http://127.0.0.1") as client:
        client.post(
            "/v1/chat/completions",
            json={"model": "sonnet", "messages": HI},
            headers={"X-Session-Id": "abc"},
        )
    (text,) = [ln for ln in capsys.readouterr().err.splitlines() if "latency_ms" in ln]
    expected = [
        "status",
        "latency_ms",
        "outcome",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
    ]
    if log_format == "json":
        keys = list(json.loads(text))
        assert keys[: len(expected) + 1] == ["event", *expected]
        assert keys[-2:] == ["request_id", "session_key"]
    else:
        keys = [word.partition("=")[0] for word in text.split() if "=" in word]
        assert text.index(" request ") < text.index("status=")
        assert keys[: len(expected)] == expected
        assert keys[-2:] == ["request_id", "session_key"]


def test_an_error_line_puts_the_error_and_message_right_after_the_outcome(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json", "info")
    app = http_app(ChatService(FakeRunner(), InMemorySessionStore()), Settings())
    with TestClient(app, base_url="http://127.0.0.1") as client:
        client.post("/v1/chat/completions", json={"model": "sonnet", "messages": []})
    records = [json.loads(ln) for ln in capsys.readouterr().err.splitlines()]
    (record,) = [r for r in records if r["event"] == "request"]
    assert list(record)[:5] == ["event", "status", "latency_ms", "error", "message"]
    assert list(record)[-1] == "request_id"


def test_a_line_below_the_level_is_dropped_before_any_processor_runs(
    restore_logging: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stamped: list[str] = []
    stamp = structlog.processors.TimeStamper.__call__

    def counting(self: Any, logger: Any, name: str, event: Any) -> Any:
        stamped.append(event["event"])
        return stamp(self, logger, name, event)

    monkeypatch.setattr(structlog.processors.TimeStamper, "__call__", counting)
    configure_logging("json", "warning")
    log = structlog.get_logger("proxy_http.test")
    log.info("below_the_level")
    log.warning("at_the_level")
    lines = [json.loads(ln)["event"] for ln in capsys.readouterr().err.splitlines()]
    assert lines == ["at_the_level"]
    # The request line's timestamp is the processors' costliest step: never taken for
    # a line nobody sees.
    assert stamped == ["at_the_level"]


def test_ignored_fields_get_a_debug_line_that_carries_the_request_id(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json", "debug")
    app = http_app(ChatService(FakeRunner(), InMemorySessionStore()), Settings())
    body = {"model": "sonnet", "messages": HI, "temperature": 0, "seed": 1}
    with TestClient(app, base_url="http://127.0.0.1") as client:
        response = client.post("/v1/chat/completions", json=body)
    records = [json.loads(ln) for ln in capsys.readouterr().err.splitlines()]
    (line,) = [r for r in records if r["event"] == "request_fields_ignored"]
    assert (line["level"], line["fields"]) == ("debug", ["temperature", "seed"])
    assert line["request_id"] == response.headers["x-request-id"]


async def test_facts_noted_in_tasks_a_request_starts_reach_its_line() -> None:
    async def in_a_task() -> None:
        note(outcome="ok", prompt_tokens=3)

    with request_scope("req_1") as facts:
        await asyncio.create_task(in_a_task())
    assert facts == {"outcome": "ok", "prompt_tokens": 3}


async def test_a_request_scope_unbinds_what_the_request_bound() -> None:
    structlog.contextvars.bind_contextvars(outer="kept")
    try:
        with request_scope("req_1"):
            note(session_key="h:abc")
            assert structlog.contextvars.get_contextvars() == {
                "outer": "kept",
                "request_id": "req_1",
                "session_key": "h:abc",
            }
        assert structlog.contextvars.get_contextvars() == {"outer": "kept"}
    finally:
        structlog.contextvars.clear_contextvars()


def test_the_plain_app_has_no_layers_and_http_app_has_them_all() -> None:
    service = ChatService(FakeRunner(), InMemorySessionStore())
    foreign = {"host": "evil.example"}
    with TestClient(create_app(service), base_url="http://127.0.0.1") as plain:
        response = plain.get("/v1/models", headers=foreign)
        assert response.status_code == 200
        assert "x-request-id" not in response.headers
    with TestClient(http_app(service, Settings()), base_url="http://127.0.0.1") as protected:
        response = protected.get("/v1/models", headers=foreign)
        assert response.status_code == 421
        assert response.headers["x-request-id"].startswith("req_")


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
