"""End to end: the openai SDK -> `python -m proxy_http serve` -> the real claude CLI -> the fake
Anthropic upstream, all on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pydantic
import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy_core import LOGIN_HELP
from tests.contract.conftest import cli_processes
from tests.support.fake_upstream import FakeAnthropic
from tests.support.server import ServerProcess, cli_server_env

# A 1x1 transparent PNG.
PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082"
    )
).decode()


@pytest.fixture(scope="module")
def proxy(
    claude_bin: str, fake_upstream_server: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The real server over the real CLI, shared by this module's tests."""
    root = tmp_path_factory.mktemp("e2e")
    env = cli_server_env(
        root,
        claude_bin,
        fake_upstream_server.base_url,
        # Long enough that an early failure keeps its status however loaded the machine.
        CLAUDE_PROXY_STREAM_HOLD="60",
        CLAUDE_PROXY_LOG_LEVEL="debug",
    )
    with ServerProcess(env=env, log_path=root / "server.log") as server:
        yield server


def client(proxy: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=proxy.base_url + "/v1", api_key="unused", max_retries=0, timeout=90
    )


def test_two_turns_continue_one_cli_session_sending_only_the_new_message(
    proxy: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    sdk = client(proxy)
    header = {"X-Session-Id": "e2e-two-turns"}
    first = sdk.chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "alpha"}], extra_headers=header
    )
    assert first.choices[0].message.content == "echo: alpha"
    cli_session = _session(proxy, "h:e2e-two-turns")["claudeSessionId"]
    history = [
        {"role": "user", "content": "alpha"},
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "beta"},
    ]
    second = sdk.chat.completions.with_raw_response.create(
        model="sonnet", messages=history, extra_headers=header
    )
    assert second.parse().choices[0].message.content == "echo: beta"
    assert second.headers["x-session-id"] == "h:e2e-two-turns"
    upstream = fake_upstream.message_requests
    assert [r.user_text for r in upstream] == ["alpha", "beta"]
    replayed = json.dumps(upstream[1].body["messages"][:-1])
    assert "alpha" in replayed
    assert "echo: alpha" in replayed
    after = _session(proxy, "h:e2e-two-turns")
    assert after["claudeSessionId"] == cli_session
    assert after["messageCount"] == 4


def _session(proxy: ServerProcess, key: str) -> dict[str, object]:
    sessions = httpx.get(proxy.base_url + "/v1/sessions").json()["sessions"]
    found: dict[str, object] = next(s for s in sessions if s["externalId"] == key)
    return found


def test_image_input_reaches_the_upstream_as_an_image_block(
    proxy: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    content = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
    ]
    result = client(proxy).chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": content}],  # type: ignore[list-item]
    )
    # The CLI adds its own note naming where it saved the image.
    assert (result.choices[0].message.content or "").startswith("echo: what is this")
    last_user = [
        m for m in fake_upstream.message_requests[-1].body["messages"] if m["role"] == "user"
    ]
    images = [
        block
        for message in last_user
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "image"
    ]
    assert images[0]["source"] == {"type": "base64", "media_type": "image/png", "data": PIXEL}


async def test_system_prompt_reaches_the_upstream(
    proxy: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    async with openai.AsyncOpenAI(
        base_url=proxy.base_url + "/v1", api_key="unused", max_retries=0, timeout=90
    ) as sdk:
        stream = await sdk.chat.completions.create(
            model="sonnet",
            messages=[
                {"role": "system", "content": "You are a lighthouse keeper."},
                {"role": "user", "content": "gamma"},
            ],
            stream=True,
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "echo: gamma"
    assert "You are a lighthouse keeper." in json.dumps(
        fake_upstream.message_requests[-1].body["system"]
    )


def test_usage_is_the_upstreams(proxy: ServerProcess, fake_upstream: FakeAnthropic) -> None:
    chunks = list(
        client(proxy).chat.completions.create(
            model="sonnet",
            messages=[{"role": "user", "content": "delta"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 100  # the fake's cache reads
    assert usage.prompt_tokens > 110  # input + cache reads (100) + cache writes (10)
    assert usage.completion_tokens >= 1
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def _scrape(proxy: ServerProcess) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """/metrics, parsed with prometheus_client's parser: value by (sample, labels)."""
    text = httpx.get(proxy.base_url + "/metrics", timeout=30).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_a_live_turn_s_tokens_and_show_its_cli_process(
    proxy: ServerProcess,
) -> None:
    chat = frozenset({("endpoint", "chat.completions")})
    by_model = chat | {("model", "sonnet")}
    before = _scrape(proxy)
    chunks = list(
        client(proxy).chat.completions.create(
            model="sonnet",
            messages=[{"role": "user", "content": "gauged"}],
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"X-Session-Id": "e2e-metrics"},
        )
    )
    after = _scrape(proxy)
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.prompt_tokens_details is not None

    def added(sample: str, labels: frozenset[tuple[str, str]]) -> float:
        return after[(sample, labels)] - before.get((sample, labels), 0.0)

    ok = chat | {("status", "200")}
    assert added("claude_proxy_requests_total", ok) == 1
    assert added("claude_proxy_time_to_first_token_seconds_count", chat) == 1
    assert added("claude_proxy_input_tokens_total", by_model) == usage.prompt_tokens
    assert added("claude_proxy_output_tokens_total", by_model) == usage.completion_tokens
    cached = usage.prompt_tokens_details.cached_tokens
    assert added("claude_proxy_cached_input_tokens_total", by_model) == cached
    # The conversation's CLI process stays live after its turn, and its memory is real.
    assert after[("claude_proxy_live_processes", frozenset())] >= 1
    live_memory = ("claude_proxy_cli_resident_memory_bytes", frozenset({("group", "live")}))
    assert after[live_memory] > 50 * 2**20


def test_upstream_overload_is_a_503_error_not_text(proxy: ServerProcess) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client(proxy).chat.completions.create(
            model="sonnet", messages=[{"role": "user", "content": "[[error:529]] epsilon"}]
        )
    assert caught.value.status_code == 503
    assert caught.value.code == "overloaded"


def test_upstream_overload_before_any_content_is_a_503_streamed_too(proxy: ServerProcess) -> None:
    # The stream holds its headers until the turn shows something (--stream-hold), so
    # a failure before any content keeps its status instead of a 200 with an error event.
    body = {
        "model": "sonnet",
        "stream": True,
        "messages": [{"role": "user", "content": "[[error:529]] zeta"}],
    }
    response = httpx.post(proxy.base_url + "/v1/chat/completions", json=body, timeout=90)
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == "overloaded"


def _cli_pids(server: ServerProcess) -> list[int]:
    assert server.process is not None
    return cli_processes(server.process.pid)


def test_disconnect_after_first_chunk_kills_the_cli_within_2s(
    proxy: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    body = {
        "model": "sonnet",
        "stream": True,
        "messages": [{"role": "user", "content": "[[slow-stream:1]] a long answer please"}],
    }
    # Earlier conversations keep their live CLI processes: only this turn's must die.
    before = set(_cli_pids(proxy))
    with (
        httpx.Client(timeout=90) as http,
        http.stream("POST", proxy.base_url + "/v1/chat/completions", json=body) as response,
    ):
        for line in response.iter_lines():
            if '"content":"echo' in line:
                break
        running = [pid for pid in _cli_pids(proxy) if pid not in before]
    assert running, "a CLI process should have been running the turn"
    deadline = time.monotonic() + 2.0
    while any(Path(f"/proc/{pid}").exists() for pid in running) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in running if Path(f"/proc/{pid}").exists()]


def test_health_reports_the_real_cli_and_its_version(proxy: ServerProcess) -> None:
    body = httpx.get(proxy.base_url + "/health").json()
    assert body["status"] == "ok"
    assert body["backend"]["ready"] is True
    assert body["backend"]["version"].startswith("2.")


def test_health_reports_a_cli_that_is_not_logged_in(
    claude_bin: str, fake_upstream_server: FakeAnthropic, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    cli_env = {"HOME": str(home), "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
    env = {
        "CLAUDE_PROXY_CLI_PATH": claude_bin,
        "CLAUDE_PROXY_STATE_DIR": str(tmp_path / "state"),
        "CLAUDE_PROXY_SESSIONS_DB": ":memory:",
        "CLAUDE_PROXY_CLI_EXTRA_ENV": json.dumps(cli_env),
        "CLAUDE_PROXY_POOL_SIZE": "0",
    }
    with ServerProcess(env=env, log_path=tmp_path / "server.log") as server:
        # /health answers at once; the login check's result shows once its run ends.
        for _ in range(600):  # bounded
            body = httpx.get(server.base_url + "/health", timeout=60).json()
            if not body["backend"].get("checksPending"):
                break
            time.sleep(0.1)
    assert body["status"] == "degraded"
    login = [p for p in body["backend"]["problems"] if p.startswith("login:")]
    assert login, body["backend"]["problems"]
    assert LOGIN_HELP in login[0]


def test_thinking_streams_as_reasoning_content_when_asked(
    proxy: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    chunks = list(
        client(proxy).chat.completions.create(
            model="sonnet",
            messages=[{"role": "user", "content": "[[thinking]] eta"}],
            stream=True,
            reasoning_effort="low",
        )
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    thinking = "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
    text = "".join(d.content or "" for d in deltas)
    assert thinking == "Let me think about this."
    assert text == "echo: [[thinking]] eta"
    # The effort asked for is the effort the upstream was asked to reason with.
    assert fake_upstream.message_requests[-1].body["output_config"]["effort"] == "low"


class Person(pydantic.BaseModel):
    name: str
    age: int


def test_structured_output_parses_into_the_clients_model(
    proxy: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    """`response_format` with a schema: the CLI's StructuredOutput tool, the reply its JSON."""
    answer = '[[tool-use:StructuredOutput:{"name": "Ada", "age": 36}]]'
    done = client(proxy).chat.completions.parse(
        model="sonnet",
        messages=[{"role": "user", "content": f"Who wrote the first program? {answer}"}],
        response_format=Person,
    )
    assert done.choices[0].message.parsed == Person(name="Ada", age=36)
    assert json.loads(done.choices[0].message.content or "") == {"name": "Ada", "age": 36}
    tools = {t["name"]: t for t in fake_upstream.message_requests[0].body["tools"]}
    assert set(tools["StructuredOutput"]["input_schema"]["required"]) == {"name", "age"}


def test_a_streamed_structured_reply_is_its_json_only(
    proxy: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    chunks = client(proxy).chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": '[[tool-use:StructuredOutput:{"ok": true}]]'}],
        response_format={"type": "json_schema", "json_schema": {"name": "ok", "schema": schema}},
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == {"ok": True}
