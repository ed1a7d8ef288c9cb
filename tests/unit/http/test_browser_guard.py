"""The browser guard in the app: before the key check, logged by outcome, CORS headers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from structlog.testing import capture_logs

from claude_max_api.bootstrap import http_app
from claude_max_api.settings import Settings
from proxy_core import ChatService, FakeRunner, InMemorySessionStore
from proxy_http.auth import ApiKeyMiddleware
from proxy_http.browser_guard import BrowserGuardMiddleware
from proxy_http.instance import InstanceHeader
from proxy_http.logging import RequestLogMiddleware
from proxy_http.messages.errors import AnthropicErrors

LOCAL = "http://127.0.0.1:3456"
CHAT = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}
APP_ORIGIN = "https://app-7d3e.example"


def client(settings: Settings) -> TestClient[Litestar]:
    service = ChatService(FakeRunner(), InMemorySessionStore())
    return TestClient(http_app(service, settings), base_url=LOCAL)


@pytest.fixture
def keyed() -> Iterator[TestClient[Litestar]]:
    with client(Settings.from_values(api_keys="k-1")) as http:
        yield http


def test_the_guard_wraps_the_key_check_inside_the_request_log() -> None:
    app = http_app(
        ChatService(FakeRunner(), InMemorySessionStore()), Settings.from_values(api_keys="k")
    )
    # Outside the log only the instance header; between the log and the guard, only
    # the Messages API's error shaping (neither refuses anything).
    named = app.asgi_handler
    assert isinstance(named, InstanceHeader)
    log = named.app
    assert isinstance(log, RequestLogMiddleware)
    shaping = log.app
    assert isinstance(shaping, AnthropicErrors)
    guard = shaping.app
    assert isinstance(guard, BrowserGuardMiddleware)
    assert isinstance(guard.app, ApiKeyMiddleware)


def test_browser_refusals_come_before_the_key_check(keyed: TestClient[Litestar]) -> None:
    plain = keyed.post(
        "/v1/chat/completions", content=b"{}", headers={"content-type": "text/plain"}
    )
    assert (plain.status_code, plain.json()["error"]["code"]) == (415, "unsupported_media_type")
    foreign = keyed.get("/v1/models", headers={"origin": "https://evil.example"})
    assert (foreign.status_code, foreign.json()["error"]["type"]) == (403, "permission_error")
    rebound = keyed.get("/v1/sessions", headers={"host": "evil.example:3456"})
    assert (rebound.status_code, rebound.json()["error"]["code"]) == (421, "misdirected_request")
    assert keyed.get("/v1/models").status_code == 401  # what passes the guard meets the keys


def test_each_refusal_is_logged_as_its_outcome_without_the_header_values(
    keyed: TestClient[Litestar],
) -> None:
    with capture_logs() as logs:
        keyed.post(
            "/v1/chat/completions", json=CHAT, headers={"origin": "https://evil-4f2a.example"}
        )
        keyed.get("/health", headers={"host": "rebind-9c1d.example"})
        keyed.post(
            "/v1/chat/completions",
            content=b"{}",
            headers={"content-type": "text/x-secret-5b8e"},
        )
    lines = [entry for entry in logs if entry["event"] == "request"]
    assert [(line["status"], line["outcome"]) for line in lines] == [
        (403, "origin_not_allowed"),
        (421, "misdirected_request"),
        (415, "unsupported_media_type"),
    ]
    text = repr(logs)
    for value in ("evil-4f2a", "rebind-9c1d", "x-secret-5b8e"):
        assert value not in text


def test_without_listed_origins_no_response_carries_cors_headers() -> None:
    with client(Settings()) as http:
        responses = [
            http.get("/health"),
            http.post("/v1/chat/completions", json=CHAT),
            http.options(
                "/v1/chat/completions",
                headers={"origin": APP_ORIGIN, "access-control-request-method": "POST"},
            ),
        ]
    assert [r.status_code for r in responses] == [200, 200, 403]
    for response in responses:
        assert not [name for name in response.headers if name.startswith("access-control-")]
        assert "origin" not in response.headers.get("vary", "").lower()


def test_a_listed_origins_preflight_allows_our_headers_and_the_ones_it_asks_for() -> None:
    with client(Settings.from_values(allowed_origins=APP_ORIGIN)) as http:
        response = http.options(
            "/v1/chat/completions",
            headers={
                "origin": APP_ORIGIN,
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type, authorization, "
                "x-stainless-os, bad header, x-stainless-retry-count",
            },
        )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {
        "authorization",
        "content-type",
        "x-session-id",
        "x-api-key",
        "x-stainless-os",
        "x-stainless-retry-count",
    } <= allowed
    assert "bad header" not in allowed
    assert "access-control-allow-credentials" not in response.headers


def test_a_listed_origin_reads_responses_and_refusals_with_our_headers_exposed() -> None:
    with client(Settings.from_values(allowed_origins=APP_ORIGIN)) as http:
        ok = http.post("/v1/chat/completions", json=CHAT, headers={"origin": APP_ORIGIN})
        refused = http.post(
            "/v1/chat/completions",
            content=b"{}",
            headers={"origin": APP_ORIGIN, "content-type": "text/plain"},
        )
        other = http.get("/health")
    for response in (ok, refused):
        assert response.headers["access-control-allow-origin"] == APP_ORIGIN
        exposed = response.headers["access-control-expose-headers"].lower()
        assert "x-session-id" in exposed
        assert "x-request-id" in exposed
        assert "x-ignored-fields" in exposed
        assert "origin" in response.headers["vary"].lower()
    assert (ok.status_code, refused.status_code) == (200, 415)
    assert "access-control-allow-origin" not in other.headers
    assert "origin" in other.headers["vary"].lower()


def test_the_host_settings_reach_the_guard() -> None:
    with client(Settings.from_values(host="0.0.0.0", allowed_hosts="proxy-2e6b.example")) as http:
        statuses = [
            http.get("/health", headers={"host": host}).status_code
            for host in ("10.1.2.3:3456", "proxy-2e6b.example", "evil.example")
        ]
    assert statuses == [200, 200, 421]
