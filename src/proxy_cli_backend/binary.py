"""Finding the `claude` executable and reading its version once."""

from __future__ import annotations

import os
import shutil
import subprocess

import msgspec

from proxy_core import ChatError, FailureReason

INSTALL_HINT = (
    "Install it with `npm install -g @anthropic-ai/claude-code` (or `make cli` in this "
    "repository), log in with `claude login`, or point CLAUDE_CLI_PATH at the executable."
)


class CliBinary(msgspec.Struct, frozen=True):
    """A located `claude` executable and the version it reports (None if unreadable)."""

    path: str
    version: str | None


def locate_cli(cli_path: str | None) -> str:
    """The executable's absolute path: `cli_path`, else $CLAUDE_CLI_PATH, else `claude` on PATH."""
    wanted = cli_path or os.environ.get("CLAUDE_CLI_PATH") or "claude"
    found = shutil.which(wanted)
    if found is None:
        where = f"at {wanted!r}" if (cli_path or os.environ.get("CLAUDE_CLI_PATH")) else "on PATH"
        raise ChatError(
            FailureReason.BACKEND_UNAVAILABLE,
            f"The Claude Code CLI was not found {where}. {INSTALL_HINT}",
        )
    return os.path.abspath(found)


def read_version(path: str, timeout: float = 30.0) -> str | None:
    """`claude --version` reduced to the version number (`2.1.331`), or None on failure."""
    try:
        done = subprocess.run(
            [path, "--version"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = done.stdout.split()
    return words[0] if done.returncode == 0 and words else None


def find_cli(cli_path: str | None, *, version_timeout: float = 30.0) -> CliBinary:
    """Locate the CLI and read its version; raises ChatError(backend_unavailable) if absent."""
    path = locate_cli(cli_path)
    return CliBinary(path=path, version=read_version(path, version_timeout))
