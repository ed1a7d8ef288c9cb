"""ReplyText: a turn's reply as its caller gets it, streamed or whole, withdrawn text dropped."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxy_core.reply_text import ReplyText


def test_streamed_text_passes_on_at_once_and_cannot_be_withdrawn() -> None:
    reply = ReplyText()
    assert reply.add("echo: ") == "echo: "
    assert not reply.retract(2)  # the caller has it
    assert reply.add("hi") == "hi"
    assert reply.finish() == ""
    assert reply.text == "echo: hi"


def test_held_back_text_of_a_streamed_reply_may_still_be_withdrawn() -> None:
    # "ST" could start the stop sequence, so it was not passed on yet.
    reply = ReplyText(("STOP",))
    assert reply.add("ab ST") == "ab"
    assert reply.retract(2)
    assert reply.add("cd") == ""
    assert reply.finish() == " cd"
    assert reply.text == "ab cd"


def test_a_whole_reply_is_given_at_the_end_without_what_was_withdrawn() -> None:
    reply = ReplyText(whole=True)
    assert reply.add("echo: cu") == ""
    assert reply.retract(len("echo: cu"))
    assert reply.add("other") == ""
    assert reply.finish() == "other"
    assert reply.text == "other"


def test_a_whole_reply_is_cut_at_a_stop_sequence_of_its_final_text() -> None:
    reply = ReplyText(("STOP",), whole=True)
    reply.add("first ")
    reply.retract(len("first "))
    reply.add("fine STOP rest")
    assert reply.stopped
    assert reply.finish() == "fine "


@given(
    kept=st.text(alphabet="ab S", max_size=10),
    void=st.text(alphabet="ab S", max_size=10),
    after=st.text(alphabet="ab S", max_size=10),
)
def test_a_whole_reply_is_its_text_without_the_withdrawn_part(
    kept: str, void: str, after: str
) -> None:
    plain = ReplyText(whole=True)
    cut = ReplyText(("STOP",), whole=True)
    for reply in (plain, cut):
        reply.add(kept + void)
        assert reply.retract(len(void))
        reply.add(after)
    assert plain.finish() == kept + after
    assert cut.finish() == (kept + after).split("STOP")[0]


def test_settling_passes_on_what_was_held_back_for_a_stop_sequence() -> None:
    # The model turned to tool calls: "ST" will not grow into "STOP" any more.
    reply = ReplyText(("STOP",))
    assert reply.add("Sure, ST") == "Sure,"
    assert reply.settle() == " ST"
    assert not reply.stopped
    assert reply.add("ill here") == "ill h"
    assert reply.finish() == "ere"
    assert reply.text == "Sure, STill here"


def test_settling_finds_a_stop_sequence_whose_cut_waited_for_a_longer_one() -> None:
    for whole in (False, True):
        reply = ReplyText(("xabq", "ab"), whole=whole)
        assert reply.add("xab") == ""
        assert reply.settle() == ("" if whole else "x")
        assert reply.stopped
        assert reply.finish() == ("x" if whole else "")
        assert reply.text == "x"


def test_settling_a_reply_without_stop_sequences_changes_nothing() -> None:
    reply = ReplyText()
    assert reply.add("text") == "text"
    assert reply.settle() == ""
    assert reply.finish() == ""
    assert reply.text == "text"
