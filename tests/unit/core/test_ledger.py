"""The ledger's fingerprints follow the rendering: whatever the CLI would be shown
differently (a name, a tool call id, a tool call, text, an image, the system prompt)
keeps a request from continuing a CLI session that was shown something else."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from proxy_core import (
    Conversation,
    Message,
    PlanKind,
    Role,
    SessionRecord,
    TextPart,
    parse_conversation,
    plan_turn,
    render_messages,
    system_hash,
)
from proxy_core.ledger import as_seen, fingerprint, fingerprints

from .strategies import conversations, messages, texts, variants


def recorded(conversation: Conversation) -> SessionRecord:
    return SessionRecord(
        key="auto:k",
        cli_session_id="cli-a",
        model="sonnet",
        system_hash=system_hash(conversation.system),
        fingerprints=fingerprints(conversation.messages),
        created_at=0.0,
        last_used_at=0.0,
    )


def plan(record: SessionRecord, conversation: Conversation) -> PlanKind:
    return plan_turn(
        record, conversation, session_key="auto:k", model="sonnet", new_session_id="cli-b"
    ).kind


def renders_differently(a: Message, b: Message) -> bool:
    """Whether the CLI would be shown `a` and `b` differently, beyond the whitespace the
    ledger deliberately ignores."""
    return render_messages([as_seen(a)]) != render_messages([as_seen(b)])


@given(conversations(), st.data())
def test_a_request_that_renders_any_seen_message_differently_never_continues(
    conversation: Conversation, data: st.DataObject
) -> None:
    record = recorded(conversation)
    changed = list(conversation.messages)
    indexes = data.draw(
        st.sets(st.integers(0, len(changed) - 1), max_size=len(changed)), label="changed"
    )
    for index in indexes:
        changed[index] = data.draw(variants(changed[index]), label=f"variant {index}")
    system = data.draw(st.one_of(st.just(conversation.system), st.none(), texts), label="system")
    assume(
        (system or "") != (conversation.system or "")
        or any(
            renders_differently(a, b) for a, b in zip(conversation.messages, changed, strict=True)
        )
    )
    extension = data.draw(st.lists(messages(), max_size=3), label="extension")
    request = Conversation(system=system, messages=(*changed, *extension))
    assert plan(record, request) is not PlanKind.CONTINUE


@given(conversations(), st.lists(messages(), min_size=1, max_size=3), st.data())
def test_extending_the_seen_conversation_continues_even_with_whitespace_changed(
    conversation: Conversation, extension: list[Message], data: st.DataObject
) -> None:
    record = recorded(conversation)
    padding = st.sampled_from(["", " ", "\n", "\r\n", "  \t"])
    resent = []
    for message in conversation.messages:
        parts = message.parts
        if parts and isinstance(parts[0], TextPart):
            parts = (TextPart(data.draw(padding) + parts[0].text), *parts[1:])
        if parts and isinstance(parts[-1], TextPart):
            parts = (*parts[:-1], TextPart(parts[-1].text + data.draw(padding)))
        resent.append(
            Message(message.role, parts, message.name, message.tool_calls, message.tool_call_id)
        )
    request = Conversation(system=conversation.system, messages=(*resent, *extension))
    assert plan(record, request) is PlanKind.CONTINUE


@given(messages())
def test_the_ledger_ignores_only_whitespace(message: Message) -> None:
    seen = as_seen(message)
    assert (seen.role, seen.name, seen.tool_call_id, seen.tool_calls) == (
        message.role,
        message.name,
        message.tool_call_id,
        message.tool_calls,
    )
    assert seen.images == message.images
    original = "".join(p.text if isinstance(p, TextPart) else "\x00" for p in message.parts)
    kept = "".join(p.text if isinstance(p, TextPart) else "\x00" for p in seen.parts)
    assert kept == original.replace("\r\n", "\n").strip()
    assert as_seen(seen) == seen
    assert fingerprint(seen) == fingerprint(message)


def test_a_name_is_part_of_the_fingerprint() -> None:
    alice, mallory = (
        parse_conversation([{"role": "user", "content": "hi", "name": who}]).messages[0]
        for who in ("alice", "mallory")
    )
    assert fingerprint(alice) != fingerprint(mallory)
    unnamed = Message(Role.USER, (TextPart("hi"),))
    assert fingerprint(Message(Role.USER, (TextPart("hi"),), name="")) != fingerprint(unnamed)
