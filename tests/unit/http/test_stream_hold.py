"""A stream holds its headers until the turn shows something, so an early failure keeps
its status; after the hold (or the first content) it streams as before."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence

import pytest
from litestar.testing import TestClient

from claude_max_api.bootstrap import http_app
from claude_max_api.settings import Settings
from proxy_core import (
    ChatError,
    ChatRequest,
    ChatService,
    Event,
    Failed,
    FailureReason,
    FakeRunner,
    Finished,
    InMemorySessionStore,
    TextDelta,
    ThinkingDelta,
    ToolActivity,
    TurnPlan,
    Usage,
)
from proxy_http.logging import request_scope
from proxy_http.sse import KEEPALIVE, ChunkRenderer
from proxy_http.streaming import ActiveTurns, open_stream

Script = Callable[[TurnPlan], Sequence[Event]]
BODY = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}


def script(*events: Event) -> Script:
    return lambda plan: events


def rate_limited() -> Script:
    return script(Failed(FailureReason.RATE_LIMITED, "API Error: 429", retry_after=7.2))


def post(
    runner: FakeRunner, settings: Settings, *, stream: bool
) -> tuple[int, dict[str, str], str]:
    app = http_app(ChatService(runner, InMemorySessionStore()), settings)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        response = client.post("/v1/chat/completions", json={**BODY, "stream": stream})
        return response.status_code, dict(response.headers), response.text


def events_of(body: str) -> list[dict[str, object]]:
    return [
        json.loads(line.removeprefix("data: "))
        for line in body.splitlines()
        if line.startswith("data: {")
    ]


# -- through the app ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [
        (rate_limited(), 429, "rate_limit_exceeded"),
        (script(Failed(FailureReason.NOT_LOGGED_IN, "Not logged in")), 503, "not_logged_in"),
        (
            script(Failed(FailureReason.INVALID_REQUEST, "Prompt is too long")),
            400,
            "invalid_request",
        ),
        (script(Failed(FailureReason.STORE_UNAVAILABLE, "disk full")), 503, "store_unavailable"),
    ],
)
def test_a_turn_failing_first_gets_the_same_status_body_and_headers_streamed_or_not(
    failure: Script, status: int, code: str
) -> None:
    settings = Settings.from_values(stream_hold=30)
    whole = post(FakeRunner(failure), settings, stream=False)
    streamed = post(FakeRunner(failure), settings, stream=True)
    assert streamed[0] == whole[0] == status
    assert json.loads(streamed[2]) == json.loads(whole[2])
    assert json.loads(streamed[2])["error"]["code"] == code
    assert streamed[1].get("retry-after") == whole[1].get("retry-after")
    assert streamed[1]["content-type"].startswith("application/json")


def test_a_streamed_rate_limit_passes_retry_after_on() -> None:
    status, headers, _ = post(
        FakeRunner(rate_limited()), Settings.from_values(stream_hold=30), stream=True
    )
    assert (status, headers["retry-after"]) == (429, "8")


def test_events_nobody_sees_do_not_end_the_hold() -> None:
    # Usage, tool activity and thinking that is not shown are not content.
    early = script(
        Usage(input_tokens=3),
        ToolActivity("Read", "x.txt"),
        ThinkingDelta("hmm"),
        TextDelta(""),
        Failed(FailureReason.OVERLOADED, "API Error: 529"),
    )
    status, _, body = post(FakeRunner(early), Settings.from_values(stream_hold=30), stream=True)
    assert status == 503
    assert json.loads(body)["error"]["code"] == "overloaded"


def test_shown_thinking_is_content_and_a_later_failure_is_an_error_event() -> None:
    thinking_first = script(ThinkingDelta("hmm"), Failed(FailureReason.OVERLOADED, "529"))
    status, _, body = post(
        FakeRunner(thinking_first),
        Settings.from_values(stream_hold=30, reasoning=True),
        stream=True,
    )
    assert status == 200
    events = events_of(body)
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"  # type: ignore[index]
    assert events[1]["choices"][0]["delta"]["reasoning_content"] == "hmm"  # type: ignore[index]
    assert events[-1]["error"]["code"] == "overloaded"  # type: ignore[index]
    assert body.endswith("data: [DONE]\n\n")


def test_a_reply_streams_whole_after_the_hold_with_the_events_held_back_first() -> None:
    reply = script(
        Usage(input_tokens=4, output_tokens=2),
        TextDelta("he"),
        TextDelta("llo"),
        Finished("end_turn", "hello", "sid"),
    )
    status, headers, body = post(
        FakeRunner(reply), Settings.from_values(stream_hold=30), stream=True
    )
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    events = events_of(body)
    deltas = [e["choices"][0]["delta"] for e in events]  # type: ignore[index]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content", "") for d in deltas[1:]) == "hello"
    assert events[-1]["choices"][0]["finish_reason"] == "stop"  # type: ignore[index]


def test_without_a_hold_an_early_failure_is_a_200_with_an_error_event() -> None:
    status, headers, body = post(
        FakeRunner(rate_limited()), Settings.from_values(stream_hold=0), stream=True
    )
    assert status == 200
    assert "retry-after" not in headers
    assert events_of(body)[-1]["error"]["code"] == "rate_limit_exceeded"  # type: ignore[index]


# -- the hold itself -----------------------------------------------------------------


class GatedRunner(FakeRunner):
    """A FakeRunner whose turns show nothing until `opened` is set; `started` tells they began."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = asyncio.Event()
        self.gate = self.opened
        self.started = asyncio.Event()

    async def run(self, plan: TurnPlan) -> AsyncGenerator[Event, None]:
        self.started.set()
        async for event in super().run(plan):
            yield event


def request() -> ChatRequest:
    return ChatRequest(model="sonnet", messages=[{"role": "user", "content": "hi"}])


async def never() -> None:
    await asyncio.Event().wait()


async def open_held(
    service: ChatService,
    *,
    hold: float,
    active: ActiveTurns | None = None,
    disconnected: Callable[[], Awaitable[None]] = never,
    keepalive: float = 5.0,
) -> AsyncGenerator[bytes, None]:
    return await open_stream(
        service.open_turn(request()),
        ChunkRenderer("chatcmpl-1", 0, "sonnet"),
        show_thinking=False,
        keepalive_interval=keepalive,
        hold=hold,
        disconnected=disconnected,
        active=active,
    )


async def test_a_turn_slower_than_the_hold_gets_headers_then_keepalives_then_its_reply() -> None:
    runner = GatedRunner()
    service = ChatService(runner, InMemorySessionStore())
    with request_scope("req_1") as log:
        body = await open_held(service, hold=0.01, keepalive=0.01)
        chunks = [await anext(body) for _ in range(3)]
        assert b'"role":"assistant"' in chunks[0]
        assert chunks[1:] == [KEEPALIVE, KEEPALIVE]
        runner.opened.set()
        rest = b"".join([chunk async for chunk in body]).decode()
        text = "".join(
            e["choices"][0]["delta"].get("content", "")  # type: ignore[index]
            for e in events_of(rest)
        )
        assert text == "echo: hi"
        assert rest.endswith("data: [DONE]\n\n")
    assert log["outcome"] == "ok"


async def test_a_client_gone_during_the_hold_cancels_the_turn() -> None:
    runner = GatedRunner()
    service = ChatService(runner, InMemorySessionStore())
    with request_scope("req_2") as log:

        async def leaves_once_the_turn_runs() -> None:
            await runner.started.wait()

        with pytest.raises(ChatError) as raised:
            await open_held(service, hold=60, disconnected=leaves_once_the_turn_runs)
        assert raised.value.reason is FailureReason.CANCELLED
        # The runner was closed (the CLI process group ends there), and the turn let go.
        assert (runner.active, runner.closed) == (0, 1)
        assert (service.active, service.queued) == (0, 0)
    assert log["outcome"] == "cancelled"


async def test_a_shutdown_during_the_hold_answers_with_the_cancellation() -> None:
    runner = GatedRunner()
    service = ChatService(runner, InMemorySessionStore())
    active = ActiveTurns()
    with request_scope("req_3") as log:
        opening = asyncio.ensure_future(open_held(service, hold=60, active=active))
        await runner.started.wait()
        assert active.abort_all("The server is shutting down; retry later.") == 1
        with pytest.raises(ChatError) as raised:
            await opening
        assert raised.value.reason is FailureReason.CANCELLED
        assert raised.value.message == "The server is shutting down; retry later."
        assert (runner.active, runner.closed) == (0, 1)
        assert len(active) == 0
    assert log["outcome"] == "cancelled"


class PausingRunner(FakeRunner):
    """Yields its first text, then waits for `more` before the rest of its reply."""

    def __init__(self) -> None:
        super().__init__()
        self.more = asyncio.Event()

    async def run(self, plan: TurnPlan) -> AsyncGenerator[Event, None]:
        yield TextDelta("first")
        await self.more.wait()
        yield TextDelta(" second")
        yield Finished("end_turn", "first second", plan.cli_session_id)


async def test_the_first_content_goes_out_with_the_opening_without_waiting_for_more() -> None:
    runner = PausingRunner()
    service = ChatService(runner, InMemorySessionStore())
    with request_scope("req_first"):
        body = await open_held(service, hold=30)
        # The runner holds the rest back: the first chunk cannot wait for it.
        first = await asyncio.wait_for(anext(body), 10)
        deltas = [e["choices"][0]["delta"] for e in events_of(first.decode())]  # type: ignore[index]
        assert deltas == [{"role": "assistant", "content": ""}, {"content": "first"}]
        runner.more.set()
        rest = b"".join([chunk async for chunk in body]).decode()
    texts = [e["choices"][0]["delta"].get("content") for e in events_of(rest)]  # type: ignore[index]
    assert texts[0] == " second"
    assert rest.endswith("data: [DONE]\n\n")
