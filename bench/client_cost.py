"""What the clients themselves spend on a request, with no server at all.

The floor is a script writing one stream-json line to the CLI: it pays nothing for a
client library. Through the proxy, the SDKs turn every request's parameters over
before sending them (the openai SDK walks each message of the history), so their own
time grows with the conversation. This measures that time: the benchmark's own
conversations (`bench.drivers`), each with its client on an in-memory transport that
answers at once with replies the live proxy gave (`record_replies`), at the history
lengths of the benchmark's follow-up and streamed turns. The report can then say how
much of a live/floor ratio is the client's, and how much the proxy's.
"""

from __future__ import annotations

import json
import statistics
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import httpx2
import openai

from bench.drivers import (
    MODEL,
    MessagesConversation,
    PlainHttpConversation,
    ProxyConversation,
    ResponsesConversation,
)
from bench.report import times_floor
from bench.scenarios import Counts

_RUNS = 60
_WARM_UP = 10
_BASE = "http://bench.invalid"

Recorded = dict[tuple[str, bool], tuple[str, bytes]]
"""(path, streamed) -> (content type, body) of one reply of the live proxy."""

_ASKS: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"messages": [{"role": "user", "content": "hello"}]},
    "/v1/responses": {"input": [{"role": "user", "content": "hello"}], "store": False},
    "/v1/messages": {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 1024},
}


async def record_replies(base_url: str) -> Recorded:
    """One whole and one streamed reply of each surface, as the proxy sent them."""
    recorded: Recorded = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        for path, ask in _ASKS.items():
            for stream in (False, True):
                body = {"model": MODEL, "stream": stream, **ask}
                headers = {"X-Session-Id": f"bench-record-{uuid.uuid4().hex[:12]}"}
                answer = await client.post(path, json=body, headers=headers)
                answer.raise_for_status()
                kind = answer.headers["content-type"]
                recorded[path, stream] = (kind, answer.content)
    return recorded


@dataclass(frozen=True)
class Surface:
    """One client's own time (p50 seconds) for a whole reply and to a streamed first text."""

    name: str
    follow: float
    first_text: float


@dataclass(frozen=True)
class ClientCost:
    follow_messages: int
    streamed_messages: int
    surfaces: list[Surface]


def history(length: int) -> list[dict[str, str]]:
    """The first `length` messages of a benchmark conversation (questions and replies)."""
    messages = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "echo: hi"}]
    turn = 0
    while len(messages) < length:
        ask = f"follow-up number {turn}"
        messages += [{"role": "user", "content": ask}, {"role": "assistant", "content": "echo: ok"}]
        turn += 1
    return messages[:length]


def _lengths(counts: Counts) -> tuple[int, int]:
    """The median history a follow-up turn sends, and a streamed turn (after them):
    each turn adds its question and its reply."""
    follow = [3 + 2 * i for i in range(counts.follow_ups)]
    streamed = [3 + 2 * (counts.follow_ups + i) for i in range(counts.streamed)]
    return round(statistics.median(follow)), round(statistics.median(streamed))


def _answer(recorded: Recorded, path: str, content: bytes) -> tuple[str, bytes]:
    stream = json.loads(content).get("stream") is True
    return recorded[path, stream]


class _Conversation:
    """A benchmark conversation whose history is set back before each turn."""

    def __init__(self, conversation: Any, field: str, length: int) -> None:
        self.conversation = conversation
        self.field = field
        self.history = history(length - 1)  # the turn adds its question

    async def time(self, *, stream: bool) -> float:
        setattr(self.conversation, self.field, list(self.history))
        timing = await self.conversation.turn("a question", stream=stream)
        if stream:
            if timing.first_text is None:
                raise RuntimeError("the recorded stream carried no text")
            return float(timing.first_text)
        return float(timing.latency)


async def _p50(conversation: _Conversation, *, stream: bool) -> float:
    for _ in range(_WARM_UP):
        await conversation.time(stream=stream)
    return statistics.median([await conversation.time(stream=stream) for _ in range(_RUNS)])


async def measure_client_cost(counts: Counts, recorded: Recorded) -> ClientCost:
    """Each client's own time per whole reply and to the first text of a streamed one."""
    follow_length, streamed_length = _lengths(counts)

    def on_httpx2(request: httpx2.Request) -> httpx2.Response:
        kind, body = _answer(recorded, request.url.path, request.content)
        return httpx2.Response(200, headers={"content-type": kind}, content=body)

    def on_httpx(request: httpx.Request) -> httpx.Response:
        kind, body = _answer(recorded, request.url.path, request.content)
        return httpx.Response(200, headers={"content-type": kind}, content=body)

    sdk = openai.AsyncOpenAI(
        base_url=_BASE + "/v1",
        api_key="bench",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(on_httpx2)),
    )
    plain = httpx.AsyncClient(base_url=_BASE, transport=httpx.MockTransport(on_httpx))
    claude = anthropic.AsyncAnthropic(
        base_url=_BASE,
        api_key="bench",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(on_httpx2)),
    )
    clients: list[tuple[str, Callable[[], Any], str]] = [
        ("openai SDK, /v1/chat/completions", lambda: ProxyConversation(sdk), "messages"),
        ("bare httpx, /v1/chat/completions", lambda: PlainHttpConversation(plain), "messages"),
        ("openai SDK, /v1/responses", lambda: ResponsesConversation(sdk), "items"),
        ("anthropic SDK, /v1/messages", lambda: MessagesConversation(claude), "messages"),
    ]
    surfaces = []
    try:
        for name, make, field in clients:
            whole = _Conversation(make(), field, follow_length)
            streamed = _Conversation(make(), field, streamed_length)
            surfaces.append(
                Surface(
                    name,
                    await _p50(whole, stream=False),
                    await _p50(streamed, stream=True),
                )
            )
    finally:
        await sdk.close()
        await plain.aclose()
        await claude.close()
    return ClientCost(follow_length, streamed_length, surfaces)


def section(cost: ClientCost, floor_follow: float | None, floor_first: float | None) -> str:
    """The report's section on the clients' own time, against the floor's turns."""

    rows = "\n".join(
        f"| {s.name} | {s.follow * 1000:.1f} ms | {times_floor(s.follow, floor_follow)} "
        f"| {s.first_text * 1000:.1f} ms | {times_floor(s.first_text, floor_first)} |"
        for s in cost.surfaces
    )
    return f"""## The clients' own time

The benchmark's own conversations, each client on an in-memory transport that answers
at once with replies the live proxy gave in this run (no server, no network): what the
client itself spends on a whole reply, at the median history of the follow-up turns
({cost.follow_messages} messages), and to the first text of a streamed one, at that of
the streamed turns ({cost.streamed_messages} messages); and that time as a share of
the floor's follow-up and first token. The floor pays none of it, so a live/floor
ratio through a client holds the client's share too: through that client, no server
could bring the ratio below 1 plus that share.

| client, surface | whole reply | / floor follow-up | first text | / floor first token |
|---|---:|---:|---:|---:|
{rows}
"""
