"""/stats counts requests per API surface, refused bodies included."""

from __future__ import annotations

from litestar.testing import TestClient

from claude_max_api.bootstrap import http_app
from claude_max_api.settings import Settings
from proxy_core import ChatService, FakeRunner, InMemorySessionStore


def test_stats_count_chat_requests_by_endpoint_refused_ones_too() -> None:
    app = http_app(ChatService(FakeRunner(), InMemorySessionStore()), Settings())
    good = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.post("/v1/chat/completions", json=good).status_code == 200
        assert client.post("/v1/chat/completions", json={"model": 3}).status_code == 400
        requests = client.get("/stats").json()["requests"]
    assert requests["byEndpoint"] == {"chat.completions": 2}
    assert (requests["total"], requests["errors"]) == (2, 1)
