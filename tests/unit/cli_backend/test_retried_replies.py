"""A reply the CLI retried after a dropped upstream connection reaches the client whole.

The event shapes are the ones observed with claude 2.1.331 (see canned.py): a cut
message ends with `message_stop` and no `message_delta`, then the CLI streams a new
attempt from its start (`message_start`) or sends the complete message unstreamed.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxy_cli_backend.protocol import EventDecoder
from proxy_cli_backend.translate import TurnTranslator
from proxy_core import (
    Event,
    Finished,
    ReplyCollector,
    TextDelta,
    TextRetracted,
    ThinkingDelta,
)
from tests.unit.cli_backend import canned


def translate(*lines: bytes) -> list[Event]:
    decoder = EventDecoder()
    translator = TurnTranslator()
    out: list[Event] = []
    for raw in lines:
        event = decoder.decode(raw)
        if event is not None:
            out += translator.feed(event)
    return out + translator.outcome("")


def client_text(events: list[Event]) -> str:
    reply = ReplyCollector()
    for event in events:
        reply.add(event)
    return reply.text


def streamed(*pieces: str) -> list[bytes]:
    return [canned.text_delta(piece) for piece in pieces]


def cut(*pieces: str) -> list[bytes]:
    """A streamed attempt whose connection dropped after `pieces`."""
    return [canned.message_start(), *streamed(*pieces), canned.message_stop()]


def whole(text: str, *pieces: str) -> list[bytes]:
    """A streamed attempt that finished: its pieces, the complete message, its end."""
    return [
        canned.message_start(),
        *streamed(*pieces),
        canned.assistant(canned.text(text)),
        canned.message_delta(),
        canned.message_stop(),
    ]


def test_a_retry_repeating_the_sent_text_sends_each_character_once() -> None:
    final = "echo: cut test a"
    events = translate(
        *cut("echo: cut t"),
        canned.connection_retry(),
        *whole(final, "echo: cut t", "est a"),
        canned.result(final),
    )
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["echo: cut t", "est a"]
    assert not any(isinstance(e, TextRetracted) for e in events)
    assert isinstance(events[-1], Finished)
    assert events[-1].text == final


def test_a_retry_answered_without_streaming_adds_only_the_rest() -> None:
    # After a second drop the CLI asks once more without streaming: only the
    # assistant event carries that attempt.
    final = "echo: cut test a"
    events = translate(
        *cut("echo: cut t"),
        canned.connection_retry(),
        *cut("echo: cut t"),
        canned.assistant(canned.text(final)),
        canned.result(final),
    )
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["echo: cut t", "est a"]
    assert client_text(events) == final


def test_a_retry_that_contradicts_the_sent_text_withdraws_it_first() -> None:
    final = "echo (retried): b"
    events = translate(
        *cut("echo: cu"),
        canned.connection_retry(),
        *whole(final, "echo (retried): ", "b"),
        canned.result(final),
    )
    texts = [e for e in events if isinstance(e, TextDelta | TextRetracted)]
    assert texts == [
        TextDelta("echo: cu"),
        TextRetracted(len("echo: cu")),
        TextDelta("echo (retried): "),
        TextDelta("b"),
    ]
    assert client_text(events) == final


def test_a_retry_that_ends_short_of_the_sent_text_withdraws_the_excess() -> None:
    events = translate(
        *cut("echo: cut test"),
        canned.connection_retry(),
        *whole("echo: cut", "echo: ", "cut"),
        canned.result("echo: cut"),
    )
    assert TextRetracted(len(" test")) in events
    assert client_text(events) == "echo: cut"


def test_an_unstreamed_retry_that_contradicts_the_sent_text_replaces_it() -> None:
    events = translate(
        *cut("echo: cu"),
        canned.assistant(canned.text("something else")),
        canned.result("something else"),
    )
    assert TextRetracted(len("echo: cu")) in events
    assert client_text(events) == "something else"


def test_a_new_message_after_a_finished_one_is_never_taken_for_a_retry() -> None:
    # A tool loop: two messages that happen to start alike are both the reply.
    events = translate(
        *whole("OK.", "OK."),
        canned.tool_result("u1"),
        *whole("OK. Done.", "OK.", " Done."),
        canned.result("OK. Done."),
    )
    assert client_text(events) == "OK.OK. Done."
    assert not any(isinstance(e, TextRetracted) for e in events)


def test_a_retried_thinking_block_is_not_repeated_and_a_different_one_is_withheld() -> None:
    thinking = [
        canned.message_start(),
        canned.thinking_delta("Let me think"),
        canned.message_stop(),
        canned.connection_retry(),
        canned.message_start(),
        canned.thinking_delta("Let me think"),
        canned.thinking_delta(" about this."),
        canned.message_stop(),
        canned.message_start(),
        canned.thinking_delta("Something else entirely."),
        canned.assistant({"type": "thinking", "thinking": "Something else entirely."}),
        *streamed("hi"),
        canned.assistant(canned.text("hi")),
        canned.message_delta(),
        canned.result("hi"),
    ]
    events = translate(*thinking)
    shown = "".join(e.text for e in events if isinstance(e, ThinkingDelta))
    assert shown == "Let me think about this."
    assert client_text(events) == "hi"


# A property over any cut: whatever the first attempt streamed and whatever the
# retry says, the client's text ends up as the retry's final text, and nothing is
# withdrawn when the retry continues what was sent. The one deliberate exception
# (`MessageText.leftover`): sent text beyond a shorter final text is let go when it
# is whitespace alone, since the complete text may lack a trailing newline the
# stream had; the client then has exactly what was sent.
_text = st.text(alphabet="ab c", min_size=1, max_size=12)


@given(first=_text, final=_text, sent_len=st.integers(1, 12), split=st.integers(0, 12))
def test_the_client_text_is_always_the_final_text(
    first: str, final: str, sent_len: int, split: int
) -> None:
    sent = first[:sent_len]
    pieces = [p for p in (final[:split], final[split:]) if p]
    events = translate(
        *cut(sent), canned.connection_retry(), *whole(final, *pieces), canned.result(final)
    )
    shown = client_text(events)
    if shown != final:
        assert shown == sent
        assert shown.startswith(final)
        assert not shown[len(final) :].strip()
    if final.startswith(sent):
        assert not any(isinstance(e, TextRetracted) for e in events)
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == final
