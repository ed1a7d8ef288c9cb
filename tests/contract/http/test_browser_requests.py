"""Browsers cannot drive the served proxy: the real server over the real CLI, with httpx
sending what a hostile page's browser sends, and the official SDK still working."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.fake_upstream import FakeAnthropic
from tests.support.server import ServerProcess, cli_server_env

APP_ORIGIN = "https://app-31c7.example"
EVIL_ORIGIN = "https://evil.example"
CHAT = "/v1/chat/completions"


def chat_body(text: str) -> bytes:
    return json.dumps({"model": "sonnet", "messages": [{"role": "user", "content": text}]}).encode()


def serve(root: Path, claude_bin: str, upstream: FakeAnthropic, **extra: str) -> ServerProcess:
    """`serve` over the real CLI and the fake upstream, with no warm pool (so no CLI idles)."""
    env = cli_server_env(root, claude_bin, upstream.base_url, **extra)
    return ServerProcess(env=env, log_path=root / "server.log")


@pytest.fixture(scope="module")
def proxy(
    claude_bin: str, fake_upstream_server: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The server with its default settings: no allowed origins or hosts."""
    with serve(tmp_path_factory.mktemp("browser"), claude_bin, fake_upstream_server) as server:
        yield server


@pytest.fixture(scope="module")
def cors_proxy(
    claude_bin: str, fake_upstream_server: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The server with one allowed origin, set by its environment variable."""
    root = tmp_path_factory.mktemp("browser-cors")
    with serve(
        root, claude_bin, fake_upstream_server, CLAUDE_PROXY_ALLOWED_ORIGINS=APP_ORIGIN
    ) as server:
        yield server


def turns_started(server: ServerProcess) -> int:
    total: int = httpx.get(server.base_url + "/stats").json()["requests"]["total"]
    return total


def assert_error(response: httpx.Response, status: int, kind: str, code: str) -> None:
    assert response.status_code == status, response.text[:300]
    error = response.json()["error"]
    assert (error["type"], error["code"]) == (kind, code)
    assert error["message"]


@pytest.mark.parametrize(
    "headers",
    [{"content-type": "text/plain"}, {"content-type": "text/plain;charset=UTF-8"}, {}],
    ids=["text-plain", "text-plain-charset", "no-content-type"],
)
def test_a_valid_chat_body_not_declared_json_gets_415_and_starts_no_cli_turn(
    proxy: ServerProcess, fake_upstream: FakeAnthropic, headers: dict[str, str]
) -> None:
    before = turns_started(proxy)
    response = httpx.post(
        proxy.base_url + CHAT, content=chat_body("run me"), headers=headers, timeout=60
    )
    assert response.request.headers.get("content-type") == headers.get("content-type")
    assert_error(response, 415, "invalid_request_error", "unsupported_media_type")
    assert "application/json" in response.json()["error"]["message"]
    assert turns_started(proxy) == before
    assert fake_upstream.message_requests == []


def test_the_same_body_declared_json_is_answered_by_the_cli(
    proxy: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    response = httpx.post(
        proxy.base_url + CHAT,
        content=chat_body("run me"),
        headers={"content-type": "application/json; charset=utf-8"},
        timeout=90,
    )
    assert response.status_code == 200, response.text[:300]
    assert response.json()["choices"][0]["message"]["content"] == "echo: run me"
    assert len(fake_upstream.message_requests) == 1


def test_a_post_from_a_foreign_origin_gets_403_and_starts_no_cli_turn(
    proxy: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    before = turns_started(proxy)
    response = httpx.post(
        proxy.base_url + CHAT,
        content=chat_body("from a web page"),
        headers={"content-type": "application/json", "origin": EVIL_ORIGIN},
        timeout=60,
    )
    assert_error(response, 403, "permission_error", "origin_not_allowed")
    assert not [h for h in response.headers if h.startswith("access-control-")]
    cross_site = httpx.get(
        proxy.base_url + "/v1/sessions", headers={"sec-fetch-site": "cross-site"}
    )
    assert_error(cross_site, 403, "permission_error", "origin_not_allowed")
    assert turns_started(proxy) == before
    assert fake_upstream.message_requests == []


@pytest.mark.parametrize("path", ["/v1/sessions", "/health"])
@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}"])
def test_a_foreign_host_gets_421_so_a_rebinding_page_reads_nothing(
    proxy: ServerProcess, path: str, host: str
) -> None:
    headers = {"host": host.format(port=proxy.port)}
    response = httpx.get(proxy.base_url + path, headers=headers)
    assert_error(response, 421, "invalid_request_error", "misdirected_request")
    assert list(response.json()) == ["error"]  # nothing of what the path would tell
    assert httpx.get(proxy.base_url + path, headers={"host": f"localhost:{proxy.port}"}).is_success


def test_preflights_are_refused_and_no_cors_headers_are_sent_by_default(
    proxy: ServerProcess,
) -> None:
    preflight = httpx.options(
        proxy.base_url + CHAT,
        headers={"origin": APP_ORIGIN, "access-control-request-method": "POST"},
    )
    assert_error(preflight, 403, "permission_error", "origin_not_allowed")
    assert "access-control-allow-origin" not in preflight.headers
    plain = httpx.get(proxy.base_url + "/v1/models")
    assert plain.status_code == 200
    assert not [h for h in plain.headers if h.startswith("access-control-")]


def test_the_openai_sdk_still_works_unchanged(proxy: ServerProcess) -> None:
    client = openai.OpenAI(
        base_url=proxy.base_url + "/v1", api_key="unused", max_retries=0, timeout=90
    )
    assert any(model.id == "sonnet" for model in client.models.list())
    reply = client.chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "sdk whole"}]
    )
    assert reply.choices[0].message.content == "echo: sdk whole"
    stream = client.chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "sdk streamed"}], stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "echo: sdk streamed"


def test_an_allowed_origin_passes_its_preflight_and_its_post_is_answered(
    cors_proxy: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    preflight = httpx.options(
        cors_proxy.base_url + CHAT,
        headers={
            "origin": APP_ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type, x-session-id",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    allowed = preflight.headers["access-control-allow-headers"].lower()
    for name in ("authorization", "content-type", "x-session-id", "x-api-key"):
        assert name in allowed
    response = httpx.post(
        cors_proxy.base_url + CHAT,
        content=chat_body("from the app"),
        headers={
            "content-type": "application/json",
            "origin": APP_ORIGIN,
            "sec-fetch-site": "cross-site",
            "x-session-id": "browser-app",
        },
        timeout=90,
    )
    assert response.status_code == 200, response.text[:300]
    assert response.json()["choices"][0]["message"]["content"] == "echo: from the app"
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "x-session-id" in exposed
    assert "x-request-id" in exposed
    assert response.headers["x-session-id"] == "h:browser-app"
    assert len(fake_upstream.message_requests) == 1


def test_an_allowed_origin_does_not_open_the_door_to_other_origins(
    cors_proxy: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    for origin in (EVIL_ORIGIN, "http://app-31c7.example", "null"):
        preflight = httpx.options(
            cors_proxy.base_url + CHAT,
            headers={"origin": origin, "access-control-request-method": "POST"},
        )
        assert_error(preflight, 403, "permission_error", "origin_not_allowed")
        assert "access-control-allow-origin" not in preflight.headers
        post = httpx.post(
            cors_proxy.base_url + CHAT,
            content=chat_body("sneak in"),
            headers={"content-type": "application/json", "origin": origin},
        )
        assert_error(post, 403, "permission_error", "origin_not_allowed")
    assert fake_upstream.message_requests == []
