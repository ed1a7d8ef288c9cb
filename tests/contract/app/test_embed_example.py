"""The library as documented: examples/embed.py and the README's program run against
the fake upstream, each holding a two-turn conversation that continues its CLI session."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from tests.contract.conftest import ROOT
from tests.support.fake_upstream import FakeAnthropic

pytestmark = pytest.mark.cli

PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def readme_library_program() -> str:
    """The first Python block of the README's "Use as a library" section."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Use as a library\n", 1)[1].split("\n## ", 1)[0]
    found = PYTHON_BLOCK.search(section)
    assert found is not None, "the README's library section has no Python block"
    return found.group(1)


async def run_python(
    argv: list[str], env: dict[str, str], cwd: Path | None = None
) -> tuple[int, str, str]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(child.communicate(), 60)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert child.returncode is not None
    return child.returncode, out.decode(), err.decode()


def assert_continued(fake_upstream: FakeAnthropic) -> None:
    """The second turn sent the CLI only the new message: the session was resumed."""
    assert len(fake_upstream.message_requests) == 2
    assert fake_upstream.message_requests[1].user_text == "And one of grass?"


async def test_embed_example_has_a_two_turn_streamed_conversation(
    claude_bin: str, cli_env: dict[str, str], fake_upstream: FakeAnthropic, tmp_path: Path
) -> None:
    env = {**os.environ, **cli_env}
    env.update(CLAUDE_CLI_PATH=claude_bin, EMBED_STATE_DIR=str(tmp_path / "state"))
    code, text, err = await run_python([str(ROOT / "examples" / "embed.py")], env)
    assert code == 0, err
    assert "> Name a colour of the sky.\necho: Name a colour of the sky." in text
    assert "> And one of grass?\necho: And one of grass?" in text
    assert text.count("[finished] end_turn") == 2
    assert "[sessions] 1" in text
    assert_continued(fake_upstream)
    second = fake_upstream.message_requests[1]
    assert any(b["text"] == "Answer in one short sentence." for b in second.body["system"])


async def test_the_readme_library_program_runs_as_written(
    claude_bin: str, cli_env: dict[str, str], fake_upstream: FakeAnthropic, tmp_path: Path
) -> None:
    program = tmp_path / "chat.py"
    program.write_text(readme_library_program(), encoding="utf-8")
    env = {**os.environ, **cli_env}
    env.update(CLAUDE_CLI_PATH=claude_bin, XDG_STATE_HOME=str(tmp_path / "state"))
    code, text, err = await run_python([str(program)], env, cwd=tmp_path)
    assert code == 0, err
    assert text == "echo: Name a colour of the sky.\necho: And one of grass?\n"
    assert_continued(fake_upstream)
