"""The history memo reads a request as reading it afresh does, whatever came before."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy_core import (
    ChatError,
    ChatMessage,
    ChatUserMessage,
    ContentPart,
    Conversation,
    Message,
    Role,
    TextContent,
    TextPart,
)
from proxy_core.conversation import ParseLimits, parse_conversation
from proxy_core.history import HistoryMemo
from proxy_core.ledger import fingerprints

from .strategies import conversations, messages, to_openai, to_wire, variants

Outcome = tuple[Conversation, tuple[str, ...]] | tuple[str, str, str | None]


def afresh(wire: object, limits: ParseLimits) -> Outcome:
    """What reading the request with no memo gives: its conversation and fingerprints,
    or its error."""
    try:
        conversation = parse_conversation(wire, limits)
    except ChatError as error:
        return (error.reason.value, error.message, error.param)
    return conversation, fingerprints(conversation.messages)


def through(memo: HistoryMemo, wire: object, limits: ParseLimits, scope: object = ()) -> Outcome:
    try:
        read = memo.read(wire, limits, scope)
    except ChatError as error:
        return (error.reason.value, error.message, error.param)
    return read.conversation, read.seen


def request(system: str | None, history: list[Message], typed: bool) -> list[object]:
    """The request's `messages`, as JSON data or as typed wire messages."""
    form = to_wire if typed else to_openai
    opening: list[object] = [] if system is None else [{"role": "system", "content": system}]
    return [*opening, *(form(message) for message in history)]


@st.composite
def follow_ups(draw: st.DrawFn) -> list[tuple[str | None, list[Message]]]:
    """A conversation's requests as clients send them: each extends, forks, edits or
    trims what came before, or changes the system prompt, so that much of each
    request was seen before and some of it differs anywhere."""
    base = draw(conversations(max_size=5, with_calls=draw(st.booleans())))
    system, history = base.system, list(base.messages)
    requests = [(system, list(history))]
    for _ in range(draw(st.integers(1, 5))):
        change = draw(st.sampled_from(["extend", "edit", "fork", "system", "same"]))
        if change == "extend":
            history += draw(st.lists(messages(), min_size=1, max_size=3))
        elif change == "edit":
            index = draw(st.integers(0, len(history) - 1))
            history[index] = draw(variants(history[index]))
        elif change == "fork":
            history = history[: draw(st.integers(1, len(history)))]
            history += draw(st.lists(messages(), max_size=2))
        elif change == "system":
            system = draw(st.one_of(st.none(), st.text(max_size=10)))
        requests.append((system, list(history)))
    return requests


@settings(max_examples=100, deadline=None)
@given(follow_ups(), st.booleans(), st.sampled_from([ParseLimits(), ParseLimits(max_images=2)]))
def test_every_request_reads_as_it_would_afresh(
    requests: list[tuple[str | None, list[Message]]], typed: bool, limits: ParseLimits
) -> None:
    memo = HistoryMemo()
    for system, history in requests:
        wire = request(system, history, typed)
        assert through(memo, wire, limits) == afresh(wire, limits)


@settings(max_examples=100, deadline=None)
@given(follow_ups())
def test_requests_of_other_conversations_between_change_nothing(
    requests: list[tuple[str | None, list[Message]]],
) -> None:
    """Two conversations interleaved in one small memo (each evicting the other) read as
    each does alone."""
    memo = HistoryMemo(max_conversations=1)
    other = [Message(Role.USER, (TextPart("another conversation"),))]
    for system, history in requests:
        for wire in (request(system, history, True), request(None, other, True)):
            assert through(memo, wire, ParseLimits()) == afresh(wire, ParseLimits())


def test_a_follow_up_reads_only_the_messages_it_adds() -> None:
    memo = HistoryMemo()
    history = [Message(Role.USER, (TextPart(f"question {i}"),)) for i in range(5)]
    memo.read(request("be brief", history, False), ParseLimits())
    assert (memo.hits, memo.misses) == (0, 6)
    history.append(Message(Role.ASSISTANT, (TextPart("an answer"),)))
    memo.read(request("be brief", history, False), ParseLimits())
    assert (memo.hits, memo.misses) == (6, 7)


def test_an_edited_earlier_message_is_read_again_and_changes_its_fingerprint() -> None:
    memo = HistoryMemo()
    history = [Message(Role.USER, (TextPart(f"question {i}"),)) for i in range(4)]
    first = memo.read(request(None, history, True), ParseLimits())
    history[2] = Message(Role.USER, (TextPart("question two, edited"),))
    second = memo.read(request(None, history, True), ParseLimits())
    assert second.seen[2] != first.seen[2]
    assert second.seen[:2] == first.seen[:2]
    assert second.seen[3] == first.seen[3]
    assert memo.misses == 4 + 2  # read again from the edited message on


def test_json_arguments_that_compare_equal_but_read_differently_are_not_reused() -> None:
    # {"n": 1} == {"n": 1.0} == {"n": True} in Python, but they encode differently.
    memo = HistoryMemo()
    for value in (1, 1.0, True):
        wire: list[object] = [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f", "arguments": {"n": value}},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
        ]
        assert through(memo, wire, ParseLimits()) == afresh(wire, ParseLimits())


def test_one_scope_never_reuses_what_another_read() -> None:
    memo = HistoryMemo()
    wire = request(None, [Message(Role.USER, (TextPart("hello"),))], True)
    memo.read(wire, ParseLimits(), scope=("key-a", None, None, None))
    memo.read(wire, ParseLimits(), scope=("key-b", None, None, None))
    assert memo.hits == 0
    assert memo.conversations == 2


def test_the_memo_keeps_at_most_its_conversations_and_characters() -> None:
    memo = HistoryMemo(max_conversations=3, max_chars=20_000)
    for i in range(10):
        text = f"conversation {i} " + "x" * 2_000
        memo.read(request(None, [Message(Role.USER, (TextPart(text),))], True), ParseLimits())
        assert memo.conversations <= 3
        assert memo.chars <= 20_000
    memo = HistoryMemo(max_chars=4_000)
    for i in range(5):
        text = f"conversation {i} " + "x" * 1_500
        memo.read(request(None, [Message(Role.USER, (TextPart(text),))], True), ParseLimits())
        assert memo.chars <= 4_000
    assert memo.conversations == 1
    huge = [Message(Role.USER, (TextPart("y" * 10_000),))]
    memo.read(request(None, huge, True), ParseLimits())
    assert memo.chars <= 4_000  # larger than the whole memo: read afresh, never kept


def test_a_request_refused_is_refused_with_the_same_error_after_its_history_was_read() -> None:
    memo = HistoryMemo()
    limits = ParseLimits(max_images=1)
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    first: list[object] = [{"role": "user", "content": [image]}]
    assert isinstance(through(memo, first, limits)[0], Conversation)
    second = [*first, {"role": "assistant", "content": "ok"}, {"role": "user", "content": [image]}]
    outcome = through(memo, second, limits)
    assert outcome == afresh(second, limits)
    assert outcome[2] == "messages[2].content[0].image_url.url"
    assert msgspec.json.encode(outcome[1]).startswith(b'"Too many images')


def test_a_caller_changing_its_message_objects_afterwards_changes_nothing_kept() -> None:
    memo = HistoryMemo()
    content: list[ContentPart] = [TextContent("the question")]
    wire: list[ChatMessage] = [ChatUserMessage(content)]
    memo.read(wire, ParseLimits())
    content[0] = TextContent("another question")  # the same objects, sent again
    assert through(memo, wire, ParseLimits()) == afresh(wire, ParseLimits())
