"""`claude-max-api setup-openclaw` as a real command, beside a real server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.server import ServerProcess


def test_setup_openclaw_finds_a_running_server(
    tmp_path: Path, server_with_held_checks: ServerProcess
) -> None:
    home = tmp_path / "openclaw"
    home.mkdir()
    # Its setup checks are still running (held in `auth status`), as after a start.
    port = server_with_held_checks.port
    argv = [sys.executable, "-m", "proxy_http", "setup-openclaw"]
    argv += ["--openclaw-home", str(home), "--port", str(port), "--dry-run"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        f"proxy: answering at http://127.0.0.1:{port}/health (status: ok)"
        in done.stdout.splitlines()
    ), done.stdout
    assert "nothing answers" not in done.stdout
