"""Parsing OpenAI messages: roles, content shapes, images, and errors that name the field."""

from __future__ import annotations

import pytest
from hypothesis import given

from proxy_core import (
    Base64Image,
    ChatError,
    Conversation,
    FailureReason,
    ImagePart,
    ParseLimits,
    Role,
    TextPart,
    ToolCall,
    UrlImage,
    parse_conversation,
)

from .strategies import conversations, to_openai


def error_of(messages: object, limits: ParseLimits | None = None) -> ChatError:
    with pytest.raises(ChatError) as caught:
        parse_conversation(messages, limits)
    assert caught.value.reason is FailureReason.INVALID_REQUEST
    return caught.value


@given(conversations())
def test_parsing_the_wire_form_of_a_conversation_gives_it_back(conversation: Conversation) -> None:
    raw: list[dict[str, object]] = (
        [{"role": "system", "content": conversation.system}] if conversation.system else []
    )
    raw += [to_openai(m) for m in conversation.messages]
    parsed = parse_conversation(raw)
    assert parsed.messages == conversation.messages
    assert parsed.system == (conversation.system or None)


def test_system_and_developer_messages_join_in_order_into_the_system_prompt() -> None:
    parsed = parse_conversation(
        [
            {"role": "system", "content": "one"},
            {"role": "user", "content": "hi"},
            {"role": "developer", "content": [{"type": "text", "text": "two"}]},
        ]
    )
    assert parsed.system == "one\n\ntwo"
    assert [m.role for m in parsed.messages] == [Role.USER]


@pytest.mark.parametrize(
    "system",
    [
        "x-anthropic-billing-header: cc_version=9.9; cc_entrypoint=evil;\nBe brief.",
        "Be brief.\n  X-Anthropic-Billing-Header: cc_entrypoint=evil;",
        "x-anthropic-billing-header: a;\nx-anthropic-billing-header: b;\n\nBe brief.",
    ],
)
def test_a_client_s_billing_header_lines_never_reach_the_system_prompt(system: str) -> None:
    # The CLI takes a system prompt starting with one as its own billing line.
    parsed = parse_conversation(
        [{"role": "system", "content": system}, {"role": "user", "content": "hi"}]
    )
    assert parsed.system == "Be brief."


def test_legacy_function_messages_become_tool_messages() -> None:
    parsed = parse_conversation(
        [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "f", "arguments": "{}"},
            },
            {"role": "function", "name": "f", "content": "42"},
        ]
    )
    assert parsed.messages[1].tool_calls == (ToolCall(id="f", name="f", arguments="{}"),)
    assert parsed.messages[2].role is Role.TOOL
    assert parsed.messages[2].tool_call_id == "f"


def test_assistant_tool_calls_are_kept_and_null_content_is_allowed() -> None:
    parsed = parse_conversation(
        [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "w", "arguments": '{"c":1}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ]
    )
    assert parsed.messages[1].parts == ()
    assert parsed.messages[1].tool_calls == (ToolCall("c1", "w", '{"c":1}'),)
    assert parsed.messages[2].tool_call_id == "c1"


def test_data_urls_become_base64_images_and_http_urls_url_images() -> None:
    parsed = parse_conversation(
        [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/jpg;base64,/9j/4AAQ"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/x.png", "detail": "high"},
                    },
                ],
            }
        ]
    )
    assert parsed.messages[0].parts == (
        ImagePart(Base64Image(media_type="image/jpeg", data="/9j/4AAQ")),
        ImagePart(UrlImage("https://example.com/x.png")),
    )


def test_adjacent_text_parts_are_joined_and_empty_ones_dropped() -> None:
    parsed = parse_conversation(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "a"},
                    {"type": "text", "text": ""},
                    {"type": "text", "text": "b"},
                ],
            }
        ]
    )
    assert parsed.messages[0].parts == (TextPart("a\nb"),)


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        (None, "messages"),
        ([], "messages"),
        ("hello", "messages"),
        ([{"role": "system", "content": "only system"}], "messages"),
        ([{"role": "wizard", "content": "x"}], "messages[0].role"),
        ([{"content": "x"}], "messages[0].role"),
        ([42], "messages[0]"),
        ([{"role": "user", "content": None}], "messages[0].content"),
        ([{"role": "user", "content": 7}], "messages[0].content"),
        (
            [{"role": "user", "content": "a"}, {"role": "user", "content": [{"type": "video"}]}],
            "messages[1].content[0].type",
        ),
        (
            [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "input_audio"}]}],
            "messages[0].content[1].type",
        ),
        (
            [{"role": "user", "content": [{"type": "file", "file": {}}]}],
            "messages[0].content[0].type",
        ),
        ([{"role": "user", "content": [{"type": "text"}]}], "messages[0].content[0].text"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
            "messages[0].content[0].image_url.url",
        ),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}],
            "messages[0].content[0].image_url.url",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}
                    ],
                }
            ],
            "messages[0].content[0].image_url.url",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:text/plain;base64,aGk="}}
                    ],
                }
            ],
            "messages[0].content[0].image_url.url",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png,notbase64"}}
                    ],
                }
            ],
            "messages[0].content[0].image_url.url",
        ),
        (
            [{"role": "user", "content": "a"}, {"role": "tool", "content": "r"}],
            "messages[1].tool_call_id",
        ),
        (
            [
                {
                    "role": "assistant",
                    "content": [{"type": "image_url", "image_url": {"url": "https://e.com/a.png"}}],
                }
            ],
            "messages[0].content[0].type",
        ),
        ([{"role": "user", "content": "a", "name": 5}], "messages[0].name"),
        (
            [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b", "tool_calls": [{"id": "1"}]},
            ],
            "messages[1].tool_calls[0].function",
        ),
    ],
)
def test_bad_input_is_a_typed_error_naming_the_field(messages: object, param: str) -> None:
    assert error_of(messages).param == param


def test_too_many_messages_names_the_limit() -> None:
    error = error_of([{"role": "user", "content": "x"}] * 11, ParseLimits(max_messages=10))
    assert "max_messages" in error.message


def test_an_oversized_image_is_refused_before_decoding() -> None:
    url = "data:image/png;base64," + "A" * 4000
    error = error_of(
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}],
        ParseLimits(max_image_bytes=1000),
    )
    assert "max_image_bytes" in error.message


def test_too_many_images_names_the_limit() -> None:
    part = {"type": "image_url", "image_url": {"url": "https://e.com/a.png"}}
    error = error_of([{"role": "user", "content": [part] * 3}], ParseLimits(max_images=2))
    assert "max_images" in error.message
    assert error.param == "messages[0].content[2].image_url.url"


def test_an_oversized_message_names_the_limit() -> None:
    error = error_of([{"role": "user", "content": "x" * 101}], ParseLimits(max_message_chars=100))
    assert "max_message_chars" in error.message


# -- tool calls and their results --------------------------------------------------


def asks(*ids: str, content: object = None) -> dict[str, object]:
    return {
        "role": "assistant",
        "content": content,
        "tool_calls": [
            {"id": i, "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in ids
        ],
    }


def answers(call_id: str, content: object = "ok", **extra: object) -> dict[str, object]:
    return {"role": "tool", "tool_call_id": call_id, "content": content, **extra}


USER = {"role": "user", "content": "go"}


def test_results_may_come_in_any_order_and_after_system_messages() -> None:
    parsed = parse_conversation(
        [
            USER,
            asks("a", "b", "c"),
            answers("c"),
            {"role": "system", "content": "note"},
            answers("a"),
            answers("b"),
            USER,
        ]
    )
    assert [m.tool_call_id for m in parsed.messages[2:5]] == ["c", "a", "b"]
    assert parsed.system == "note"


def test_call_ids_may_repeat_across_turns() -> None:
    parsed = parse_conversation(
        [USER, asks("call_0"), answers("call_0"), USER, asks("call_0"), answers("call_0")]
    )
    assert len(parsed.messages) == 6


@pytest.mark.parametrize(
    ("messages", "param", "missing"),
    [
        ([USER, asks("a")], "messages[1].tool_calls", "a"),
        ([USER, asks("a", "b"), answers("b")], "messages[1].tool_calls", "a"),
        ([USER, asks("a", "b", "c"), answers("b"), USER], "messages[1].tool_calls", "a, c"),
        ([USER, asks("a"), {"role": "assistant", "content": "x"}], "messages[1].tool_calls", "a"),
        (
            [{"role": "system", "content": "s"}, USER, asks("a"), answers("a"), asks("b"), USER],
            "messages[4].tool_calls",
            "b",
        ),
    ],
)
def test_calls_left_unanswered_are_a_400_naming_the_missing_ids(
    messages: list[object], param: str, missing: str
) -> None:
    error = error_of(messages)
    assert error.param == param
    assert error.message == (
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        f"{missing}."
    )


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([USER, answers("a")], "messages[1].tool_call_id"),
        ([USER, asks("a"), answers("b"), answers("a")], "messages[2].tool_call_id"),
        ([answers("a"), USER], "messages[0].tool_call_id"),
        (
            [USER, {"role": "assistant", "content": "no calls"}, answers("a")],
            "messages[2].tool_call_id",
        ),
    ],
)
def test_a_result_for_no_call_is_a_400_naming_its_tool_call_id(
    messages: list[object], param: str
) -> None:
    error = error_of(messages)
    assert error.param == param
    assert "matches no call" in error.message


def test_a_result_for_a_call_of_an_earlier_turn_is_a_400() -> None:
    # The user moved on after "a" was answered; a later result for it answers nothing.
    error = error_of([USER, asks("a"), answers("a"), USER, asks("b"), answers("b"), answers("a")])
    assert error.param == "messages[6].tool_call_id"


def test_two_results_for_one_call_are_a_400() -> None:
    error = error_of([USER, asks("a", "b"), answers("a"), answers("a"), answers("b")])
    assert error.param == "messages[3].tool_call_id"
    assert "answered twice" in error.message


def test_one_id_for_two_calls_of_one_message_is_a_400() -> None:
    error = error_of([USER, asks("a", "a"), answers("a")])
    assert error.param == "messages[1].tool_calls[1].id"


def test_a_tool_message_keeps_its_error_mark() -> None:
    parsed = parse_conversation(
        [
            USER,
            asks("a", "b", "c"),
            answers("a", is_error=True),
            answers("b", is_error=False),
            answers("c"),
        ]
    )
    assert [m.is_error for m in parsed.messages[2:]] == [True, False, False]


@pytest.mark.parametrize(
    "content",
    [
        "line one\nline two",
        [{"type": "text", "text": "line one"}, {"type": "text", "text": "line two"}],
        [{"type": "text", "text": "line one\nline two"}],
    ],
)
def test_a_result_is_a_string_or_text_parts(content: object) -> None:
    parsed = parse_conversation([USER, asks("a"), answers("a", content)])
    assert parsed.messages[2].text == "line one\nline two"


def test_a_result_keeps_its_images_in_place_among_its_text() -> None:
    # A screenshot or an image file read by the client's tool (Anthropic's tool_result
    # holds image blocks; OpenAI chat clients may send image_url parts, an extension).
    content = [
        {"type": "text", "text": "the chart:"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://e.com/a.png"}},
    ]
    result = parse_conversation([USER, asks("a"), answers("a", content)]).messages[2]
    assert result.role is Role.TOOL
    assert result.parts == (
        TextPart("the chart:"),
        ImagePart(Base64Image("image/png", "iVBORw0KGgo=")),
        ImagePart(UrlImage("https://e.com/a.png")),
    )


@pytest.mark.parametrize(
    ("url", "limits", "named"),
    [
        (
            "data:image/png;base64," + "A" * 4000,
            ParseLimits(max_image_bytes=1000),
            "max_image_bytes",
        ),
        ("data:image/tiff;base64,AAAA", None, "image/tiff"),
        ("ftp://e.com/a.png", None, "http(s) URL"),
    ],
)
def test_a_results_images_meet_the_same_limits_as_a_users(
    url: str, limits: ParseLimits | None, named: str
) -> None:
    image = {"type": "image_url", "image_url": {"url": url}}
    error = error_of([USER, asks("a"), answers("a", [image])], limits)
    assert error.param == "messages[2].content[0].image_url.url"
    assert named in error.message


def test_a_results_images_count_towards_max_images_with_the_users() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://e.com/a.png"}}
    user = {"role": "user", "content": [image]}
    error = error_of([user, asks("a"), answers("a", [image, image])], ParseLimits(max_images=2))
    assert error.param == "messages[2].content[1].image_url.url"
    assert "max_images" in error.message


def test_an_assistant_message_with_an_image_is_still_refused() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://e.com/a.png"}}
    error = error_of([USER, {"role": "assistant", "content": [image]}])
    assert error.param == "messages[1].content[0].type"


# -- the legacy function_call / function messages --


def legacy_call(name: str) -> dict[str, object]:
    return {
        "role": "assistant",
        "content": None,
        "function_call": {"name": name, "arguments": "{}"},
    }


def test_a_legacy_history_validates_with_the_function_name_as_the_call_id() -> None:
    parsed = parse_conversation(
        [
            USER,
            legacy_call("lookup"),
            {"role": "function", "name": "lookup", "content": "found"},
            USER,
            legacy_call("lookup"),
            {"role": "function", "name": "lookup", "content": "again"},
        ]
    )
    assert parsed.messages[1].tool_calls == (ToolCall("lookup", "lookup", "{}"),)
    assert [m.tool_call_id for m in parsed.messages[2::3]] == ["lookup", "lookup"]


def test_a_legacy_call_left_unanswered_is_a_400_naming_function_call() -> None:
    error = error_of([USER, legacy_call("lookup"), USER])
    assert error.param == "messages[1].function_call"
    assert "lookup" in error.message


def test_a_function_message_for_another_function_is_a_400_naming_its_name() -> None:
    error = error_of(
        [USER, legacy_call("lookup"), {"role": "function", "name": "other", "content": "x"}]
    )
    assert error.param == "messages[2].name"


def test_a_function_message_without_a_name_is_a_400() -> None:
    error = error_of([USER, legacy_call("f"), {"role": "function", "content": "x"}])
    assert error.param == "messages[2].name"
