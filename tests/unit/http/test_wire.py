"""The request wire type: unknown fields ignored, every accepted field decodes."""

from __future__ import annotations

import msgspec
import pytest

from proxy_http.wire import IGNORED_REQUEST_FIELDS, ChatCompletionRequest

USER = [{"role": "user", "content": "x"}]


def test_unknown_fields_are_ignored() -> None:
    request = msgspec.json.decode(
        b'{"model":"m","messages":[{"role":"user","content":"x"}],"mystery":1,"extra_body":{}}',
        type=ChatCompletionRequest,
    )
    assert request.model == "m"


def test_every_accepted_field_decodes() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u",
        "max_tokens": 5,
        "max_completion_tokens": 5,
        "temperature": 1,
        "top_p": 0.5,
        "stop": ["a"],
        "n": 1,
        "presence_penalty": 0,
        "frequency_penalty": 0.1,
        "seed": 3,
        "logprobs": False,
        "response_format": {"type": "text"},
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "metadata": {"k": "v"},
        "store": False,
        "reasoning_effort": "high",
    }
    request = msgspec.convert(body, ChatCompletionRequest)
    assert request.stream_options is not None
    assert request.stream_options.include_usage
    assert request.reasoning_effort == "high"


def test_ignored_fields_are_all_accepted_fields() -> None:
    names = {f.name for f in msgspec.structs.fields(ChatCompletionRequest)}
    assert set(IGNORED_REQUEST_FIELDS) <= names


def test_stop_may_be_a_string() -> None:
    assert (
        msgspec.convert({"model": "m", "messages": USER, "stop": "x"}, ChatCompletionRequest).stop
        == "x"
    )


def test_empty_messages_are_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"\$\.messages"):
        msgspec.convert({"model": "m", "messages": []}, ChatCompletionRequest)


def test_wrong_type_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"\$\.n"):
        msgspec.convert({"model": "m", "messages": USER, "n": "two"}, ChatCompletionRequest)
