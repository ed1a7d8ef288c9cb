"""An Anthropic Messages request as the core's ChatRequest: every block kind, the order
of tool results, one assistant message per assistant turn, tools and tool_choice,
thinking and the other options; and a core error named by the Anthropic field."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from proxy_core import (
    AssistantToolCall,
    ChatAssistantMessage,
    ChatError,
    ChatSystemMessage,
    ChatToolMessage,
    ChatUserMessage,
    FunctionCall,
    ImageUrl,
    ImageUrlContent,
    JsonSchemaFormat,
    JsonSchemaSpec,
    NamedToolChoice,
    TextContent,
    ToolChoiceFunction,
    parse_conversation,
)
from proxy_http.messages.translate import Translated, translate
from proxy_http.messages.wire import MessagesRequest

PNG = "iVBORw0KGgo="
WEATHER = {
    "name": "weather",
    "description": "The weather of a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def translated(show_by_default: bool = False, **fields: Any) -> Translated:
    body: dict[str, Any] = {
        "model": "sonnet",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
        **fields,
    }
    request = msgspec.convert(body, MessagesRequest)
    return translate(request, session_id=None, namespace="", show_by_default=show_by_default)


def test_every_block_kind_becomes_its_chat_message_in_order() -> None:
    cache = {"cache_control": {"type": "ephemeral"}}
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look:", **cache},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "c2ln"},
                {"type": "redacted_thinking", "data": "xyz"},
                {"type": "text", "text": "Checking both."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny", **cache},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "is_error": True,
                    "content": [
                        {"type": "text", "text": "no data"},
                        {
                            "type": "image",
                            "source": {"type": "url", "url": "https://example.com/r.png"},
                        },
                    ],
                },
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]
    system = [{"type": "text", "text": "Be brief.", **cache}, {"type": "text", "text": "Be kind."}]
    chat = translated(system=system, messages=messages).request.messages
    assert list(chat) == [
        ChatSystemMessage(content=[TextContent("Be brief."), TextContent("Be kind.")]),
        ChatUserMessage(
            content=[
                TextContent("Look:"),
                ImageUrlContent(ImageUrl(f"data:image/png;base64,{PNG}")),
                ImageUrlContent(ImageUrl("https://example.com/a.png")),
            ]
        ),
        # Thinking is dropped; the text and both calls are one message, as recorded.
        ChatAssistantMessage(
            content=[TextContent("Checking both.")],
            tool_calls=[
                AssistantToolCall("toolu_1", FunctionCall("weather", '{"city":"Paris"}')),
                AssistantToolCall("toolu_2", FunctionCall("weather", '{"city":"Rome"}')),
            ],
        ),
        # The results first, in order, each with its images; the rest is a user message.
        ChatToolMessage(content=[TextContent("sunny")], tool_call_id="toolu_1"),
        ChatToolMessage(
            content=[
                TextContent("no data"),
                ImageUrlContent(ImageUrl("https://example.com/r.png")),
            ],
            tool_call_id="toolu_2",
            is_error=True,
        ),
        ChatUserMessage(content=[TextContent("And tomorrow?")]),
    ]
    # And the core takes it whole: results answer the calls before them.
    conversation = parse_conversation(chat)
    assert conversation.system == "Be brief.\nBe kind."
    assert [m.role.value for m in conversation.messages] == [
        "user",
        "assistant",
        "tool",
        "tool",
        "user",
    ]
    assert conversation.messages[3].is_error


def test_a_system_turn_joins_the_system_prompt_as_a_string_or_blocks() -> None:
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "system", "content": [{"type": "text", "text": "# Environment"}]},
        {"role": "assistant", "content": "hello"},
        {"role": "system", "content": "more"},
        {"role": "user", "content": "again"},
    ]
    chat = translated(system="You help.", messages=messages).request.messages
    conversation = parse_conversation(chat)
    assert conversation.system == "You help.\n\n# Environment\n\nmore"
    assert [m.text for m in conversation.messages] == ["hi", "hello", "again"]


def test_server_tools_are_not_offered_but_named() -> None:
    tools = [
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
        WEATHER,
        {"type": "custom", **WEATHER, "name": "forecast", "cache_control": {"type": "ephemeral"}},
        {"type": "bash_20250124", "name": "bash"},
        {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
        {"type": "computer_20250124", "name": "computer", "display_width_px": 1024},
    ]
    result = translated(tools=tools)
    offered = result.request.tools
    assert offered is not None
    assert [(t.function.name, t.function.parameters) for t in offered] == [  # type: ignore[union-attr]
        ("weather", WEATHER["input_schema"]),
        ("forecast", WEATHER["input_schema"]),
    ]
    assert result.ignored_tools == (
        "web_search_20250305",
        "bash_20250124",
        "text_editor_20250728",
        "computer_20250124",
    )


@pytest.mark.parametrize(
    ("choice", "expected", "parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "any"}, "required", None),
        ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
        ({"type": "tool", "name": "weather"}, NamedToolChoice(ToolChoiceFunction("weather")), None),
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
        ({"type": "none"}, "none", None),
    ],
)
def test_tool_choice_maps_to_the_chat_choice(
    choice: dict[str, Any], expected: object, parallel: bool | None
) -> None:
    request = translated(tools=[WEATHER], tool_choice=choice).request
    assert (request.tool_choice, request.parallel_tool_calls) == (expected, parallel)


@pytest.mark.parametrize(
    ("fields", "default", "effort", "shown"),
    [
        ({}, False, None, False),
        ({}, True, None, True),  # without `thinking`, the server's --reasoning decides
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, False, "low", True),
        ({"thinking": {"type": "enabled", "budget_tokens": 10_000}}, False, "medium", True),
        ({"thinking": {"type": "enabled", "budget_tokens": 20_000}}, False, "high", True),
        ({"thinking": {"type": "enabled", "budget_tokens": 64_000}}, False, "max", True),
        ({"thinking": {"type": "adaptive"}}, False, None, True),
        ({"thinking": {"type": "adaptive", "display": "omitted"}}, True, None, False),
        ({"thinking": {"type": "disabled"}}, True, None, False),
        (
            {
                "thinking": {"type": "enabled", "budget_tokens": 2000},
                "output_config": {"effort": "high"},
            },
            False,
            "high",
            True,
        ),
        ({"output_config": {"effort": "xhigh"}}, False, "xhigh", False),
    ],
)
def test_thinking_sets_the_effort_and_whether_thinking_is_shown(
    fields: dict[str, Any], default: bool, effort: str | None, shown: bool
) -> None:
    result = translated(show_by_default=default, **fields)
    assert (result.request.reasoning_effort, result.show_thinking) == (effort, shown)


def test_the_other_options_map_or_are_named_as_ignored() -> None:
    result = translated(
        metadata={"user_id": "alice"},
        stop_sequences=["END", "", "END", "STOP"],
        temperature=0.2,
        top_k=5,
        output_config={"format": {"type": "json_schema", "schema": {"type": "object"}}},
    )
    request = result.request
    assert (request.user, request.stop, request.endpoint) == ("alice", ["END", "STOP"], "messages")
    assert request.response_format == JsonSchemaFormat(JsonSchemaSpec(schema={"type": "object"}))
    assert result.ignored_fields == ("temperature", "top_k")


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        (
            {"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
            "messages[0].content[0].type: content blocks of type 'document'",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_use", "id": "x", "name": "f", "input": {}}],
                    }
                ]
            },
            "messages[0].content[0].type: a user turn cannot carry 'tool_use'",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "base64"}}]}
                ]
            },
            "messages[0].content[0].source.media_type: Field required",
        ),
        ({"tools": [{"description": "no name"}]}, "tools[0].name: Field required"),
        ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens: Field required"),
        ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "stop_sequences: this proxy applies"),
    ],
)
def test_what_cannot_be_carried_is_a_400_naming_the_field(
    fields: dict[str, Any], named: str
) -> None:
    with pytest.raises(ChatError) as caught:
        translated(**fields)
    assert caught.value.message.startswith(named)


def test_a_core_error_is_renamed_to_the_anthropic_field() -> None:
    messages = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "ok"},
                {"type": "text", "text": "see"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "!!"},
                },
            ],
        },
    ]
    result = translated(system="s", messages=messages)
    with pytest.raises(ChatError) as caught:
        parse_conversation(result.request.messages)
    # The chat request's messages[4].content[1] (after the system and tool messages).
    renamed = result.origins.rehome(caught.value)
    assert renamed.param == "messages[2].content[2]"
    assert renamed.message == "messages[2].content[2]: The image's base64 data is invalid."


def test_an_image_inside_a_tool_result_is_checked_and_named_where_it_is() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": PNG}}
    messages = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "text", "text": "a.bmp"}, image],
                }
            ],
        },
    ]
    result = translated(messages=messages)
    with pytest.raises(ChatError) as caught:
        parse_conversation(result.request.messages)
    renamed = result.origins.rehome(caught.value)
    assert renamed.param == "messages[2].content[0].content[1]"
    assert "Unsupported image type 'image/bmp'" in renamed.message


def test_a_tool_pairing_error_speaks_of_tool_use_and_tool_result() -> None:
    messages = [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
        },
        {"role": "user", "content": "no result"},
    ]
    result = translated(messages=messages)
    with pytest.raises(ChatError) as caught:
        parse_conversation(result.request.messages)
    renamed = result.origins.rehome(caught.value)
    assert renamed.message == (
        "messages[1]: An assistant turn with tool_use blocks must be followed by tool_result "
        "blocks responding to each tool_use_id. The following tool_use_ids did not have "
        "response messages: t1."
    )
