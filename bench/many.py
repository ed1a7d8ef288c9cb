"""Many conversations: more of them than live processes, in round-robin.

One client walks through N conversations in turn, one request at a time, against a
server with `--live-max LIVE_MAX`: with N above the cap, least-recently-used eviction
drops exactly the process the next turn needs, so every turn of the live mode starts a
CLI with `--resume`, as spawn-per-turn does on every turn. The sweep over N shows where
the live mode stops winning (its crossover) and that beyond it it costs no more than
spawn-per-turn. Instant profile only, one run: it measures process churn, not the
upstream.
"""

from __future__ import annotations

import contextlib
import statistics
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai

from bench.drivers import ProxyConversation
from bench.scenarios import percentile
from bench.server import ProxyServer

LIVE_MAX = 8
# Beyond the cap both modes start a CLI with --resume for every turn; a ratio this close
# to 1 is a tie: p50s of one mode taken minutes apart on the shared 2-core machine
# differed by 7% at best (and several-fold while other work ran).
NOISE = 1.1
CONFIGS = ("live", "spawn-per-turn")


@dataclass(frozen=True)
class Sweep:
    """The sweep's points: conversations, and the rounds timed after the first (whose
    first turns are not counted); enough rounds for 24 timed turns or more a point, so
    that its p95 means something, and few enough to keep `make bench` bounded."""

    points: tuple[tuple[int, int], ...] = ((8, 3), (9, 3), (16, 2), (48, 1))
    live_max: int = LIVE_MAX

    @property
    def conversations(self) -> tuple[int, ...]:
        return tuple(count for count, _ in self.points)


QUICK_SWEEP = Sweep(points=((2, 1), (3, 1)), live_max=2)


@dataclass(frozen=True)
class Point:
    """One configuration at one number of conversations: follow-up latencies in seconds."""

    config: str
    conversations: int
    p50: float
    p95: float
    turns: int
    evicted: int | None  # live processes evicted during the point (live mode only)


def flags(config: str, sweep: Sweep) -> list[str]:
    """The server's flags: the cap under test, room enough for the turns to queue."""
    chosen = ["--live-max", str(sweep.live_max), "--max-concurrent", str(sweep.live_max)]
    return [*chosen, "--spawn-per-turn"] if config == "spawn-per-turn" else chosen


async def _evicted(server: ProxyServer) -> int | None:
    details = (await server.health())["backend"].get("details") or {}
    value = details.get("evicted")
    return int(value) if isinstance(value, int) else None


async def round_robin(server: ProxyServer, count: int, rounds: int, config: str) -> Point:
    """`count` conversations, each started, then `rounds` more turns each in turn."""
    client = openai.AsyncOpenAI(
        base_url=server.base_url + "/v1", api_key="bench", max_retries=0, timeout=120
    )
    try:
        conversations = [ProxyConversation(client) for _ in range(count)]
        for index, conversation in enumerate(conversations):
            await conversation.turn(f"conversation {index} begins")
        evicted_before = await _evicted(server)
        latencies: list[float] = []
        for turn in range(rounds):
            for index, conversation in enumerate(conversations):
                timing = await conversation.turn(f"conversation {index} turn {turn}")
                latencies.append(timing.latency)
        evicted_after = await _evicted(server)
    finally:
        await client.close()
    evicted = (
        None
        if evicted_before is None or evicted_after is None or config != "live"
        else evicted_after - evicted_before
    )
    return Point(
        config,
        count,
        statistics.median(latencies),
        percentile(latencies, 0.95),
        len(latencies),
        evicted,
    )


async def forget_all(server: ProxyServer) -> None:
    """Forget every conversation (their live processes end), so points do not mix."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        (await client.delete("/v1/sessions")).raise_for_status()


def table(points: list[Point], sweep: Sweep) -> str:
    """One row per number of conversations: p50 and p95 per mode, and live's ratio."""
    by = {(p.config, p.conversations): p for p in points}
    lines = [
        f"| conversations (--live-max {sweep.live_max}) | live p50 | live p95 "
        "| spawn-per-turn p50 | spawn-per-turn p95 | live / spawn-per-turn (p50) "
        "| live evictions |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for count in sweep.conversations:
        live, spawn = by.get(("live", count)), by.get(("spawn-per-turn", count))
        ratio = f"{live.p50 / spawn.p50:.2f}x" if live and spawn else "-"
        evictions = (
            "-" if live is None or live.evicted is None else f"{live.evicted} of {live.turns}"
        )
        lines.append(
            f"| {count} | {_ms(live, 'p50')} | {_ms(live, 'p95')} "
            f"| {_ms(spawn, 'p50')} | {_ms(spawn, 'p95')} | {ratio} | {evictions} |"
        )
    return "\n".join(lines)


def _ms(point: Point | None, field: str) -> str:
    return "-" if point is None else f"{getattr(point, field) * 1000:.0f} ms"


def crossover(points: list[Point], sweep: Sweep) -> str:
    """Where live stops being much faster, and whether it is ever slower, in words."""
    pairs = [
        (count, live, spawn)
        for count in sweep.conversations
        if (live := _point(points, "live", count))
        and (spawn := _point(points, "spawn-per-turn", count))
    ]
    if not pairs:
        return "Not measured."
    lost = next(((c, lv.p50 / sp.p50) for c, lv, sp in pairs if lv.p50 > 0.5 * sp.p50), None)
    worst_count, worst = max(((c, lv.p50 / sp.p50) for c, lv, sp in pairs), key=lambda x: x[1])
    where = (
        f"Live stays at least twice as fast up to {pairs[-1][0]} conversations."
        if lost is None
        else f"Crossover: from {lost[0]} conversations (--live-max {sweep.live_max}) live's "
        f"p50 is {lost[1]:.2f}x spawn-per-turn's, no longer a fraction of it."
    )
    if worst <= 1.0:
        slower = (
            f"Live is never slower than spawn-per-turn here (its worst p50 ratio: "
            f"{worst:.2f}x, at {worst_count} conversations)."
        )
    elif worst <= NOISE:
        slower = (
            f"Beyond the cap live and spawn-per-turn are level: the worst p50 ratio, "
            f"{worst:.2f}x at {worst_count} conversations, is within {NOISE - 1:.0%}, "
            "less than repeated runs of one mode differ by on this machine."
        )
    else:
        slower = (
            f"Live is SLOWER than spawn-per-turn at {worst_count} conversations "
            f"({worst:.2f}x its p50)."
        )
    return f"{where} {slower}"


def _point(points: list[Point], config: str, count: int) -> Point | None:
    return next((p for p in points if p.config == config and p.conversations == count), None)


def section(points: list[Point], sweep: Sweep) -> str:
    """The many-conversations section of docs/benchmarks.md."""
    rounds = ", ".join(f"{n} conversations: {r}" for n, r in sweep.points)
    return f"""## Many conversations (instant profile, one run)

One client talks to N conversations in round-robin, one request at a time, each turn
with the conversation's whole history (openai SDK, non-streamed), against a server with
`--live-max {sweep.live_max}` and the default warm pool: the first round starts them, the
next rounds are timed ({rounds}). Beyond the cap, least-recently-used eviction
drops exactly the process the next turn needs, so every live turn evicts one and starts
a CLI with `--resume` (the evictions column), as spawn-per-turn does on every turn.

{table(points, sweep)}

{crossover(points, sweep)}
"""


async def measure(
    base_flags: list[str], env: dict[str, str], work: Path, sweep: Sweep
) -> list[Point]:
    """Every point of the sweep, for both modes: one server per mode, both up throughout,
    the modes taking turns point by point (in alternating order), so that a machine
    whose load drifts during the sweep weighs on both alike."""
    points: list[Point] = []
    servers: dict[str, ProxyServer] = {}
    async with contextlib.AsyncExitStack() as stack:
        for config in CONFIGS:
            place = work / f"many-{config}"
            place.mkdir(parents=True, exist_ok=True)
            server = ProxyServer([*base_flags, *flags(config, sweep)], env, place)
            servers[config] = await stack.enter_async_context(server)
        for index, (count, rounds) in enumerate(sweep.points):
            for config in CONFIGS if index % 2 == 0 else reversed(CONFIGS):
                await forget_all(servers[config])
                print(f"  {config}: {count} conversations ...", flush=True)
                points.append(await round_robin(servers[config], count, rounds, config))
    leftovers = [pid for server in servers.values() for pid in server.leftovers]
    if leftovers:
        raise RuntimeError(f"CLI processes left after the servers stopped: {leftovers}")
    return points
