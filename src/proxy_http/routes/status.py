"""The server's own state: `GET /health` (liveness and readiness) and `GET /stats`."""

from __future__ import annotations

import time
from typing import Any, Literal

from litestar import Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.types import ControllerRouterHandler

from proxy_core import BackendDetails, ChatService, LiveDetails
from proxy_http.readiness import Readiness, ReadinessProbe
from proxy_http.routing import access_of
from proxy_http.wire import (
    BackendHealth,
    Concurrency,
    CostTotals,
    Health,
    HealthStatus,
    Performance,
    ProcessStats,
    RequestCounts,
    SessionCount,
    Stats,
    TokenCounts,
    Uptime,
    iso_time,
)

READINESS_KEY = "readiness"


@get(
    "/health",
    summary="Liveness and backend readiness",
    description=(
        "Open to all. With API keys configured, a caller without a valid key gets only "
        "`status`; the details (paths, processes, sessions) need a key."
    ),
)
async def health(
    service: NamedDependency[ChatService], state: State, request: Request[Any, Any, Any]
) -> Health | HealthStatus:
    status = service.backend_status()
    probe: ReadinessProbe | None = state.get(READINESS_KEY)
    # Never waits: the last result of the setup checks (none yet just after start-up).
    readiness = probe.current() if probe else Readiness(checked=True)
    problems = list(status.problems) + list(readiness.problems)
    verdict: Literal["ok", "degraded"] = "ok" if status.ready and not problems else "degraded"
    if access_of(request) is None:
        return HealthStatus(status=verdict)
    return Health(
        status=verdict,
        provider="claude-code-cli",
        sessions=await service.store.count(),
        active_subprocesses=status.active_processes,
        concurrency_limit=service.limits.max_concurrent,
        queued_requests=service.queued,
        timestamp=iso_time(time.time()),
        backend=BackendHealth(
            ready=status.ready,
            name=status.name,
            version=status.version,
            problems=problems,
            details=status.details,
            checks_pending=not readiness.checked,
        ),
        tracked_children=status.details.tracked_children if status.details else 0,
        orphans_killed=status.details.orphans_killed if status.details else 0,
    )


def _human(seconds: float) -> str:
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if days or hours:
        parts.append(f"{hours}h")
    if days or hours or minutes:
        parts.append(f"{minutes}m")
    parts.append(f"{secs}s")
    return " ".join(parts)


@get("/stats", summary="Request, token and latency statistics")
async def stats(service: NamedDependency[ChatService]) -> Stats:
    snapshot = await service.stats()
    return Stats(
        uptime=Uptime(ms=int(snapshot.uptime_s * 1000), human=_human(snapshot.uptime_s)),
        requests=RequestCounts(
            total=snapshot.total,
            completed=snapshot.completed,
            errors=snapshot.errors,
            active=snapshot.active,
            queued=snapshot.queued,
            by_endpoint=snapshot.by_endpoint,
        ),
        concurrency=Concurrency(limit=snapshot.concurrency_limit, active=snapshot.active),
        sessions=SessionCount(total=snapshot.sessions),
        tokens=TokenCounts(
            total_input=snapshot.input_tokens,
            total_output=snapshot.output_tokens,
            total=snapshot.input_tokens + snapshot.output_tokens,
        ),
        cost=CostTotals(total_usd=snapshot.cost_usd),
        performance=Performance(
            avg_response_ms=round(snapshot.avg_latency_ms, 1),
            p50_response_ms=round(snapshot.p50_latency_ms, 1),
            p95_response_ms=round(snapshot.p95_latency_ms, 1),
            sampled_requests=snapshot.sampled,
        ),
        processes=_process_stats(service.backend_status().details),
    )


def _process_stats(details: BackendDetails | None) -> ProcessStats | None:
    """The live-process figures a backend reports (None: it keeps no live processes)."""
    if not isinstance(details, LiveDetails):
        return None
    return ProcessStats(
        live=details.live_processes,
        live_rss_bytes=details.live_rss_bytes,
        pool_ready=details.pool_ready,
        suspended_turns=details.suspended_turns,
    )


ROUTES: tuple[ControllerRouterHandler, ...] = (health, stats)
