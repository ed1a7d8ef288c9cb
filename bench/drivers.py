"""The two ways the benchmark talks to Claude: through the proxy, or straight to one CLI.

Both offer the same shape, a conversation with timed turns, so every scenario runs
unchanged against the proxy (live or spawn-per-turn) and against the floor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import anthropic
import httpx
import openai

from proxy_cli_backend.command import BASE_ARGS, tool_args
from proxy_cli_backend.config import ToolsProfile

MODEL = "sonnet"


@dataclass(frozen=True)
class Timing:
    """One turn: seconds until the reply was complete, and until its first text."""

    latency: float
    first_text: float | None


class Conversation(Protocol):
    async def turn(self, text: str, *, stream: bool = False) -> Timing: ...

    async def close(self) -> None: ...


@runtime_checkable
class ToolConversation(Protocol):
    async def tool_round_trip(self) -> float: ...


class Driver(Protocol):
    def conversation(self) -> Conversation: ...


# -- through the proxy, with the official SDK ----------------------------------------


@dataclass
class ProxyConversation:
    """A client conversation: sends the whole history each turn, pinned by X-Session-Id."""

    client: openai.AsyncOpenAI
    key: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:12]}")
    messages: list[dict[str, str]] = field(default_factory=list)

    async def turn(self, text: str, *, stream: bool = False) -> Timing:
        messages: Any = [*self.messages, {"role": "user", "content": text}]
        headers = {"X-Session-Id": self.key}
        started = time.perf_counter()
        first: float | None = None
        if stream:
            parts: list[str] = []
            chunks = await self.client.chat.completions.create(
                model=MODEL, messages=messages, stream=True, extra_headers=headers
            )
            async for chunk in chunks:
                piece = chunk.choices[0].delta.content if chunk.choices else None
                if piece:
                    first = first if first is not None else time.perf_counter() - started
                    parts.append(piece)
            reply = "".join(parts)
        else:
            completion = await self.client.chat.completions.create(
                model=MODEL, messages=messages, extra_headers=headers
            )
            reply = completion.choices[0].message.content or ""
        latency = time.perf_counter() - started
        if not reply.startswith("echo:"):
            raise RuntimeError(f"unexpected reply {reply[:200]!r}")
        self.messages = [*messages, {"role": "assistant", "content": reply}]
        return Timing(latency, first)

    async def tool_round_trip(self) -> float:
        """Seconds for a client tool round trip: the request whose reply calls the tool,
        then the one that brings its result and gets the final answer."""
        headers = {"X-Session-Id": self.key}
        ask: Any = [
            *self.messages,
            {"role": "user", "content": f"call it {CALL_MARKER}"},
        ]
        started = time.perf_counter()
        called = await self.client.chat.completions.create(
            model=MODEL, messages=ask, tools=BENCH_TOOLS, extra_headers=headers
        )
        calls = called.choices[0].message.tool_calls or []
        if called.choices[0].finish_reason != "tool_calls" or len(calls) != 1:
            raise RuntimeError(f"expected one tool call, got {called.choices[0]!r}")
        answered: Any = [
            *ask,
            called.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": calls[0].id, "content": "42"},
        ]
        final = await self.client.chat.completions.create(
            model=MODEL, messages=answered, tools=BENCH_TOOLS, extra_headers=headers
        )
        latency = time.perf_counter() - started
        reply = final.choices[0].message.content or ""
        if reply != "tool result seen: 42":
            raise RuntimeError(f"unexpected reply {final.choices[0]!r}")
        self.messages = [*answered, {"role": "assistant", "content": reply}]
        return latency

    async def close(self) -> None:
        return None


# The fake upstream calls the tool its marker names; the CLI offers client tools as
# `mcp__client__<name>`.
# In spawn-per-turn mode no turn waits for its result: the round trip's second request
# starts a fresh CLI session with the whole history, which the fake reads as a model
# would (the marker in the history's first message does not call again).
CALL_MARKER = '[[call:lookup:{"key": "answer"}]]'
BENCH_TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a key up.",
            "parameters": {"type": "object", "properties": {"key": {"type": "string"}}},
        },
    }
]


@dataclass
class ProxyDriver:
    client: openai.AsyncOpenAI

    def conversation(self) -> ProxyConversation:
        return ProxyConversation(self.client)


@dataclass
class PlainHttpConversation:
    """The same conversation with a bare httpx client: what the SDK adds, left out
    (streamed turns read the SSE lines as they come, as a hand-written client would)."""

    client: httpx.AsyncClient
    key: str = field(default_factory=lambda: f"bench-raw-{uuid.uuid4().hex[:12]}")
    messages: list[dict[str, str]] = field(default_factory=list)

    async def turn(self, text: str, *, stream: bool = False) -> Timing:
        messages = [*self.messages, {"role": "user", "content": text}]
        body = {"model": MODEL, "messages": messages, "stream": stream}
        headers = {"X-Session-Id": self.key}
        started = time.perf_counter()
        first: float | None = None
        if stream:
            parts: list[str] = []
            async with self.client.stream(
                "POST", "/v1/chat/completions", json=body, headers=headers
            ) as answer:
                answer.raise_for_status()
                async for line in answer.aiter_lines():
                    piece = _chunk_text(line)
                    if piece:
                        first = first if first is not None else time.perf_counter() - started
                        parts.append(piece)
            reply = "".join(parts)
        else:
            answer = await self.client.post("/v1/chat/completions", json=body, headers=headers)
            answer.raise_for_status()
            reply = answer.json()["choices"][0]["message"]["content"]
        latency = time.perf_counter() - started
        if not reply.startswith("echo:"):
            raise RuntimeError(f"unexpected reply {reply[:200]!r}")
        self.messages = [*messages, {"role": "assistant", "content": reply}]
        return Timing(latency, first)

    async def close(self) -> None:
        return None


def _chunk_text(line: str) -> str | None:
    """The reply text an SSE line of chat completion chunks carries, if any."""
    if not line.startswith("data: {"):
        return None
    choices = json.loads(line[len("data: ") :])["choices"]
    piece: str | None = choices[0]["delta"].get("content") if choices else None
    return piece


@dataclass
class PlainHttpDriver:
    client: httpx.AsyncClient

    def conversation(self) -> PlainHttpConversation:
        return PlainHttpConversation(self.client)


# -- through the proxy's other surfaces ------------------------------------------------

# The Responses API's form of BENCH_TOOLS.
RESPONSES_TOOLS: Any = [
    {
        "type": "function",
        "name": "lookup",
        "description": "Look a key up.",
        "parameters": {"type": "object", "properties": {"key": {"type": "string"}}},
    }
]


@dataclass
class ResponsesConversation:
    """A `/v1/responses` conversation as Codex runs one: every turn sends the whole input
    (`store: false`, no `previous_response_id`), keyed by `prompt_cache_key`."""

    client: openai.AsyncOpenAI
    key: str = field(default_factory=lambda: f"bench-resp-{uuid.uuid4().hex[:12]}")
    items: list[dict[str, Any]] = field(default_factory=list)

    async def _create(self, items: Any, **extra: Any) -> Any:
        return await self.client.responses.create(
            model=MODEL, input=items, store=False, prompt_cache_key=self.key, **extra
        )

    async def turn(self, text: str, *, stream: bool = False) -> Timing:
        items = [*self.items, {"role": "user", "content": text}]
        started = time.perf_counter()
        first: float | None = None
        if stream:
            parts: list[str] = []
            async for event in await self._create(items, stream=True):
                if event.type == "response.output_text.delta" and event.delta:
                    first = first if first is not None else time.perf_counter() - started
                    parts.append(event.delta)
            reply = "".join(parts)
        else:
            reply = (await self._create(items)).output_text
        latency = time.perf_counter() - started
        if not reply.startswith("echo:"):
            raise RuntimeError(f"unexpected reply {reply[:200]!r}")
        self.items = [*items, {"role": "assistant", "content": reply}]
        return Timing(latency, first)

    async def tool_round_trip(self) -> float:
        """Seconds for the request whose reply calls the tool, then the one with its result."""
        ask = [*self.items, {"role": "user", "content": f"call it {CALL_MARKER}"}]
        started = time.perf_counter()
        called = await self._create(ask, tools=RESPONSES_TOOLS)
        calls = [item for item in called.output if item.type == "function_call"]
        if len(calls) != 1:
            raise RuntimeError(f"expected one function call, got {called.output!r}")
        call = calls[0]
        answered = [
            *ask,
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "42"},
        ]
        final = await self._create(answered, tools=RESPONSES_TOOLS)
        latency = time.perf_counter() - started
        if final.output_text != "tool result seen: 42":
            raise RuntimeError(f"unexpected reply {final.output!r}")
        self.items = [*answered, {"role": "assistant", "content": final.output_text}]
        return latency

    async def close(self) -> None:
        return None


@dataclass
class ResponsesDriver:
    client: openai.AsyncOpenAI

    def conversation(self) -> ResponsesConversation:
        return ResponsesConversation(self.client)


@dataclass
class MessagesConversation:
    """A `/v1/messages` conversation with the official `anthropic` SDK: the whole history
    each turn, pinned by X-Session-Id."""

    client: anthropic.AsyncAnthropic
    key: str = field(default_factory=lambda: f"bench-msg-{uuid.uuid4().hex[:12]}")
    messages: list[dict[str, str]] = field(default_factory=list)

    async def turn(self, text: str, *, stream: bool = False) -> Timing:
        messages: Any = [*self.messages, {"role": "user", "content": text}]
        headers = {"X-Session-Id": self.key}
        started = time.perf_counter()
        first: float | None = None
        if stream:
            parts: list[str] = []
            events = await self.client.messages.create(
                model=MODEL, max_tokens=1024, messages=messages, stream=True, extra_headers=headers
            )
            async for event in events:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    first = first if first is not None else time.perf_counter() - started
                    parts.append(event.delta.text)
            reply = "".join(parts)
        else:
            message = await self.client.messages.create(
                model=MODEL, max_tokens=1024, messages=messages, extra_headers=headers
            )
            reply = "".join(b.text for b in message.content if b.type == "text")
        latency = time.perf_counter() - started
        if not reply.startswith("echo:"):
            raise RuntimeError(f"unexpected reply {reply[:200]!r}")
        self.messages = [*messages, {"role": "assistant", "content": reply}]
        return Timing(latency, first)

    async def close(self) -> None:
        return None


@dataclass
class MessagesDriver:
    client: anthropic.AsyncAnthropic

    def conversation(self) -> MessagesConversation:
        return MessagesConversation(self.client)


# -- the floor: one CLI process over stream-json, no proxy ---------------------------


@dataclass
class CliSetup:
    """How to run the CLI against the fake upstream."""

    cli: str
    env: dict[str, str]
    cwd: str


class FloorConversation:
    """A conversation held by one CLI process that this script drives directly.

    The first turn includes starting the process (as a client without any proxy would).
    """

    def __init__(self, setup: CliSetup) -> None:
        self._setup = setup
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def _start(self) -> asyncio.subprocess.Process:
        # The proxy's own flags, so the floor runs the very same CLI configuration.
        argv = [self._setup.cli, *BASE_ARGS, "--model", MODEL, *tool_args(ToolsProfile.NONE)]
        argv += ["--session-id", str(uuid.uuid4())]
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=self._setup.env,
            cwd=self._setup.cwd,
            start_new_session=True,
            limit=16 * 1024 * 1024,
        )

    async def turn(self, text: str, *, stream: bool = False) -> Timing:
        started = time.perf_counter()
        if self._proc is None:
            self._proc = await self._start()
        proc = self._proc
        assert proc.stdin is not None
        assert proc.stdout is not None
        line = {
            "type": "user",
            "message": {"role": "user", "content": [{"type": "text", "text": text}]},
        }
        proc.stdin.write(json.dumps(line).encode() + b"\n")
        await proc.stdin.drain()
        first: float | None = None
        while raw := await proc.stdout.readline():
            event = json.loads(raw)
            kind = event.get("type")
            if kind == "stream_event" and first is None:
                delta = event["event"].get("delta") or {}
                if delta.get("type") == "text_delta":
                    first = time.perf_counter() - started
            elif kind == "result":
                if event.get("is_error"):
                    raise RuntimeError(f"floor turn failed: {event.get('result')}")
                return Timing(time.perf_counter() - started, first)
        raise RuntimeError("the CLI exited without a result")

    async def close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            await proc.wait()


@dataclass
class FloorDriver:
    setup: CliSetup
    open: list[FloorConversation] = field(default_factory=list)

    def conversation(self) -> FloorConversation:
        conversation = FloorConversation(self.setup)
        self.open.append(conversation)
        return conversation
