"""Chat options the server cannot honour are refused with a 400 naming them; those it
ignores that would change the reply are named in `X-Ignored-Fields`."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from claude_max_api.bootstrap import http_app
from claude_max_api.settings import Settings
from proxy_core import ChatService, FakeRunner, InMemorySessionStore


@pytest.mark.parametrize("n", [0, -1, 2, 10])
def test_any_n_but_one_is_a_400_naming_n(n: int) -> None:
    app = http_app(ChatService(FakeRunner(), InMemorySessionStore()), Settings())
    body = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}], "n": n}
    with TestClient(app, base_url="http://127.0.0.1") as client:
        response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("n", "invalid_request")
    assert f"n={n}" in error["message"]


def test_n_of_one_is_served() -> None:
    app = http_app(ChatService(FakeRunner(), InMemorySessionStore()), Settings())
    body = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}], "n": 1}
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.post("/v1/chat/completions", json=body).status_code == 200


IGNORED_HEADER = "x-ignored-fields"
HI = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


@pytest.mark.parametrize("stream", [False, True])
def test_ignored_fields_that_change_the_reply_are_named_in_a_header(stream: bool) -> None:
    app = http_app(ChatService(FakeRunner(), InMemorySessionStore()), Settings())
    body = {
        "model": "sonnet",
        "messages": HI,
        "stream": stream,
        "seed": 3,
        "temperature": 0.1,
        "logit_bias": {"50256": -100},
        "user": "alice",
        "metadata": {"k": "v"},
    }
    with TestClient(app, base_url="http://127.0.0.1") as client:
        response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers[IGNORED_HEADER] == "temperature,seed,logit_bias"


@pytest.mark.parametrize("stream", [False, True])
def test_the_tool_fields_are_not_named_in_the_header(stream: bool) -> None:
    app = http_app(ChatService(FakeRunner(), InMemorySessionStore()), Settings())
    body = {
        "model": "sonnet",
        "messages": HI,
        "stream": stream,
        "tools": TOOLS,
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "temperature": 0.1,
    }
    with TestClient(app, base_url="http://127.0.0.1") as client:
        response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers[IGNORED_HEADER] == "temperature"


@pytest.mark.parametrize("stream", [False, True])
def test_the_legacy_function_fields_are_not_named_in_the_header(stream: bool) -> None:
    app = http_app(ChatService(FakeRunner(), InMemorySessionStore()), Settings())
    body = {
        "model": "sonnet",
        "messages": HI,
        "stream": stream,
        "functions": [{"name": "lookup", "parameters": {"type": "object"}}],
        "function_call": "auto",
    }
    with TestClient(app, base_url="http://127.0.0.1") as client:
        response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert IGNORED_HEADER not in response.headers


@pytest.mark.parametrize("stream", [False, True])
def test_a_request_that_sets_no_ignored_field_gets_no_header(stream: bool) -> None:
    app = http_app(ChatService(FakeRunner(), InMemorySessionStore()), Settings())
    body = {"model": "sonnet", "messages": HI, "stream": stream, "user": "alice", "tools": []}
    with TestClient(app, base_url="http://127.0.0.1") as client:
        response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert IGNORED_HEADER not in response.headers
