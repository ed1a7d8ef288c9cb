"""Request statistics a service keeps about itself."""

from __future__ import annotations

from collections import deque

import msgspec


class ServiceStats(msgspec.Struct, frozen=True):
    """A snapshot of a service's counters (latencies in milliseconds)."""

    uptime_s: float
    total: int
    completed: int
    errors: int
    active: int
    queued: int
    concurrency_limit: int
    queue_limit: int
    sessions: int
    input_tokens: int
    output_tokens: int
    avg_latency_ms: float
    p50_latency_ms: float
    p95_latency_ms: float
    sampled: int
    by_endpoint: dict[str, int] = msgspec.field(default_factory=dict)
    """Requests counted per API surface (`chat.completions`, `responses`, ...)."""
    cost_usd: float = 0.0
    """What the turns cost in USD at API rates, as the backend priced them (turns whose
    cost is not known add nothing)."""


class StatsRecorder:
    """Counts requests and keeps a bounded window of latencies for percentiles."""

    def __init__(self, window: int = 1000) -> None:
        self.total = 0
        self.completed = 0
        self.errors = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd = 0.0
        self.by_endpoint: dict[str, int] = {}
        self._latency_sum = 0.0
        self._latencies: deque[float] = deque(maxlen=window)

    def received(self, endpoint: str) -> None:
        """Count one request (of the API surface `endpoint`)."""
        self.total += 1
        self.by_endpoint[endpoint] = self.by_endpoint.get(endpoint, 0) + 1

    def completed_in(self, seconds: float) -> None:
        self.completed += 1
        self._latency_sum += seconds
        self._latencies.append(seconds)

    def latency_summary(self) -> tuple[float, float, float, int]:
        """(average, p50, p95) in ms over completed requests, and the window's size."""
        if not self._latencies:
            return 0.0, 0.0, 0.0, 0
        ordered = sorted(self._latencies)
        avg = self._latency_sum / self.completed * 1000
        return (
            avg,
            _percentile(ordered, 0.5) * 1000,
            _percentile(ordered, 0.95) * 1000,
            len(ordered),
        )

    def snapshot(
        self, *, uptime_s: float, active: int, queued: int, limits: tuple[int, int], sessions: int
    ) -> ServiceStats:
        """These counters with the caller's state; `limits`: (concurrency, queue)."""
        avg, p50, p95, sampled = self.latency_summary()
        return ServiceStats(
            uptime_s=uptime_s,
            total=self.total,
            completed=self.completed,
            errors=self.errors,
            active=active,
            queued=queued,
            concurrency_limit=limits[0],
            queue_limit=limits[1],
            sessions=sessions,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            avg_latency_ms=avg,
            p50_latency_ms=p50,
            p95_latency_ms=p95,
            sampled=sampled,
            by_endpoint=dict(self.by_endpoint),
            cost_usd=round(self.cost_usd, 10),
        )


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, -(-len(ordered) * q // 1))
    return ordered[int(rank) - 1]
