"""The one /health probe doctor, setup-openclaw, the bench and the test servers share."""

from __future__ import annotations

from litestar import Litestar, get

from claude_max_api.probe import proxy_answers
from proxy_http.app import create_app
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
