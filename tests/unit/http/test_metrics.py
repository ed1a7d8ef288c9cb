"""GET /metrics: counts that follow from the requests made, gauges read at the scrape,
bounded label values, and the protection (a key, unless opened to a scraper)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from claude_max_api.bootstrap import http_app
from claude_max_api.settings import Settings
from proxy_core import (
    BackendStatus,
    ChatService,
    Event,
    Failed,
    FailureReason,
    FakeRunner,
    Finished,
    InMemorySessionStore,
    LiveDetails,
    PlanState,
    PlanStatus,
    PlanWindow,
    ServiceLimits,
    TextDelta,
    TurnPlan,
    Usage,
)
from proxy_http.gauges import read_gauges
from tests.support.server import live_fake_server

KEY = "metrics-key-51c2"
AUTH = {"Authorization": f"Bearer {KEY}"}
USAGE = Usage(input_tokens=7, output_tokens=3, cache_read_tokens=5, cost_usd=0.0125)
CHAT = "chat.completions"


def chat_body(text: str, *, model: str = "sonnet", stream: bool = False) -> dict[str, Any]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]}


def priced_script(plan: TurnPlan) -> Sequence[Event]:
    """Replies `ok`, priced as USAGE; a message asking to fail fails before any text."""
    if "fail" in plan.messages[-1].text:
        return [Failed(FailureReason.CLI_CRASHED, "the CLI crashed")]
    return [TextDelta("o"), TextDelta("k"), USAGE, Finished("end_turn", "ok", plan.cli_session_id)]


def app_over(runner: FakeRunner, **settings: Any) -> Litestar:
    service = ChatService(runner, InMemorySessionStore())
    return http_app(service, Settings.from_values(**settings))


def client_of(app: Litestar) -> TestClient[Litestar]:
    # A loopback base URL: the test client's default Host (testserver.local) is refused.
    return TestClient(app, base_url="http://127.0.0.1")


class Scrape:
    """One /metrics answer, parsed with prometheus_client's own parser."""

    def __init__(self, text: str) -> None:
        self.families: dict[str, Metric] = {
            family.name: family for family in text_string_to_metric_families(text)
        }

    def value(self, sample: str, **labels: str) -> float | None:
        """The value of the sample named `sample` with exactly `labels` (None: absent)."""
        for family in self.families.values():
            for found in family.samples:
                if found.name == sample and found.labels == labels:
                    return float(found.value)
        return None

    def label_values(self) -> set[tuple[str, str]]:
        """Every (label, value) pair of every sample, bucket bounds aside."""
        return {
            (name, value)
            for family in self.families.values()
            for found in family.samples
            for name, value in found.labels.items()
            if name != "le"
        }


def scrape(client: TestClient[Litestar] | httpx.Client, **headers: str) -> Scrape:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(response.text)


@pytest.fixture
def served() -> Iterator[Scrape]:
    """The metrics of an app with keys after two good requests (whole, streamed), a
    whole one that fails, a streamed one that fails before showing anything, and a
    request refused 401 for want of a key."""
    with client_of(app_over(FakeRunner(priced_script), api_keys=KEY)) as client:
        assert client.post("/v1/chat/completions", json=chat_body("a"), headers=AUTH).is_success
        streamed = client.post(
            "/v1/chat/completions", json=chat_body("b", stream=True), headers=AUTH
        )
        assert "data: [DONE]" in streamed.text
        assert (
            client.post("/v1/chat/completions", json=chat_body("fail"), headers=AUTH).status_code
            == 502
        )
        failed_stream = client.post(
            "/v1/chat/completions", json=chat_body("fail", stream=True), headers=AUTH
        )
        assert failed_stream.status_code == 502
        assert client.post("/v1/chat/completions", json=chat_body("c")).status_code == 401
        yield scrape(client, **AUTH)


def test_requests_are_counted_by_endpoint_and_status_refusals_included(served: Scrape) -> None:
    assert served.value("claude_proxy_requests_total", endpoint=CHAT, status="200") == 2
    assert served.value("claude_proxy_requests_total", endpoint=CHAT, status="502") == 2
    # Refused by the key layer before any handler ran, yet counted under its surface.
    assert served.value("claude_proxy_requests_total", endpoint=CHAT, status="401") == 1


def test_every_request_has_a_latency_and_only_a_stream_that_showed_content_a_first_token(
    served: Scrape,
) -> None:
    assert served.value("claude_proxy_request_duration_seconds_count", endpoint=CHAT) == 5
    assert served.value("claude_proxy_time_to_first_token_seconds_count", endpoint=CHAT) == 1
    assert (
        served.value("claude_proxy_time_to_first_token_seconds_bucket", endpoint=CHAT, le="+Inf")
        == 1
    )


def test_tokens_and_cost_sum_the_turns_that_reported_them(served: Scrape) -> None:
    by = {"endpoint": CHAT, "model": "sonnet"}
    turns = 2
    assert served.value("claude_proxy_input_tokens_total", **by) == turns * USAGE.prompt_tokens
    assert served.value("claude_proxy_output_tokens_total", **by) == turns * USAGE.output_tokens
    assert served.value("claude_proxy_cached_input_tokens_total", **by) == turns * 5
    cost = served.value("claude_proxy_cost_usd_total", **by)
    assert cost == pytest.approx(turns * 0.0125)


def test_every_api_surface_counts_under_its_own_endpoint() -> None:
    messages = {"model": "sonnet", "max_tokens": 50, "messages": [{"role": "user", "content": "m"}]}
    with client_of(app_over(FakeRunner(priced_script))) as client:
        responses = {"model": "sonnet", "input": "r", "stream": True}
        assert client.post("/v1/responses", json=responses).is_success
        assert client.post("/v1/messages", json={**messages, "stream": True}).is_success
        assert client.post("/v1/messages/count_tokens", json=messages).is_success
        metrics = scrape(client)
    for endpoint in ("responses", "messages"):
        assert metrics.value("claude_proxy_requests_total", endpoint=endpoint, status="200") == 1
        assert (
            metrics.value("claude_proxy_time_to_first_token_seconds_count", endpoint=endpoint) == 1
        )
        by = {"endpoint": endpoint, "model": "sonnet"}
        assert metrics.value("claude_proxy_cost_usd_total", **by) == pytest.approx(0.0125)
    counted = metrics.value(
        "claude_proxy_requests_total", endpoint="messages.count_tokens", status="200"
    )
    assert counted == 1


def test_a_turn_without_a_known_cost_adds_tokens_but_no_cost() -> None:
    with client_of(app_over(FakeRunner())) as client:  # the echo script reports no cost
        assert client.post("/v1/chat/completions", json=chat_body("hi")).is_success
        metrics = scrape(client)
    assert metrics.value("claude_proxy_input_tokens_total", endpoint=CHAT, model="sonnet") == 10
    assert metrics.value("claude_proxy_cost_usd_total", endpoint=CHAT, model="sonnet") is None


def test_no_label_value_is_a_string_the_client_chose() -> None:
    with client_of(app_over(FakeRunner(priced_script))) as client:
        sent = [
            client.post(
                "/v1/chat/completions",
                json=chat_body("x", model="claude-evil-label-1"),
                headers={"X-Session-Id": "evil-session"},
            ),
            client.post("/v1/chat/completions", json=chat_body("x", model="acme/evil-model")),
            client.get("/v1/evil/path"),
            client.post("/v1/messages", json={"model": "evil", "max_tokens": 5, "messages": []}),
            client.post("/v1/chat/completions", json=chat_body("x", model="gpt-4o")),
        ]
        metrics = scrape(client)
    assert [r.status_code for r in sent] == [200, 200, 404, 400, 200]
    pairs = metrics.label_values()
    assert not [pair for pair in pairs if "evil" in pair[1]], pairs
    endpoints = {value for name, value in pairs if name == "endpoint"}
    assert endpoints == {CHAT, "messages", "other"}
    # A catalog id is its own label value (an unknown one fell back to the default,
    # sonnet, which answered); a model id passed through to the CLI is `other`.
    models = {value for name, value in pairs if name == "model"}
    assert models == {"gpt-4o", "sonnet", "other"}


def test_metrics_need_a_key_like_the_api_and_any_valid_key_will_do() -> None:
    with client_of(app_over(FakeRunner(), api_keys=KEY, admin_api_keys="admin-key-9f0e")) as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"
        assert client.get("/metrics", headers={"x-api-key": "wrong"}).status_code == 401
        scrape(client, **AUTH)
        scrape(client, Authorization="Bearer admin-key-9f0e")


def test_metrics_public_opens_metrics_alone_to_a_scraper_without_a_key() -> None:
    with client_of(app_over(FakeRunner(), api_keys=KEY, metrics_public=True)) as client:
        assert client.post("/v1/chat/completions", json=chat_body("hi"), headers=AUTH).is_success
        metrics = scrape(client)
        assert client.get("/stats").status_code == 401
        assert client.post("/v1/chat/completions", json=chat_body("hi")).status_code == 401
    assert metrics.value("claude_proxy_requests_total", endpoint=CHAT, status="200") == 1


def test_metrics_public_still_refuses_a_foreign_web_page() -> None:
    with client_of(app_over(FakeRunner(), api_keys=KEY, metrics_public=True)) as client:
        response = client.get("/metrics", headers={"Origin": "https://evil.example"})
    assert response.status_code == 403


def test_no_metrics_removes_the_path() -> None:
    app = app_over(FakeRunner(), metrics=False)
    with client_of(app) as client:
        assert client.get("/metrics").status_code == 404
        paths = client.get("/schema/openapi.json").json()["paths"]
    assert "/metrics" not in paths


def test_the_schema_lists_metrics_as_text() -> None:
    with client_of(app_over(FakeRunner())) as client:
        operation = client.get("/schema/openapi.json").json()["paths"]["/metrics"]["get"]
    assert set(operation["responses"]["200"]["content"]) == {"text/plain"}


def test_openmetrics_is_served_when_the_scraper_asks_for_it() -> None:
    with client_of(app_over(FakeRunner())) as client:
        assert client.post("/v1/chat/completions", json=chat_body("hi")).is_success
        response = client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    families = {f.name: f for f in openmetrics_families(response.text)}
    (sample,) = [s for s in families["claude_proxy_requests"].samples if s.name.endswith("_total")]
    assert (sample.labels, sample.value) == ({"endpoint": CHAT, "status": "200"}, 1)


def test_each_app_counts_its_own_requests() -> None:
    first, second = app_over(FakeRunner()), app_over(FakeRunner())
    with client_of(first) as one, client_of(second) as two:
        for _ in range(3):
            assert one.post("/v1/chat/completions", json=chat_body("hi")).is_success
        assert two.post("/v1/chat/completions", json=chat_body("hi")).is_success
        counted = [
            scrape(client).value("claude_proxy_requests_total", endpoint=CHAT, status="200")
            for client in (one, two)
        ]
    assert counted == [3, 1]


# -- gauges: read from the service at the scrape -----------------------------------------


class LiveFakeRunner(FakeRunner):
    """A FakeRunner reporting live processes and a warm pool, as the live runner does."""

    details = LiveDetails(
        path="/usr/bin/claude",
        tools="none",
        workdir="/tmp",
        live_processes=3,
        suspended_turns=2,
        live_limit=8,
        processes=4,
        waiting_for_process=1,
        live_rss_bytes=300_000_000,
        pool_ready=1,
        pool_size=2,
        pool_rss_bytes=90_000_000,
        spawned=5,
        evicted=6,
    )

    def status(self) -> BackendStatus:
        return BackendStatus(ready=True, name="fake", active_processes=4, details=self.details)


def test_process_and_pool_gauges_are_the_backend_s_figures_at_the_scrape() -> None:
    runner = LiveFakeRunner()
    with client_of(app_over(runner)) as client:
        before = scrape(client)
        runner.details = msgspec.structs.replace(
            runner.details, live_processes=1, suspended_turns=0
        )
        after = scrape(client)
    assert before.value("claude_proxy_cli_processes") == 4
    assert before.value("claude_proxy_live_processes") == 3
    assert before.value("claude_proxy_suspended_turns") == 2
    assert before.value("claude_proxy_live_processes_limit") == 8
    assert before.value("claude_proxy_turns_waiting_for_process") == 1
    assert before.value("claude_proxy_warm_pool_ready") == 1
    assert before.value("claude_proxy_warm_pool_size") == 2
    assert before.value("claude_proxy_cli_resident_memory_bytes", group="live") == 300_000_000
    assert before.value("claude_proxy_cli_resident_memory_bytes", group="pool") == 90_000_000
    assert before.value("claude_proxy_live_processes_spawned_total") == 5
    assert before.value("claude_proxy_live_processes_evicted_total") == 6
    assert (
        after.value("claude_proxy_live_processes"),
        after.value("claude_proxy_suspended_turns"),
    ) == (1, 0)


def test_the_memory_budget_gauges_appear_only_with_a_budget() -> None:
    runner = LiveFakeRunner()
    with client_of(app_over(runner)) as client:
        without = scrape(client)
        runner.details = msgspec.structs.replace(
            runner.details, memory_budget_bytes=2**30, memory_limit=5
        )
        with_budget = scrape(client)
    assert without.value("claude_proxy_live_memory_budget_bytes") is None
    assert with_budget.value("claude_proxy_live_memory_budget_bytes") == 2**30
    assert with_budget.value("claude_proxy_live_processes_memory_limit") == 5


def test_the_gauges_reader_reports_what_the_service_and_its_backend_hold() -> None:
    service = ChatService(LiveFakeRunner(), InMemorySessionStore())
    gauges = read_gauges(service)
    assert (gauges.active_turns, gauges.queued_turns, gauges.cli_processes) == (0, 0, 4)
    assert gauges.live == LiveFakeRunner.details
    assert gauges.suspended_turns == 2
    assert gauges.plan is None


def test_a_backend_without_live_processes_has_no_live_process_gauges() -> None:
    with client_of(app_over(FakeRunner())) as client:
        metrics = scrape(client)
    assert metrics.value("claude_proxy_cli_processes") == 0
    assert metrics.value("claude_proxy_suspended_turns") == 0
    assert "claude_proxy_live_processes" not in metrics.families


def test_active_and_queued_turns_are_what_the_service_holds_at_the_scrape() -> None:
    runner = FakeRunner()
    runner.gate = asyncio.Event()
    limits = ServiceLimits(max_concurrent=1, max_queued=4)
    with (
        live_fake_server(runner, limits=limits) as (server, _),
        httpx.Client(base_url=server.base_url, timeout=30) as http,
    ):
        replies: list[int] = []

        def ask(session: str) -> None:
            response = http.post(
                "/v1/chat/completions", json=chat_body("hi"), headers={"X-Session-Id": session}
            )
            replies.append(response.status_code)

        askers = [threading.Thread(target=ask, args=(name,)) for name in ("one", "two")]
        for asker in askers:
            asker.start()
        held = _poll(
            http,
            lambda m: (
                (m.value("claude_proxy_active_turns"), m.value("claude_proxy_queued_turns"))
                == (1, 1)
            ),
        )
        assert held.value("claude_proxy_concurrency_limit") == 1
        assert held.value("claude_proxy_queue_limit") == 4
        assert server.loop is not None
        server.loop.call_soon_threadsafe(runner.gate.set)
        for asker in askers:
            asker.join(30)
        after = scrape(http)
    assert replies == [200, 200]
    assert (after.value("claude_proxy_active_turns"), after.value("claude_proxy_queued_turns")) == (
        0,
        0,
    )


def _poll(http: httpx.Client, wanted: Any, tries: int = 200) -> Scrape:
    """Scrape until `wanted(scrape)` holds (a bounded number of times)."""
    for _ in range(tries):
        metrics = scrape(http)
        if wanted(metrics):
            return metrics
        time.sleep(0.05)
    raise AssertionError("the gauges never showed the held turns")


def planned_script(state: PlanState) -> Any:
    def script(plan: TurnPlan) -> Sequence[Event]:
        return [
            PlanStatus(state),
            TextDelta("ok"),
            USAGE,
            Finished("end_turn", "ok", plan.cli_session_id),
        ]

    return script


def test_plan_gauges_show_the_windows_the_last_turn_reported() -> None:
    state = PlanState(
        status="allowed_warning",
        window="five_hour",
        resets_at=1_900_000_000.0,
        windows={
            "five_hour": PlanWindow(utilization=0.82, resets_at=1_900_000_000.0),
            "seven_day": PlanWindow(utilization=0.4, resets_at=1_900_300_000.0),
        },
        using_overage=True,
        observed_at=1_899_990_000.0,
    )
    with client_of(app_over(FakeRunner(planned_script(state)))) as client:
        before = scrape(client)
        assert client.post("/v1/chat/completions", json=chat_body("hi")).is_success
        after = scrape(client)
    assert "claude_proxy_plan_status" not in before.families  # no plan seen yet
    utilization = "claude_proxy_plan_window_utilization_ratio"
    assert after.value(utilization, window="five_hour") == pytest.approx(0.82)
    assert after.value(utilization, window="seven_day") == pytest.approx(0.4)
    resets = "claude_proxy_plan_window_reset_timestamp_seconds"
    assert after.value(resets, window="seven_day") == 1_900_300_000.0
    assert after.value("claude_proxy_plan_reset_timestamp_seconds") == 1_900_000_000.0
    statuses = {
        status: after.value("claude_proxy_plan_status", status=status)
        for status in ("allowed", "allowed_warning", "rejected")
    }
    assert statuses == {"allowed": 0, "allowed_warning": 1, "rejected": 0}
    assert after.value("claude_proxy_plan_overage_in_use") == 1
    assert after.value("claude_proxy_plan_observed_timestamp_seconds") == 1_899_990_000.0
