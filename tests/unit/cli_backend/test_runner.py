"""ClaudeCliRunner before and around start-up (no real CLI needed)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from proxy_cli_backend.config import CliRunnerConfig
from proxy_cli_backend.runner import BackendStartupError, ClaudeCliRunner, cannot_start
from proxy_core import ChatError, FailureReason, PlanKind, TextBlock, TurnPlan


async def test_start_without_a_cli_fails_with_install_advice(tmp_path: Path) -> None:
    runner = ClaudeCliRunner(CliRunnerConfig(cli_path=str(tmp_path / "nope"), state_dir="/s"))
    with pytest.raises(BackendStartupError, match="npm install"):
        await runner.start()
    status = runner.status()
    assert (status.ready, status.name) == (False, "claude-cli")
    assert status.problems


async def test_a_turn_before_start_is_backend_unavailable() -> None:
    runner = ClaudeCliRunner(CliRunnerConfig(state_dir="/s"))
    turn = TurnPlan(PlanKind.NEW, "k", "s", "sonnet", None, (TextBlock("hi"),), (), ())
    with pytest.raises(ChatError) as unavailable:
        await anext(runner.run(turn))
    assert unavailable.value.reason is FailureReason.BACKEND_UNAVAILABLE


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), FailureReason.STORE_UNAVAILABLE),
        (OSError(errno.EROFS, "Read-only file system"), FailureReason.STORE_UNAVAILABLE),
        (FileNotFoundError(errno.ENOENT, "No such file"), FailureReason.BACKEND_UNAVAILABLE),
        (PermissionError(errno.EACCES, "Permission denied"), FailureReason.BACKEND_UNAVAILABLE),
    ],
)
def test_a_full_disk_at_start_is_store_unavailable_not_a_missing_cli(
    error: OSError, reason: FailureReason
) -> None:
    failure = cannot_start(error)
    assert failure.reason is reason
    assert str(error) in failure.message


async def test_start_creates_the_state_and_work_directories(tmp_path: Path) -> None:
    cli = tmp_path / "claude"
    cli.write_text("#!/bin/sh\necho '9.9.9 (Claude Code)'\n")
    cli.chmod(0o755)
    config = CliRunnerConfig(cli_path=str(cli), state_dir=str(tmp_path / "state"))
    runner = ClaudeCliRunner(config, is_root=False)
    await runner.start()
    assert (tmp_path / "state" / "workdir").is_dir()
    status = runner.status()
    assert (status.ready, status.version, status.details.path) == (True, "9.9.9", str(cli))
