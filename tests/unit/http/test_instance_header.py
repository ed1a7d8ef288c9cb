"""The instance header: every response says which server answered (docs/deploy.md)."""

from __future__ import annotations

import json
import socket

import pytest
from litestar.testing import TestClient

from claude_max_api.bootstrap import http_app, instance_name
from claude_max_api.settings import Settings, SettingsError, parse_serve_args
from proxy_core import ChatService, FakeRunner, InMemorySessionStore
from proxy_http.app import create_app
from proxy_http.auth import ApiKeys
from proxy_http.config import HttpConfig
from proxy_http.connections import connections_refusal
from proxy_http.instance import INSTANCE_HEADER
from proxy_http.layers import protect

KEY = "instance-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
CHAT = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def client() -> TestClient:  # type: ignore[type-arg]
    settings = Settings.from_values(instance_name="node-a", api_keys=KEY)
    app = http_app(ChatService(FakeRunner(), InMemorySessionStore()), settings)
    return TestClient(app, base_url="http://127.0.0.1")


def test_json_sse_and_health_responses_name_the_instance(client: TestClient) -> None:  # type: ignore[type-arg]
    with client:
        answers = [
            client.get("/health"),
            client.get("/v1/models", headers=AUTH),
            client.post("/v1/chat/completions", json=CHAT, headers=AUTH),
        ]
        with client.stream(
            "POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH
        ) as stream:
            body = b"".join(stream.iter_bytes())
            answers.append(stream)
    assert [a.status_code for a in answers] == [200, 200, 200, 200]
    assert b"data: [DONE]" in body
    assert [a.headers.get(INSTANCE_HEADER) for a in answers] == ["node-a"] * 4


def test_errors_from_every_layer_name_the_instance(client: TestClient) -> None:  # type: ignore[type-arg]
    with client:
        answers = {
            "no key": client.get("/v1/models"),
            "unknown path": client.get("/nowhere", headers=AUTH),
            "bad body": client.post(
                "/v1/chat/completions",
                content=b"{not json",
                headers={**AUTH, "Content-Type": "application/json"},
            ),
            "messages error": client.post("/v1/messages", json={}, headers=AUTH),
            "foreign host": client.get("/health", headers={"Host": "evil.example"}),
        }
    statuses = {what: answer.status_code for what, answer in answers.items()}
    assert statuses == {
        "no key": 401,
        "unknown path": 404,
        "bad body": 400,
        "messages error": 400,
        "foreign host": 421,
    }
    named = {what: answer.headers.get(INSTANCE_HEADER) for what, answer in answers.items()}
    assert named == dict.fromkeys(answers, "node-a")


def test_an_app_given_no_name_sends_no_instance_header() -> None:
    app = create_app(ChatService(FakeRunner(), InMemorySessionStore()), HttpConfig())
    protected = protect(app, HttpConfig(), keys=ApiKeys([]), retry_after=1)
    with TestClient(protected, base_url="http://127.0.0.1") as client:
        answer = client.get("/health")
    assert answer.status_code == 200
    assert INSTANCE_HEADER not in answer.headers


def test_the_name_defaults_to_the_host_name_and_port() -> None:
    assert instance_name(Settings.from_values(port=4000)) == f"{socket.gethostname()}:4000"
    assert instance_name(Settings.from_values(port=4000, instance_name="eu-1")) == "eu-1"


def test_the_name_is_read_from_its_flag_and_env_var() -> None:
    from_env = parse_serve_args([], environ={"CLAUDE_PROXY_INSTANCE_NAME": "env-name"})
    from_flag = parse_serve_args(
        ["--instance-name", "flag-name"], environ={"CLAUDE_PROXY_INSTANCE_NAME": "env-name"}
    )
    assert (from_env.server.instance_name, from_flag.server.instance_name) == (
        "env-name",
        "flag-name",
    )


@pytest.mark.parametrize("name", ["two\r\nlines", " padded", "caf\u00e9", "tab\there"])
def test_a_name_that_cannot_be_a_header_value_is_refused_naming_its_setting(name: str) -> None:
    with pytest.raises(SettingsError, match="--instance-name / CLAUDE_PROXY_INSTANCE_NAME"):
        parse_serve_args(["--instance-name", name], environ={})
    with pytest.raises(SettingsError, match="cannot be a header value"):
        parse_serve_args([], environ={"CLAUDE_PROXY_INSTANCE_NAME": name})


def test_a_connection_refused_at_the_cap_names_the_instance() -> None:
    head, _, body = connections_refusal(2, 3, "node-a").partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ")
    assert b"\r\nx-proxy-instance: node-a\r\n" in head + b"\r\n"
    assert json.loads(body)["error"]["code"] == "server_busy"
    assert b"x-proxy-instance" not in connections_refusal(2, 3)
