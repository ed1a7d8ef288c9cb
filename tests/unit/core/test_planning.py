"""Turn planning against the ledger: NEW, CONTINUE with exactly the new messages, RESTART."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from proxy_core import (
    Conversation,
    Message,
    PlanKind,
    RestartReason,
    Role,
    SessionRecord,
    TextBlock,
    TextPart,
    parse_conversation,
    parse_rendering,
    plan_turn,
    reply_fingerprint,
    system_hash,
)
from proxy_core.ledger import fingerprints

from .strategies import conversations, messages

KEY = "auto:k"


def record_for(
    conversation: Conversation, reply: str | None = None, session: str = "cli-1"
) -> SessionRecord:
    """The ledger after a successful turn over `conversation` (optionally with our reply)."""
    seen = fingerprints(conversation.messages)
    if reply is not None:
        seen = (*seen, reply_fingerprint(reply))
    return SessionRecord(
        key=KEY,
        cli_session_id=session,
        model="sonnet",
        system_hash=system_hash(conversation.system),
        fingerprints=seen,
        created_at=0.0,
        last_used_at=0.0,
    )


def plan(record: SessionRecord | None, conversation: Conversation):  # type: ignore[no-untyped-def]
    return plan_turn(
        record, conversation, session_key=KEY, model="sonnet", new_session_id="cli-new"
    )


def convo(*pairs: tuple[str, str], system: str | None = None) -> Conversation:
    raw: list[dict[str, object]] = [{"role": "system", "content": system}] if system else []
    raw += [{"role": role, "content": text} for role, text in pairs]
    return parse_conversation(raw)


# -- properties ---------------------------------------------------------------


@given(conversations(), st.lists(messages(), min_size=1, max_size=4))
def test_any_extension_of_the_seen_history_continues_with_exactly_the_extension(
    conversation: Conversation, extension: list[Message]
) -> None:
    record = record_for(conversation)
    extended = Conversation(
        system=conversation.system, messages=(*conversation.messages, *extension)
    )
    result = plan(record, extended)
    assert result.kind is PlanKind.CONTINUE
    assert result.messages == tuple(extension)
    assert parse_rendering(result.prompt) == tuple(extension)
    assert result.cli_session_id == "cli-1"


@given(conversations(min_size=2), st.data())
def test_any_edit_inside_the_seen_prefix_restarts_with_the_full_history(
    conversation: Conversation, data: st.DataObject
) -> None:
    record = record_for(conversation)
    index = data.draw(st.integers(0, len(conversation.messages) - 1))
    replacement = data.draw(messages())
    assume(fingerprints([replacement]) != fingerprints([conversation.messages[index]]))
    edited = list(conversation.messages)
    edited[index] = replacement
    extra = data.draw(st.lists(messages(), max_size=2))
    result = plan(record, Conversation(system=conversation.system, messages=(*edited, *extra)))
    assert result.kind is PlanKind.RESTART
    assert result.messages == (*edited, *extra)
    assert result.cli_session_id == "cli-new"


@given(conversations(min_size=2), st.data())
def test_any_deletion_or_reordering_inside_the_seen_prefix_restarts(
    conversation: Conversation, data: st.DataObject
) -> None:
    record = record_for(conversation)
    shuffled = data.draw(st.permutations(conversation.messages))
    dropped = data.draw(st.integers(0, len(conversation.messages) - 1))
    deleted = conversation.messages[:dropped] + conversation.messages[dropped + 1 :]
    for candidate in (tuple(shuffled), deleted):
        assume(fingerprints(candidate) != record.fingerprints)
        extra = data.draw(st.lists(messages(), max_size=2))
        messages_ = (*candidate, *extra)
        if (
            not messages_
            or fingerprints(messages_)[: len(record.fingerprints)] == record.fingerprints
        ):
            continue  # still an extension (e.g. swapped equal messages): CONTINUE is right
        result = plan(record, Conversation(system=conversation.system, messages=messages_))
        assert result.kind is PlanKind.RESTART


# -- examples -----------------------------------------------------------------


def test_the_first_request_is_new_with_the_whole_history() -> None:
    conversation = convo(("user", "hi"))
    result = plan(None, conversation)
    assert result.kind is PlanKind.NEW
    assert result.prompt == (TextBlock("hi"),)
    assert result.cli_session_id == "cli-new"


def test_the_normal_follow_up_sends_only_the_new_user_message() -> None:
    record = record_for(convo(("user", "hi")), reply="Hello! How can I help?")
    follow_up = convo(
        ("user", "hi"), ("assistant", "Hello! How can I help?"), ("user", "Tell me a joke")
    )
    result = plan(record, follow_up)
    assert result.kind is PlanKind.CONTINUE
    assert result.prompt == (TextBlock("Tell me a joke"),)


def test_our_reply_with_different_surrounding_whitespace_still_continues() -> None:
    record = record_for(convo(("user", "hi")), reply="Hello there.")
    follow_up = convo(("user", "hi"), ("assistant", "\n  Hello there.  \n"), ("user", "next"))
    assert plan(record, follow_up).kind is PlanKind.CONTINUE


def test_an_edited_earlier_message_restarts() -> None:
    record = record_for(convo(("user", "hi"), ("assistant", "a1"), ("user", "q2")), reply="a2")
    edited = convo(
        ("user", "HI"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2"), ("user", "q3")
    )
    result = plan(record, edited)
    assert result.kind is PlanKind.RESTART
    assert result.restart_reason is RestartReason.HISTORY_DIVERGED
    assert len(result.messages) == 5


def test_a_regenerated_reply_restarts() -> None:
    record = record_for(convo(("user", "hi")), reply="first answer")
    result = plan(record, convo(("user", "hi")))
    assert result.kind is PlanKind.RESTART
    assert result.restart_reason is RestartReason.REGENERATED


def test_a_changed_system_prompt_restarts() -> None:
    record = record_for(convo(("user", "hi"), system="be brief"), reply="ok")
    follow_up = convo(("user", "hi"), ("assistant", "ok"), ("user", "more"), system="be verbose")
    result = plan(record, follow_up)
    assert result.kind is PlanKind.RESTART
    assert result.restart_reason is RestartReason.SYSTEM_CHANGED
    assert result.system == "be verbose"


def test_another_conversation_under_a_colliding_key_restarts_without_mixing() -> None:
    record = record_for(convo(("user", "hi")), reply="reply to conversation A")
    other = convo(
        ("user", "hi"), ("assistant", "reply to conversation B"), ("user", "B's question")
    )
    result = plan(record, other)
    assert result.kind is PlanKind.RESTART
    assert result.cli_session_id != record.cli_session_id
    rendered = parse_rendering(result.prompt)
    assert [m.text for m in rendered] == ["hi", "reply to conversation B", "B's question"]


def test_a_retry_after_a_failed_turn_sends_the_user_message_once() -> None:
    # The failed turn did not advance the ledger, so the retry plans the same way.
    record = record_for(convo(("user", "hi")), reply="a1")
    retry = convo(("user", "hi"), ("assistant", "a1"), ("user", "q2"))
    first, second = plan(record, retry), plan(record, retry)
    assert first == second
    assert second.messages == (Message(role=Role.USER, parts=(TextPart("q2"),)),)


def test_several_new_messages_are_sent_as_one_transcript_turn() -> None:
    record = record_for(convo(("user", "hi")), reply="a1")
    follow_up = convo(("user", "hi"), ("assistant", "a1"), ("user", "one"), ("user", "two"))
    result = plan(record, follow_up)
    assert result.kind is PlanKind.CONTINUE
    assert [m.text for m in parse_rendering(result.prompt)] == ["one", "two"]


def test_the_ledger_after_the_turn_covers_every_request_message() -> None:
    follow_up = convo(("user", "hi"), ("assistant", "a1"), ("user", "q2"))
    result = plan(record_for(convo(("user", "hi")), reply="a1"), follow_up)
    assert result.seen == fingerprints(follow_up.messages)
