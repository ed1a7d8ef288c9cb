"""Rendering events as OpenAI chunks and completions."""

from __future__ import annotations

import json

from proxy_core import FailureReason, Usage
from proxy_http.sse import DONE, KEEPALIVE, ChunkRenderer, completion, finish_reason


def decode(event: bytes) -> dict[str, object]:
    assert event.startswith(b"data: ")
    assert event.endswith(b"\n\n")
    assert b"\n" not in event[:-2]
    decoded: dict[str, object] = json.loads(event[6:])
    return decoded


renderer = ChunkRenderer("chatcmpl-1", 123, "sonnet")


def test_role_chunk_opens_with_assistant_role() -> None:
    chunk = decode(renderer.opening())
    assert chunk["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "finish_reason": None,
            "logprobs": None,
        }
    ]
    assert (chunk["id"], chunk["created"], chunk["model"]) == ("chatcmpl-1", 123, "sonnet")
    assert chunk["object"] == "chat.completion.chunk"


def test_content_chunk_carries_only_content() -> None:
    assert decode(renderer.text("hi\nthere"))["choices"][0]["delta"] == {"content": "hi\nthere"}  # type: ignore[index]


def test_reasoning_chunk_uses_reasoning_content() -> None:
    assert decode(renderer.thinking("hm"))["choices"][0]["delta"] == {"reasoning_content": "hm"}  # type: ignore[index]


def test_final_chunk_has_empty_delta_and_finish_reason() -> None:
    choice = decode(renderer.finish("end_turn"))["choices"][0]  # type: ignore[index]
    assert choice["delta"] == {}
    assert choice["finish_reason"] == "stop"


def test_max_tokens_finishes_with_length() -> None:
    assert finish_reason("max_tokens") == "length"
    assert finish_reason(None) == "stop"
    assert finish_reason("stop_sequence") == "stop"


def test_only_the_clients_own_calls_finish_as_tool_calls() -> None:
    assert finish_reason("tool_use", calls=True) == "tool_calls"
    assert finish_reason("tool_use", calls=True, legacy=True) == "function_call"
    # The CLI's own tools (StructuredOutput, a built-in) end a reply with `tool_use` too.
    assert finish_reason("tool_use") == "stop"


def test_usage_chunk_has_no_choices() -> None:
    chunk = decode(renderer.usage(Usage(input_tokens=2, output_tokens=3, cache_read_tokens=4)))
    assert chunk["choices"] == []
    assert chunk["usage"] == {
        "prompt_tokens": 6,
        "completion_tokens": 3,
        "total_tokens": 9,
        "prompt_tokens_details": {"cached_tokens": 4},
    }


def test_without_include_usage_no_chunk_has_a_usage_field() -> None:
    for event in (renderer.opening(), renderer.text("x"), renderer.finish("end_turn")):
        assert "usage" not in decode(event)


def test_with_include_usage_every_chunk_but_the_last_has_null_usage() -> None:
    counting = ChunkRenderer("chatcmpl-2", 123, "sonnet", include_usage=True)
    for event in (counting.opening(), counting.text("x"), counting.finish("end_turn")):
        chunk = decode(event)
        assert "usage" in chunk
        assert chunk["usage"] is None
    last = decode(counting.usage(Usage(input_tokens=1, output_tokens=1)))
    assert last["usage"] == {
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "total_tokens": 2,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def test_error_event_is_an_openai_error_body() -> None:
    body = decode(ChunkRenderer.error(FailureReason.TIMEOUT, "too slow"))
    assert body == {
        "error": {"message": "too slow", "type": "timeout_error", "param": None, "code": "timeout"}
    }


def test_keepalive_is_a_comment_and_done_is_the_sentinel() -> None:
    assert KEEPALIVE == b": keep-alive\n\n"
    assert DONE == b"data: [DONE]\n\n"


def test_completion_hides_absent_thinking() -> None:
    result = completion(
        completion_id="chatcmpl-2",
        created=1,
        model="m",
        text="t",
        thinking=None,
        stop_reason="end_turn",
        usage=Usage(),
    )
    assert result.choices[0].message.reasoning_content is None
    assert result.choices[0].message.role == "assistant"


def test_line_and_paragraph_separators_are_escaped_in_every_event() -> None:
    text = "one\u2028two\u2029three\x85four"
    for event in (
        renderer.text(text),
        renderer.thinking(text),
        ChunkRenderer.error(FailureReason.TIMEOUT, text),
    ):
        # A `str.splitlines` reader (httpx's iter_lines) sees one line per event.
        assert event.decode().splitlines() == [event.decode()[:-2], ""]
        for raw in ("\u2028", "\u2029", "\x85"):
            assert raw.encode() not in event
        assert b"one\\u2028two\\u2029three\\u0085four" in event
    assert decode(renderer.text(text))["choices"][0]["delta"] == {"content": text}  # type: ignore[index]


def test_events_without_separators_are_left_as_encoded() -> None:
    text = "curly \u201cquotes\u201d and dashes \u2014 stay raw"
    assert text.encode() in renderer.text(text)
