"""A real browser for tests: Debian's `chromium`, headless, driven by its own flags.

`--dump-dom` prints the document as the browser built it, `--screenshot` writes a PNG
of what it drew; no driver, no download. A missing chromium fails the test loudly
(never a skip): `make test` installs it (`make browser`).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

DEFAULT_CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
"""Where tests leave what a person may look at afterwards (git-ignored; CI keeps it)."""
WINDOW = (1200, 1400)
"""The window a screenshot shows: wide enough for the spend table, tall enough for all."""

# The profile is a fresh directory; nothing in the background reaches the network.
# --no-sandbox: chromium's sandbox refuses to start as root (a CI container) and
# needs user namespaces a container may lack; the page it loads is our own server's.
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
)


def chromium_path() -> str:
    """$CLAUDE_PROXY_TEST_CHROMIUM, else /usr/bin/chromium; the test fails when missing."""
    path = os.environ.get("CLAUDE_PROXY_TEST_CHROMIUM") or DEFAULT_CHROMIUM
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(
            f"The browser test needs Debian's chromium at {path}. Run `make browser` "
            "(as root it runs `apt-get install -y chromium`), or set "
            "CLAUDE_PROXY_TEST_CHROMIUM to a chromium executable.",
            pytrace=False,
        )
    return path


class Chromium:
    """Headless chromium runs with one throwaway profile directory."""

    def __init__(self, executable: str, profile: Path) -> None:
        self.executable = executable
        self.profile = profile

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.executable, *_FLAGS, f"--user-data-dir={self.profile}", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"chromium exited {done.returncode}: {done.stderr[-2000:]}")
        return done

    def dom(self, url: str) -> str:
        """The document at `url` as chromium parsed it, serialized."""
        return self._run("--dump-dom", url).stdout

    def screenshot(self, url: str, path: Path) -> Path:
        """A PNG of the page at `url`, drawn in a WINDOW-sized window, written to `path`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        self._run(f"--screenshot={path}", url)
        return path
