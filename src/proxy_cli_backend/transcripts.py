"""Where the CLI keeps a session's transcript, and deleting it safely.

The CLI writes `<config dir>/projects/<slug of its cwd>/<session uuid>.jsonl`, where
the config dir is $CLAUDE_CONFIG_DIR or `$HOME/.claude`, and the slug is the cwd with
every character outside [A-Za-z0-9] replaced by `-`; a slug longer than 200 characters
is cut to 200 and suffixed with `-` and a hash of the cwd (observed with 2.1.331).
"""

from __future__ import annotations

import logging
import re
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")
_MAX_SLUG = 200
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def projects_dir(env: Mapping[str, str]) -> Path:
    """The CLI's projects directory for a child environment."""
    config = env.get("CLAUDE_CONFIG_DIR")
    if config:
        return Path(config) / "projects"
    return Path(env.get("HOME") or Path.home()) / ".claude" / "projects"


def _java_hash(text: str) -> int:
    """Java's String.hashCode (over UTF-16 units), which the CLI uses for long slugs."""
    units = text.encode("utf-16-le")
    value = 0
    for i in range(0, len(units), 2):
        value = (value * 31 + int.from_bytes(units[i : i + 2], "little")) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _base36(number: int) -> str:
    number = abs(number)
    digits = ""
    while True:
        number, rest = divmod(number, 36)
        digits = _DIGITS[rest] + digits
        if not number:
            return digits


def project_slug(cwd: str) -> str:
    """The directory name the CLI uses for a working directory."""
    slug = _NOT_ALNUM.sub("-", cwd)
    if len(slug) <= _MAX_SLUG:
        return slug
    return f"{slug[:_MAX_SLUG]}-{_base36(_java_hash(cwd))}"


def transcript_path(projects: Path, cwd: str, session_id: str) -> Path:
    """`<projects>/<slug>/<session_id>.jsonl`; the id must be a UUID (no path tricks)."""
    return projects / project_slug(cwd) / f"{uuid.UUID(session_id)}.jsonl"


def purge_transcript(projects: Path, cwd: str, session_id: str) -> bool:
    """Delete a session's transcript (and its sibling `<uuid>/` folder, if any).

    Paths are resolved first, and anything outside the projects directory is refused
    with ValueError, so a symlink or a crafted id can never delete elsewhere.
    Returns whether anything was deleted.
    """
    path = transcript_path(projects, cwd, session_id)
    return purge_path(projects, path) | purge_path(projects, path.with_suffix(""))


def purge_path(projects: Path, path: Path) -> bool:
    """Delete `path` (file or folder) if it resolves inside `projects`; else ValueError."""
    root = projects.resolve()
    target = path.resolve()
    if target == root or not target.is_relative_to(root):
        raise ValueError(f"refusing to delete {path}: outside {projects}")
    if target.is_dir():
        shutil.rmtree(target)
        return True
    try:
        target.unlink()
    except FileNotFoundError:
        return False
    log.info("deleted transcript %s", target)
    return True
