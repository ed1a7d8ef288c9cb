"""`make login` runs `claude auth login` with the pinned CLI, or with $CLAUDE_CLI_PATH."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def recording_cli(directory: Path) -> tuple[Path, Path]:
    """A `claude` stand-in that writes its arguments to a file; returns (cli, record)."""
    directory.mkdir(parents=True)
    record = directory / "argv"
    cli = directory / "claude"
    cli.write_text(f'#!/bin/sh\nprintf "%s\\n" "$0" "$@" > "{record}"\n')
    cli.chmod(cli.stat().st_mode | stat.S_IXUSR)
    return cli, record


def make_login(*args: str, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", "-C", str(ROOT), "login", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_make_login_runs_auth_login_with_the_pinned_cli(tmp_path: Path) -> None:
    # CLAUDE_BIN is where `make cli` pins the CLI; pointing it at a stand-in that
    # exists keeps npm out of the test while running the target as written.
    pinned, record = recording_cli(tmp_path / "pinned")
    environ = {k: v for k, v in os.environ.items() if k != "CLAUDE_CLI_PATH"}
    done = make_login(f"CLAUDE_BIN={pinned}", environ=environ)
    assert done.returncode == 0, done.stderr
    assert record.read_text().splitlines() == [str(pinned), "auth", "login"]


def test_make_login_uses_claude_cli_path_when_set(tmp_path: Path) -> None:
    pinned, pinned_record = recording_cli(tmp_path / "pinned")
    chosen, record = recording_cli(tmp_path / "chosen")
    done = make_login(
        f"CLAUDE_BIN={pinned}", environ={**os.environ, "CLAUDE_CLI_PATH": str(chosen)}
    )
    assert done.returncode == 0, done.stderr
    assert record.read_text().splitlines() == [str(chosen), "auth", "login"]
    assert not pinned_record.exists()
