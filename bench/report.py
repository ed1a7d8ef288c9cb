"""The benchmark's table, its ratios against the issue's targets, and docs/benchmarks.md."""

from __future__ import annotations

from dataclasses import dataclass

from bench.scenarios import Counts, MinimalSample, Sample, SurfaceSample

CONFIGS = ("live", "spawn-per-turn", "floor")


@dataclass(frozen=True)
class Ratio:
    """One target: `value` (a ratio or milliseconds) against `limit`."""

    name: str
    profile: str
    value: float | None
    limit: float
    unit: str = "x"

    @property
    def met(self) -> bool | None:
        return None if self.value is None else self.value <= self.limit

    def verdict(self) -> str:
        if self.value is None:
            return "not measured"
        if self.met:
            return "met"
        return f"missed by {(self.value / self.limit - 1) * 100:.0f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def _cpu(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.2f} ms"


def times_floor(value: float | None, floor: float | None) -> str:
    """`value` as a multiple of `floor` ("-" when either is unknown)."""
    ratio = _over(value, floor)
    return "-" if ratio is None else f"{ratio:.2f}x"


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f} MiB"


def _two_turns(sample: Sample, config: str) -> str:
    """The floor of a tool round trip: two of the floor's follow-up turns."""
    return f"{_ms(2 * sample.follow_p50)} (2 follow-ups)" if config == "floor" else "-"


def _rows(sample: Sample, config: str) -> list[str]:
    responses, messages = sample.responses, sample.messages
    return [
        _ms(sample.follow_p50),
        _ms(sample.follow_p95),
        _ms(sample.follow_plain_p50),
        _ms(sample.first_turn),
        _ms(sample.first_text),
        _ms(sample.first_text_plain),
        f"{sample.throughput:.1f} turns/s",
        _ms(sample.concurrent_p95),
        _cpu(sample.cpu_per_request),
        _mib(sample.rss_per_conversation),
        _mib(sample.pss_per_conversation),
        _ms(sample.tool_round_trip) if sample.tool_round_trip else _two_turns(sample, config),
        _cpu(sample.tool_cpu_per_request),
        _ms(None if responses is None else responses.follow_p50),
        _ms(None if responses is None else responses.first_text),
        _ms(None if responses is None else responses.tool_round_trip),
        _cpu(None if responses is None else responses.cpu_per_request),
        _ms(None if messages is None else messages.follow_p50),
        _ms(None if messages is None else messages.first_text),
        _cpu(None if messages is None else messages.cpu_per_request),
    ]


METRICS = (
    "follow-up turn p50",
    "follow-up turn p95",
    "follow-up turn p50, bare httpx client",
    "first turn (live: warm pool hit)",
    "time to first token (streamed)",
    "time to first token (streamed), bare httpx client",
    "throughput, 8 conversations x 10 turns",
    "p95 latency, 8 conversations x 10 turns",
    "proxy CPU per request (floor: its script's)",
    "RSS per live conversation",
    "PSS per live conversation (shared pages split)",
    "client tool round trip (call, result, answer)",
    "proxy CPU per request, client tool round trips",
    "/v1/responses follow-up p50 (openai SDK, whole input)",
    "/v1/responses time to first token (streamed)",
    "/v1/responses client tool round trip",
    "/v1/responses proxy CPU per request",
    "/v1/messages follow-up p50 (anthropic SDK)",
    "/v1/messages time to first token (streamed)",
    "/v1/messages proxy CPU per request",
)


def table(results: dict[str, dict[str, Sample]]) -> str:
    """A Markdown table: one row per metric, one column per (profile, configuration)."""
    columns = [(profile, config) for profile in results for config in CONFIGS]
    columns = [(p, c) for p, c in columns if c in results[p]]
    head = "| metric | " + " | ".join(f"{c} ({p})" for p, c in columns) + " |"
    rule = "|---|" + "---:|" * len(columns)
    cells = {(p, c): _rows(results[p][c], c) for p, c in columns}
    lines = [head, rule]
    for index, metric in enumerate(METRICS):
        lines.append(f"| {metric} | " + " | ".join(cells[k][index] for k in columns) + " |")
    return "\n".join(lines)


# The limits: a streamed first token and a follow-up against the floor, the
# proxy's own CPU per request; the same for a tool round trip and every surface.
FIRST_TOKEN_LIMIT = 1.3
FOLLOW_UP_LIMIT = 1.2
CPU_LIMIT_MS = 2.0


def _over(value: float | None, floor: float | None) -> float | None:
    return None if value is None or not floor else value / floor


def _millis(value: float | None) -> float | None:
    return None if value is None else value * 1000


def _surface_ratios(
    name: str, profile: str, surface: SurfaceSample | None, floor: Sample | None
) -> list[Ratio]:
    """The targets of one more surface (live, against the floor)."""
    if surface is None:
        return []
    found = [
        Ratio(
            f"{name} follow-up p50, live / floor",
            profile,
            _over(surface.follow_p50, None if floor is None else floor.follow_p50),
            FOLLOW_UP_LIMIT,
        ),
        Ratio(
            f"{name} streamed first token, live / floor",
            profile,
            _over(surface.first_text, None if floor is None else floor.first_text),
            FIRST_TOKEN_LIMIT,
        ),
    ]
    if surface.tool_round_trip is not None:
        found.append(
            Ratio(
                f"{name} client tool round trip, live / two floor follow-ups",
                profile,
                _over(surface.tool_round_trip, None if floor is None else 2 * floor.follow_p50),
                FOLLOW_UP_LIMIT,
            )
        )
    found.append(
        Ratio(
            f"{name} proxy CPU per request, live",
            profile,
            _millis(surface.cpu_per_request),
            CPU_LIMIT_MS,
            " ms",
        )
    )
    return found


def ratios(results: dict[str, dict[str, Sample]]) -> list[Ratio]:
    """The issue's targets, computed from this run's medians."""
    found: list[Ratio] = []
    for profile, by_config in results.items():
        live, spawn, floor = (by_config.get(c) for c in CONFIGS)
        if live is None:
            continue
        floor_follow = None if floor is None else floor.follow_p50
        floor_first = None if floor is None else floor.first_text
        found += [
            Ratio(
                "streamed first token, openai SDK, live / floor",
                profile,
                _over(live.first_text, floor_first),
                FIRST_TOKEN_LIMIT,
            ),
            Ratio(
                "streamed first token, bare httpx, live / floor",
                profile,
                _over(live.first_text_plain, floor_first),
                FIRST_TOKEN_LIMIT,
            ),
            Ratio(
                "follow-up p50, openai SDK, live / floor",
                profile,
                _over(live.follow_p50, floor_follow),
                FOLLOW_UP_LIMIT,
            ),
            Ratio(
                "follow-up p50, bare httpx, live / floor",
                profile,
                _over(live.follow_plain_p50, floor_follow),
                FOLLOW_UP_LIMIT,
            ),
            Ratio(
                "proxy CPU per request, live",
                profile,
                _millis(live.cpu_per_request),
                CPU_LIMIT_MS,
                " ms",
            ),
        ]
        if live.cpu_per_request is not None and floor and floor.cpu_per_request is not None:
            found.append(
                Ratio(
                    "(context) proxy CPU per request beyond the floor script's",
                    profile,
                    (live.cpu_per_request - floor.cpu_per_request) * 1000,
                    CPU_LIMIT_MS,
                    " ms",
                )
            )
        if live.tool_round_trip is not None:
            found += [
                Ratio(
                    "client tool round trip, live / two floor follow-ups",
                    profile,
                    _over(live.tool_round_trip, None if floor_follow is None else 2 * floor_follow),
                    FOLLOW_UP_LIMIT,
                ),
                Ratio(
                    "(context) client tool round trip / two follow-up turns, live",
                    profile,
                    live.tool_round_trip / (2 * live.follow_p50),
                    1.5,
                ),
                Ratio(
                    "proxy CPU per request, client tool round trips, live",
                    profile,
                    _millis(live.tool_cpu_per_request),
                    CPU_LIMIT_MS,
                    " ms",
                ),
            ]
        found += _surface_ratios("/v1/responses", profile, live.responses, floor)
        found += _surface_ratios("/v1/messages", profile, live.messages, floor)
        if spawn:
            found += [
                Ratio(
                    "follow-up p50, live / spawn-per-turn",
                    profile,
                    live.follow_p50 / spawn.follow_p50,
                    0.25,
                ),
                Ratio(
                    "first turn, live (warm pool hit) / spawn-per-turn",
                    profile,
                    live.first_turn / spawn.first_turn,
                    0.5,
                ),
            ]
    return found


def ratio_table(found: list[Ratio]) -> str:
    lines = ["| target | profile | this run | limit | verdict |", "|---|---|---:|---:|---|"]
    for ratio in found:
        value = "-" if ratio.value is None else f"{ratio.value:.2f}{ratio.unit}"
        lines.append(
            f"| {ratio.name} | {ratio.profile} | {value} | {ratio.limit:g}{ratio.unit} "
            f"| {ratio.verdict()} |"
        )
    return "\n".join(lines)


def minimal_section(minimal: MinimalSample, instant: dict[str, Sample]) -> str:
    """The minimal proxy (`bench.minimal`) beside the floor and the live proxy, all
    with the bare-httpx conversation (the floor: its script), instant profile."""
    floor, live = instant.get("floor"), instant.get("live")
    base_follow = None if floor is None else floor.follow_p50
    base_first = None if floor is None else floor.first_text

    def cells(follow: float | None, first: float | None, cpu: float | None) -> str:
        return (
            f"{_ms(follow)} | {times_floor(follow, base_follow)} | "
            f"{_ms(first)} | {times_floor(first, base_first)} | {_cpu(cpu)}"
        )

    rows = [
        "| floor (a script, no HTTP) | "
        + (cells(floor.follow_p50, floor.first_text, floor.cpu_per_request) if floor else "-")
        + " |",
        "| minimal Python proxy (`bench/minimal.py`) | "
        + cells(minimal.follow_p50, minimal.first_text, minimal.cpu_per_request)
        + " |",
        "| live proxy | "
        + (
            cells(live.follow_plain_p50, live.first_text_plain, live.cpu_per_request)
            if live
            else "-"
        )
        + " |",
    ]
    return f"""## The least a Python proxy can do

`bench/minimal.py` is a reference, not a server: bare asyncio HTTP, one CLI process
per session key with the proxy's own flags, every stdout line decoded with msgspec,
and nothing else (no framework, no ledger or durable state, no admission, time limits,
auth, logs, metrics or error handling). It runs the live proxy's bare-httpx
follow-ups and streamed turns (instant profile, a new server each repeat). Its CPU per
request is what any Python proxy of this design pays at least on this machine; the
live proxy's CPU is over all its measured turns (the SDK's and the concurrent ones
too), the minimal proxy's over its own.

| | follow-up p50 | / floor | first token | / floor | CPU per request |
|---|---:|---:|---:|---:|---:|
{chr(10).join(rows)}
"""


def markdown(
    results: dict[str, dict[str, Sample]],
    *,
    command: str,
    machine: str,
    cli_version: str,
    repeats: int,
    counts: Counts,
    seconds: float,
    notes: str,
    many: str = "",
    clients: str = "",
) -> str:
    """The whole of docs/benchmarks.md."""
    return f"""# Benchmarks

Generated by `{command}` (the harness in `bench/`), on {machine};
Claude Code CLI {cli_version}; every value is the median over {repeats} repeated runs;
the whole run took {seconds / 60:.1f} minutes.

The CLI talks to the fake Anthropic upstream (`tests/support/fake_upstream.py`, in a
process of its own) on 127.0.0.1 with two latency profiles: **instant**, and
**realistic** (300 ms to the first token, then 50 tokens/s). The proxy runs as a
subprocess on 127.0.0.1 and is driven with the official `openai` SDK; the **floor** is
one CLI process driven directly over stream-json by a minimal script, with no proxy.

Each run: one conversation with {counts.follow_ups} follow-up turns and
{counts.streamed} streamed turns (time to the first text chunk), measured once the warm
pool has refilled after the conversation's first turn took its process;
{counts.first_turns} new conversations (first-turn latency; in live mode each takes a
ready process from the warm pool, the harness waits for the pool to refill in
between); {counts.conversations} conversations x {counts.turns_each} turns at once
(throughput and p95); against the same server, {counts.follow_ups} follow-up
turns and {counts.streamed} streamed turns sent with a bare httpx client (the SDK's own
cost left out: see the clients' own time below);
{counts.tool_round_trips} client tool round trips on one conversation (a request whose
reply calls a tool, then the request with its result and the final answer: the
suspended CLI turn resumed on its live process), timed from the first request to the
final answer; and, in live mode only, the same follow-ups, streamed turns and tool
round trips through `/v1/responses` with the openai SDK (`client.responses.create`
sent the whole input every turn, `store: false`, keyed by `prompt_cache_key`: what
Codex, the Responses client this proxy serves most, does; no `previous_response_id`)
and the follow-ups and streamed turns through `/v1/messages` with the official
`anthropic` SDK. Last, once and with the instant profile only, the many-conversations
sweep (its own section below).

Proxy CPU is the server process's own user+system time (from /proc/<pid>/stat, its
CLI children excluded) over the follow-up, streamed and concurrent turns, divided by
their count (for the floor: the driving script's own CPU); for the tool round trips
and each other surface, over their own requests (two a round trip). RSS per live
conversation is the resident memory of the live CLI processes with their children (as
/health reports it) divided by their count; PSS is their proportional set size (from
/proc/<pid>/smaps_rollup): the pages they share, mostly the CLI's own executable,
split between the processes that map them, so it is what one more conversation
costs the machine.

The floor of a client tool round trip is two of the floor's follow-up turns: the round
trip is two requests, each one upstream call (the first answered by a tool call, the
second by the reply) and one stream-json exchange with the CLI, and a floor script
serving the CLI's MCP tool call itself would pay the same two upstream calls in one
CLI turn (shown in the floor column of that row).

## Results

{table(results)}

## Targets (ratios from this run)

{ratio_table(ratios(results))}

{clients}
{many}
## Notes

{notes}
"""
