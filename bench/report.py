"""The benchmark's table, its ratios against the issue's targets, and docs/benchmarks.md."""

from __future__ import annotations

from dataclasses import dataclass

from bench.scenarios import Counts, Sample

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


def _rows(sample: Sample) -> list[str]:
    return [
        _ms(sample.follow_p50),
        _ms(sample.follow_p95),
        _ms(sample.follow_plain_p50),
        _ms(sample.first_turn),
        _ms(sample.first_text),
        f"{sample.throughput:.1f} turns/s",
        _ms(sample.concurrent_p95),
        "-" if sample.cpu_per_request is None else f"{sample.cpu_per_request * 1000:.2f} ms",
        "-"
        if sample.rss_per_conversation is None
        else f"{sample.rss_per_conversation / 2**20:.0f} MiB",
        _ms(sample.tool_round_trip),
    ]


METRICS = (
    "follow-up turn p50",
    "follow-up turn p95",
    "follow-up turn p50, bare httpx client",
    "first turn (live: warm pool hit)",
    "time to first token (streamed)",
    "throughput, 8 conversations x 10 turns",
    "p95 latency, 8 conversations x 10 turns",
    "proxy CPU per request (floor: its script's)",
    "RSS per live conversation",
    "client tool round trip (call, result, answer)",
)


def table(results: dict[str, dict[str, Sample]]) -> str:
    """A Markdown table: one row per metric, one column per (profile, configuration)."""
    columns = [(profile, config) for profile in results for config in CONFIGS]
    columns = [(p, c) for p, c in columns if c in results[p]]
    head = "| metric | " + " | ".join(f"{c} ({p})" for p, c in columns) + " |"
    rule = "|---|" + "---:|" * len(columns)
    cells = {(p, c): _rows(results[p][c]) for p, c in columns}
    lines = [head, rule]
    for index, metric in enumerate(METRICS):
        lines.append(f"| {metric} | " + " | ".join(cells[k][index] for k in columns) + " |")
    return "\n".join(lines)


def ratios(results: dict[str, dict[str, Sample]]) -> list[Ratio]:
    """The issue's targets, computed from this run's medians."""
    found: list[Ratio] = []
    for profile, by_config in results.items():
        live, spawn, floor = (by_config.get(c) for c in CONFIGS)
        if live and floor:
            found.append(
                Ratio(
                    "follow-up p50, live / floor", profile, live.follow_p50 / floor.follow_p50, 1.3
                )
            )
        if live and floor and live.follow_plain_p50 is not None:
            found.append(
                Ratio(
                    "(context) follow-up p50 with a bare httpx client, live / floor",
                    profile,
                    live.follow_plain_p50 / floor.follow_p50,
                    1.3,
                )
            )
        if live and spawn:
            found.append(
                Ratio(
                    "follow-up p50, live / spawn-per-turn",
                    profile,
                    live.follow_p50 / spawn.follow_p50,
                    0.25,
                )
            )
            found.append(
                Ratio(
                    "first turn, live (warm pool hit) / spawn-per-turn",
                    profile,
                    live.first_turn / spawn.first_turn,
                    0.5,
                )
            )
        if live and live.tool_round_trip is not None:
            found.append(
                Ratio(
                    "client tool round trip / two follow-up turns, live",
                    profile,
                    live.tool_round_trip / (2 * live.follow_p50),
                    1.5,
                )
            )
        if live:
            cpu = None if live.cpu_per_request is None else live.cpu_per_request * 1000
            found.append(Ratio("proxy CPU per request, live", profile, cpu, 2.0, " ms"))
            if cpu is not None and floor and floor.cpu_per_request is not None:
                extra = cpu - floor.cpu_per_request * 1000
                found.append(
                    Ratio(
                        "proxy CPU per request beyond the floor script's",
                        profile,
                        extra,
                        2.0,
                        " ms",
                    )
                )
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
turns sent with a bare httpx client (the SDK's own cost left out); and
{counts.tool_round_trips} client tool round trips on one conversation (a request whose
reply calls a tool, then the request with its result and the final answer: the
suspended CLI turn resumed on its live process), timed from the first request to the
final answer.

Proxy CPU is the server process's own user+system time (from /proc/<pid>/stat, its
CLI children excluded) over the follow-up, streamed and concurrent turns, divided by
their count (for the floor: the driving script's own CPU); RSS per live conversation
is the resident memory of the live CLI processes (as /health reports it) divided by
their count.

## Results

{table(results)}

## Targets (ratios from this run)

{ratio_table(ratios(results))}

## Notes

{notes}
"""
