"""The official openai SDK, sync and async, streaming and not, against the live server."""

from __future__ import annotations

import asyncio

import openai
import pytest

from claude_max_api.settings import Settings
from proxy_core import FailureReason, ModelCatalog, ServiceLimits, ThinkingDelta, Usage

from .conftest import USER_HI, MakeServer, async_sdk, fail, reply, sdk


def test_completion_has_openai_shape(make_server: MakeServer) -> None:
    server, _, _ = make_server(reply("Hello", " world"))
    result = sdk(server).chat.completions.create(model="gpt-4o", messages=USER_HI)  # type: ignore[arg-type]
    assert result.id.startswith("chatcmpl-")
    assert result.object == "chat.completion"
    assert result.model == "gpt-4o"
    assert result.choices[0].message.role == "assistant"
    assert result.choices[0].message.content == "Hello world"
    assert result.choices[0].finish_reason == "stop"
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (12, 3)
    assert result.usage.total_tokens == 15
    assert result.usage.prompt_tokens_details is not None
    assert result.usage.prompt_tokens_details.cached_tokens == 5


def test_stream_yields_role_deltas_finish_and_usage(make_server: MakeServer) -> None:
    server, _, _ = make_server(reply("Hel", "lo"))
    chunks = list(
        sdk(server).chat.completions.create(
            model="sonnet",
            messages=USER_HI,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 15
    assert len({(c.id, c.created, c.model) for c in chunks}) == 1


def test_stream_without_include_usage_has_no_usage_chunk(make_server: MakeServer) -> None:
    server, _, _ = make_server(reply("x"))
    chunks = list(
        sdk(server).chat.completions.create(model="sonnet", messages=USER_HI, stream=True)  # type: ignore[arg-type]
    )
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_max_tokens_stop_reason_is_length(make_server: MakeServer) -> None:
    server, _, _ = make_server(reply("cut", stop_reason="max_tokens"))
    result = sdk(server).chat.completions.create(model="sonnet", messages=USER_HI)  # type: ignore[arg-type]
    assert result.choices[0].finish_reason == "length"


async def test_async_client_completes_and_streams(make_server: MakeServer) -> None:
    server, _, _ = make_server(reply("async ", "ok"))
    async with async_sdk(server) as client:
        whole = await client.chat.completions.create(model="sonnet", messages=USER_HI)  # type: ignore[arg-type]
        stream = await client.chat.completions.create(
            model="sonnet",
            messages=USER_HI,  # type: ignore[arg-type]
            stream=True,
        )
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert whole.choices[0].message.content == "async ok"
    assert streamed == "async ok"


def test_thinking_is_shown_only_when_reasoning_effort_is_sent(make_server: MakeServer) -> None:
    def script(plan):  # type: ignore[no-untyped-def]
        return [ThinkingDelta("hmm"), *reply("answer")(plan)]

    server, _, _ = make_server(script)
    client = sdk(server)
    plain = client.chat.completions.create(model="sonnet", messages=USER_HI)  # type: ignore[arg-type]
    asked = client.chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": "again"}],
        reasoning_effort="low",
    )
    declined = client.chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": "and again"}],
        reasoning_effort="NONE",  # type: ignore[arg-type]  # names are case-insensitive
    )
    assert plain.choices[0].message.model_extra == {}
    assert (asked.choices[0].message.model_extra or {}).get("reasoning_content") == "hmm"
    assert asked.choices[0].message.content == "answer"
    assert declined.choices[0].message.model_extra == {}
    assert declined.choices[0].message.content == "answer"


def test_stop_sequences_cut_the_reply_streamed_or_not(make_server: MakeServer) -> None:
    server, _, _ = make_server(reply("Answer: 4", "2\nQuestion", ": next"))
    client = sdk(server)
    whole = client.chat.completions.create(
        model="sonnet",
        messages=USER_HI,
        stop="\nQuestion:",  # type: ignore[arg-type]
    )
    assert whole.choices[0].message.content == "Answer: 42"
    assert whole.choices[0].finish_reason == "stop"
    chunks = list(
        client.chat.completions.create(
            model="sonnet",
            messages=[{"role": "user", "content": "again"}],
            stop=["Question", "nothing"],
            stream=True,
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Answer: 42\n"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_reasoning_setting_shows_thinking_in_stream(make_server: MakeServer) -> None:
    def script(plan):  # type: ignore[no-untyped-def]
        return [ThinkingDelta("deep"), *reply("done")(plan)]

    server, _, _ = make_server(script, settings=Settings.from_values(reasoning=True))
    chunks = list(
        sdk(server).chat.completions.create(model="sonnet", messages=USER_HI, stream=True)  # type: ignore[arg-type]
    )
    thoughts = [(c.choices[0].delta.model_extra or {}).get("reasoning_content") for c in chunks]
    assert "deep" in thoughts


def test_unknown_model_is_404_in_strict_mode(make_server: MakeServer) -> None:
    server, _, _ = make_server(catalog=ModelCatalog(strict=True))
    with pytest.raises(openai.NotFoundError) as caught:
        sdk(server).chat.completions.create(model="gpt-99", messages=USER_HI)  # type: ignore[arg-type]
    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"


@pytest.mark.parametrize(
    ("field", "value"),
    [("n", 2), ("n", 0), ("n", -1), ("logprobs", True), ("reasoning_effort", "extreme")],
)
def test_unsupported_option_is_400_naming_the_param(
    make_server: MakeServer, field: str, value: object
) -> None:
    server, _, _ = make_server()
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(server).chat.completions.create(
            model="sonnet",
            messages=USER_HI,  # type: ignore[arg-type]
            **{field: value},  # type: ignore[arg-type]
        )
    assert caught.value.param == field


def test_bad_content_part_names_its_path(make_server: MakeServer) -> None:
    server, _, _ = make_server()
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": [{"type": "text", "text": "c"}, {"type": "audio"}]},
    ]
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(server).chat.completions.create(model="sonnet", messages=messages)  # type: ignore[arg-type]
    assert caught.value.param == "messages[2].content[1].type"
    assert caught.value.type == "invalid_request_error"


@pytest.mark.parametrize(
    ("reason", "status", "code"),
    [
        (FailureReason.UPSTREAM_ERROR, 502, "upstream_error"),
        (FailureReason.CLI_CRASHED, 502, "cli_crashed"),
        (FailureReason.NOT_LOGGED_IN, 503, "not_logged_in"),
        (FailureReason.BACKEND_UNAVAILABLE, 503, "backend_unavailable"),
        (FailureReason.OVERLOADED, 503, "overloaded"),
        (FailureReason.TIMEOUT, 504, "timeout"),
        (FailureReason.RATE_LIMITED, 429, "rate_limit_exceeded"),
    ],
)
def test_runner_failure_reaches_the_sdk_as_an_error(
    make_server: MakeServer, reason: FailureReason, status: int, code: str
) -> None:
    server, _, _ = make_server(fail(reason, "upstream said no"))
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(server).chat.completions.create(model="sonnet", messages=USER_HI)  # type: ignore[arg-type]
    assert (caught.value.status_code, caught.value.code) == (status, code)
    assert "upstream said no" in caught.value.message


def test_mid_stream_failure_raises_in_the_sdk(make_server: MakeServer) -> None:
    server, _, _ = make_server(fail(FailureReason.OVERLOADED, "529 overloaded", after=["par"]))
    received: list[str] = []

    def consume() -> None:
        for chunk in sdk(server).chat.completions.create(
            model="sonnet",
            messages=USER_HI,  # type: ignore[arg-type]
            stream=True,
        ):
            received.extend(c.delta.content or "" for c in chunk.choices)

    with pytest.raises(openai.APIError) as caught:
        consume()
    assert "".join(received) == "par"
    assert "529 overloaded" in caught.value.message


def test_busy_server_answers_429_with_retry_after(make_server: MakeServer) -> None:
    server, _, runner = make_server(limits=ServiceLimits(max_concurrent=1, max_queued=0))
    client = sdk(server)
    runner.gate = asyncio.Event()
    stream = client.chat.completions.create(model="sonnet", messages=USER_HI, stream=True)  # type: ignore[arg-type]
    try:
        next(iter(stream))  # the role chunk: the first turn holds the only place
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(
                model="sonnet", messages=[{"role": "user", "content": "second"}]
            )
        assert caught.value.response.headers["retry-after"] == "1"
        assert caught.value.code == "server_busy"
    finally:
        assert server.loop is not None
        server.loop.call_soon_threadsafe(runner.gate.set)
        stream.close()


def test_session_header_is_echoed_and_continues_the_conversation(make_server: MakeServer) -> None:
    server, _, runner = make_server(reply("ok"))
    client = sdk(server)
    first = client.chat.completions.with_raw_response.create(
        model="sonnet",
        messages=USER_HI,
        extra_headers={"X-Session-Id": "chat-42"},  # type: ignore[arg-type]
    )
    history = [
        *USER_HI,
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "more"},
    ]
    client.chat.completions.create(
        model="sonnet",
        messages=history,
        extra_headers={"X-Session-Id": "chat-42"},  # type: ignore[arg-type]
    )
    assert first.headers["x-session-id"] == "h:chat-42"
    assert [p.kind.value for p in runner.plans] == ["NEW", "CONTINUE"]
    assert runner.plans[1].cli_session_id == runner.plans[0].cli_session_id


def test_usage_counts_cache_reads_as_cached_tokens(make_server: MakeServer) -> None:
    usage = Usage(input_tokens=4, output_tokens=2, cache_read_tokens=100, cache_creation_tokens=6)
    server, _, _ = make_server(reply("x", usage=usage))
    result = sdk(server).chat.completions.create(model="sonnet", messages=USER_HI)  # type: ignore[arg-type]
    assert result.usage is not None
    assert result.usage.prompt_tokens == 110
    assert result.usage.prompt_tokens_details is not None
    assert result.usage.prompt_tokens_details.cached_tokens == 100


def test_ignored_fields_are_named_in_a_header_the_sdk_shows(make_server: MakeServer) -> None:
    server, _, _ = make_server(reply("ok"))
    raw = sdk(server).chat.completions.with_raw_response.create(
        model="sonnet",
        messages=USER_HI,  # type: ignore[arg-type]
        temperature=0.2,
        max_tokens=5,
    )
    assert raw.headers["x-ignored-fields"].split(",") == ["max_tokens", "temperature"]
    assert raw.parse().choices[0].message.content == "ok"
    with sdk(server).chat.completions.with_streaming_response.create(
        model="sonnet",
        messages=USER_HI,  # type: ignore[arg-type]
        stream=True,
        seed=3,
    ) as streamed:
        assert streamed.headers["x-ignored-fields"] == "seed"
        assert (
            "".join(c.choices[0].delta.content or "" for c in streamed.parse() if c.choices) == "ok"
        )
