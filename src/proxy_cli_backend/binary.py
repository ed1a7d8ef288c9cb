"""Finding the `claude` executable and reading its version once.

The places, in order: the `cli_path` setting, else $CLAUDE_CLI_PATH (either is an
explicit choice, and then the only place tried); else `claude` on PATH; else the CLI
that `make cli` pins in a checkout of this project
(`<checkout>/.tools/claude-<version>/node_modules/.bin/claude`, the version read from
`<checkout>/.claude-cli-version`), the checkout found from this package's own
location, then from the current directory. So `make run`, `doctor` and an embedding
program find the same CLI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import msgspec

from proxy_core import INSTALL_HELP, ChatError, FailureReason

CLI_PATH_ENV = "CLAUDE_CLI_PATH"
VERSION_FILE = ".claude-cli-version"
# In a checkout this file is <checkout>/src/proxy_cli_backend/binary.py.
PACKAGE_CHECKOUT = Path(__file__).resolve().parents[2]


class CliBinary(msgspec.Struct, frozen=True):
    """A located `claude` executable and the version it reports (None if unreadable)."""

    path: str
    version: str | None


class CliNotFound(ChatError):
    """No executable CLI at any place looked at; `looked_at` names each, in order."""

    def __init__(self, looked_at: Sequence[str]) -> None:
        self.looked_at = tuple(looked_at)
        super().__init__(FailureReason.BACKEND_UNAVAILABLE, f"{self.problem}. {INSTALL_HELP}")

    @property
    def problem(self) -> str:
        """What is wrong, naming every place looked at (the message without the fix)."""
        return "The Claude Code CLI was not found: looked " + ", then ".join(self.looked_at)


def pinned_cli(checkout: Path) -> Path | None:
    """The CLI `make cli` installs in `checkout`, per its .claude-cli-version (None if
    the directory has no readable version file, i.e. is not a checkout)."""
    try:
        version = (checkout / VERSION_FILE).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not version:
        return None
    return checkout / ".tools" / f"claude-{version}" / "node_modules" / ".bin" / "claude"


def search_places(
    cli_path: str | None, environ: Mapping[str, str], checkouts: Sequence[Path]
) -> list[tuple[str, str]]:
    """Where to look, in order: (what `shutil.which` gets, how an error names it)."""
    explicit = cli_path or environ.get(CLI_PATH_ENV)
    if explicit:
        source = "--cli-path" if cli_path else f"${CLI_PATH_ENV}"
        return [(explicit, f"at {explicit!r} (from {source})")]
    places = [("claude", "for `claude` on PATH")]
    seen: set[Path] = set()
    for checkout in checkouts:
        pinned = pinned_cli(checkout)
        if pinned is not None and pinned not in seen:
            seen.add(pinned)
            places.append((str(pinned), f"at {pinned} (where `make cli` installs it)"))
    return places


def locate_cli(
    cli_path: str | None,
    *,
    environ: Mapping[str, str] | None = None,
    checkouts: Sequence[Path] | None = None,
) -> str:
    """The executable's absolute path, from the first place that has one (see the
    module's docstring); raises CliNotFound naming every place looked at.

    `environ` defaults to the process's; `checkouts` to this package's checkout and the
    current directory.
    """
    env = os.environ if environ is None else environ
    where = [PACKAGE_CHECKOUT, Path.cwd()] if checkouts is None else checkouts
    places = search_places(cli_path, env, where)
    for wanted, _ in places:
        found = shutil.which(wanted, path=env.get("PATH", os.defpath))
        if found is not None:
            return os.path.abspath(found)
    raise CliNotFound([named for _, named in places])


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
    """Locate the CLI and read its version; raises CliNotFound (a ChatError of
    reason backend_unavailable) if absent."""
    path = locate_cli(cli_path)
    return CliBinary(path=path, version=read_version(path, version_timeout))
