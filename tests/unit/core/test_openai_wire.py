"""The typed OpenAI request: what decodes into which type, errors that name the
field by msgspec's path, and the ChatRequest a whole request becomes."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given

from proxy_core import (
    ChatAssistantMessage,
    ChatCompletionRequest,
    ChatDeveloperMessage,
    ChatError,
    ChatFunctionMessage,
    ChatService,
    ChatSystemMessage,
    ChatToolMessage,
    ChatUserMessage,
    Conversation,
    FailureReason,
    FakeRunner,
    FileContent,
    FunctionTool,
    ImageUrl,
    ImageUrlContent,
    InMemorySessionStore,
    InputAudioContent,
    JsonSchemaFormat,
    NamedToolChoice,
    RefusalContent,
    TextContent,
    chat_request,
    invalid_request,
    parse_conversation,
)
from proxy_core.openai_wire import (
    IGNORED_REQUEST_FIELDS,
    UNHONOURED_FIELDS,
    convert,
    unhonoured_fields,
)

from .strategies import conversations, to_openai, to_wire

USER = [{"role": "user", "content": "hi"}]


def request(**fields: Any) -> ChatCompletionRequest:
    return msgspec.convert({"model": "sonnet", "messages": USER, **fields}, ChatCompletionRequest)


def refusal(body: dict[str, Any]) -> ChatError:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert(body, ChatCompletionRequest)
    error = invalid_request(caught.value)
    assert error.reason is FailureReason.INVALID_REQUEST
    return error


@given(conversations())
def test_typed_messages_parse_to_the_conversation_their_json_form_does(
    conversation: Conversation,
) -> None:
    system = [ChatSystemMessage(conversation.system)] if conversation.system else []
    typed = [*system, *(to_wire(m) for m in conversation.messages)]
    plain = [
        *({"role": "system", "content": s.content} for s in system),
        *(to_openai(m) for m in conversation.messages),
    ]
    parsed = parse_conversation(typed)
    assert parsed.messages == conversation.messages
    assert parsed.system == (conversation.system or None)
    assert parse_conversation(plain) == parsed


@given(conversations())
def test_typed_messages_survive_a_trip_through_json(conversation: Conversation) -> None:
    typed = [to_wire(m) for m in conversation.messages]
    body = msgspec.json.encode({"model": "sonnet", "messages": typed})
    decoded = msgspec.json.decode(body, type=ChatCompletionRequest)
    assert decoded.messages == typed


def test_each_role_and_part_decodes_to_its_own_type() -> None:
    decoded = request(
        messages=[
            {"role": "system", "content": "s"},
            {"role": "developer", "content": [{"type": "text", "text": "d"}]},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "https://e.com/a.png"}},
                    {"type": "image_url", "image_url": "https://e.com/b.png"},
                    {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}},
                    {"type": "file", "file": {"file_id": "f"}},
                ],
            },
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
            {"role": "tool", "tool_call_id": "c", "content": "r"},
            {"role": "function", "name": "f", "content": None},
        ]
    ).messages
    assert [type(m) for m in decoded] == [
        ChatSystemMessage,
        ChatDeveloperMessage,
        ChatUserMessage,
        ChatAssistantMessage,
        ChatToolMessage,
        ChatFunctionMessage,
    ]
    user = decoded[2]
    assert isinstance(user, ChatUserMessage)
    assert isinstance(user.content, list)
    assert [type(p) for p in user.content] == [
        ImageUrlContent,
        ImageUrlContent,
        InputAudioContent,
        FileContent,
    ]
    assert user.content[0] == ImageUrlContent(ImageUrl("https://e.com/a.png"))
    assert decoded[3] == ChatAssistantMessage([RefusalContent("no")])


def test_options_decode_to_their_types() -> None:
    decoded = request(
        response_format={"type": "json_schema", "json_schema": {"name": "p", "strict": True}},
        tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        tool_choice={"type": "function", "function": {"name": "f"}},
    )
    assert isinstance(decoded.response_format, JsonSchemaFormat)
    assert decoded.response_format.json_schema.strict is True
    assert decoded.tools is not None
    assert isinstance(decoded.tools[0], FunctionTool)
    assert decoded.tools[0].function.name == "f"
    assert isinstance(decoded.tool_choice, NamedToolChoice)
    assert request(tool_choice="required").tool_choice == "required"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        (
            {"messages": [{"role": "user", "content": [{"type": "audio"}]}]},
            "messages[0].content[0].type",
        ),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        (
            {"messages": [{"role": "assistant", "tool_calls": [{"id": "1", "function": {}}]}]},
            "messages[0].tool_calls[0].function.name",
        ),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        ({"stop": [1]}, "stop[0]"),
        ({"tools": [{"type": "function"}]}, "tools[0].function"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"tool_choice": {"type": "function", "function": {}}}, "tool_choice.function.name"),
    ],
)
def test_a_refused_field_is_named_by_its_path(fields: dict[str, Any], param: str) -> None:
    error = refusal({"model": "sonnet", "messages": USER, **fields})
    assert error.param == param
    assert f"(at '{param}')" in error.message


def test_a_missing_field_at_the_top_is_named_and_a_wrong_body_names_none() -> None:
    assert refusal({"model": "sonnet"}).param == "messages"
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert([], ChatCompletionRequest)
    assert invalid_request(caught.value).param is None


def test_a_part_decoded_below_a_root_is_named_under_it() -> None:
    with pytest.raises(ChatError) as caught:
        convert([{"role": "user", "content": 7}], list[ChatUserMessage], "messages")
    assert caught.value.param == "messages[0].content"


def test_a_whole_request_becomes_the_service_request() -> None:
    wire = request(user="u", reasoning_effort="high", stop="x", response_format={"type": "text"})
    asked = chat_request(wire, session_id="s", namespace="k")
    assert (asked.model, asked.messages, asked.user, asked.session_id, asked.namespace) == (
        "sonnet",
        wire.messages,
        "u",
        "s",
        "k",
    )
    assert (asked.reasoning_effort, asked.stop, asked.response_format) == (
        "high",
        "x",
        wire.response_format,
    )
    assert asked.messages[0] == ChatUserMessage("hi")


@pytest.mark.parametrize(("fields", "param"), [({"n": 2}, "n"), ({"logprobs": True}, "logprobs")])
def test_what_the_service_cannot_honour_is_refused_naming_it(
    fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(ChatError) as caught:
        chat_request(request(**fields))
    assert (caught.value.reason, caught.value.param) == (FailureReason.INVALID_REQUEST, param)


def test_text_parts_of_every_kind_are_text() -> None:
    parsed = parse_conversation(
        [
            ChatUserMessage([TextContent("a"), TextContent("b")]),
            ChatAssistantMessage([RefusalContent("no")]),
        ]
    )
    assert [m.text for m in parsed.messages] == ["a\nb", "no"]


async def test_an_embedding_app_serves_an_openai_body_without_http() -> None:
    body = (
        b'{"model":"sonnet","messages":[{"role":"developer","content":"be brief"},'
        b'{"role":"user","content":[{"type":"text","text":"hello there"}]}],'
        b'"stop":"there","response_format":{"type":"text"}}'
    )
    runner = FakeRunner()
    service = ChatService(runner, InMemorySessionStore())
    wire = msgspec.json.decode(body, type=ChatCompletionRequest)
    completion = await service.complete(chat_request(wire, session_id="embedded"))
    assert completion.text == "echo: hello "  # cut at the stop sequence
    assert completion.session_key == "h:embedded"
    assert runner.plans[0].system == "be brief"


def unhonoured(**fields: Any) -> tuple[str, ...]:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    return unhonoured_fields(msgspec.convert(body, ChatCompletionRequest))


def test_fields_that_would_change_the_reply_are_reported_in_the_lists_order() -> None:
    assert unhonoured(seed=7, top_p=0.5, temperature=0.2) == ("temperature", "top_p", "seed")
    assert unhonoured(max_tokens=5, logit_bias={"50256": -100}) == ("max_tokens", "logit_bias")


def test_zero_and_false_are_values_a_client_asked_for() -> None:
    assert unhonoured(seed=0, temperature=0) == ("temperature", "seed")


def test_the_tool_fields_are_honoured_so_never_reported() -> None:
    tool = {"type": "function", "function": {"name": "f"}}
    fields: dict[str, Any] = {
        "tools": [tool],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "functions": [{"name": "f"}],
        "function_call": "auto",
    }
    assert unhonoured(**fields) == ()
    assert unhonoured(**fields, seed=1) == ("seed",)


def test_fields_that_ask_for_nothing_or_change_nothing_are_not_reported() -> None:
    assert unhonoured() == ()
    assert unhonoured(tools=[], tool_choice="none", functions=None, logit_bias={}) == ()
    assert unhonoured(user="u", metadata={"k": "v"}, store=True, n=1, stream=True) == ()


def test_every_unhonoured_field_is_a_request_field_and_an_ignored_one() -> None:
    names = {f.name for f in msgspec.structs.fields(ChatCompletionRequest)}
    assert set(UNHONOURED_FIELDS) <= names
    assert set(UNHONOURED_FIELDS) <= set(IGNORED_REQUEST_FIELDS)
