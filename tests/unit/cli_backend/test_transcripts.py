"""Transcript paths as the CLI lays them out, and a purge that cannot escape."""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path

import pytest

from proxy_cli_backend.config import CliRunnerConfig
from proxy_cli_backend.runner import ClaudeCliRunner
from proxy_cli_backend.transcripts import (
    project_dir,
    project_slug,
    projects_dir,
    purge_path,
    purge_transcript,
    sweep_project,
    transcript_path,
)

SID = "657b4acd-73c3-4f4f-b85a-78bdb30b242e"


def test_the_slug_replaces_every_non_alphanumeric_with_a_dash() -> None:
    # Observed with claude 2.1.331.
    assert project_slug("/tmp/wd.x_y dcuuy_j9") == "-tmp-wd-x-y-dcuuy-j9"


def test_a_long_slug_is_cut_and_suffixed_with_a_hash_of_the_path() -> None:
    cwd = "/tmp/tmpzhkhhg8_/" + "a" * 120 + "/" + "b.c" * 40
    slug = project_slug(cwd)
    assert slug == project_slug(cwd)
    assert slug.endswith("--2tkzoh")  # as the real CLI named it
    assert len(slug) == 207


def test_a_character_beyond_the_bmp_counts_as_two_utf16_units() -> None:
    # Observed with claude 2.1.331: the emoji became `--`, the `é` one `-`.
    assert project_slug("/tmp/disk-exp/wd-\U0001f600-\u00e9") == "-tmp-disk-exp-wd-----"


def test_the_cut_of_a_long_slug_counts_utf16_units() -> None:
    # 137 characters but 227 UTF-16 units: the CLI cut and hashed it (observed, 2.1.331).
    cwd = "/tmp/disk-exp/e/" + "\U0001f600" * 60 + "/" + "\u00e9\U0001f600" * 30
    slug = project_slug(cwd)
    assert slug == "-tmp-disk-exp-e" + "-" * 185 + "-g8zy96"
    assert len(slug) == 207


def test_the_project_folder_is_named_after_the_real_path(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    folder = project_dir(Path("/p"), str(tmp_path / "link"))
    assert folder == Path("/p") / project_slug(str(real.resolve()))


def test_projects_dir_follows_claude_config_dir_then_home() -> None:
    assert projects_dir({"HOME": "/h"}) == Path("/h/.claude/projects")
    assert projects_dir({"HOME": "/h", "CLAUDE_CONFIG_DIR": "/c"}) == Path("/c/projects")


def test_transcript_path_is_under_the_slug() -> None:
    path = transcript_path(Path("/p"), "/srv/work", SID)
    assert path == Path(f"/p/-srv-work/{SID}.jsonl")


def test_a_session_id_that_is_not_a_uuid_is_rejected() -> None:
    with pytest.raises(ValueError, match="UUID"):
        transcript_path(Path("/p"), "/w", "../../etc/passwd")


def test_purge_deletes_the_transcript_and_its_folder(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    path = transcript_path(projects, "/w", SID)
    path.parent.mkdir(parents=True)
    path.write_text("{}\n")
    (path.parent / SID).mkdir()
    assert purge_transcript(projects, "/w", SID) is True
    assert not path.exists()
    assert not (path.parent / SID).exists()
    assert purge_transcript(projects, "/w", SID) is False


def test_purge_refuses_a_path_outside_the_projects_dir(tmp_path: Path) -> None:
    victim = tmp_path / "victim.jsonl"
    victim.write_text("keep")
    with pytest.raises(ValueError, match="outside"):
        purge_path(tmp_path / "projects", victim)
    assert victim.exists()


def test_purge_refuses_a_symlinked_project_folder_leading_outside(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    projects.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / f"{SID}.jsonl"
    victim.write_text("keep")
    (projects / "-w").symlink_to(outside)
    with pytest.raises(ValueError, match="outside"):
        purge_transcript(projects, "/w", SID)
    assert victim.exists()


def test_purge_refuses_the_projects_dir_itself(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outside"):
        purge_path(tmp_path, tmp_path)


def test_a_deletion_that_leaves_the_file_is_an_error_not_a_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    projects = tmp_path / "projects"
    path = transcript_path(projects, "/w", SID)
    path.parent.mkdir(parents=True)
    path.write_text("{}\n")
    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: None)
    with pytest.raises(OSError, match="still there"):
        purge_transcript(projects, "/w", SID)


async def test_the_runner_reports_a_purge_only_when_the_file_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "home"
    config = CliRunnerConfig(state_dir=str(tmp_path / "state"), extra_env={"HOME": str(home)})
    runner = ClaudeCliRunner(config)
    path = transcript_path(runner.projects, config.resolved_workdir, SID)
    path.parent.mkdir(parents=True)
    path.write_text("{}\n")
    with monkeypatch.context() as patched:
        patched.setattr(Path, "unlink", lambda self, missing_ok=False: None)
        with caplog.at_level(logging.WARNING):
            assert await runner.forget(SID, purge=True) is False
    assert path.exists()
    assert "still there" in caplog.text
    assert await runner.forget(SID, purge=True) is True
    assert not path.exists()
    assert await runner.forget(SID, purge=True) is False  # nothing left to delete
    assert await runner.forget(SID) is False  # not asked to purge


# -- the orphan sweep -------------------------------------------------------------


def _session(folder: Path, *, age: float, with_folder: bool = False) -> str:
    """A transcript (and optionally its `<uuid>/` folder) last modified `age` seconds ago."""
    session = str(uuid.uuid4())
    path = folder / f"{session}.jsonl"
    path.write_text("{}\n")
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    if with_folder:
        (folder / session).mkdir()
        (folder / session / "agent.jsonl").write_text("{}\n")
        os.utime(folder / session, (stamp, stamp))
    return session


def _project(tmp_path: Path) -> tuple[Path, Path]:
    projects = tmp_path / "projects"
    folder = projects / "-w"
    folder.mkdir(parents=True)
    return projects, folder


def test_the_sweep_deletes_old_orphans_and_keeps_young_and_kept_ones(tmp_path: Path) -> None:
    projects, folder = _project(tmp_path)
    old = _session(folder, age=7200, with_folder=True)
    young = _session(folder, age=10)
    kept = _session(folder, age=7200)
    cutoff = time.time() - 3600
    assert sweep_project(folder, projects, {kept}, cutoff) == 1
    assert not (folder / f"{old}.jsonl").exists()
    assert not (folder / old).exists()
    assert (folder / f"{young}.jsonl").exists()
    assert (folder / f"{kept}.jsonl").exists()


def test_the_sweep_leaves_everything_that_is_not_a_session(tmp_path: Path) -> None:
    projects, folder = _project(tmp_path)
    (folder / "memory").mkdir()
    (folder / "notes.jsonl").write_text("x")
    (folder / "notes.txt").write_text("x")
    outside = tmp_path / "outside.jsonl"
    outside.write_text("keep")
    (folder / f"{uuid.uuid4()}.jsonl").symlink_to(outside)
    stamp = time.time() - 7200
    for entry in folder.iterdir():
        os.utime(entry, (stamp, stamp), follow_symlinks=False)
    assert sweep_project(folder, projects, set(), time.time()) == 0
    assert sorted(p.name for p in folder.iterdir() if not p.is_symlink()) == [
        "memory",
        "notes.jsonl",
        "notes.txt",
    ]
    assert outside.read_text() == "keep"


def test_a_young_folder_keeps_its_old_transcript(tmp_path: Path) -> None:
    # A session is as young as its newest part (a sub-agent may still be writing).
    projects, folder = _project(tmp_path)
    session = _session(folder, age=7200)
    (folder / session).mkdir()
    assert sweep_project(folder, projects, set(), time.time() - 3600) == 0
    assert (folder / f"{session}.jsonl").exists()


def test_sweeping_a_missing_project_folder_deletes_nothing(tmp_path: Path) -> None:
    assert sweep_project(tmp_path / "none", tmp_path, set(), time.time()) == 0


async def test_the_runner_sweeps_only_its_own_work_directory_and_spares_running_sessions(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    config = CliRunnerConfig(state_dir=str(tmp_path / "state"), extra_env={"HOME": str(home)})
    runner = ClaudeCliRunner(config)
    ours = project_dir(runner.projects, config.resolved_workdir)
    other = runner.projects / "-some-other-project"
    ours.mkdir(parents=True)
    other.mkdir()
    orphan = _session(ours, age=7200)
    referenced = _session(ours, age=7200)
    foreign = _session(other, age=7200)
    assert await runner.sweep_orphans({referenced}, grace=3600) == 1
    assert not (ours / f"{orphan}.jsonl").exists()
    assert (ours / f"{referenced}.jsonl").exists()
    assert (other / f"{foreign}.jsonl").exists()
