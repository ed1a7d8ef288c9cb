"""The measured scenarios: one `Sample` per repeat of one configuration and profile."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from bench.drivers import Conversation, Driver, ToolConversation


@dataclass(frozen=True)
class Counts:
    """How many turns each scenario runs (bounded, so a full run stays short)."""

    follow_ups: int = 10
    first_turns: int = 3
    streamed: int = 5
    conversations: int = 8
    turns_each: int = 10
    tool_round_trips: int = 5


@dataclass(frozen=True)
class SurfaceSample:
    """One more API surface on one conversation (seconds; None = not measured there)."""

    follow_p50: float
    first_text: float
    cpu_per_request: float | None
    tool_round_trip: float | None = None


@dataclass(frozen=True)
class Sample:
    """Every metric of one repeat. Times in seconds, memory in bytes; None = not applicable."""

    follow_p50: float
    follow_p95: float
    first_turn: float
    first_text: float
    throughput: float  # turns per second, all conversations together
    concurrent_p95: float
    cpu_per_request: float | None
    rss_per_conversation: float | None
    follow_plain_p50: float | None = None  # through the proxy with a bare HTTP client
    first_text_plain: float | None = None  # the same, streamed turns' first text
    tool_round_trip: float | None = None  # call, result, final answer (proxy only)
    tool_cpu_per_request: float | None = None  # over the tool round trips' requests
    pss_per_conversation: float | None = None  # proportional memory (shared pages split)
    responses: SurfaceSample | None = None  # /v1/responses (the openai SDK)
    messages: SurfaceSample | None = None  # /v1/messages (the anthropic SDK)


@dataclass(frozen=True)
class MinimalSample:
    """The bare-httpx conversation against `bench.minimal` (seconds)."""

    follow_p50: float
    first_text: float
    cpu_per_request: float


async def minimal_sample(
    driver: Driver, cpu_seconds: Callable[[], float], counts: Counts
) -> MinimalSample:
    """The follow-up and streamed turns of `sample`, on one conversation of `driver`."""
    meter = CpuMeter(cpu_seconds)
    conversation = driver.conversation()
    await conversation.turn("hello")  # starts its CLI process
    with meter:
        follow = await follow_ups(conversation, counts.follow_ups)
        streamed = await first_texts(conversation, counts.streamed)
    per = meter.per(len(follow) + len(streamed))
    assert per is not None
    return MinimalSample(statistics.median(follow), statistics.median(streamed), per)


@dataclass
class Target:
    """What a scenario runs against, and how to read the costs around it."""

    driver: Driver
    before_new: Callable[[], Awaitable[None]]  # e.g. wait for the warm pool to be ready
    cpu_seconds: Callable[[], float] | None  # the proxy's own CPU so far (None: no proxy)
    rss_per_conversation: Callable[[], Awaitable[float | None]]
    plain: Driver | None = None  # the same server with a bare HTTP client, if any
    tools: Callable[[], ToolConversation] | None = None  # client tool conversations, if any
    reset: Callable[[], Awaitable[None]] | None = None  # forget every conversation, if any
    pss_per_conversation: Callable[[], Awaitable[float | None]] | None = None
    responses: Driver | None = None  # /v1/responses; its conversations do tool round trips
    messages: Driver | None = None  # /v1/messages


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with `fraction` of them at or below it."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


async def follow_ups(conversation: Conversation, count: int) -> list[float]:
    return [(await conversation.turn(f"follow-up number {i}")).latency for i in range(count)]


async def first_turns(target: Target, count: int) -> list[float]:
    times: list[float] = []
    for i in range(count):
        await target.before_new()
        conversation = target.driver.conversation()
        times.append((await conversation.turn(f"a new conversation {i}")).latency)
        await conversation.close()
    return times


async def first_texts(conversation: Conversation, count: int) -> list[float]:
    times: list[float] = []
    for i in range(count):
        timing = await conversation.turn(f"streamed turn {i}", stream=True)
        if timing.first_text is None:
            raise RuntimeError("a streamed turn produced no text")
        times.append(timing.first_text)
    return times


async def concurrent(target: Target, counts: Counts) -> tuple[float, list[float]]:
    """Turns per second and every turn's latency, with conversations running at once."""
    conversations = [target.driver.conversation() for _ in range(counts.conversations)]

    async def talk(index: int, conversation: Conversation) -> list[float]:
        return [
            (await conversation.turn(f"conversation {index} turn {turn}")).latency
            for turn in range(counts.turns_each)
        ]

    started = time.perf_counter()
    latencies = await asyncio.gather(*(talk(i, c) for i, c in enumerate(conversations)))
    elapsed = time.perf_counter() - started
    return counts.conversations * counts.turns_each / elapsed, [x for xs in latencies for x in xs]


async def sample(target: Target, counts: Counts) -> Sample:
    """One repeat of every scenario against `target`.

    The proxy's CPU is counted over the follow-up, streamed and concurrent turns only:
    the first-turn phase polls /health (waiting for the warm pool), which is the
    harness's load, not a request's.
    """
    meter = CpuMeter(target.cpu_seconds)
    if target.reset is not None:
        # A repeat starts from an empty server: the last one's idle conversations would
        # hold every process slot, and the warm pool could not refill.
        await target.reset()
    conversation = target.driver.conversation()
    await conversation.turn("hello")
    # Steady state: a first turn that took the pooled process starts a refill, whose
    # CLI start-up competes for the CPU for about a second.
    await target.before_new()
    with meter:
        follow = await follow_ups(conversation, counts.follow_ups)
        streamed = await first_texts(conversation, counts.streamed)
    await conversation.close()
    first = await first_turns(target, counts.first_turns)
    with meter:
        throughput, latencies = await concurrent(target, counts)
    rss = await target.rss_per_conversation()
    pss = await target.pss_per_conversation() if target.pss_per_conversation else None
    plain: list[float] = []
    plain_streamed: list[float] = []
    if target.plain is not None:
        await target.before_new()
        other = target.plain.conversation()
        await other.turn("hello")
        await target.before_new()
        plain = await follow_ups(other, counts.follow_ups)
        plain_streamed = await first_texts(other, counts.streamed)
    tool_trips: list[float] = []
    tool_meter = CpuMeter(target.cpu_seconds)
    if target.tools is not None:
        await target.before_new()
        tool_trips = await round_trips(target.tools(), counts, tool_meter)
    return Sample(
        follow_p50=statistics.median(follow),
        follow_p95=percentile(follow, 0.95),
        first_turn=statistics.median(first),
        first_text=statistics.median(streamed),
        throughput=throughput,
        concurrent_p95=percentile(latencies, 0.95),
        cpu_per_request=meter.per(len(follow) + len(streamed) + len(latencies)),
        rss_per_conversation=rss,
        follow_plain_p50=statistics.median(plain) if plain else None,
        first_text_plain=statistics.median(plain_streamed) if plain_streamed else None,
        tool_round_trip=statistics.median(tool_trips) if tool_trips else None,
        tool_cpu_per_request=tool_meter.per(2 * len(tool_trips)) if tool_trips else None,
        pss_per_conversation=pss,
        responses=await surface(target, target.responses, counts),
        messages=await surface(target, target.messages, counts),
    )


async def round_trips(tooling: ToolConversation, counts: Counts, meter: CpuMeter) -> list[float]:
    """Timed client tool round trips on one conversation (two requests each)."""
    # The first starts the conversation's process (one that serves the tools): a
    # first turn, not a round trip on a live process.
    await tooling.tool_round_trip()
    with meter:
        return [await tooling.tool_round_trip() for _ in range(counts.tool_round_trips)]


async def surface(target: Target, driver: Driver | None, counts: Counts) -> SurfaceSample | None:
    """Follow-ups, streamed turns and (where the driver has them) tool round trips
    through another API surface, measured as the chat ones are."""
    if driver is None:
        return None
    meter = CpuMeter(target.cpu_seconds)
    await target.before_new()
    conversation = driver.conversation()
    await conversation.turn("hello")
    await target.before_new()
    with meter:
        follow = await follow_ups(conversation, counts.follow_ups)
        streamed = await first_texts(conversation, counts.streamed)
    requests = len(follow) + len(streamed)
    trips: list[float] = []
    if isinstance(tooling := driver.conversation(), ToolConversation):
        await target.before_new()
        trips = await round_trips(tooling, counts, meter)
        requests += 2 * len(trips)
    return SurfaceSample(
        follow_p50=statistics.median(follow),
        first_text=statistics.median(streamed),
        cpu_per_request=meter.per(requests),
        tool_round_trip=statistics.median(trips) if trips else None,
    )


class CpuMeter:
    """Adds up the proxy's CPU seconds over the `with` blocks it is used in."""

    def __init__(self, read: Callable[[], float] | None) -> None:
        self._read = read
        self._start = 0.0
        self.seconds = 0.0

    def __enter__(self) -> None:
        self._start = self._read() if self._read else 0.0

    def __exit__(self, *exc: object) -> None:
        if self._read:
            self.seconds += self._read() - self._start

    def per(self, requests: int) -> float | None:
        return None if self._read is None else self.seconds / requests


S = TypeVar("S", "Sample", "MinimalSample")


def _median(values: list[Any]) -> Any:
    """The median of the known values (None if none); nested samples field by field."""
    known = [v for v in values if v is not None]
    if not known:
        return None
    first = known[0]
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        names = [f.name for f in dataclasses.fields(first)]
        return type(first)(**{n: _median([getattr(v, n) for v in known]) for n in names})
    return statistics.median(known)


def median_sample(samples: list[S]) -> S:
    """The per-metric median over repeats."""
    merged: S = _median(list(samples))
    return merged
