"""/health of a real server never waits for the setup checks (`claude auth status`)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from claude_max_api.probe import proxy_health
from tests.support.server import ServerProcess


def test_health_answers_while_the_checks_run_then_reports_their_result(
    server_with_held_checks: ServerProcess, gate: Path
) -> None:
    server = server_with_held_checks
    # The first run started with the app and is held in `auth status`: /health answers.
    pending = httpx.get(server.base_url + "/health", timeout=10).json()
    assert pending["status"] == "ok"
    assert pending["backend"]["checksPending"] is True
    assert proxy_health(server.port) == "ok"
    gate.touch()
    done = pending
    for _ in range(300):  # bounded: the check ends once `auth status` answers
        done = httpx.get(server.base_url + "/health", timeout=10).json()
        if "checksPending" not in done["backend"]:
            break
        time.sleep(0.1)
    assert "checksPending" not in done["backend"], done
    assert done["status"] == "ok", done
    assert done["backend"]["problems"] == []


def test_a_server_stopped_while_its_checks_run_exits_cleanly_and_leaves_no_check_behind(
    server_with_held_checks: ServerProcess, gate: Path
) -> None:
    server = server_with_held_checks
    held = Path(f"{gate}.pid")
    for _ in range(300):  # bounded: the check reaches `auth status` soon after start-up
        if held.exists() and held.read_text().strip():
            break
        time.sleep(0.1)
    pid = int(held.read_text())
    assert Path(f"/proc/{pid}").exists()  # the check is held in `auth status`
    assert server.stop() == 0, server.log()
    assert not _alive(pid), "the held `auth status` outlived the server"


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie left for init to reap counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
