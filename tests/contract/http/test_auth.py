"""Authentication over HTTP: the key matrix, /health open, keys out of logs, and the
refusal to expose an unauthenticated server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from claude_max_api.settings import Settings
from tests.support.server import LiveServer, ServerProcess, live_fake_server, run_serve

KEYS = "first-key-8c1f,second-key-77d0"
CHAT = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def guarded() -> Iterator[LiveServer]:
    with live_fake_server(settings=Settings.from_values(api_keys=KEYS)) as (server, _):
        yield server


def assert_invalid_api_key(response: httpx.Response) -> None:
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert error["type"] == "invalid_request_error"
    assert "API key" in error["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"x-api-key": "wrong-key"},
        {"Authorization": "Basic Zmlyc3Qta2V5LThjMWY6"},
        {"Authorization": "Bearer first-key-8c1"},  # a prefix of a real key
    ],
    ids=["no-key", "wrong-bearer", "wrong-x-api-key", "basic-auth", "key-prefix"],
)
def test_requests_without_a_valid_key_get_401_invalid_api_key(
    guarded: LiveServer, headers: dict[str, str]
) -> None:
    for method, path in [
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/models"),
        ("GET", "/stats"),
        ("GET", "/metrics"),
        ("GET", "/v1/sessions"),
        ("GET", "/schema/openapi.json"),
        ("GET", "/no/such/path"),
    ]:
        response = httpx.request(
            method,
            guarded.base_url + path,
            headers=headers,
            json=CHAT if method == "POST" else None,
        )
        assert_invalid_api_key(response)


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": "Bearer first-key-8c1f"}, {"x-api-key": "second-key-77d0"}],
    ids=["bearer", "x-api-key"],
)
def test_a_valid_key_is_accepted_as_bearer_or_x_api_key(
    guarded: LiveServer, headers: dict[str, str]
) -> None:
    response = httpx.post(guarded.base_url + "/v1/chat/completions", headers=headers, json=CHAT)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"]


def test_health_stays_open_without_a_key(guarded: LiveServer) -> None:
    response = httpx.get(guarded.base_url + "/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_the_openai_sdk_authenticates_with_its_api_key(guarded: LiveServer) -> None:
    client = openai.OpenAI(
        base_url=guarded.base_url + "/v1", api_key="second-key-77d0", max_retries=0
    )
    reply = client.chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content
    wrong = openai.OpenAI(base_url=guarded.base_url + "/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        wrong.models.list()
    assert raised.value.code == "invalid_api_key"


def test_serve_refuses_a_non_loopback_host_without_keys_and_says_why(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": ":".join(sys.path),
    }
    result = run_serve("--host", "0.0.0.0", env=env)
    assert result.returncode != 0
    assert "refusing to listen on 0.0.0.0 without API keys" in result.stderr
    assert "--allow-unauthenticated" in result.stderr
    # It stopped before binding (and before looking for the CLI, absent on this PATH).
    assert "cannot start" not in result.stderr


def test_serve_refuses_an_unreadable_key_file(tmp_path: Path) -> None:
    result = run_serve("--api-key-file", str(tmp_path / "missing"))
    assert result.returncode != 0
    assert "Cannot read the API key file" in result.stderr


def test_keys_never_appear_in_the_server_log(
    tmp_path: Path, claude_bin: str, cli_env: dict[str, str]
) -> None:
    log_path = tmp_path / "server.log"
    key_file = tmp_path / "keys"
    key_file.write_text("file-key-5e2a93\n")
    args = [
        "--api-keys",
        "flag-key-0b7d44",
        "--api-key-file",
        str(key_file),
        "--log-level",
        "debug",
        "--log-format",
        "json",
        "--cli-path",
        claude_bin,
        "--state-dir",
        str(tmp_path / "state"),
    ]
    with ServerProcess(args, env=cli_env, log_path=log_path) as server:
        for headers in (
            {"Authorization": "Bearer flag-key-0b7d44"},
            {"x-api-key": "file-key-5e2a93"},
            {"Authorization": "Bearer wrong-key-3f9c1e"},
        ):
            httpx.get(server.base_url + "/v1/models", headers=headers, timeout=10)
        assert httpx.get(server.base_url + "/v1/models", timeout=10).status_code == 401
    text = log_path.read_text(errors="replace")
    assert '"status": 401' in text or '"status":401' in text  # the log did record requests
    for secret in ("flag-key-0b7d44", "file-key-5e2a93", "wrong-key-3f9c1e"):
        assert secret not in text
