"""What the SDK hides, checked with raw httpx: SSE framing, statuses, headers, error bodies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import httpx

from claude_max_api.settings import Settings
from proxy_core import LOGIN_HELP, FailureReason, ServiceLimits

from .conftest import USER_HI, MakeServer, fail, reply

CHAT = "/v1/chat/completions"


def sse_lines(body: str) -> list[str]:
    """The non-empty lines of an SSE body."""
    return [line for line in body.split("\n") if line]


def data_events(body: str) -> list[str]:
    return [line.removeprefix("data: ") for line in sse_lines(body) if line.startswith("data: ")]


def test_stream_framing_is_role_first_and_done_last(make_server: MakeServer) -> None:
    server, _, _ = make_server(reply("a", "b"))
    response = httpx.post(
        server.base_url + CHAT, json={"model": "sonnet", "messages": USER_HI, "stream": True}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-session-id"].startswith("auto:")
    assert response.text.endswith("data: [DONE]\n\n")
    events = data_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]] == ["a", "b"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


def test_include_usage_puts_null_usage_on_every_chunk_but_the_last(
    make_server: MakeServer,
) -> None:
    server, _, _ = make_server(reply("a", "b"))
    body = {"model": "sonnet", "messages": USER_HI, "stream": True}
    response = httpx.post(
        server.base_url + CHAT, json={**body, "stream_options": {"include_usage": True}}
    )
    *chunks, last = [json.loads(e) for e in data_events(response.text)[:-1]]
    assert chunks
    assert all("usage" in c and c["usage"] is None for c in chunks)
    assert last["choices"] == []
    assert last["usage"]["total_tokens"] == (
        last["usage"]["prompt_tokens"] + last["usage"]["completion_tokens"]
    )
    plain = httpx.post(server.base_url + CHAT, json=body)
    assert all("usage" not in json.loads(e) for e in data_events(plain.text)[:-1])


def test_keepalive_comments_flow_while_the_turn_is_slow(make_server: MakeServer) -> None:
    server, _, _ = make_server(
        reply("late"), delay=0.6, settings=Settings.from_values(keepalive_interval=0.1)
    )
    response = httpx.post(
        server.base_url + CHAT,
        json={"model": "sonnet", "messages": USER_HI, "stream": True},
        timeout=30,
    )
    assert ": keep-alive" in sse_lines(response.text)
    assert data_events(response.text)[-1] == "[DONE]"


def test_keepalive_comments_flow_while_queued(make_server: MakeServer) -> None:
    server, _, runner = make_server(
        settings=Settings.from_values(keepalive_interval=0.1),
        limits=ServiceLimits(max_concurrent=1, max_queued=2),
    )
    runner.gate = asyncio.Event()
    assert server.loop is not None
    with (
        httpx.Client(base_url=server.base_url, timeout=30) as client,
        client.stream(
            "POST", CHAT, json={"model": "sonnet", "messages": USER_HI, "stream": True}
        ) as first,
        client.stream(
            "POST",
            CHAT,
            json={
                "model": "sonnet",
                "messages": [{"role": "user", "content": "2"}],
                "stream": True,
            },
        ) as queued,
    ):
        lines = queued.iter_lines()
        seen = [next(lines) for _ in range(4)]  # role chunk, blank, then comments while queued
        server.loop.call_soon_threadsafe(runner.gate.set)
        rest = list(lines)
        first.read()
    assert ": keep-alive" in seen
    assert "data: [DONE]" in rest


def test_mid_stream_failure_is_one_error_event_then_done(make_server: MakeServer) -> None:
    server, _, _ = make_server(fail(FailureReason.UPSTREAM_ERROR, "boom", after=["x"]))
    response = httpx.post(
        server.base_url + CHAT, json={"model": "sonnet", "messages": USER_HI, "stream": True}
    )
    events = data_events(response.text)
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])
    assert set(error["error"]) == {"message", "type", "param", "code"}
    assert error["error"]["code"] == "upstream_error"
    assert sum('"error"' in e for e in events) == 1


def test_invalid_json_is_400_with_openai_body(make_server: MakeServer) -> None:
    server, _, _ = make_server()
    response = httpx.post(
        server.base_url + CHAT, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "JSON" in response.json()["error"]["message"]


def test_missing_messages_is_400_naming_messages(make_server: MakeServer) -> None:
    server, _, _ = make_server()
    response = httpx.post(server.base_url + CHAT, json={"model": "sonnet"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"


def test_empty_messages_is_400_naming_messages(make_server: MakeServer) -> None:
    server, _, _ = make_server()
    response = httpx.post(server.base_url + CHAT, json={"model": "sonnet", "messages": []})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"


def test_wrong_field_type_is_400_naming_the_field(make_server: MakeServer) -> None:
    server, _, _ = make_server()
    response = httpx.post(
        server.base_url + CHAT, json={"model": "sonnet", "messages": USER_HI, "stream": "yes"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "stream"


def test_unknown_fields_are_ignored(make_server: MakeServer) -> None:
    server, _, _ = make_server()
    body = {"model": "sonnet", "messages": USER_HI, "frobnicate": {"x": 1}, "temperature": 0.2}
    assert httpx.post(server.base_url + CHAT, json=body).status_code == 200


def test_body_over_the_limit_is_413(make_server: MakeServer) -> None:
    server, _, _ = make_server(settings=Settings.from_values(max_body_bytes=2048))
    big = [{"role": "user", "content": "x" * 4096}]
    response = httpx.post(server.base_url + CHAT, json={"model": "sonnet", "messages": big})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_rate_limit_passes_retry_after_on(make_server: MakeServer) -> None:
    server, _, _ = make_server(fail(FailureReason.RATE_LIMITED, "slow down", retry_after=7.2))
    response = httpx.post(server.base_url + CHAT, json={"model": "sonnet", "messages": USER_HI})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "8"


def test_not_logged_in_says_what_to_do(make_server: MakeServer) -> None:
    server, _, _ = make_server(fail(FailureReason.NOT_LOGGED_IN, "Not logged in"))
    response = httpx.post(server.base_url + CHAT, json={"model": "sonnet", "messages": USER_HI})
    assert response.status_code == 503
    assert LOGIN_HELP in response.json()["error"]["message"]


def test_unknown_route_and_method_get_openai_bodies(make_server: MakeServer) -> None:
    server, _, _ = make_server()
    missing = httpx.get(server.base_url + "/v1/nothing")
    wrong_method = httpx.put(server.base_url + "/v1/models")
    assert (missing.status_code, wrong_method.status_code) == (404, 405)
    assert set(missing.json()["error"]) == {"message", "type", "param", "code"}
    assert set(wrong_method.json()["error"]) == {"message", "type", "param", "code"}


def test_client_disconnect_cancels_the_running_turn(make_server: MakeServer) -> None:
    server, service, runner = make_server(reply(*["tick"] * 100), delay=0.2)
    with (
        httpx.Client(base_url=server.base_url, timeout=30) as client,
        client.stream(
            "POST", CHAT, json={"model": "sonnet", "messages": USER_HI, "stream": True}
        ) as response,
    ):
        for line in response.iter_lines():
            if '"tick"' in line:
                break
    deadline = time.monotonic() + 5
    while (runner.active or service.active) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (runner.active, runner.closed, service.active, service.queued) == (0, 1, 0, 0)


def test_non_stream_disconnect_cancels_the_turn(make_server: MakeServer) -> None:
    server, service, runner = make_server(reply("never"))
    runner.gate = asyncio.Event()
    with contextlib.suppress(httpx.ReadTimeout):
        httpx.post(
            server.base_url + CHAT, json={"model": "sonnet", "messages": USER_HI}, timeout=0.5
        )
    deadline = time.monotonic() + 5
    while runner.active and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (runner.active, service.active, service.queued) == (0, 0, 0)
