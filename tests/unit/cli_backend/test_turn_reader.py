"""read_turn's time limits, over a scripted process (no real CLI needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from proxy_cli_backend.config import CliRunnerConfig
from proxy_cli_backend.protocol import EventDecoder
from proxy_cli_backend.translate import TurnTranslator
from proxy_cli_backend.turn_reader import read_turn
from proxy_core import Event, Failed, FailureReason, TextDelta
from tests.unit.cli_backend import canned


class ScriptedProcess:
    """Answers readline() with (delay, line) steps; after the script, silence forever."""

    def __init__(self, steps: Iterator[tuple[float, bytes]]) -> None:
        self._steps = steps

    async def readline(self) -> bytes | None:
        step = next(self._steps, None)
        if step is None:
            await asyncio.Event().wait()
            return None
        delay, line = step
        await asyncio.sleep(delay)
        return line


async def _events(
    process: ScriptedProcess, translator: TurnTranslator | None = None, **limits: float
) -> list[Event]:
    config = CliRunnerConfig(state_dir="/s", **limits)
    process_like: Any = process
    translator = translator or TurnTranslator()
    return [event async for event in read_turn(process_like, config, translator, EventDecoder())]


def _retries_forever(every: float) -> Iterator[tuple[float, bytes]]:
    attempt = 0
    while True:
        attempt += 1
        yield every, canned.api_retry(529, every * 1000, attempt)


async def test_upstream_retry_notices_do_not_extend_the_first_event_limit() -> None:
    # Each notice comes well within the limit, but the model never answers.
    events = await _events(
        ScriptedProcess(_retries_forever(0.05)),
        first_event_timeout=0.5,
        idle_timeout=60.0,
        total_timeout=60.0,
    )
    assert len(events) == 1
    failure = events[0]
    assert isinstance(failure, Failed)
    assert failure.reason is FailureReason.TIMEOUT
    assert "first_event_timeout" in failure.message


async def test_after_the_first_output_the_idle_limit_applies_per_line() -> None:
    # Output arrives every 0.2 s for longer than the first-event limit: no timeout.
    steps = [(0.0, canned.init())]
    steps += [(0.2, canned.text_delta("x")) for _ in range(5)]
    steps += [(0.0, canned.result("xxxxx"))]
    translator = TurnTranslator()
    events = await _events(
        ScriptedProcess(iter(steps)),
        translator,
        first_event_timeout=0.5,
        idle_timeout=5.0,
        total_timeout=60.0,
    )
    assert events == [TextDelta("x")] * 5
    assert translator.result is not None


async def test_silence_after_the_first_output_is_an_idle_timeout() -> None:
    steps = iter([(0.0, canned.text_delta("x"))])
    events = await _events(
        ScriptedProcess(steps), first_event_timeout=60.0, idle_timeout=0.3, total_timeout=60.0
    )
    failure = events[-1]
    assert isinstance(failure, Failed)
    assert failure.reason is FailureReason.TIMEOUT
    assert "idle_timeout" in failure.message
