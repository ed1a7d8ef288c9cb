"""examples/embed.py runs against the fake upstream and holds a two-turn conversation."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.contract.conftest import ROOT
from tests.support.fake_upstream import FakeAnthropic

pytestmark = pytest.mark.cli


async def test_embed_example_has_a_two_turn_streamed_conversation(
    claude_bin: str, cli_env: dict[str, str], fake_upstream: FakeAnthropic, tmp_path: Path
) -> None:
    env = {**os.environ, **cli_env}
    env.update(CLAUDE_CLI_PATH=claude_bin, EMBED_STATE_DIR=str(tmp_path / "state"))
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "examples" / "embed.py"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(child.communicate(), 60)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    text = out.decode()
    assert child.returncode == 0, err.decode()
    assert "> Name a colour of the sky.\necho: Name a colour of the sky." in text
    assert "> And one of grass?\necho: And one of grass?" in text
    assert text.count("[finished] end_turn") == 2
    assert "[sessions] 1" in text
    second = fake_upstream.message_requests[1]
    assert second.user_text == "And one of grass?"  # continued, not replayed
    assert any(b["text"] == "Answer in one short sentence." for b in second.body["system"])
