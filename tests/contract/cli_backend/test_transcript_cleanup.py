"""Live processes and the real CLI: a new conversation's turn that records nothing
leaves no transcript, once its process has ended."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from proxy_core import ChatError
from tests.contract.cli_backend.conftest import Chat, live_runner, wait_for
from tests.support.fake_upstream import FakeAnthropic

Factory = Callable[..., Any]


def transcripts(cli_env: dict[str, str]) -> set[str]:
    """Session ids of the transcripts under the CLI's projects directory."""
    projects = Path(cli_env["HOME"]) / ".claude" / "projects"
    return {path.stem for path in projects.rglob("*.jsonl")}


async def test_a_new_turn_cut_by_a_stop_sequence_leaves_no_transcript(
    make_live_service: Factory, fake_upstream: FakeAnthropic, cli_env: dict[str, str]
) -> None:
    # The cut turn is interrupted and its process ended; nothing records its session.
    service = await make_live_service(pool_size=1)
    kept = Chat(service, "kept")
    await kept.say("hello")
    kept_session = await kept.cli_session()
    cut = Chat(service, "cut")
    cut.stop = ["STOP"]
    assert await cut.say("one STOP two") == "echo: one "
    assert await service.store.get("h:cut") is None
    await wait_for(lambda: transcripts(cli_env) == {kept_session})
    assert transcripts(cli_env) == {kept_session}


async def test_a_failed_first_turn_on_a_pooled_process_leaves_no_transcript(
    make_live_service: Factory, fake_upstream: FakeAnthropic, cli_env: dict[str, str]
) -> None:
    service = await make_live_service(pool_size=1)
    kept = Chat(service, "kept")
    await kept.say("hello")
    kept_session = await kept.cli_session()
    runner = live_runner(service)
    await wait_for(lambda: runner.status().details.pool_ready == 1)
    taken = runner._pool.taken
    with pytest.raises(ChatError):
        await Chat(service, "failed").say("[[error:400]] Prompt is too long")
    assert runner._pool.taken == taken + 1  # the failed turn ran in the pooled process
    await wait_for(lambda: transcripts(cli_env) == {kept_session})
