"""Where the CLI keeps a session's transcript; deleting it safely, and sweeping orphans.

The CLI writes `<config dir>/projects/<slug of its cwd>/<session uuid>.jsonl` (and, for
some sessions, a `<session uuid>/` folder beside it), where the config dir is
$CLAUDE_CONFIG_DIR or `$HOME/.claude` and the cwd is the real path (symlinks
resolved). The slug is JavaScript's: every UTF-16 code unit outside [A-Za-z0-9]
becomes `-` (so a character beyond the BMP, an emoji, becomes `--`); a slug longer
than 200 units is cut to 200 and suffixed with `-` and a hash of the cwd (observed
with 2.1.331). Other entries of a project folder (such as `memory/`) are the CLI's
and are never touched.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Mapping, Set
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")
_MAX_SLUG = 200
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_TRANSCRIPT_SUFFIX = ".jsonl"


def projects_dir(env: Mapping[str, str]) -> Path:
    """The CLI's projects directory for a child environment."""
    config = env.get("CLAUDE_CONFIG_DIR")
    if config:
        return Path(config) / "projects"
    return Path(env.get("HOME") or Path.home()) / ".claude" / "projects"


def _utf16(text: str) -> bytes:
    # surrogatepass: a path that is not valid UTF-8 reaches Python as lone surrogates.
    return text.encode("utf-16-le", "surrogatepass")


def _java_hash(text: str) -> int:
    """Java's String.hashCode (over UTF-16 units), which the CLI uses for long slugs."""
    units = _utf16(text)
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


def _dashes(match: re.Match[str]) -> str:
    """One `-` per UTF-16 code unit of the character, as JavaScript's regex replace does."""
    return "-" * (len(_utf16(match.group())) // 2)


def project_slug(cwd: str) -> str:
    """The directory name the CLI uses for a working directory (counted in UTF-16 units)."""
    slug = _NOT_ALNUM.sub(_dashes, cwd)  # ASCII only now: one character per unit
    if len(slug) <= _MAX_SLUG:
        return slug
    return f"{slug[:_MAX_SLUG]}-{_base36(_java_hash(cwd))}"


def project_dir(projects: Path, cwd: str) -> Path:
    """`<projects>/<slug>`: the folder holding the transcripts of sessions run in `cwd`."""
    return projects / project_slug(os.path.realpath(cwd))


def transcript_path(projects: Path, cwd: str, session_id: str) -> Path:
    """`<projects>/<slug>/<session_id>.jsonl`; the id must be a UUID (no path tricks)."""
    return project_dir(projects, cwd) / f"{uuid.UUID(session_id)}{_TRANSCRIPT_SUFFIX}"


def purge_transcript(projects: Path, cwd: str, session_id: str) -> bool:
    """Delete a session's transcript (and its sibling `<uuid>/` folder, if any).

    Paths are resolved first, and anything outside the projects directory is refused
    with ValueError, so a symlink or a crafted id can never delete elsewhere.
    Returns True only if there was something to delete and none of it is left (each
    deletion is checked); a deletion that failed raises OSError.
    """
    return _purge_session(projects, transcript_path(projects, cwd, session_id))


def _purge_session(projects: Path, transcript: Path) -> bool:
    """Delete a transcript and its sibling `<uuid>/` folder; whether either existed."""
    return purge_path(projects, transcript) | purge_path(projects, transcript.with_suffix(""))


def purge_path(projects: Path, path: Path) -> bool:
    """Delete `path` (file or folder) if it resolves inside `projects`; else ValueError.

    Returns whether it existed; raises OSError if it exists and could not be deleted.
    """
    root = projects.resolve()
    target = path.resolve()
    if target == root or not target.is_relative_to(root):
        raise ValueError(f"refusing to delete {path}: outside {projects}")
    if target.is_dir():
        shutil.rmtree(target)
    else:
        try:
            target.unlink()
        except FileNotFoundError:
            return False
    if os.path.lexists(target):
        raise OSError(f"{target} is still there after deleting it")
    log.info("transcript_deleted", path=str(target))
    return True


def sweep_project(folder: Path, projects: Path, keep: Set[str], cutoff: float) -> int:
    """Delete the sessions in a project folder that `keep` does not name, last modified
    before `cutoff` (epoch seconds); returns how many sessions were deleted.

    Only UUID-named transcripts and folders are considered, never symlinks, and every
    deletion goes through `purge_path` (refused outside `projects`). A session whose
    deletion fails is logged and skipped.
    """
    newest: dict[str, float] = {}
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        session = _session_of(entry)
        if session is None or session in keep:
            continue
        try:
            modified = entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:
            continue
        newest[session] = max(modified, newest.get(session, modified))
    swept = 0
    for session, modified in newest.items():
        if modified >= cutoff:
            continue
        try:
            _purge_session(projects, folder / f"{session}{_TRANSCRIPT_SUFFIX}")
        except (ValueError, OSError) as error:
            log.warning("orphaned_transcript_delete_failed", session=session, error=str(error))
            continue
        swept += 1
    return swept


def _session_of(entry: os.DirEntry[str]) -> str | None:
    """The session id a project folder entry belongs to, or None if it is not a session's."""
    if entry.is_symlink():
        return None
    name = entry.name
    if name.endswith(_TRANSCRIPT_SUFFIX) and entry.is_file(follow_symlinks=False):
        name = name[: -len(_TRANSCRIPT_SUFFIX)]
    elif not entry.is_dir(follow_symlinks=False):
        return None
    try:
        session = str(uuid.UUID(name))
    except ValueError:
        return None
    return session if session == name else None
