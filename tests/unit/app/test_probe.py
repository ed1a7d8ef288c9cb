"""The one /health probe doctor, setup-openclaw, the bench and the test servers share."""

from __future__ import annotations

from litestar import Litestar, Response, get

from claude_max_api.probe import BUSY, probe_host, proxy_answers, proxy_health
from proxy_http.app import create_app
from proxy_http.errors import AT_CAPACITY
from proxy_http.wire import ErrorBody
from tests.support.server import fake_service, free_port, live_app


def test_a_running_proxy_answers() -> None:
    with live_app(create_app(fake_service())) as server:
        assert proxy_answers(server.port)


def test_a_port_nobody_listens_on_does_not_answer() -> None:
    assert not proxy_answers(free_port(), timeout=1.0)


def test_a_server_whose_health_fails_does_not_answer() -> None:
    @get("/health", status_code=503)
    async def unwell() -> str:
        return "down"

    with live_app(Litestar([unwell])) as server:
        assert not proxy_answers(server.port)


def test_a_running_proxy_reports_its_verdict() -> None:
    with live_app(create_app(fake_service())) as server:
        assert proxy_health(server.port) == "ok"


def test_a_health_that_is_not_ours_is_not_taken_for_a_proxy() -> None:
    @get("/health")
    async def other() -> str:
        return "OK"

    with live_app(Litestar([other])) as server:
        assert proxy_health(server.port) is None
        assert not proxy_answers(server.port)


def test_a_proxy_at_its_connection_limit_is_recognised_as_busy() -> None:
    @get("/health")
    async def full() -> Response[ErrorBody]:
        # What the connection cap answers (proxy_http.connections): a 503 `server_busy`.
        return Response(AT_CAPACITY.body("At capacity."), status_code=503)

    with live_app(Litestar([full])) as server:
        assert proxy_health(server.port, timeout=0.5) == BUSY
        assert not proxy_answers(server.port, timeout=0.5)


def test_a_wildcard_bind_is_probed_on_this_machine() -> None:
    assert probe_host("0.0.0.0") == "127.0.0.1"
    assert probe_host("::") == "::1"
    assert probe_host("192.168.1.10") == "192.168.1.10"
