"""With no `claude` on PATH and no CLAUDE_CLI_PATH, `doctor` and `serve` find the CLI
`make cli` pinned in this checkout (as `make run` and `make doctor` run them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.contract.conftest import pinned_cli_path
from tests.support.server import ServerProcess, free_port


def without_a_cli_on_path(home: Path) -> dict[str, str]:
    """The environment minus every way but the checkout's of naming a CLI."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDE_")}
    env.update(PATH="/usr/bin:/bin", HOME=str(home), PYTHONPATH=":".join(sys.path))
    return env


def test_doctor_finds_the_pinned_cli_from_outside_the_checkout(tmp_path: Path) -> None:
    pinned = pinned_cli_path()
    assert pinned.is_file(), "`make cli` installs it; the contract tests need it"
    done = subprocess.run(
        [sys.executable, "-m", "claude_max_api", "doctor", "--port", str(free_port())],
        env={**without_a_cli_on_path(tmp_path), "CLAUDE_PROXY_STATE_DIR": str(tmp_path / "s")},
        cwd=tmp_path,  # not the checkout: the package's own location leads to it
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    [cli] = [line for line in done.stdout.splitlines() if " cli: " in line]
    assert cli.startswith(f"ok       cli: {pinned} (version "), done.stdout


def test_serve_runs_the_pinned_cli(tmp_path: Path) -> None:
    server = ServerProcess(log_path=tmp_path / "server.log")
    server.env = without_a_cli_on_path(tmp_path) | {
        "CLAUDE_PROXY_STATE_DIR": str(tmp_path / "state"),
        "CLAUDE_PROXY_SESSIONS_DB": ":memory:",
        "CLAUDE_PROXY_POOL_SIZE": "0",
    }
    with server:
        pass
    log = (tmp_path / "server.log").read_text(errors="replace")
    assert f"path={pinned_cli_path()}" in log, log
