"""Logging in, with the real CLI: the start-up line says the CLI's path, version and
login state (a warning with the fix when logged out), and a token file given to a
headless server reaches the upstream as the CLI's bearer token, never the logs."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx

from proxy_core import LOGIN_HELP
from tests.support.fake_upstream import FakeAnthropic
from tests.support.server import ServerProcess, run_serve

TOKEN = "sk-ant-oat01-contract-test-token-5d1e9a"
# Credentials of the environment running the tests must not log this server in.
CREDENTIAL_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")


def cli_version(claude_bin: str) -> str:
    done = subprocess.run([claude_bin, "--version"], capture_output=True, text=True, check=True)
    return done.stdout.split()[0]


def full_log(tmp_path: Path) -> str:
    return (tmp_path / "server.log").read_text(errors="replace")


def await_line(tmp_path: Path, event: str) -> None:
    """Wait (bounded) until the server logs `event`: the first setup check, which the
    server starts with itself, writes the CLI's state line when it completes."""
    for _ in range(300):
        if event in full_log(tmp_path):
            return
        time.sleep(0.1)


def logs_its_cli_state(
    claude_bin: str, tmp_path: Path, cli_env: dict[str, str], event: str
) -> None:
    with server_without_credentials(claude_bin, tmp_path, cli_env):
        await_line(tmp_path, event)


def server_without_credentials(
    claude_bin: str, tmp_path: Path, cli_env: dict[str, str], *args: str
) -> ServerProcess:
    """A `serve` over the real CLI whose HOME and config dir are empty."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "CLAUDE_PROXY_CLI_PATH": claude_bin,
        "CLAUDE_PROXY_STATE_DIR": str(tmp_path / "state"),
        "CLAUDE_PROXY_SESSIONS_DB": ":memory:",
        "CLAUDE_PROXY_POOL_SIZE": "0",
        "CLAUDE_PROXY_CLI_EXTRA_ENV": json.dumps(
            {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", **cli_env}
        ),
    }
    server = ServerProcess(args, env=env, log_path=tmp_path / "server.log")
    for name in CREDENTIAL_VARS:
        server.env.pop(name, None)
    return server


def test_a_cli_without_login_gets_a_start_up_warning_with_the_fix(
    claude_bin: str, tmp_path: Path
) -> None:
    logs_its_cli_state(claude_bin, tmp_path, {}, "cli_not_logged_in")
    log = full_log(tmp_path)
    [warning] = [line for line in log.splitlines() if "cli_not_logged_in" in line]
    assert "warn" in warning.lower()
    assert claude_bin in warning
    assert cli_version(claude_bin) in warning
    # The console renderer prints the text as is: the commands are there to copy.
    assert LOGIN_HELP in warning
    assert "`make login`" in warning
    assert "`claude auth login`" in warning


def test_a_logged_in_cli_gets_an_info_line_with_its_path_and_version(
    claude_bin: str, tmp_path: Path, fake_upstream: FakeAnthropic
) -> None:
    cli_env = {"ANTHROPIC_API_KEY": "test-key-not-secret"}
    logs_its_cli_state(claude_bin, tmp_path, cli_env, "cli_ready")
    log = full_log(tmp_path)
    assert "cli_not_logged_in" not in log
    [ready] = [line for line in log.splitlines() if "cli_ready" in line]
    assert "info" in ready.lower()
    assert claude_bin in ready
    assert cli_version(claude_bin) in ready
    assert "logged in (api_key from ANTHROPIC_API_KEY)" in ready


def test_a_token_file_logs_the_cli_in_and_reaches_the_upstream_as_its_bearer(
    claude_bin: str, tmp_path: Path, fake_upstream: FakeAnthropic
) -> None:
    token_file = tmp_path / "oauth-token"
    token_file.write_text(TOKEN + "\n")
    cli_env = {"ANTHROPIC_BASE_URL": fake_upstream.base_url, "CLAUDE_CODE_MAX_RETRIES": "0"}
    server = server_without_credentials(
        claude_bin, tmp_path, cli_env, "--oauth-token-file", str(token_file), "--log-level", "debug"
    )
    with server:
        await_line(tmp_path, "cli_ready")
        response = httpx.post(
            server.base_url + "/v1/chat/completions",
            json={"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]},
            timeout=90,
        )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "echo: hi"
    [request] = fake_upstream.message_requests
    headers = {name.lower(): value for name, value in request.headers.items()}
    assert headers["authorization"] == f"Bearer {TOKEN}"
    log = full_log(tmp_path)
    assert "logged in (oauth token from --oauth-token-file)" in log
    assert TOKEN not in log


def test_an_unreadable_token_file_stops_the_start_in_one_line_with_exit_2(
    tmp_path: Path,
) -> None:
    absent = tmp_path / "no-such-token"
    done = run_serve("--oauth-token-file", str(absent), "--state-dir", str(tmp_path / "state"))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"claude-max-api: cannot start: --oauth-token-file: cannot read {absent}: "
        "No such file or directory"
    ]


def test_an_empty_token_file_stops_the_start_too(tmp_path: Path) -> None:
    empty = tmp_path / "token"
    empty.write_text("\n")
    done = run_serve(env={**os.environ, "CLAUDE_PROXY_OAUTH_TOKEN_FILE": str(empty)})
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith(f"claude-max-api: cannot start: --oauth-token-file: {empty} is empty")
