"""Models, health, stats, sessions and the OpenAPI schema, in their exact shapes."""

from __future__ import annotations

import httpx
import openai
import pytest

from proxy_core import ModelCatalog
from tests.support.server import LiveServer

from .conftest import USER_HI, MakeServer, sdk


def chat(server: LiveServer, session: str, text: str = "hi") -> None:
    sdk(server).chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": text}],
        extra_headers={"X-Session-Id": session},
    )


def test_models_list_has_openai_shape(server: LiveServer) -> None:
    models = sdk(server).models.list()
    ids = [m.id for m in models.data]
    assert "sonnet" in ids
    assert "gpt-4o" in ids
    assert {m.owned_by for m in models.data} == {"anthropic"}
    assert all(m.object == "model" for m in models.data)


def test_model_retrieve_and_unknown_404(make_server: MakeServer) -> None:
    server, _, _ = make_server(catalog=ModelCatalog().with_overrides({"my-model": "opus"}))
    assert sdk(server).models.retrieve("my-model").id == "my-model"
    response = httpx.get(server.base_url + "/v1/models/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_health_has_seed_shape_and_backend_readiness(server: LiveServer) -> None:
    body = httpx.get(server.base_url + "/health").json()
    assert set(body) == {
        "status",
        "provider",
        "sessions",
        "activeSubprocesses",
        "concurrencyLimit",
        "queuedRequests",
        "timestamp",
        "backend",
        "trackedChildren",
        "orphansKilled",
    }
    assert body["status"] == "ok"
    assert body["backend"] == {"ready": True, "name": "fake", "version": "0", "problems": []}


def test_stats_count_requests_and_tokens(server: LiveServer) -> None:
    chat(server, "s1")
    with_error = httpx.post(
        server.base_url + "/v1/chat/completions",
        json={"model": "x", "messages": [{"role": "robot", "content": "x"}]},
    )
    assert with_error.status_code == 400
    body = httpx.get(server.base_url + "/stats").json()
    assert set(body) == {
        "uptime",
        "requests",
        "concurrency",
        "sessions",
        "tokens",
        "cost",
        "performance",
    }
    # The fake runner prices nothing (the real CLI's cost: test_subscription.py).
    assert body["cost"] == {"totalUsd": 0.0}
    assert body["requests"] == {
        "total": 2,
        "completed": 1,
        "errors": 1,
        "active": 0,
        "queued": 0,
        "byEndpoint": {"chat.completions": 2},
    }
    assert (
        body["tokens"]["total"] == body["tokens"]["totalInput"] + body["tokens"]["totalOutput"] > 0
    )
    assert set(body["performance"]) == {
        "avgResponseMs",
        "p50ResponseMs",
        "p95ResponseMs",
        "sampledRequests",
    }
    assert body["sessions"] == {"total": 1}
    assert set(body["uptime"]) == {"ms", "human"}


def test_sessions_list_has_seed_shape_and_pages(server: LiveServer) -> None:
    for name in ("a", "b", "c"):
        chat(server, name)
    page = httpx.get(server.base_url + "/v1/sessions", params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 3
    assert len(page["sessions"]) == 2
    first = page["sessions"][0]
    assert set(first) == {
        "externalId",
        "claudeSessionId",
        "model",
        "messageCount",
        "createdAt",
        "lastUsedAt",
    }
    assert first["externalId"] in {"h:a", "h:b", "h:c"}
    assert first["messageCount"] == 2
    assert first["createdAt"].endswith("Z")


def test_delete_session_accepts_raw_header_value_and_purges(make_server: MakeServer) -> None:
    server, _, runner = make_server()
    chat(server, "alpha")
    response = httpx.delete(server.base_url + "/v1/sessions/alpha", params={"purge": "true"})
    assert response.status_code == 200
    assert response.json() == {"deleted": True, "externalId": "h:alpha", "purged": True}
    assert runner.purged == [runner.plans[0].cli_session_id]
    assert httpx.get(server.base_url + "/v1/sessions").json()["total"] == 0


def test_delete_session_accepts_the_full_key(server: LiveServer) -> None:
    chat(server, "beta")
    response = httpx.delete(server.base_url + "/v1/sessions/h:beta")
    assert response.json()["externalId"] == "h:beta"


def test_delete_unknown_session_is_404_openai_body(server: LiveServer) -> None:
    response = httpx.delete(server.base_url + "/v1/sessions/ghost")
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_delete_all_sessions_restarts_conversations(make_server: MakeServer) -> None:
    server, _, runner = make_server()
    chat(server, "one")
    chat(server, "two")
    response = httpx.delete(server.base_url + "/v1/sessions")
    assert response.json() == {"deleted": 2, "purged": 0}
    sdk(server).chat.completions.create(
        model="sonnet",
        messages=[
            *USER_HI,
            {"role": "assistant", "content": "echo: hi"},
            {"role": "user", "content": "x"},
        ],
        extra_headers={"X-Session-Id": "one"},
    )
    assert runner.plans[-1].kind.value == "NEW"


def test_openapi_schema_documents_every_endpoint(server: LiveServer) -> None:
    schema = httpx.get(server.base_url + "/schema/openapi.json").json()
    assert set(schema["paths"]) >= {
        "/v1/chat/completions",
        "/v1/models",
        "/v1/models/{model_id}",
        "/health",
        "/stats",
        "/metrics",
        "/v1/sessions",
        "/v1/sessions/{session_id}",
    }
    chat_post = schema["paths"]["/v1/chat/completions"]["post"]
    assert {"200", "400", "404", "413", "429", "502", "503", "504"} <= set(chat_post["responses"])
    assert any(p["name"] == "X-Session-Id" for p in chat_post["parameters"])


def test_sdk_sees_unknown_session_delete_as_not_found(server: LiveServer) -> None:
    with pytest.raises(openai.NotFoundError):
        sdk(server).delete("/sessions/none", cast_to=object)
