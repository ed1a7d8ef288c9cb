"""Prometheus metrics: what the requests did, and the server's state at each scrape.

Each app has its own `ProxyMetrics` (its own `CollectorRegistry`, never the global
one), so several apps live in one process without clashing. Requests are counted by
the request log (`RequestLogMiddleware` tells `ProxyMetrics.observe` of each one it
ends, refused ones included), from the facts the request noted; the gauges are read
from the service when scraped (`gauges.read_gauges`), never kept in sync by hand.

Label values are bounded: `endpoint` is an API surface's name or `other`, `status` an
HTTP status, `model` an id of the model catalog or `other`; nothing a client writes
becomes a label value of its own. docs/metrics.md lists every family.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from litestar import Litestar
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from proxy_core import ChatService, ModelCatalog, PlanState
from proxy_core.plan import ALLOWED, REJECTED, WARNING
from proxy_http.gauges import ServerGauges, read_gauges
from proxy_http.logging import FinishedRequest
from proxy_http.routing import ENDPOINT_KEY

__all__ = ["METRICS_KEY", "METRICS_PATH", "PREFIX", "ProxyMetrics", "endpoint_table"]

METRICS_PATH = "/metrics"
METRICS_KEY = "metrics"
"""Where the app's state keeps its `ProxyMetrics` (absent: metrics are off)."""
PREFIX = "claude_proxy_"
OTHER = "other"
"""The label value of every endpoint or model outside the bounded set."""

# A turn takes from a second to minutes; a refusal or a scrape, milliseconds.
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
FIRST_TOKEN_BUCKETS = (0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 30, 60, 120)

PLAN_STATUSES = (ALLOWED, WARNING, REJECTED)

EndpointTable = Mapping[tuple[str, str], str]
"""(method, path) -> the API surface a fixed path serves (see `endpoint_table`)."""


def endpoint_table(app: Litestar) -> dict[tuple[str, str], str]:
    """The API surface of each fixed path and method of `app` (its handler's `opt`), so a
    request refused before its handler ran (401, 413, ...) still counts under it."""
    table: dict[tuple[str, str], str] = {}
    for route in app.routes:
        if "{" in route.path:
            continue
        for handler in getattr(route, "route_handlers", ()):
            endpoint = handler.opt.get(ENDPOINT_KEY)
            if endpoint is not None:
                for method in handler.http_methods:
                    table[(method, route.path)] = str(endpoint)
    return table


class ProxyMetrics:
    """One app's metrics: request counters and histograms fed by `observe`, and the
    server's gauges, read from `service` at every scrape."""

    def __init__(self, service: ChatService, endpoints: EndpointTable | None = None) -> None:
        self.registry = CollectorRegistry()
        self._catalog: ModelCatalog = service.catalog
        self._endpoints = dict(endpoints or {})
        by_endpoint = ["endpoint"]
        by_model = ["endpoint", "model"]
        registry = self.registry
        self.requests = Counter(
            PREFIX + "requests_total",
            "Requests answered, by API surface and HTTP status (refusals included).",
            ["endpoint", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            PREFIX + "request_duration_seconds",
            "Seconds from a request's arrival to the end of its answer.",
            by_endpoint,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.first_token = Histogram(
            PREFIX + "time_to_first_token_seconds",
            "Seconds from a streamed request's arrival until its first reply content "
            "(or its end, when it has none) is sent.",
            by_endpoint,
            buckets=FIRST_TOKEN_BUCKETS,
            registry=registry,
        )
        self.input_tokens = Counter(
            PREFIX + "input_tokens_total",
            "Input tokens of the turns (prompt_tokens: cached ones included).",
            by_model,
            registry=registry,
        )
        self.output_tokens = Counter(
            PREFIX + "output_tokens_total",
            "Output tokens of the turns (completion_tokens).",
            by_model,
            registry=registry,
        )
        self.cached_tokens = Counter(
            PREFIX + "cached_input_tokens_total",
            "Input tokens read from the prompt cache (part of the input tokens).",
            by_model,
            registry=registry,
        )
        self.cost = Counter(
            PREFIX + "cost_usd_total",
            "What the turns cost at API rates, in US dollars, as the CLI priced them.",
            by_model,
            registry=registry,
        )
        registry.register(ServerStateCollector(lambda: read_gauges(service)))

    def observe(self, finished: FinishedRequest) -> None:
        """Count one request the request log ended (a `RequestObserver`)."""
        facts = finished.facts
        endpoint = self._endpoint(finished)
        self.requests.labels(endpoint, str(finished.status)).inc()
        self.latency.labels(endpoint).observe(finished.latency)
        if finished.first_content is not None:
            self.first_token.labels(endpoint).observe(finished.first_content)
        if facts.get("prompt_tokens") is None:
            return  # no turn ran to report its usage
        model = self._model(facts.get("model"))
        for counter, fact in (
            (self.input_tokens, "prompt_tokens"),
            (self.output_tokens, "completion_tokens"),
            (self.cached_tokens, "cached_tokens"),
            (self.cost, "cost_usd"),
        ):
            value = facts.get(fact)
            if isinstance(value, int | float) and value >= 0:
                counter.labels(endpoint, model).inc(value)

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The metrics in the format `accept` asks for (Prometheus text by default,
        OpenMetrics when asked), and its content type."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type

    def _endpoint(self, finished: FinishedRequest) -> str:
        noted = finished.facts.get("endpoint")
        if isinstance(noted, str):
            return noted
        return self._endpoints.get((finished.method, finished.path), OTHER)

    def _model(self, model: Any) -> str:
        """A catalog id as itself; anything else (a client's free string) as `other`."""
        if isinstance(model, str) and self._catalog.get(model) is not None:
            return model
        return OTHER


class ServerStateCollector:
    """The server's gauges, read when scraped (a prometheus_client custom collector)."""

    def __init__(self, read: Callable[[], ServerGauges]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        gauges = self._read()
        yield from _admission_families(gauges)
        yield from _process_families(gauges)
        if gauges.plan is not None:
            yield from _plan_families(gauges.plan)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, documentation, value=value)


def _admission_families(gauges: ServerGauges) -> Iterator[Metric]:
    yield _gauge("active_turns", "Turns running now.", gauges.active_turns)
    yield _gauge(
        "queued_turns",
        "Turns admitted and waiting for a slot or for their conversation's previous turn.",
        gauges.queued_turns,
    )
    yield _gauge("concurrency_limit", "Most turns run at once.", gauges.concurrency_limit)
    yield _gauge("queue_limit", "Most turns waiting at once.", gauges.queue_limit)
    yield _gauge(
        "suspended_turns",
        "Turns waiting on their client's tool results (a live process each).",
        gauges.suspended_turns,
    )


def _process_families(gauges: ServerGauges) -> Iterator[Metric]:
    yield _gauge(
        "cli_processes",
        "CLI processes held (live, pooled and ending ones; per-turn: running turns).",
        gauges.cli_processes,
    )
    live = gauges.live
    if live is None:
        return
    yield _gauge("live_processes", "Live CLI processes, one per conversation.", live.live_processes)
    yield _gauge("live_processes_limit", "Most CLI processes at once.", live.live_limit)
    yield _gauge(
        "turns_waiting_for_process",
        "Turns waiting for a CLI process to be free.",
        live.waiting_for_process,
    )
    yield _gauge("warm_pool_ready", "Warm CLI processes ready for a conversation.", live.pool_ready)
    yield _gauge("warm_pool_size", "Warm CLI processes the pool keeps.", live.pool_size)
    memory = GaugeMetricFamily(
        PREFIX + "cli_resident_memory_bytes",
        "Resident memory of the CLI processes (with their children), by group.",
        labels=["group"],
    )
    memory.add_metric(["live"], live.live_rss_bytes)
    memory.add_metric(["pool"], live.pool_rss_bytes)
    yield memory
    yield CounterMetricFamily(
        PREFIX + "live_processes_spawned",
        "CLI processes started for a turn (not taken from the pool).",
        value=live.spawned,
    )
    yield CounterMetricFamily(
        PREFIX + "live_processes_evicted",
        "Idle live CLI processes ended to make room (--live-max, --live-memory-mb).",
        value=live.evicted,
    )
    if live.memory_budget_bytes:
        yield _gauge(
            "live_memory_budget_bytes",
            "The live processes' memory budget.",
            live.memory_budget_bytes,
        )
        yield _gauge(
            "live_processes_memory_limit",
            "CLI processes the memory budget allows now (their mean size measured).",
            live.memory_limit,
        )


def _plan_families(plan: PlanState) -> Iterator[Metric]:
    status = GaugeMetricFamily(
        PREFIX + "plan_status",
        "The plan's status as last reported: 1 for the current one, 0 for the others.",
        labels=["status"],
    )
    for name in (*PLAN_STATUSES, *([plan.status] if plan.status not in PLAN_STATUSES else [])):
        status.add_metric([name], 1.0 if name == plan.status else 0.0)
    yield status
    utilization = GaugeMetricFamily(
        PREFIX + "plan_window_utilization_ratio",
        "Share of each plan window used (0 to 1), by window (five_hour, seven_day, ...).",
        labels=["window"],
    )
    resets = GaugeMetricFamily(
        PREFIX + "plan_window_reset_timestamp_seconds",
        "When each plan window resets (Unix time), by window.",
        labels=["window"],
    )
    for name, window in sorted(plan.windows.items()):
        if window.utilization is not None:
            utilization.add_metric([name], window.utilization)
        if window.resets_at is not None:
            resets.add_metric([name], window.resets_at)
    yield utilization
    yield resets
    if plan.resets_at is not None:
        yield _gauge(
            "plan_reset_timestamp_seconds",
            "When the representative (binding) plan window resets (Unix time).",
            plan.resets_at,
        )
    yield _gauge(
        "plan_overage_in_use",
        "1 while turns draw on extra usage (overage), else 0.",
        1.0 if plan.using_overage else 0.0,
    )
    yield _gauge(
        "plan_observed_timestamp_seconds",
        "When the plan state was last reported by the upstream (Unix time).",
        plan.observed_at,
    )
