"""Turn planning against the ledger: NEW, CONTINUE with exactly the new messages, RESTART."""

from __future__ import annotations

from typing import Any

import msgspec
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
    ToolCall,
    ToolResult,
    parse_conversation,
    parse_rendering,
    parse_tool_offer,
    plan_turn,
    reply_fingerprint,
    restart_plan,
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


def test_turns_another_instance_answered_meanwhile_are_sent_with_the_new_message() -> None:
    # Behind a load balancer (docs/deploy.md): this instance's ledger stopped at turn 1,
    # another instance answered turn 2 while it was down, and the conversation is back.
    record = record_for(convo(("user", "q1")), reply="a1 from here")
    back = convo(
        ("user", "q1"),
        ("assistant", "a1 from here"),
        ("user", "q2"),
        ("assistant", "a2 from the other instance"),
        ("user", "q3"),
    )
    result = plan(record, back)
    assert (result.kind, result.cli_session_id) == (PlanKind.CONTINUE, "cli-1")
    assert [(m.role, m.text) for m in parse_rendering(result.prompt)] == [
        (Role.USER, "q2"),
        (Role.ASSISTANT, "a2 from the other instance"),
        (Role.USER, "q3"),
    ]


def test_the_ledger_after_the_turn_covers_every_request_message() -> None:
    follow_up = convo(("user", "hi"), ("assistant", "a1"), ("user", "q2"))
    result = plan(record_for(convo(("user", "hi")), reply="a1"), follow_up)
    assert result.seen == fingerprints(follow_up.messages)


# -- the results of a suspended turn's tool calls -------------------------------------

QUESTION: dict[str, Any] = {"role": "user", "content": "Weather in Paris and Rome?"}
CALLS = (
    ToolCall("call_p", "weather", '{"city":"Paris"}'),
    ToolCall("call_r", "weather", '{"city":"Rome"}'),
)
BACKEND_IDS = ("toolu_01", "toolu_02")


def suspended(
    history: list[dict[str, Any]], calls: tuple[ToolCall, ...], pending: tuple[str, ...]
) -> SessionRecord:
    """The ledger after a turn over `history` whose reply called `calls`, which the
    backend knows as `pending` and holds suspended."""
    conversation = parse_conversation(history)
    return msgspec.structs.replace(
        record_for(conversation),
        fingerprints=(*fingerprints(conversation.messages), reply_fingerprint("", calls)),
        pending_calls=pending,
    )


def echo(calls: tuple[ToolCall, ...], content: object = None) -> dict[str, Any]:
    """Our reply as a client sends it back: arguments re-serialised with spaces."""
    return {
        "role": "assistant",
        "content": content,
        "tool_calls": [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments.replace(":", ": ")},
            }
            for c in calls
        ],
    }


def result(call_id: str, content: object, **extra: object) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content, **extra}


def test_results_for_exactly_the_pending_calls_resume_the_suspended_turn() -> None:
    record = suspended([QUESTION], CALLS, BACKEND_IDS)
    request = parse_conversation(
        [
            QUESTION,
            echo(CALLS),
            result("call_p", [{"type": "text", "text": "sunny"}, {"type": "text", "text": "21C"}]),
            result("call_r", "no such city", is_error=True),
        ]
    )
    plan_ = plan(record, request)
    assert plan_.kind is PlanKind.CONTINUE
    assert plan_.cli_session_id == record.cli_session_id
    assert plan_.tool_results == (
        ToolResult("toolu_01", "sunny\n21C"),
        ToolResult("toolu_02", "no such city", is_error=True),
    )
    assert plan_.messages == request.messages[2:]
    assert plan_.seen == fingerprints(request.messages)


def test_results_sent_in_another_order_are_given_in_the_backends_order() -> None:
    record = suspended([QUESTION], CALLS, BACKEND_IDS)
    request = parse_conversation(
        [QUESTION, echo(CALLS), result("call_r", "rain"), result("call_p", "sun")]
    )
    plan_ = plan(record, request)
    assert plan_.kind is PlanKind.CONTINUE
    assert plan_.tool_results == (ToolResult("toolu_01", "sun"), ToolResult("toolu_02", "rain"))


def test_results_after_text_our_reply_wrote_before_its_calls_resume_the_turn() -> None:
    conversation = parse_conversation([QUESTION])
    record = msgspec.structs.replace(
        record_for(conversation),
        fingerprints=(
            *fingerprints(conversation.messages),
            reply_fingerprint("Checking both.", CALLS),
        ),
        pending_calls=BACKEND_IDS,
    )
    request = parse_conversation(
        [
            QUESTION,
            echo(CALLS, content="Checking both.\n"),
            result("call_p", "sun"),
            result("call_r", "rain"),
        ]
    )
    assert [r.call_id for r in plan(record, request).tool_results] == list(BACKEND_IDS)


def test_a_legacy_call_is_resumed_by_its_function_message() -> None:
    call = ToolCall("lookup", "lookup", '{"q":"x"}')
    record = suspended([QUESTION], (call,), ("toolu_09",))
    request = parse_conversation(
        [
            QUESTION,
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "lookup", "arguments": '{"q": "x"}'},
            },
            {"role": "function", "name": "lookup", "content": "found it"},
        ]
    )
    plan_ = plan(record, request)
    assert plan_.kind is PlanKind.CONTINUE
    assert plan_.tool_results == (ToolResult("toolu_09", "found it"),)


def test_results_followed_by_user_text_resume_the_turn_with_the_text_as_notes() -> None:
    record = suspended([QUESTION], CALLS, BACKEND_IDS)
    request = parse_conversation(
        [
            QUESTION,
            echo(CALLS),
            result("call_p", "sun"),
            result("call_r", "rain"),
            {"role": "user", "content": "never mind, what about Oslo?"},
        ]
    )
    plan_ = plan(record, request)
    assert plan_.kind is PlanKind.CONTINUE
    assert plan_.tool_results == (
        ToolResult(BACKEND_IDS[0], "sun"),
        ToolResult(BACKEND_IDS[1], "rain", notes=("never mind, what about Oslo?",)),
    )
    assert plan_.messages == request.messages[2:]


def test_a_reply_whose_calls_the_record_does_not_match_abandons_the_turn() -> None:
    # The ledger saw our reply with two calls but the backend holds one: the results
    # cannot be delivered one to one, so the turn starts over rather than guess.
    record = suspended([QUESTION], CALLS, BACKEND_IDS[:1])
    request = parse_conversation(
        [QUESTION, echo(CALLS), result("call_p", "sun"), result("call_r", "rain")]
    )
    assert plan(record, request).restart_reason is RestartReason.TOOL_TURN_ABANDONED


def test_a_regenerated_or_edited_request_with_calls_pending_restarts_as_before() -> None:
    record = suspended([QUESTION], CALLS, BACKEND_IDS)
    regenerated = plan(record, parse_conversation([QUESTION]))
    assert regenerated.kind is PlanKind.RESTART
    assert regenerated.restart_reason is RestartReason.REGENERATED
    edited = parse_conversation(
        [
            {"role": "user", "content": "Weather in Paris and Oslo?"},
            echo(CALLS),
            result("call_p", "sun"),
            result("call_r", "rain"),
        ]
    )
    diverged = plan(record, edited)
    assert diverged.restart_reason is RestartReason.HISTORY_DIVERGED
    assert diverged.tool_results == ()
    other_args = (CALLS[0], ToolCall("call_r", "weather", '{"city":"Oslo"}'))
    changed_call = parse_conversation(
        [QUESTION, echo(other_args), result("call_p", "sun"), result("call_r", "rain")]
    )
    assert plan(record, changed_call).restart_reason is RestartReason.HISTORY_DIVERGED


def test_tool_messages_continue_without_results_when_no_call_is_pending() -> None:
    # The suspended turn is gone (its record kept no pending calls): the results are
    # sent as a transcript to the session instead.
    conversation = parse_conversation([QUESTION])
    record = msgspec.structs.replace(
        record_for(conversation),
        fingerprints=(*fingerprints(conversation.messages), reply_fingerprint("", CALLS)),
    )
    request = parse_conversation(
        [QUESTION, echo(CALLS), result("call_p", "sun"), result("call_r", "rain", is_error=True)]
    )
    plan_ = plan(record, request)
    assert plan_.kind is PlanKind.CONTINUE
    assert plan_.tool_results == ()
    assert parse_rendering(plan_.prompt) == request.messages[2:]


def test_a_restart_keeps_the_tools_and_drops_the_results() -> None:
    record = suspended([QUESTION], CALLS, BACKEND_IDS)
    request = parse_conversation(
        [QUESTION, echo(CALLS), result("call_p", "sun"), result("call_r", "rain")]
    )
    tools = parse_tool_offer([{"type": "function", "function": {"name": "weather"}}], "required")
    resumed = msgspec.structs.replace(plan(record, request), tools=tools, json_schema="{}")
    assert resumed.tool_results
    fresh = restart_plan(resumed, request, RestartReason.SESSION_MISSING, "cli-fresh")
    assert (fresh.kind, fresh.restart_reason) == (PlanKind.RESTART, RestartReason.SESSION_MISSING)
    assert fresh.tools == tools
    assert fresh.json_schema == "{}"
    assert fresh.tool_results == ()
    assert fresh.cli_session_id == "cli-fresh"
    assert parse_rendering(fresh.prompt) == request.messages
