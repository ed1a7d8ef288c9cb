"""Stop sequences: parsing `stop`, cutting streamed text, and what a cut turn leaves."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy_core import (
    ChatError,
    ChatRequest,
    ChatService,
    Event,
    FailureReason,
    FakeRunner,
    Finished,
    InMemorySessionStore,
    PlanKind,
    StopScanner,
    TextDelta,
    TurnPlan,
    Usage,
    parse_stop,
)


def test_a_string_or_a_list_gives_the_sequences_without_empty_or_repeated_ones() -> None:
    assert parse_stop(None) == ()
    assert parse_stop("\nObservation:") == ("\nObservation:",)
    assert parse_stop(["a", "", "b", "a"]) == ("a", "b")


@pytest.mark.parametrize("value", [["a", "b", "c", "d", "e"], ["a", 1]])
def test_too_many_or_non_string_sequences_are_refused_naming_stop(value: object) -> None:
    with pytest.raises(ChatError) as caught:
        parse_stop(value)  # type: ignore[arg-type]
    assert (caught.value.reason, caught.value.param) == (FailureReason.INVALID_REQUEST, "stop")


def scan(pieces: Sequence[str], stops: Sequence[str]) -> tuple[str, bool, str | None]:
    scanner = StopScanner(stops)
    out = "".join(scanner.feed(piece) for piece in pieces) + scanner.flush()
    assert out == scanner.text
    return out, scanner.stopped, scanner.matched


def expected_cut(text: str, stops: Sequence[str]) -> str:
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return text[: min(found)] if found else text


@given(
    text=st.text(alphabet="abAB\n:", max_size=60),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=8),
    stops=st.lists(st.text(alphabet="abAB\n:", min_size=1, max_size=5), min_size=1, max_size=4),
)
def test_any_split_of_any_text_is_cut_at_the_first_stop_sequence(
    text: str, cuts: list[int], stops: list[str]
) -> None:
    bounds = sorted({0, len(text), *(min(c, len(text)) for c in cuts)})
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    out, stopped, matched = scan(pieces, stops)
    assert out == expected_cut(text, stops)
    assert stopped == (out != text or any(s in text for s in stops))
    # The sequence it names is one of them, and it is what follows the cut.
    assert (matched is not None) == stopped
    if matched is not None:
        assert matched in stops
        assert text.startswith(matched, len(out))


def test_text_that_might_start_a_sequence_is_held_back_until_it_cannot() -> None:
    scanner = StopScanner(["STOP"])
    assert scanner.feed("go ST") == "go"
    assert scanner.feed("ill") == " ST"
    assert scanner.feed("STO") == "ill"
    assert scanner.feed("P and more") == ""
    assert scanner.stopped
    assert scanner.text == "go STill"


def test_a_longer_sequence_starting_earlier_wins_over_a_shorter_one_inside_it() -> None:
    # Found by the property above: `:` is complete at 1 while `A::`, from 0, may still be.
    scanner = StopScanner([":", "A::"])
    assert scanner.feed("A:") == ""
    assert not scanner.stopped
    assert scanner.feed(":") == ""
    assert scanner.stopped
    assert scanner.text == ""


def test_a_shorter_sequence_found_while_a_longer_one_might_start_earlier_cuts_at_the_end() -> None:
    scanner = StopScanner([":", "A::"])
    assert scanner.feed("A:") == ""
    assert scanner.flush() == "A"
    assert scanner.stopped
    assert scanner.text == "A"


def chatty(plan: TurnPlan) -> Sequence[Event]:
    return [
        TextDelta("Thought: look it up\nAction: sea"),
        TextDelta("rch\nObserv"),
        TextDelta("ation: made up"),
        Usage(input_tokens=5, output_tokens=9),
        Finished("end_turn", "whole", plan.cli_session_id),
    ]


def react(*texts: str, stop: list[str] | None = None) -> ChatRequest:
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)
    ]
    return ChatRequest(model="sonnet", messages=messages, session_id="react", stop=stop)


async def test_a_reply_is_cut_before_the_stop_the_turn_abandoned_and_the_ledger_kept() -> None:
    runner = FakeRunner(chatty)
    service = ChatService(runner, InMemorySessionStore())
    first = await service.complete(react("hi"))  # the session, as it was before
    asked = react("hi", first.text, "go", stop=["\nObservation:"])
    events = [e async for e in service.stream(asked)]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "Thought: look it up\nAction: search"
    assert events[-1] == Finished("stop_sequence", text, stop_sequence="\nObservation:")
    assert (runner.closed, runner.active) == (2, 0)  # the runner's turn was closed
    (record,) = (await service.list_sessions())[0]
    assert record.message_count == 2  # not advanced past what the client saw
    # The client continues from the cut reply: the session catches up on all of it.
    await service.complete(react("hi", first.text, "go", text, "Observation: real"))
    third = runner.plans[2]
    assert third.kind is PlanKind.CONTINUE
    assert [m.role.value for m in third.messages] == ["user", "assistant", "user"]
    assert (await service.stats()).completed == 3


async def test_a_reply_without_the_sequence_is_whole() -> None:
    service = ChatService(FakeRunner(chatty), InMemorySessionStore())
    completion = await service.complete(react("hi", stop=["never"]))
    assert completion.text == "Thought: look it up\nAction: search\nObservation: made up"
    assert completion.stop_reason == "end_turn"


async def test_a_sequence_decided_only_at_the_reply_end_cuts_it_unrecorded() -> None:
    def ends_in_a_maybe(plan: TurnPlan) -> Sequence[Event]:
        return [TextDelta("Result "), TextDelta("A:"), Finished("end_turn", "x")]

    runner = FakeRunner(ends_in_a_maybe)
    service = ChatService(runner, InMemorySessionStore())
    first = await service.complete(react("hi"))
    asked = react("hi", first.text, "go", stop=[":", "A::"])
    events = [e async for e in service.stream(asked)]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    # `:` is found at once, but `A::` might have started just before it.
    assert text == "Result A"
    assert events[-1] == Finished("stop_sequence", "Result A", stop_sequence=":")
    (record,) = (await service.list_sessions())[0]
    assert record.message_count == 2


def test_text_withdrawn_from_before_the_searched_window_is_withdrawn_whole() -> None:
    scanner = StopScanner(["STOP"])
    passed = "".join(scanner.feed(piece) for piece in ["abcdefgh"] * 50)
    assert passed == ("abcdefgh" * 50)[:-3]
    scanner.rewind(10)  # far before the window the scanner still searches
    assert scanner.text == "abcdefghab"
    assert scanner.length == 10
    assert scanner.feed("xSTO") == "x"
    assert scanner.feed("Py") == ""
    assert scanner.stopped
    assert scanner.text == "abcdefghabx"
