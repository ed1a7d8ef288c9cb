"""doctor: each broken setup gives one PROBLEM line saying what to run, and exit code 1."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from claude_max_api.doctor import run_doctor
from claude_max_api.settings import Settings
from proxy_cli_backend.config import CliRunnerConfig
from proxy_cli_backend.diagnostics import check_login, diagnose
from proxy_core import INSTALL_HELP, LOGIN_HELP
from proxy_http.app import create_app
from tests.support.server import fake_service, free_port, live_app

LOGGED_IN = {"loggedIn": True, "authMethod": "claude.ai", "projectsDirectory": "/x"}
LOGGED_OUT = {"loggedIn": False, "authMethod": "none"}


def fake_cli(directory: Path, status: object, *, exit_code: int = 0, delay: float = 0) -> str:
    """A `claude` stand-in: `--version` and `auth status` answered like the real one."""
    path = directory / "claude"
    path.write_text(
        f"#!{sys.executable}\n"
        "import sys, time\n"
        "if sys.argv[1:] == ['--version']:\n"
        "    print('2.1.331 (Claude Code)')\n"
        "    sys.exit(0)\n"
        "if sys.argv[1:] == ['auth', 'status']:\n"
        f"    time.sleep({delay})\n"
        f"    print({json.dumps(json.dumps(status))})\n"
        f"    sys.exit({exit_code})\n"
        "sys.exit(2)\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def healthy(tmp_path: Path) -> Settings:
    """A setup where every check passes."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    return Settings.from_values(
        host="127.0.0.1",
        port=free_port(),
        cli_path=fake_cli(bin_dir, LOGGED_IN),
        state_dir=str(tmp_path / "state"),
        tools="none",
    )


def clean_env(tmp_path: Path) -> dict[str, str]:
    return {"HOME": str(tmp_path), "PATH": os.environ.get("PATH", "/usr/bin")}


def doctor(
    settings: Settings, env: Mapping[str, str], *, euid: int = 1000
) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = run_doctor(settings, out=out, environ=env, euid=lambda: euid)
    return code, out.getvalue().splitlines()


def problems(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("PROBLEM")]


def test_a_healthy_setup_passes_every_check(healthy: Settings, tmp_path: Path) -> None:
    code, lines = doctor(healthy, clean_env(tmp_path))
    assert code == 0
    assert problems(lines) == []
    names = [line.split()[1] for line in lines if line.startswith("ok")]
    assert names == [
        "cli:",
        "login:",
        "credit:",  # a plan's login: what the requests draw from
        "root:",
        "claudecode:",
        "state_dir:",
        "workdir:",
        "port:",
        "exposure:",
    ]
    assert any("version 2.1.331" in line for line in lines)
    assert any("logged in (claude.ai)" in line for line in lines)


def test_a_missing_cli_says_how_to_install_it(healthy: Settings, tmp_path: Path) -> None:
    settings = healthy.with_values(cli_path=str(tmp_path / "nowhere" / "claude"))
    code, lines = doctor(settings, clean_env(tmp_path))
    assert code == 1
    [line] = problems(lines)
    assert line.startswith("PROBLEM  cli: The Claude Code CLI was not found")
    assert line.endswith(f"-> fix: {INSTALL_HELP}")


def test_a_logged_out_cli_says_to_log_in(healthy: Settings, tmp_path: Path) -> None:
    cli = fake_cli(tmp_path, LOGGED_OUT, exit_code=1)
    code, lines = doctor(healthy.with_values(cli_path=cli), clean_env(tmp_path))
    assert code == 1
    assert problems(lines) == [f"PROBLEM  login: the CLI is not logged in -> fix: {LOGIN_HELP}"]


def test_root_with_full_tools_and_no_opt_in_is_a_problem(healthy: Settings, tmp_path: Path) -> None:
    code, lines = doctor(healthy.with_values(tools="full"), clean_env(tmp_path), euid=0)
    assert code == 1
    [line] = problems(lines)
    assert line.startswith("PROBLEM  root: running as root with tools=full")
    assert "--allow-root-tools" in line


def test_root_with_full_tools_and_the_opt_in_passes(healthy: Settings, tmp_path: Path) -> None:
    settings = healthy.with_values(tools="full", allow_root_tools=True)
    code, _ = doctor(settings, clean_env(tmp_path), euid=0)
    assert code == 0


def test_claudecode_in_the_environment_is_a_problem(healthy: Settings, tmp_path: Path) -> None:
    code, lines = doctor(healthy, {**clean_env(tmp_path), "CLAUDECODE": "1"})
    assert code == 1
    [line] = problems(lines)
    assert line.startswith("PROBLEM  claudecode: CLAUDECODE is set")
    assert "-> fix: unset CLAUDECODE" in line


def test_an_unwritable_state_dir_is_a_problem(healthy: Settings, tmp_path: Path) -> None:
    # Root can write anywhere, so the dir is made impossible: its parent is a file.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings = healthy.with_values(state_dir=str(blocker / "state"), workdir=str(tmp_path / "work"))
    code, lines = doctor(settings, clean_env(tmp_path))
    assert code == 1
    [line] = problems(lines)
    assert line.startswith(f"PROBLEM  state_dir: {blocker / 'state'} is not writable")
    assert "--state-dir" in line


def test_an_unwritable_workdir_is_a_problem(healthy: Settings, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings = healthy.with_values(workdir=str(blocker / "work"))
    code, lines = doctor(settings, clean_env(tmp_path))
    assert code == 1
    [line] = problems(lines)
    assert line.startswith("PROBLEM  workdir:")
    assert "--workdir" in line


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_port_in_use_is_a_problem(healthy: Settings, tmp_path: Path, listener: int) -> None:
    code, lines = doctor(healthy.with_values(port=listener), clean_env(tmp_path))
    assert code == 1
    [line] = problems(lines)
    assert line.startswith(f"PROBLEM  port: 127.0.0.1:{listener} is in use by another process")
    assert "--port" in line


def test_a_port_held_by_a_claude_max_api_server_is_recognised_and_not_a_problem(
    healthy: Settings, tmp_path: Path
) -> None:
    with live_app(create_app(fake_service())) as server:
        code, lines = doctor(healthy.with_values(port=server.port), clean_env(tmp_path))
    assert code == 0
    assert problems(lines) == []
    [line] = [line for line in lines if line.startswith("ok       port:")]
    assert line.startswith(
        f"ok       port: a claude-max-api server is already running on 127.0.0.1:{server.port} "
        "(its /health answers: ok)"
    )
    assert f"--port {server.port + 1}" in line


def test_an_exposed_host_without_api_keys_is_a_problem(healthy: Settings, tmp_path: Path) -> None:
    code, lines = doctor(healthy.with_values(host="0.0.0.0"), clean_env(tmp_path))
    assert code == 1
    [line] = problems(lines)
    assert line.startswith("PROBLEM  exposure: 0.0.0.0 is reachable from the network")
    assert "--host 127.0.0.1" in line


def test_an_exposed_host_with_a_key_file_is_not_a_problem(
    healthy: Settings, tmp_path: Path
) -> None:
    key_file = tmp_path / "keys.txt"
    key_file.write_text("# team key\nsk-local-1\n")
    code, lines = doctor(
        healthy.with_values(host="0.0.0.0", api_key_file=str(key_file)), clean_env(tmp_path)
    )
    assert code == 0
    assert not problems(lines)


def test_an_exposed_host_allowed_unauthenticated_is_not_a_problem(
    healthy: Settings, tmp_path: Path
) -> None:
    code, lines = doctor(
        healthy.with_values(host="0.0.0.0", allow_unauthenticated=True), clean_env(tmp_path)
    )
    assert code == 0
    assert not problems(lines)


def test_an_unreadable_key_file_is_a_problem(healthy: Settings, tmp_path: Path) -> None:
    settings = healthy.with_values(host="0.0.0.0", api_key_file=str(tmp_path / "missing.txt"))
    code, lines = doctor(settings, clean_env(tmp_path))
    assert code == 1
    [line] = problems(lines)
    assert line.startswith("PROBLEM  exposure: Cannot read the API key file")


def test_a_hung_auth_status_is_cut_off_and_reported(tmp_path: Path) -> None:
    cli = fake_cli(tmp_path, LOGGED_IN, delay=30)
    started = time.monotonic()
    finding = check_login(cli, clean_env(tmp_path), timeout=0.5)
    assert time.monotonic() - started < 10
    assert not finding.ok
    assert "auth status" in finding.detail


def test_an_auth_status_that_prints_no_json_is_reported(tmp_path: Path) -> None:
    cli = fake_cli(tmp_path, "oops")
    finding = check_login(cli, clean_env(tmp_path), timeout=10)
    assert not finding.ok


def test_the_login_check_runs_the_cli_without_claudecode(tmp_path: Path) -> None:
    # The stand-in reports "logged out" only if CLAUDECODE reached it.
    path = tmp_path / "claude"
    path.write_text(
        f"#!{sys.executable}\nimport os, json\n"
        "print(json.dumps({'loggedIn': 'CLAUDECODE' not in os.environ}))\n"
    )
    path.chmod(0o755)
    config = CliRunnerConfig(cli_path=str(path), state_dir=str(tmp_path / "s"))
    env = {**clean_env(tmp_path), "CLAUDECODE": "1"}
    login = next(f for f in diagnose(config, environ=env) if f.name == "login")
    assert login.ok
