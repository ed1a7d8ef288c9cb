"""The README's make commands work as written: run, doctor and example (login:
test_make_login.py).

They run `make` in the checkout, as a user would after `make run` installed the venv
and the pinned CLI, with no `claude` on PATH: the pinned CLI is found by itself.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_max_api.probe import proxy_answers
from tests.contract.conftest import ROOT, pinned_cli_path
from tests.support.fake_upstream import FakeAnthropic
from tests.support.server import free_port

pytestmark = pytest.mark.cli


def path_without_claude() -> str:
    """PATH minus any directory holding a `claude`, so only the pinned CLI can be found."""
    dirs = os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
    return os.pathsep.join(d for d in dirs if not (Path(d) / "claude").exists())


@pytest.fixture
def make_env(cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    if shutil.which("make") is None:
        pytest.fail("`make` is needed to test the README's commands", pytrace=False)
    if not pinned_cli_path().exists():
        pytest.fail(f"the pinned CLI is missing at {pinned_cli_path()}: run `make cli`")
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CLAUDE_PROXY_", "CLAUDE_CLI_PATH", "MAKE", "MFLAGS"))
    }
    env.update(cli_env)
    env.update(PATH=path_without_claude(), XDG_STATE_HOME=str(tmp_path / "state"))
    return env


def make(
    env: dict[str, str], *targets: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", "-C", str(ROOT), *targets],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_make_doctor_finds_the_pinned_cli_and_passes(make_env: dict[str, str]) -> None:
    done = make(make_env, "doctor", f"ARGS=--port {free_port()}")
    assert done.returncode == 0, done.stdout + done.stderr
    version = (ROOT / ".claude-cli-version").read_text().strip()
    assert f"ok       cli: {pinned_cli_path()} (version {version})" in done.stdout
    assert "ok       login: logged in" in done.stdout


def test_make_example_holds_a_conversation(
    make_env: dict[str, str], fake_upstream: FakeAnthropic
) -> None:
    done = make(make_env, "example")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "echo: And one of grass?" in done.stdout
    assert fake_upstream.message_requests[-1].user_text == "And one of grass?"


def group_ends(pgid: int, within: float = 60) -> bool:
    """Whether every process of the group is gone within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def running(
    make_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    log = (tmp_path / "make-run.log").open("wb")
    child = subprocess.Popen(
        ["make", "-s", "-C", str(ROOT), "run", f"ARGS=--port {port} --sessions-db :memory:"],
        env=make_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield port, child
    finally:
        # make may be gone while the server it started still runs: end the whole group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
        if not group_ends(child.pid, 30):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        log.close()


def test_make_run_with_args_serves_on_the_given_port(
    running: tuple[int, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    port, child = running
    for _ in range(300):  # up to about a minute, then the assertion says why
        if proxy_answers(port) or child.poll() is not None:
            break
        time.sleep(0.2)
    log = (tmp_path / "make-run.log").read_text(errors="replace")
    assert proxy_answers(port), log
    os.killpg(child.pid, signal.SIGTERM)  # as Ctrl-C in the terminal would, to the group
    child.wait(60)  # make itself ends by the signal at once; the server must stop cleanly
    assert group_ends(child.pid), "the server outlived its shutdown"
    log = (tmp_path / "make-run.log").read_text(errors="replace")
    assert "shutting_down" in log, log
    assert "Finished server process" in log, log
    assert "Traceback" not in log, log
