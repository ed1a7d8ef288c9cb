"""Transcript paths as the CLI lays them out, and a purge that cannot escape."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy_cli_backend.transcripts import (
    project_slug,
    projects_dir,
    purge_path,
    purge_transcript,
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
