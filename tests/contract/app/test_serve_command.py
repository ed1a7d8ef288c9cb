"""`python -m proxy_http serve` as a real process: start-up failures and a clean stop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.server import ServerProcess, free_port


def test_serve_without_a_cli_exits_non_zero_and_says_why(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-claude"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "proxy_http",
            "serve",
            "--port",
            str(free_port()),
            "--cli-path",
            str(missing),
            "--state-dir",
            str(tmp_path / "state"),
            "--sessions-db",
            ":memory:",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "cannot start" in result.stderr
    assert str(missing) in result.stderr


def test_sigterm_stops_the_server_with_exit_code_0(claude_bin: str, tmp_path: Path) -> None:
    env = {
        "CLAUDE_PROXY_CLI_PATH": claude_bin,
        "CLAUDE_PROXY_STATE_DIR": str(tmp_path / "state"),
        "CLAUDE_PROXY_SESSIONS_DB": ":memory:",
    }
    server = ServerProcess(env=env, log_path=tmp_path / "server.log").start()
    assert server.stop() == 0, server.log()
