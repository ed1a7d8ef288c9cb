"""CLI events -> core events: dedupe, ordering, synthetic messages, results and failures."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from proxy_cli_backend.costs import Totals, reading
from proxy_cli_backend.protocol import ControlRequest, EventDecoder
from proxy_cli_backend.translate import TurnTranslator, classify_failure, summarize_input
from proxy_core import (
    Event,
    Failed,
    FailureReason,
    Finished,
    ModelUsage,
    TextDelta,
    TextRetracted,
    ThinkingDelta,
    ToolActivity,
    ToolArguments,
    ToolCall,
    ToolCallStarted,
    Usage,
)
from tests.unit.cli_backend import canned


def translate(*lines: bytes, stderr: str = "") -> list[Event]:
    decoder = EventDecoder()
    translator = TurnTranslator()
    out: list[Event] = []
    for raw in lines:
        event = decoder.decode(raw)
        if event is not None:
            out += translator.feed(event)
    return out + translator.outcome(stderr)


def texts(events: list[Event]) -> list[str]:
    return [e.text for e in events if isinstance(e, TextDelta)]


def test_text_deltas_stream_and_the_complete_message_is_not_repeated() -> None:
    events = translate(
        canned.init(),
        canned.text_delta("echo: "),
        canned.text_delta("hi"),
        canned.assistant(canned.text("echo: hi")),
        canned.result("echo: hi"),
    )
    assert texts(events) == ["echo: ", "hi"]


def test_a_complete_message_without_partials_is_delivered_whole() -> None:
    events = translate(canned.assistant(canned.text("all at once")), canned.result())
    assert texts(events) == ["all at once"]


def test_a_message_completed_beyond_its_partials_delivers_only_the_rest() -> None:
    # A stream that dropped after "echo: [" and was redone without streaming.
    events = translate(
        canned.text_delta("echo: ["),
        canned.assistant(canned.text("echo: [[disconnect]]")),
        canned.result(),
    )
    assert "".join(texts(events)) == "echo: [[disconnect]]"


def test_several_assistant_messages_in_a_turn_are_delivered_in_order() -> None:
    tool = {"type": "tool_use", "id": "t1", "name": "Read", "input": {"file_path": "/w/a.txt"}}
    events = translate(
        canned.text_delta("Let me look."),
        canned.assistant(canned.text("Let me look."), uuid="a-1"),
        canned.assistant(tool, uuid="a-2"),
        canned.line({"type": "user", "message": {"role": "user", "content": []}}),
        canned.text_delta("It says hi."),
        canned.assistant(canned.text("It says hi."), uuid="a-3"),
        canned.assistant(canned.text("A last word."), uuid="a-4"),
        canned.result("A last word."),
    )
    visible = [e for e in events if isinstance(e, TextDelta | ToolActivity)]
    assert visible == [
        TextDelta("Let me look."),
        ToolActivity("Read", "/w/a.txt"),
        TextDelta("It says hi."),
        TextDelta("A last word."),
    ]
    assert isinstance(events[-1], Finished)
    assert events[-1].resume_point == "a-4"


def test_thinking_streams_as_thinking_and_is_not_repeated() -> None:
    events = translate(
        canned.thinking_delta("hmm"),
        canned.assistant({"type": "thinking", "thinking": "hmm", "signature": "s"}),
        canned.result(),
    )
    assert [e for e in events if isinstance(e, ThinkingDelta)] == [ThinkingDelta("hmm")]
    assert texts(events) == []


def test_synthetic_messages_never_become_text() -> None:
    events = translate(
        canned.assistant(canned.text("API Error: 529 Overloaded"), model="<synthetic>", uuid="s"),
        canned.result("API Error: 529 Overloaded", is_error=True, status=529),
    )
    assert texts(events) == []
    assert events == [Failed(FailureReason.OVERLOADED, "API Error: 529 Overloaded")]


def test_subagent_output_is_not_part_of_the_reply() -> None:
    events = translate(canned.text_delta("inner", parent="toolu_1"), canned.result())
    assert texts(events) == []


def test_a_good_result_becomes_usage_then_finished() -> None:
    events = translate(
        canned.text_delta("ok"), canned.assistant(canned.text("ok"), uuid="u9"), canned.result("ok")
    )
    usage, finished = events[-2:]
    model = ModelUsage(
        model="claude-sonnet-5-5",
        input_tokens=27,
        output_tokens=4,
        cache_read_tokens=100,
        cache_creation_tokens=10,
        cost_usd=0.0001,
    )
    assert usage == Usage(
        input_tokens=27,
        output_tokens=4,
        cache_read_tokens=100,
        cache_creation_tokens=10,
        cost_usd=0.0001,
        models=(model,),
    )
    assert finished == Finished(
        stop_reason="end_turn",
        text="ok",
        session_id=canned.SESSION,
        resume_point="u9",
        meter=reading(Totals(0.0001, (model,))),  # the session's running totals, kept
    )


def test_a_structured_result_finishes_with_the_structured_output_as_json() -> None:
    structured = {"name": "Åda", "tags": ["x"]}
    events = translate(canned.result("ignored prose", structured=structured))
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.text == '{"name":"Åda","tags":["x"]}'


def finished_resume_point(*lines: bytes) -> str | None:
    finished = translate(*lines, canned.result("done"))[-1]
    assert isinstance(finished, Finished)
    return finished.resume_point


def test_the_resume_point_is_the_turns_last_message_tool_results_included() -> None:
    tool_use = {"type": "tool_use", "id": "toolu_1", "name": "StructuredOutput", "input": {}}
    # A --json-schema turn ends with the StructuredOutput call's result.
    assert (
        finished_resume_point(canned.assistant(tool_use, uuid="a1"), canned.tool_result("u1"))
        == "u1"
    )
    # A tool loop ends with the model's answer; a subagent's results never count.
    answer = canned.assistant(canned.text("found it"), uuid="a2")
    assert finished_resume_point(canned.tool_result("u1"), answer) == "a2"
    assert finished_resume_point(answer, canned.tool_result("u9", parent="toolu_0")) == "a2"


def test_an_error_result_has_no_usage_and_no_finished() -> None:
    events = translate(canned.result("API Error: 500", is_error=True, status=500))
    assert events == [Failed(FailureReason.UPSTREAM_ERROR, "API Error: 500")]


def test_the_clis_max_budget_result_is_budget_exceeded_and_says_which_cap() -> None:
    # What the CLI 2.1.331 prints when --max-budget-usd is reached (docs/usage.md).
    line = canned.result(
        None,
        is_error=True,
        errors=["Reached maximum budget ($0.0001)"],
        subtype="error_max_budget_usd",
        total_cost=0.00012,  # the answer that crossed the cap was paid for
    )
    usage, event = translate(line)
    assert isinstance(usage, Usage)
    assert usage.cost_usd == 0.00012  # so it is spent all the same
    assert isinstance(event, Failed)
    assert event.reason is FailureReason.BUDGET_EXCEEDED
    assert event.message.startswith("Reached maximum budget ($0.0001): ")
    assert "--max-budget-usd" in event.message


def test_no_conversation_found_in_errors_is_session_missing() -> None:
    message = "No conversation found with session ID: 1234"
    line = canned.result(None, is_error=True, errors=[message], subtype="error_during_execution")
    assert translate(line) == [Failed(FailureReason.SESSION_MISSING, message)]


def test_a_turn_without_result_is_cli_crashed_with_stderrs_last_lines() -> None:
    stderr = "\n".join(f"line {n}" for n in range(30))
    (event,) = translate(canned.init(), canned.text_delta("par"), stderr=stderr)[-1:]
    assert isinstance(event, Failed)
    assert event.reason is FailureReason.CLI_CRASHED
    assert "line 29" in event.message
    assert "line 5\n" not in event.message


@pytest.mark.parametrize(
    ("status", "text", "reason"),
    [
        (401, "Invalid API key · Fix external API key", FailureReason.NOT_LOGGED_IN),
        (None, "Not logged in · Please run /login", FailureReason.NOT_LOGGED_IN),
        (429, "API Error: Request rejected (429)", FailureReason.RATE_LIMITED),
        (529, "API Error: 529 Overloaded", FailureReason.OVERLOADED),
        (503, "API Error: 503", FailureReason.OVERLOADED),
        (400, "Prompt is too long", FailureReason.INVALID_REQUEST),
        (413, "Request too large", FailureReason.INVALID_REQUEST),
        (500, "API Error: 500", FailureReason.UPSTREAM_ERROR),
        (502, "API Error: 502", FailureReason.UPSTREAM_ERROR),
        (None, "No conversation found with session ID: x", FailureReason.SESSION_MISSING),
        (None, "Prompt is too long", FailureReason.INVALID_REQUEST),
        (None, "something odd", FailureReason.CLI_CRASHED),
        (
            None,
            "API Error: Connection dropped (ECONNRESET). Check the gateway set in "
            "ANTHROPIC_BASE_URL, then try again.",
            FailureReason.UPSTREAM_ERROR,
        ),
        (None, "API Error: Connection refused (ECONNREFUSED)", FailureReason.UPSTREAM_ERROR),
    ],
)
def test_error_results_map_to_reasons(status: int | None, text: str, reason: FailureReason) -> None:
    assert classify_failure(status, text) is reason


def until_end(events: list[Event]) -> list[Event]:
    """The events up to the first Failed: the readers stop reading there."""
    ends = [i for i, e in enumerate(events) if isinstance(e, Failed)]
    return events[: ends[0] + 1] if ends else events


def test_a_rate_limit_ends_the_turn_at_the_cli_s_first_retry_notice() -> None:
    # The CLI waits retry-after plus up to 25% jitter: 7 s became 8.473 s here.
    events = until_end(
        translate(
            canned.init(),
            canned.api_retry(429, 8473, attempt=1),
            canned.api_retry(429, 8573, attempt=2),
            canned.result("API Error: Request rejected (429)", is_error=True, status=429),
        )
    )
    assert len(events) == 1
    (failed,) = events
    assert isinstance(failed, Failed)
    assert failed.reason is FailureReason.RATE_LIMITED
    assert failed.retry_after == 8.0
    assert "retry after 8 seconds" in failed.message


def test_a_rate_limit_back_off_under_a_second_still_says_one_second() -> None:
    (failed,) = until_end(translate(canned.api_retry(429, 480)))
    assert isinstance(failed, Failed)
    assert failed.retry_after == 1.0


def test_overloaded_and_server_errors_are_still_retried_by_the_cli() -> None:
    events = translate(
        canned.api_retry(529, 591, attempt=1),
        canned.api_retry(500, 1098, attempt=2),
        canned.text_delta("fine now"),
        canned.assistant(canned.text("fine now")),
        canned.result("fine now"),
    )
    assert not any(isinstance(e, Failed) for e in events)
    assert isinstance(events[-1], Finished)


def test_each_upstream_retry_is_logged_at_info_with_its_status_and_wait() -> None:
    with capture_logs() as logs:
        translate(
            canned.api_retry(529, 591.4, attempt=1),
            canned.connection_retry(1200, attempt=2),
            canned.result("fine now"),
        )
    retries = [e for e in logs if e["event"] == "upstream_retry"]
    assert [(e["log_level"], e["status"], e["attempt"], e["wait_ms"]) for e in retries] == [
        ("info", 529, 1, 591),
        ("info", None, 2, 1200),
    ]
    assert [(e["max_retries"], e["error"]) for e in retries] == [(10, "rate_limit"), (2, "unknown")]


def test_an_overloaded_result_carries_the_cli_s_last_back_off_as_retry_after() -> None:
    (event,) = translate(
        canned.api_retry(529, 7811, attempt=1),
        canned.api_retry(529, 3500, attempt=2),
        canned.result("API Error: 529 Overloaded", is_error=True, status=529),
    )
    assert isinstance(event, Failed)
    assert event.reason is FailureReason.OVERLOADED
    assert event.retry_after == 3.5


def test_retry_after_is_unknown_without_a_back_off_for_that_status() -> None:
    # (A 429 result with no 429 notice: the CLI was told not to retry.)
    rate_limited = translate(
        canned.api_retry(529, 2000),
        canned.result("API Error: Request rejected (429)", is_error=True, status=429),
    )[-1]
    assert isinstance(rate_limited, Failed)
    assert rate_limited.retry_after is None
    # A back-off is a hint for coming back later, not for a request that was wrong.
    invalid = translate(
        canned.api_retry(400, 2000),
        canned.result("API Error: 400", is_error=True, status=400),
    )[-1]
    assert isinstance(invalid, Failed)
    assert invalid.reason is FailureReason.INVALID_REQUEST
    assert invalid.retry_after is None


def test_tool_input_summary_prefers_the_telling_field_and_stays_short() -> None:
    assert summarize_input({"file_path": "/a/b.txt", "limit": 3}) == "/a/b.txt"
    assert summarize_input({"command": "ls\n  -la"}) == "ls -la"
    long = summarize_input({"data": "x" * 500})
    assert len(long) <= 120
    assert long.endswith("…")


# -- client tools ----------------------------------------------------------------

WEATHER = "mcp__client__get_weather"
TIME = "mcp__client__get_time"


def feed(translator: TurnTranslator, *lines: bytes) -> list[Event]:
    """The events of `lines` (control requests are the bridge's, as in read_turn)."""
    decoder = EventDecoder()
    out: list[Event] = []
    for raw in lines:
        event = decoder.decode(raw)
        if event is not None and not isinstance(event, ControlRequest):
            out += translator.feed(event)
    return out


def one_call(tool_use_id: str = "toolu_1", index: int = 0, rpc_id: int = 2) -> list[bytes]:
    """A complete call block of get_weather, its assistant event and its tools/call, in
    the CLI's order (the tools/call comes before the message's end)."""
    return [
        canned.tool_start(index, tool_use_id, WEATHER),
        canned.input_delta(index, '{"city":'),
        canned.input_delta(index, '"Paris"}'),
        canned.assistant(canned.tool_use(tool_use_id, WEATHER, {"city": "Paris"}), uuid="a-1"),
        canned.block_stop(index),
        canned.tools_call(f"req-{rpc_id}", rpc_id, tool_use_id, "get_weather", {"city": "Paris"}),
    ]


def test_a_client_call_streams_and_its_messages_end_suspends_the_turn() -> None:
    translator = TurnTranslator()
    events = feed(translator, canned.usage_start(), *one_call())
    assert events == [
        ToolCallStarted(index=0, id="toolu_1", name="get_weather"),
        ToolArguments(index=0, text='{"city":'),
        ToolArguments(index=0, text='"Paris"}'),
    ]
    assert not translator.suspended  # the message is not over: more calls may follow
    assert feed(translator, canned.message_end("tool_use", 9)) == []
    assert translator.suspended
    usage, finished = translator.suspension()
    assert isinstance(usage, Usage)
    assert finished == Finished(
        stop_reason="tool_use",
        resume_point="a-1",
        tool_calls=(ToolCall(id="toolu_1", name="get_weather", arguments='{"city":"Paris"}'),),
    )
    assert finished.pending == ("toolu_1",)


def test_parallel_calls_are_numbered_in_reply_order_with_their_own_fragments() -> None:
    translator = TurnTranslator()
    events = feed(
        translator,
        canned.usage_start(),
        *one_call("toolu_1", 0),
        canned.tool_start(1, "toolu_2", TIME),
        canned.input_delta(1, '{"city":"Rome"}'),
        canned.assistant(canned.tool_use("toolu_2", TIME, {"city": "Rome"}), uuid="a-2"),
        canned.block_stop(1),
        canned.message_end("tool_use", 20),
    )
    started = [e for e in events if isinstance(e, ToolCallStarted)]
    assert started == [
        ToolCallStarted(index=0, id="toolu_1", name="get_weather"),
        ToolCallStarted(index=1, id="toolu_2", name="get_time"),
    ]
    arguments = [(e.index, e.text) for e in events if isinstance(e, ToolArguments)]
    assert arguments == [(0, '{"city":'), (0, '"Paris"}'), (1, '{"city":"Rome"}')]
    assert translator.suspended
    finished = translator.suspension()[-1]
    assert isinstance(finished, Finished)
    assert [(c.id, c.name, c.arguments) for c in finished.tool_calls] == [
        ("toolu_1", "get_weather", '{"city":"Paris"}'),
        ("toolu_2", "get_time", '{"city":"Rome"}'),
    ]
    assert finished.pending == ("toolu_1", "toolu_2")
    assert finished.resume_point == "a-2"
    assert translator.refused == []


def test_text_before_the_calls_comes_first_and_the_first_call_is_index_zero() -> None:
    translator = TurnTranslator()
    events = feed(
        translator,
        canned.usage_start(),
        canned.text_start(0),
        canned.text_at(0, "Let me check."),
        canned.assistant(canned.text("Let me check."), uuid="a-0"),
        canned.block_stop(0),
        *one_call("toolu_1", index=1),
        canned.message_end("tool_use", 9),
    )
    assert events[:2] == [
        TextDelta("Let me check."),
        ToolCallStarted(index=0, id="toolu_1", name="get_weather"),
    ]
    assert translator.suspended


def test_a_built_in_tool_call_is_activity_and_the_turn_goes_on() -> None:
    read = canned.tool_use("toolu_r", "Read", {"file_path": "/w/a.txt"})
    translator = TurnTranslator()
    events = feed(
        translator,
        canned.usage_start(),
        canned.tool_start(0, "toolu_r", "Read"),
        canned.input_delta(0, '{"file_path":"/w/a.txt"}'),
        canned.assistant(read, uuid="a-1"),
        canned.block_stop(0),
        canned.message_end("tool_use", 9),
    )
    assert events == [ToolActivity("Read", "/w/a.txt")]
    assert not translator.suspended
    events = feed(
        translator,
        canned.tool_results("u-1", "toolu_r"),
        canned.usage_start("msg_2"),
        canned.text_at(0, "It says hi."),
        canned.message_end("end_turn", 4),
        canned.result("It says hi."),
    )
    assert events == [TextDelta("It says hi.")]
    assert isinstance(translator.outcome("")[-1], Finished)


def test_calls_beyond_the_limit_are_refused_and_not_shown() -> None:
    translator = TurnTranslator(max_calls=1)
    events = feed(
        translator,
        canned.usage_start(),
        *one_call("toolu_1", 0),
        canned.tool_start(1, "toolu_2", TIME),
        canned.input_delta(1, '{"city":"Rome"}'),
        canned.assistant(canned.tool_use("toolu_2", TIME, {"city": "Rome"}), uuid="a-2"),
        canned.block_stop(1),
        canned.message_end("tool_use", 20),
    )
    assert [e for e in events if isinstance(e, ToolCallStarted)] == [
        ToolCallStarted(index=0, id="toolu_1", name="get_weather")
    ]
    assert all(e.index == 0 for e in events if isinstance(e, ToolArguments))
    assert translator.suspended
    assert translator.refused == ["toolu_2"]
    finished = translator.suspension()[-1]
    assert isinstance(finished, Finished)
    assert [c.id for c in finished.tool_calls] == ["toolu_1"]
    assert finished.pending == ("toolu_1",)


def test_held_text_goes_out_ahead_of_the_first_call() -> None:
    translator = TurnTranslator(hold_text=True)
    events = feed(
        translator,
        canned.usage_start(),
        canned.text_start(0),
        canned.text_at(0, "Checking."),
    )
    assert events == []
    events = feed(translator, canned.block_stop(0), *one_call("toolu_1", index=1))
    assert events[:2] == [
        TextDelta("Checking."),
        ToolCallStarted(index=0, id="toolu_1", name="get_weather"),
    ]


def test_held_text_of_a_reply_without_a_call_is_withheld_and_dropped_by_a_reminder() -> None:
    translator = TurnTranslator(hold_text=True)
    events = feed(
        translator,
        canned.usage_start(),
        canned.text_start(0),
        canned.text_at(0, "I'd rather not."),
        canned.assistant(canned.text("I'd rather not."), uuid="a-1"),
        canned.message_end("end_turn", 5),
        canned.message_stop(),
        canned.result("I'd rather not."),
    )
    assert events == []
    assert not translator.suspended
    assert not translator.called
    translator.next_turn()  # reminded: the text that did not call is not the reply
    assert translator.withheld() == []


def test_held_text_of_a_reply_that_never_calls_is_shown_when_given_up() -> None:
    translator = TurnTranslator(hold_text=True)
    feed(
        translator,
        canned.usage_start(),
        canned.text_at(0, "No tool needed."),
        canned.message_end("end_turn", 5),
        canned.result("No tool needed."),
    )
    assert translator.withheld() == [TextDelta("No tool needed.")]
    assert translator.withheld() == []


def test_a_suspension_and_the_resumed_result_count_each_message_once() -> None:
    translator = TurnTranslator()
    feed(
        translator,
        canned.usage_start(input_tokens=30, cache_read=100),
        *one_call(),
        canned.message_end("tool_use", 9),
    )
    assert translator.suspension()[0] == Usage(
        input_tokens=30, output_tokens=9, cache_read_tokens=100, cache_creation_tokens=10
    )
    translator.resume(None)
    # The CLI's result totals the whole turn: both upstream messages.
    feed(
        translator,
        canned.tool_results("u-1", "toolu_1"),
        canned.usage_start("msg_2", input_tokens=50, cache_read=200),
        canned.text_at(0, "Sunny."),
        canned.message_end("end_turn", 3),
        canned.result_usage(input_tokens=80, output_tokens=12, cache_read=300, cache_creation=20),
    )
    usage, finished = translator.outcome("")
    assert usage == Usage(
        input_tokens=50, output_tokens=3, cache_read_tokens=200, cache_creation_tokens=10
    )
    assert isinstance(finished, Finished)
    assert finished.resume_point == "u-1"
    assert finished.tool_calls == ()


def test_a_message_cut_after_a_shown_call_fails_the_turn() -> None:
    translator = TurnTranslator()
    events = feed(
        translator,
        canned.usage_start(),
        canned.tool_start(0, "toolu_1", WEATHER),
        canned.input_delta(0, '{"ci'),
        canned.message_stop(),  # the connection dropped: no message_delta
    )
    assert isinstance(events[-1], Failed)
    assert events[-1].reason is FailureReason.UPSTREAM_ERROR
    assert not translator.suspended


def test_a_message_cut_before_any_call_is_retried_quietly() -> None:
    translator = TurnTranslator()
    events = feed(
        translator,
        canned.usage_start(),
        canned.connection_retry(),
        canned.usage_start("msg_2"),
        *one_call(),
        canned.message_end("tool_use", 9),
    )
    assert not any(isinstance(e, Failed) for e in events)
    assert translator.suspended


def built_in_round(message_id: str, text: str) -> list[bytes]:
    """A message that writes `text` and runs a built-in tool, and that tool's result."""
    read = canned.tool_use(f"toolu_{message_id}", "Read", {"file_path": "/w/a.txt"})
    return [
        canned.usage_start(message_id),
        canned.text_at(0, text),
        canned.tool_start(1, f"toolu_{message_id}", "Read"),
        canned.assistant(canned.text(text), read, uuid=f"a-{message_id}"),
        canned.message_end("tool_use", 9),
        canned.message_stop(),
        canned.tool_results(f"u-{message_id}", f"toolu_{message_id}"),
    ]


def test_held_text_of_every_message_of_a_reply_is_shown_when_given_up() -> None:
    translator = TurnTranslator(hold_text=True)
    feed(
        translator,
        *built_in_round("m1", "Looking."),
        canned.usage_start("m2"),
        canned.text_at(0, "Found nothing to call."),
        canned.message_end("end_turn", 5),
        canned.result("Found nothing to call."),
    )
    withheld = [e.text for e in translator.withheld() if isinstance(e, TextDelta)]
    assert withheld == ["Looking.", "Found nothing to call."]


def test_held_text_of_earlier_messages_goes_out_when_a_later_one_calls() -> None:
    translator = TurnTranslator(hold_text=True)
    events = feed(
        translator,
        *built_in_round("m1", "Looking."),
        canned.usage_start("m2"),
        canned.text_at(0, "Now the weather."),
        *one_call("toolu_1", index=1),
        canned.message_end("tool_use", 9),
    )
    shown = [e for e in events if isinstance(e, TextDelta | ToolCallStarted)]
    assert shown == [
        TextDelta("Looking."),
        TextDelta("Now the weather."),
        ToolCallStarted(index=0, id="toolu_1", name="get_weather"),
    ]
    assert translator.suspended


def test_held_text_survives_a_dropped_connection_that_the_retry_continues() -> None:
    translator = TurnTranslator(hold_text=True)
    events = feed(
        translator,
        canned.usage_start(),
        canned.text_at(0, "Let me "),
        canned.connection_retry(),  # the message was cut; the CLI asks again
        canned.usage_start("msg_2"),
        canned.text_at(0, "Let me check."),
        canned.assistant(canned.text("Let me check."), uuid="a-0"),
        *one_call("toolu_1", index=1),
        canned.message_end("tool_use", 9),
    )
    shown = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert shown == "Let me check."
    assert not any(isinstance(e, TextRetracted) for e in events)
    assert translator.suspended


def test_a_calls_arguments_are_exactly_what_was_streamed() -> None:
    # The client's copy of a streamed call is its fragments joined; the CLI's complete
    # copy is re-encoded (other spacing). Both must agree: the client sends it back.
    translator = TurnTranslator()
    events = feed(
        translator,
        canned.usage_start(),
        canned.tool_start(0, "toolu_1", WEATHER),
        canned.input_delta(0, '{"city": '),
        canned.input_delta(0, '"Paris"}'),
        canned.assistant(canned.tool_use("toolu_1", WEATHER, {"city": "Paris"}), uuid="a-1"),
        canned.block_stop(0),
        canned.message_end("tool_use", 9),
    )
    streamed = "".join(e.text for e in events if isinstance(e, ToolArguments))
    finished = translator.suspension()[-1]
    assert isinstance(finished, Finished)
    assert finished.tool_calls[0].arguments == streamed == '{"city": "Paris"}'


def test_a_call_streamed_without_fragments_streams_its_complete_input() -> None:
    translator = TurnTranslator()
    events = feed(
        translator,
        canned.usage_start(),
        canned.tool_start(0, "toolu_1", WEATHER),
        canned.assistant(canned.tool_use("toolu_1", WEATHER, {}), uuid="a-1"),
        canned.block_stop(0),
        canned.message_end("tool_use", 9),
    )
    assert events[1:] == [ToolArguments(index=0, text="{}")]
    finished = translator.suspension()[-1]
    assert isinstance(finished, Finished)
    assert finished.tool_calls[0].arguments == "{}"


def test_the_message_after_one_printed_whole_is_a_new_message() -> None:
    # A cut attempt, the non-streaming fallback printed whole, then (after its tool ran)
    # the next message: streamed from its start, not a retry of the cut one.
    read = canned.tool_use("toolu_r", "Read", {"file_path": "/w/a.txt"})
    translator = TurnTranslator()
    events = feed(
        translator,
        canned.usage_start(),
        canned.text_at(0, "Let"),
        canned.message_stop(),
        canned.connection_retry(),
        canned.assistant(canned.text("Let me look."), uuid="a-1", stop_reason="tool_use"),
        canned.assistant(read, uuid="a-2", stop_reason="tool_use"),
        canned.tool_results("u-1", "toolu_r"),
        canned.usage_start("msg_2"),
        canned.text_at(0, "It says hi."),
        canned.assistant(canned.text("It says hi."), uuid="a-3"),
        canned.message_end("end_turn", 4),
        canned.result("It says hi."),
    )
    assert [e for e in events if isinstance(e, TextDelta | TextRetracted)] == [
        TextDelta("Let"),
        TextDelta(" me look."),
        TextDelta("It says hi."),
    ]
