"""`claude-max-api doctor` as a real command, with the real CLI's `auth status`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from proxy_core import LOGIN_HELP
from tests.support.server import ServerProcess, free_port


def run_doctor(
    claude_bin: str, home: Path, *, port: int | None = None, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    # A clean slate: no credentials, settings or Claude Code session from the caller.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "CLAUDE_", "CLAUDECODE"))
    }
    env.update(HOME=str(home), CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", **extra_env)
    argv = [
        sys.executable,
        "-m",
        "proxy_http",
        "doctor",
        "--cli-path",
        claude_bin,
        "--state-dir",
        str(home / "state"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port or free_port()),
    ]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=90, check=False)


def test_doctor_reports_a_cli_with_no_credentials_as_not_logged_in(
    claude_bin: str, tmp_path: Path
) -> None:
    done = run_doctor(claude_bin, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    problems = [line for line in done.stdout.splitlines() if line.startswith("PROBLEM")]
    assert problems == [f"PROBLEM  login: the CLI is not logged in -> fix: {LOGIN_HELP}"]
    assert "ok       cli: " in done.stdout
    assert "(version " in done.stdout


def test_doctor_passes_with_an_api_key_and_names_its_source(
    claude_bin: str, tmp_path: Path
) -> None:
    done = run_doctor(claude_bin, tmp_path, ANTHROPIC_API_KEY="test-key-not-secret")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok       login: logged in (api_key from ANTHROPIC_API_KEY)" in done.stdout


def test_doctor_recognises_a_running_server_on_its_port(
    claude_bin: str, tmp_path: Path, server_with_held_checks: ServerProcess
) -> None:
    # Its setup checks are still running (held in `auth status`), as after a start.
    port = server_with_held_checks.port
    done = run_doctor(claude_bin, tmp_path, port=port, ANTHROPIC_API_KEY="test-key-not-secret")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PROBLEM" not in done.stdout
    [line] = [line for line in done.stdout.splitlines() if line.startswith("ok       port:")]
    assert line.startswith(
        f"ok       port: a claude-max-api server is already running on 127.0.0.1:{port} "
        "(its /health answers: ok)"
    ), line
