"""Small helpers shared by the CLI contract tests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from proxy_cli_backend.runner import ClaudeCliRunner
from proxy_core import (
    Block,
    Event,
    Failed,
    Finished,
    PlanKind,
    TextBlock,
    TextDelta,
    TurnPlan,
)

MODEL = "sonnet"


def plan(
    *blocks: Block | str,
    kind: PlanKind = PlanKind.NEW,
    session_id: str | None = None,
    system: str | None = None,
    resume_point: str | None = None,
) -> TurnPlan:
    """A hand-made plan (the runner only reads kind, ids, model, system and prompt)."""
    prompt = tuple(TextBlock(b) if isinstance(b, str) else b for b in blocks)
    return TurnPlan(
        kind=kind,
        session_key="contract",
        cli_session_id=session_id or str(uuid.uuid4()),
        model=MODEL,
        system=system,
        prompt=prompt,
        messages=(),
        seen=(),
        resume_point=resume_point,
    )


async def run_turn(runner: ClaudeCliRunner, turn: TurnPlan) -> list[Event]:
    return [event async for event in runner.run(turn)]


def text_of(events: Sequence[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def finished(events: Sequence[Event]) -> Finished:
    last = events[-1]
    assert isinstance(last, Finished), f"expected Finished, got {events}"
    return last


def failed(events: Sequence[Event]) -> Failed:
    last = events[-1]
    assert isinstance(last, Failed), f"expected Failed, got {events}"
    return last
