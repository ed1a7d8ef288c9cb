"""Where the real CLI writes transcripts, and what the runner deletes at start and on purge."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from proxy_cli_backend.transcripts import transcript_path
from tests.contract.cli_backend.helpers import finished, plan, run_turn
from tests.contract.conftest import RunnerFactory
from tests.support.fake_upstream import FakeAnthropic

pytestmark = pytest.mark.cli

EMOJI = "\U0001f600"


def emoji_workdir(tmp_path: Path) -> Path:
    """A work directory with an emoji (two UTF-16 units) and an `é` (one) in its path."""
    return tmp_path / f"wd-{EMOJI}-\u00e9"


def long_emoji_workdir(tmp_path: Path) -> Path:
    """Short in characters, but over 200 UTF-16 units: the CLI cuts and hashes its slug."""
    return tmp_path / (EMOJI * 60) / (f"\u00e9{EMOJI}" * 30)


@pytest.mark.parametrize("workdir_of", [emoji_workdir, long_emoji_workdir])
async def test_transcript_path_finds_the_file_the_cli_wrote_and_purge_deletes_it(
    make_runner: RunnerFactory,
    fake_upstream: FakeAnthropic,
    tmp_path: Path,
    workdir_of: Callable[[Path], Path],
) -> None:
    workdir = str(workdir_of(tmp_path))
    runner = make_runner(workdir=workdir)
    await runner.start()
    session = finished(await run_turn(runner, plan("hello"))).session_id
    assert session is not None
    path = transcript_path(runner.projects, workdir, session)
    written = sorted(runner.projects.rglob("*.jsonl"))
    assert written == [path]
    assert await runner.forget(session, purge=True) is True
    assert not path.exists()
    assert await runner.forget(session, purge=True) is False  # nothing left to delete


async def test_system_prompt_files_left_by_a_crash_are_removed_at_start(
    make_runner: RunnerFactory, tmp_path: Path
) -> None:
    runner = make_runner()
    prompts = Path(runner.config.state_dir) / "prompts"
    prompts.mkdir(parents=True)
    leftover = prompts / "system-0123456789abcdef.txt"
    leftover.write_text("a long system prompt from a crashed server")
    unrelated = prompts / "notes.txt"
    unrelated.write_text("not ours")
    await runner.start()
    assert not leftover.exists()
    assert unrelated.exists()
