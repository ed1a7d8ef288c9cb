"""read_turn's time limits and its client tool traffic, and drive_turn's reminders,
over a scripted process (no real CLI needed)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

from proxy_cli_backend.client_tools import ToolBridge
from proxy_cli_backend.config import CliRunnerConfig
from proxy_cli_backend.protocol import EventDecoder
from proxy_cli_backend.translate import TurnTranslator
from proxy_cli_backend.turn_reader import REMINDERS, drive_turn, read_turn
from proxy_core import (
    ClientTool,
    Event,
    Failed,
    FailureReason,
    Finished,
    TextDelta,
    ToolArguments,
    ToolCallStarted,
    ToolResult,
)
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


# -- client tools: the bridge answers the CLI's requests; a turn stops where it suspends --


WEATHER = ClientTool("get_weather")


class RecordingProcess(ScriptedProcess):
    """A scripted process whose stdin is recorded; `replies` maps a written line's
    prefix to the script that follows it (a reminder's answer)."""

    def __init__(self, lines: list[bytes]) -> None:
        super().__init__(iter([(0.0, line) for line in lines]))
        self.sent: list[dict[str, Any]] = []
        self.then: list[list[bytes]] = []  # the script after each user line written

    async def send(self, data: bytes) -> None:
        line = json.loads(data)
        self.sent.append(line)
        if line["type"] == "user" and self.then:
            self._steps = iter([(0.0, raw) for raw in self.then.pop(0)])


def called(tool_use_id: str = "toolu_1") -> list[bytes]:
    """A message calling get_weather, with the CLI's MCP traffic, in the CLI's order."""
    name = "mcp__client__get_weather"
    return [
        canned.tools_list("list-1"),
        canned.usage_start(),
        canned.tool_start(0, tool_use_id, name),
        canned.input_delta(0, '{"city":"Paris"}'),
        canned.assistant(canned.tool_use(tool_use_id, name, {"city": "Paris"}), uuid="a-1"),
        canned.block_stop(0),
        canned.tools_call("call-1", 2, tool_use_id, "get_weather", {"city": "Paris"}),
        canned.message_end("tool_use", 9),
        canned.message_stop(),
    ]


def plain(text: str) -> list[bytes]:
    return [
        canned.usage_start(),
        canned.text_at(0, text),
        canned.message_end("end_turn", 3),
        canned.result(text),
    ]


async def _tool_events(
    process: RecordingProcess, translator: TurnTranslator, bridge: ToolBridge
) -> list[Event]:
    config = CliRunnerConfig(state_dir="/s", idle_timeout=5.0, first_event_timeout=5.0)
    process_like: Any = process
    reading = read_turn(process_like, config, translator, EventDecoder(), bridge)
    return [event async for event in reading]


async def test_the_bridge_answers_the_clis_requests_and_the_turn_stops_at_suspension() -> None:
    process = RecordingProcess(called())
    translator = TurnTranslator()
    bridge = ToolBridge([WEATHER])
    events = await _tool_events(process, translator, bridge)
    assert [type(e).__name__ for e in events] == ["ToolCallStarted", "ToolArguments"]
    assert translator.suspended
    # tools/list was answered; the call is held (no answer written for it).
    assert [line["response"]["request_id"] for line in process.sent] == ["list-1"]
    assert bridge.held == 1
    (answer,) = bridge.supply([ToolResult("toolu_1", "sunny")])
    assert json.loads(answer)["response"]["request_id"] == "call-1"


async def test_without_a_bridge_the_clis_requests_are_refused() -> None:
    process = RecordingProcess([canned.tools_list("list-1"), *plain("hi")])
    config = CliRunnerConfig(state_dir="/s")
    process_like: Any = process
    translator = TurnTranslator()
    events = [e async for e in read_turn(process_like, config, translator, EventDecoder())]
    assert events == [TextDelta("hi")]
    assert process.sent[0]["response"]["subtype"] == "error"


async def _driven(process: RecordingProcess, reminder: str | None) -> list[Event]:
    config = CliRunnerConfig(state_dir="/s", idle_timeout=5.0, first_event_timeout=5.0)
    process_like: Any = process
    translator = TurnTranslator(hold_text=reminder is not None)
    bridge = ToolBridge([WEATHER])
    driving = drive_turn(process_like, config, translator, EventDecoder(), bridge, reminder)
    return [event async for event in driving]


async def test_a_reply_that_must_call_and_did_not_is_reminded_and_its_text_dropped() -> None:
    process = RecordingProcess(plain("I won't."))
    process.then = [called()]
    events = await _driven(process, "Call the tool.")
    assert [type(e).__name__ for e in events] == ["ToolCallStarted", "ToolArguments"]
    reminders = [line for line in process.sent if line["type"] == "user"]
    assert [r["message"]["content"][0]["text"] for r in reminders] == ["Call the tool."]


async def test_a_reply_that_never_calls_is_taken_as_it_is_after_the_reminders() -> None:
    process = RecordingProcess(plain("No."))
    process.then = [plain("Still no."), plain("Never.")]
    events = await _driven(process, "Call the tool.")
    assert events == [TextDelta("Never.")]
    assert len([line for line in process.sent if line["type"] == "user"]) == REMINDERS


async def test_a_reply_free_to_call_is_never_reminded() -> None:
    process = RecordingProcess(plain("No tool needed."))
    process.then = [called()]
    events = await _driven(process, None)
    assert events == [TextDelta("No tool needed.")]
    assert process.sent == []


def fallback_calls() -> list[bytes]:
    """What the CLI prints when its streamed attempts were cut and it asked again without
    streaming (observed with 2.1.331): a cut attempt, then one complete assistant event
    per block, each with stop_reason tool_use, then the first call's tools/call."""
    weather = canned.tool_use("toolu_1", "mcp__client__get_weather", {"city": "Paris"})
    time = canned.tool_use("toolu_2", "mcp__client__get_time", {"city": "Rome"})
    return [
        canned.tools_list("list-1"),
        canned.usage_start(),
        canned.text_start(0),
        canned.text_at(0, "Look"),
        canned.block_stop(0),
        canned.message_stop(),
        canned.connection_retry(),
        canned.assistant(canned.text("Looking it up."), uuid="a-1", stop_reason="tool_use"),
        canned.assistant(weather, uuid="a-2", stop_reason="tool_use"),
        canned.assistant(time, uuid="a-3", stop_reason="tool_use"),
        canned.tools_call("call-1", 2, "toolu_1", "get_weather", {"city": "Paris"}),
    ]


async def test_calls_of_a_message_that_was_not_streamed_suspend_at_the_first_tools_call() -> None:
    process = RecordingProcess(fallback_calls())
    translator = TurnTranslator()
    bridge = ToolBridge([WEATHER, ClientTool("get_time")])
    events = await _tool_events(process, translator, bridge)
    assert translator.suspended
    assert bridge.held == 1
    shown = [e for e in events if not isinstance(e, TextDelta)]
    assert shown == [
        ToolCallStarted(index=0, id="toolu_1", name="get_weather"),
        ToolArguments(index=0, text='{"city":"Paris"}'),
        ToolCallStarted(index=1, id="toolu_2", name="get_time"),
        ToolArguments(index=1, text='{"city":"Rome"}'),
    ]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Looking it up."
    finished = translator.suspension()[-1]
    assert isinstance(finished, Finished)
    assert finished.pending == ("toolu_1", "toolu_2")
    assert finished.resume_point == "a-3"


async def test_only_the_first_call_of_a_message_not_streamed_is_shown_when_one_is_allowed() -> None:
    process = RecordingProcess(fallback_calls())
    translator = TurnTranslator(max_calls=1)
    events = await _tool_events(process, translator, ToolBridge([WEATHER]))
    assert translator.suspended
    assert [e.id for e in events if isinstance(e, ToolCallStarted)] == ["toolu_1"]
    assert translator.refused == ["toolu_2"]
