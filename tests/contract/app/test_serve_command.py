"""`python -m proxy_http serve` as a real process: start-up failures and a clean stop."""

from __future__ import annotations

import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx

from tests.contract.conftest import processes_in_groups
from tests.support.server import ServerProcess, run_serve


def test_serve_without_a_cli_exits_non_zero_and_says_why(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-claude"
    result = run_serve(
        "--cli-path",
        str(missing),
        "--state-dir",
        str(tmp_path / "state"),
        "--sessions-db",
        ":memory:",
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


def recording_cli(directory: Path, claude_bin: str) -> tuple[str, Path]:
    """The real CLI behind a wrapper that notes each run in a file: (its path, the file)."""
    runs = directory / "cli-runs"
    wrapper = directory / "claude"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> "{runs}"\nexec "{claude_bin}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper), runs


def test_a_port_in_use_stops_serve_with_one_line_before_any_cli_starts(
    claude_bin: str, tmp_path: Path
) -> None:
    cli, runs = recording_cli(tmp_path, claude_bin)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        argv = [sys.executable, "-m", "proxy_http", "serve", "--port", str(port)]
        argv += ["--cli-path", cli, "--state-dir", str(tmp_path / "state")]
        server = subprocess.Popen(
            [*argv, "--sessions-db", ":memory:"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        stdout, stderr = server.communicate(timeout=60)
    assert server.returncode == 1
    assert stderr.splitlines() == [
        f"claude-max-api: cannot start: 127.0.0.1:{port} is already in use by another "
        f"process; choose another port with --port {port + 1}"
    ], stderr
    assert "Traceback" not in stdout + stderr
    assert "startup complete" not in stdout + stderr
    assert not runs.exists(), "no CLI process may start: " + runs.read_text()
    assert processes_in_groups({server.pid}) == []


def test_serve_on_the_port_of_a_running_server_names_it(
    claude_bin: str, tmp_path: Path, running_server: ServerProcess
) -> None:
    port = running_server.port
    second = run_serve(
        "--cli-path",
        claude_bin,
        "--state-dir",
        str(tmp_path / "second"),
        "--sessions-db",
        ":memory:",
        port=port,
    )
    assert second.returncode == 1
    assert second.stderr.splitlines() == [
        f"claude-max-api: cannot start: 127.0.0.1:{port} is already in use by a "
        f"claude-max-api server; choose another port with --port {port + 1}"
    ], second.stderr
    assert httpx.get(running_server.base_url + "/health", timeout=10).status_code == 200
