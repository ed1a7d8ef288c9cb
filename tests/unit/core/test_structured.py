"""response_format: the schema a reply must follow, and how a structured turn is delivered."""

from __future__ import annotations

import json
from collections.abc import Sequence

import msgspec
import pytest

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
    TextDelta,
    TurnPlan,
    Usage,
    parse_response_format,
    reply_fingerprint,
)
from proxy_core.structured import ANY_OBJECT, MAX_SCHEMA_BYTES

PERSON = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def test_text_or_nothing_asks_for_no_schema() -> None:
    assert parse_response_format(None) is None
    assert parse_response_format({"type": "text"}) is None


def test_json_object_asks_for_any_object() -> None:
    assert json.loads(parse_response_format({"type": "json_object"}) or "") == {"type": "object"}


def test_json_schema_gives_its_schema_as_json_in_its_own_key_order() -> None:
    schema = {"type": "object", "properties": {"b": {}, "a": {}}}
    found = parse_response_format({"type": "json_schema", "json_schema": {"schema": schema}})
    assert found is not None
    assert json.loads(found) == schema
    assert found.index('"b"') < found.index('"a"')  # the client's order is the reply's


def test_json_schema_without_a_schema_asks_for_any_object() -> None:
    assert parse_response_format({"type": "json_schema", "json_schema": {"name": "x"}}) == (
        ANY_OBJECT
    )


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ({"type": "xml"}, "response_format.type"),
        ({}, "response_format.type"),
        ({"type": "json_schema"}, "response_format.json_schema"),
        ({"type": "json_schema", "json_schema": "s"}, "response_format.json_schema"),
        (
            {"type": "json_schema", "json_schema": {"schema": [1]}},
            "response_format.json_schema.schema",
        ),
        (
            {"type": "json_schema", "json_schema": {"schema": {"x": object()}}},
            "response_format.json_schema.schema",
        ),
        (
            {"type": "json_schema", "json_schema": {"schema": {"x": "y" * MAX_SCHEMA_BYTES}}},
            "response_format.json_schema.schema",
        ),
    ],
)
def test_a_bad_response_format_is_an_invalid_request_naming_the_field(
    value: dict[str, object], param: str
) -> None:
    with pytest.raises(ChatError) as caught:
        parse_response_format(value)
    assert (caught.value.reason, caught.value.param) == (FailureReason.INVALID_REQUEST, param)


def structured_script(plan: TurnPlan) -> Sequence[Event]:
    """Chatter on the way, then the backend's structured result."""
    return [
        TextDelta("Let me fill that in. "),
        Usage(input_tokens=3, output_tokens=4),
        Finished("tool_use", '{"name":"Ada"}', plan.cli_session_id),
    ]


def person_request(*texts: str) -> ChatRequest:
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)
    ]
    schema = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}
    return ChatRequest(
        model="sonnet", messages=messages, session_id="people", response_format=schema
    )


async def test_a_structured_turn_delivers_only_the_result_and_records_it_as_the_reply() -> None:
    runner = FakeRunner(structured_script)
    service = ChatService(runner, InMemorySessionStore())
    events = [event async for event in service.stream(person_request("who?"))]
    assert [e.text for e in events if isinstance(e, TextDelta)] == ['{"name":"Ada"}']
    assert isinstance(events[-1], Finished)
    assert runner.plans[0].json_schema is not None
    assert json.loads(runner.plans[0].json_schema) == PERSON
    (record,) = (await service.list_sessions())[0]
    assert record.fingerprints[-1] == reply_fingerprint('{"name":"Ada"}')
    # The client sends the JSON back as the assistant message: the session continues.
    again = await service.complete(person_request("who?", '{"name":"Ada"}', "and now?"))
    assert again.text == '{"name":"Ada"}'
    assert runner.plans[1].kind is PlanKind.CONTINUE


async def test_a_plain_turn_keeps_streaming_its_text() -> None:
    runner = FakeRunner(structured_script)
    service = ChatService(runner, InMemorySessionStore())
    plain = msgspec.structs.replace(person_request("who?"), response_format={"type": "text"})
    completion = await service.complete(plain)
    assert completion.text == "Let me fill that in. "
    assert runner.plans[0].json_schema is None
