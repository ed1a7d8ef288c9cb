"""The ledger's fingerprints follow the rendering: whatever the CLI would be shown
differently (a name, a tool call id, a tool call, an error mark, text, an image, the
system prompt) keeps a request from continuing a CLI session that was shown something
else. The deliberate losses are whitespace and the spelling of JSON arguments."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from proxy_core import (
    Base64Image,
    Conversation,
    ImagePart,
    Message,
    PlanKind,
    Role,
    SessionRecord,
    TextPart,
    ToolCall,
    parse_conversation,
    plan_turn,
    render_messages,
    reply_fingerprint,
    system_hash,
)
from proxy_core.ledger import as_seen, canonical_arguments, fingerprint, fingerprints

from .strategies import conversations, json_values, messages, texts, variants


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
        resent.append(msgspec.structs.replace(message, parts=parts))
    request = Conversation(system=conversation.system, messages=(*resent, *extension))
    assert plan(record, request) is PlanKind.CONTINUE


@given(messages())
def test_the_ledger_ignores_only_whitespace(message: Message) -> None:
    seen = as_seen(message)
    assert (seen.role, seen.name, seen.tool_call_id, seen.is_error) == (
        message.role,
        message.name,
        message.tool_call_id,
        message.is_error,
    )
    assert [(c.id, c.name, c.arguments) for c in seen.tool_calls] == [
        (c.id, c.name, canonical_arguments(c.arguments)) for c in message.tool_calls
    ]
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


# -- tool calls and results ---------------------------------------------------------


def call(arguments: str, call_id: str = "call_1", name: str = "lookup") -> ToolCall:
    return ToolCall(id=call_id, name=name, arguments=arguments)


def asked(*calls: ToolCall, text: str = "") -> Message:
    return Message(Role.ASSISTANT, (TextPart(text),) if text else (), tool_calls=calls)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ('{"a":1}', '{"a": 1}'),
        ('{"a":1,"b":[1,2]}', '{\n  "b": [1, 2],\n  "a": 1\n}'),
        ('{"city":"Zürich"}', '{"city": "Z\\u00fcrich"}'),
        ("{}", " { } "),
    ],
)
def test_arguments_match_however_the_client_spells_the_same_json(ours: str, theirs: str) -> None:
    assert fingerprint(asked(call(ours))) == fingerprint(asked(call(theirs)))


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ('{"a":1}', '{"a":2}'),
        ('{"a":1}', '{"A":1}'),
        ('{"a":[1,2]}', '{"a":[2,1]}'),
        ('{"a":"1"}', '{"a":1}'),
        ("not json", "not  json"),
        ("not json", " not json"),
        ("{broken", "{ broken"),
    ],
)
def test_arguments_that_say_something_else_do_not_match(ours: str, theirs: str) -> None:
    assert fingerprint(asked(call(ours))) != fingerprint(asked(call(theirs)))


def test_text_that_is_not_json_is_compared_as_it_is() -> None:
    for text in ("not json", "{broken", "", "  padded  ", "\ud800"):
        assert canonical_arguments(text) == text


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5), st.data())
def test_any_reserialisation_of_json_arguments_matches(
    value: dict[str, Any], data: st.DataObject
) -> None:
    ours = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    keys = data.draw(st.permutations(list(value)))
    style: dict[str, Any] = data.draw(
        st.sampled_from([{}, {"indent": 2}, {"separators": (", ", ": ")}])
    )
    theirs = json.dumps({k: value[k] for k in keys}, ensure_ascii=data.draw(st.booleans()), **style)
    assert fingerprint(asked(call(ours))) == fingerprint(asked(call(theirs)))


def test_an_error_result_is_told_apart_from_a_plain_one() -> None:
    plain = Message(Role.TOOL, (TextPart("no such city"),), tool_call_id="call_1")
    failed = msgspec.structs.replace(plain, is_error=True)
    assert fingerprint(plain) != fingerprint(failed)


def test_a_results_images_are_part_of_its_fingerprint() -> None:
    def result(*images: ImagePart) -> Message:
        return Message(Role.TOOL, (TextPart("a.png"), *images), tool_call_id="call_1")

    png = ImagePart(Base64Image("image/png", "iVBORw0KGgo="))
    assert fingerprint(result(png)) == fingerprint(
        result(ImagePart(Base64Image("image/png", "iVBORw0KGgo=")))
    )
    assert fingerprint(result(png)) != fingerprint(result())
    assert fingerprint(result(png)) != fingerprint(
        result(ImagePart(Base64Image("image/png", "R0lGODlh")))
    )
    assert fingerprint(result(png)) != fingerprint(result(png, png))


def test_fingerprints_without_an_error_mark_are_what_they_were_before_it() -> None:
    # Records on disk hold fingerprints; these digests were computed by the ledger
    # before results could be marked as errors, so stored sessions still continue.
    assert fingerprint(Message(Role.TOOL, (TextPart("sunny"),), tool_call_id="call_1")) == (
        "533df649ecfd015843ebacbb9f697d28"
    )
    assert fingerprint(asked(call('{"a":1}', name="w"), text="Hi")) == (
        "df1ecfa57a00930e41bfe9950744d965"
    )
    assert fingerprint(Message(Role.USER, (TextPart("hi"),), name="alice")) == (
        "f820bcd9cd6306a9a75581a56ce422ae"
    )


@pytest.mark.parametrize("content", [None, "", [], [{"type": "text", "text": ""}]])
def test_our_reply_with_calls_matches_the_clients_echo_of_it(content: object) -> None:
    calls = [call('{"city":"Paris","days":2}'), call('{"city":"Rome"}', "call_2", "weather")]
    echo: dict[str, Any] = {
        "role": "assistant",
        "content": content,
        "tool_calls": [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(json.loads(c.arguments))},
            }
            for c in calls
        ],
    }
    parsed = parse_conversation(
        [
            {"role": "user", "content": "weather?"},
            echo,
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
        ]
    )
    assert fingerprint(parsed.messages[1]) == reply_fingerprint("", calls)


def test_our_reply_with_text_before_its_calls_matches_the_echo() -> None:
    calls = [call('{"q":"x"}')]
    echo = {
        "role": "assistant",
        "content": "Let me look that up.\n",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup", "arguments": '{"q": "x"}'},
            }
        ],
    }
    parsed = parse_conversation(
        [
            {"role": "user", "content": "find x"},
            echo,
            {"role": "tool", "tool_call_id": "call_1", "content": "found"},
        ]
    )
    assert fingerprint(parsed.messages[1]) == reply_fingerprint("Let me look that up.", calls)
    assert fingerprint(parsed.messages[1]) != reply_fingerprint("", calls)
    assert fingerprint(parsed.messages[1]) != reply_fingerprint("Let me look that up.")


def test_a_legacy_reply_matches_its_echo_when_the_call_is_named_by_its_function() -> None:
    # The legacy reply has no call id: the client echoes `function_call`, which parses
    # to a call whose id is the function's name, so that is the id our reply is
    # fingerprinted with.
    parsed = parse_conversation(
        [
            {"role": "user", "content": "find x"},
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "lookup", "arguments": '{"q": "x"}'},
            },
            {"role": "function", "name": "lookup", "content": "found"},
        ]
    )
    assert fingerprint(parsed.messages[1]) == reply_fingerprint("", [call('{"q":"x"}', "lookup")])
