"""Chat options the server cannot honour are refused with a 400 naming them."""

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
