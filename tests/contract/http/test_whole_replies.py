"""Replies are whole: the openai SDK -> the server -> the real claude CLI -> the fake upstream.

The server runs with its default retry policy (`upstream_retries` 2: the CLI retries a
failed upstream request twice), so a connection dropped mid-reply makes the CLI try
the message again, and an upstream 429 makes it announce a back-off.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from tests.contract.conftest import live_descendants
from tests.support.fake_upstream import FakeAnthropic
from tests.support.server import ServerProcess, cli_server_env


@pytest.fixture(scope="module")
def proxy(
    claude_bin: str, fake_upstream_server: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The real server over the real CLI with the default retry policy (no override)."""
    root = tmp_path_factory.mktemp("whole")
    env = cli_server_env(
        root,
        claude_bin,
        fake_upstream_server.base_url,
        upstream_retries=None,
        CLAUDE_PROXY_LOG_FORMAT="json",
    )
    with ServerProcess(env=env, log_path=root / "server.log") as server:
        yield server


def client(proxy: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=proxy.base_url + "/v1", api_key="unused", max_retries=0, timeout=90
    )


def unique(marker: str) -> str:
    """A prompt of its own (the fake counts attempts per prompt text)."""
    return f"cut {uuid.uuid4().hex[:8]} {marker}"


def lines_of(proxy: ServerProcess, request_id: str) -> list[dict[str, Any]]:
    """The server's log lines carrying `request_id`, once its request line is written."""
    assert proxy.log_path is not None
    for _ in range(50):
        text = Path(proxy.log_path).read_text(errors="replace")
        entries = [json.loads(ln) for ln in text.splitlines() if ln.startswith("{")]
        mine = [e for e in entries if e.get("request_id") == request_id]
        if any(e.get("event") == "request" for e in mine):
            return mine
        time.sleep(0.1)
    raise AssertionError(f"no request line for {request_id}")


def outcome(proxy: ServerProcess, request_id: str) -> str | None:
    """The `outcome` the server logged for one request (its line is written at the end)."""
    assert proxy.log_path is not None
    for _ in range(50):
        for line in Path(proxy.log_path).read_text(errors="replace").splitlines():
            if request_id in line and line.startswith("{"):
                entry = json.loads(line)
                if entry.get("event") == "request":
                    found: str | None = entry.get("outcome")
                    return found
        time.sleep(0.1)
    raise AssertionError(f"no request line for {request_id}")


def read_stream(chunks: Iterable[ChatCompletionChunk], pieces: list[str]) -> None:
    """Read a stream to its end, keeping its text in `pieces` (the SDK raises on an error)."""
    for chunk in chunks:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")


def attempts(fake: FakeAnthropic, prompt: str) -> int:
    return sum(1 for r in fake.message_requests if r.user_text == prompt)


def cli_pids(proxy: ServerProcess) -> set[int]:
    assert proxy.process is not None
    return {p for p in live_descendants(proxy.process.pid) if "stream-json" in _cmdline(p)}


def wait_until_ended(proxy: ServerProcess, before: set[int], polls: int = 300) -> None:
    """Until no CLI process started since `before` is left (bounded in polls, not in time)."""
    for _ in range(polls):
        if cli_pids(proxy) <= before:
            return
        time.sleep(0.1)
    raise AssertionError("the CLI process of the failed turn never ended")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


# -- a connection dropped mid-reply ----------------------------------------------------


# `disconnect-once`: the CLI streams the message again; `disconnect`: that drops too,
# and the CLI asks a third time without streaming (one request more).
REPEATS = pytest.mark.parametrize(
    ("marker", "requests"), [("[[disconnect-once]]", 2), ("[[disconnect]]", 3)]
)


@REPEATS
def test_a_retry_repeating_the_text_gives_that_text_once(
    proxy: ServerProcess, fake_upstream: FakeAnthropic, marker: str, requests: int
) -> None:
    prompt = unique(marker)
    raw = client(proxy).chat.completions.with_raw_response.create(
        model="sonnet", messages=[{"role": "user", "content": prompt}]
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == f"echo: {prompt}"
    assert reply.choices[0].finish_reason == "stop"
    assert attempts(fake_upstream, prompt) == requests  # the drops really happened
    assert outcome(proxy, raw.headers["x-request-id"]) == "ok"


@REPEATS
def test_a_streamed_retry_repeating_the_text_streams_it_once(
    proxy: ServerProcess, fake_upstream: FakeAnthropic, marker: str, requests: int
) -> None:
    prompt = unique(marker)
    raw = client(proxy).chat.completions.with_raw_response.create(
        model="sonnet", messages=[{"role": "user", "content": prompt}], stream=True
    )
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"echo: {prompt}"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert attempts(fake_upstream, prompt) == requests
    assert outcome(proxy, raw.headers["x-request-id"]) == "ok"


@pytest.mark.parametrize("stream", [False, True])
def test_a_reply_the_cli_resumes_after_a_drop_past_a_finished_block_is_whole(
    proxy: ServerProcess, fake_upstream: FakeAnthropic, stream: bool
) -> None:
    # A drop after a complete block (here the thinking) is not retried as is: the CLI
    # asks again with a reminder that the reply was cut off (appending a newline to
    # the user's text, which the fake echoes), and the new reply starts over.
    prompt = unique("[[thinking]][[disconnect-once]]")
    messages = [{"role": "user", "content": prompt}]
    if stream:
        pieces: list[str] = []
        read_stream(
            client(proxy).chat.completions.create(
                model="sonnet",
                messages=messages,  # type: ignore[arg-type]
                stream=True,
            ),
            pieces,
        )
        text = "".join(pieces)
    else:
        reply = client(proxy).chat.completions.create(model="sonnet", messages=messages)  # type: ignore[arg-type]
        text = reply.choices[0].message.content or ""
    assert text == f"echo: {prompt}\n"
    resumed = [r for r in fake_upstream.message_requests if prompt in r.user_text]
    assert len(resumed) >= 2  # the drop really happened


def test_a_whole_reply_whose_retry_differs_is_the_final_text(
    proxy: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    prompt = unique("[[disconnect-vary]]")
    raw = client(proxy).chat.completions.with_raw_response.create(
        model="sonnet", messages=[{"role": "user", "content": prompt}]
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == f"echo (retried): {prompt}"
    assert reply.choices[0].finish_reason == "stop"
    assert attempts(fake_upstream, prompt) == 2
    assert outcome(proxy, raw.headers["x-request-id"]) == "ok"


def test_a_streamed_reply_whose_retry_differs_ends_with_an_error_not_a_repeat(
    proxy: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    prompt = unique("[[disconnect-vary]]")
    raw = client(proxy).chat.completions.with_raw_response.create(
        model="sonnet", messages=[{"role": "user", "content": prompt}], stream=True
    )
    pieces: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        read_stream(raw.parse(), pieces)
    text = "".join(pieces)
    # What was shown is the first attempt's beginning, and nothing after it.
    assert text
    assert f"echo: {prompt}".startswith(text)
    assert "retried" not in text
    assert "upstream" in caught.value.message.lower()
    assert attempts(fake_upstream, prompt) == 2
    assert outcome(proxy, raw.headers["x-request-id"]) == "upstream_error"


def test_after_a_contradicted_stream_the_conversation_goes_on_without_it(
    proxy: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    sdk = client(proxy)
    header = {"X-Session-Id": f"whole-{uuid.uuid4().hex[:8]}"}
    history: list[dict[str, str]] = [{"role": "user", "content": "alpha"}]
    first = sdk.chat.completions.create(model="sonnet", messages=history, extra_headers=header)  # type: ignore[arg-type]
    history.append({"role": "assistant", "content": first.choices[0].message.content or ""})
    cut = unique("[[disconnect-vary]]")
    stream = sdk.chat.completions.create(
        model="sonnet",
        messages=[*history, {"role": "user", "content": cut}],  # type: ignore[list-item]
        extra_headers=header,
        stream=True,
    )
    with pytest.raises(openai.APIError):
        read_stream(stream, [])
    history.append({"role": "user", "content": "gamma"})
    third = sdk.chat.completions.create(model="sonnet", messages=history, extra_headers=header)  # type: ignore[arg-type]
    assert third.choices[0].message.content == "echo: gamma"
    sent = json.dumps(fake_upstream.message_requests[-1].body["messages"])
    assert "echo: alpha" in sent
    assert cut not in sent  # the failed turn is not replayed to the model


# -- upstream status errors ------------------------------------------------------------


def test_an_upstream_429_is_answered_at_once_with_its_retry_after(
    proxy: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    prompt = unique("[[error:429]][[retry-after:7]]")
    before = cli_pids(proxy)
    with pytest.raises(openai.RateLimitError) as caught:
        client(proxy).chat.completions.create(
            model="sonnet", messages=[{"role": "user", "content": prompt}]
        )
    # The CLI announces its back-off, retry-after plus up to 25% jitter (7 s -> up to
    # 8.75 s); whole seconds rounded down give 7 or 8, never less than the upstream's.
    assert caught.value.response.headers["retry-after"] in ("7", "8")
    assert caught.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]
    # The CLI process of the turn is ended: it never makes its second attempt.
    wait_until_ended(proxy, before)
    assert attempts(fake_upstream, prompt) == 1
    assert outcome(proxy, caught.value.response.headers["x-request-id"]) == "rate_limited"


def test_after_a_429_the_conversation_resumes_where_it_was(
    proxy: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    sdk = client(proxy)
    header = {"X-Session-Id": f"whole-{uuid.uuid4().hex[:8]}"}
    history: list[dict[str, str]] = [{"role": "user", "content": "alpha"}]
    first = sdk.chat.completions.create(model="sonnet", messages=history, extra_headers=header)  # type: ignore[arg-type]
    history.append({"role": "assistant", "content": first.choices[0].message.content or ""})
    limited = unique("[[error:429]]")
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(
            model="sonnet",
            messages=[*history, {"role": "user", "content": limited}],  # type: ignore[list-item]
            extra_headers=header,
        )
    history.append({"role": "user", "content": "gamma"})
    third = sdk.chat.completions.create(model="sonnet", messages=history, extra_headers=header)  # type: ignore[arg-type]
    assert third.choices[0].message.content == "echo: gamma"
    sent = json.dumps(fake_upstream.message_requests[-1].body["messages"])
    assert "echo: alpha" in sent
    assert limited not in sent
    assert attempts(fake_upstream, limited) == 1


@pytest.mark.parametrize(
    ("status", "error"), [(529, openai.InternalServerError), (500, openai.APIStatusError)]
)
def test_overloaded_and_server_errors_are_still_retried_a_bounded_number_of_times(
    proxy: ServerProcess, fake_upstream: FakeAnthropic, status: int, error: type[Exception]
) -> None:
    prompt = unique(f"[[error:{status}]]")
    before = cli_pids(proxy)
    with pytest.raises(error):
        client(proxy).chat.completions.create(
            model="sonnet", messages=[{"role": "user", "content": prompt}]
        )
    wait_until_ended(proxy, before)
    assert attempts(fake_upstream, prompt) == 3  # the first request and the two retries


@pytest.mark.parametrize("status", [529, 500])
def test_an_upstream_retry_is_logged_at_info_with_its_status_and_wait(
    proxy: ServerProcess, fake_upstream: FakeAnthropic, status: int
) -> None:
    prompt = unique(f"[[error-once:{status}]]")
    raw = client(proxy).chat.completions.with_raw_response.create(
        model="sonnet", messages=[{"role": "user", "content": prompt}]
    )
    assert raw.parse().choices[0].message.content == f"echo: {prompt}"
    assert attempts(fake_upstream, prompt) == 2  # the error really happened, once
    lines = lines_of(proxy, raw.headers["x-request-id"])
    (retry,) = [e for e in lines if e["event"] == "upstream_retry"]
    assert retry["level"] == "info"
    assert (retry["status"], retry["attempt"], retry["max_retries"]) == (status, 1, 2)
    assert retry["wait_ms"] > 0
    (request,) = [e for e in lines if e["event"] == "request"]
    assert request["outcome"] == "ok"
