"""Test-wide settings: Hypothesis profiles (`ci` runs at least 200 examples per property),
and the server's own logging set up once, so that log lines of apps built in-process
go to the current stderr (which pytest captures per test), not to the terminal.
Loggers are not cached, so `structlog.testing.capture_logs` sees every module's lines
whatever ran before."""

import os

import pytest
from hypothesis import HealthCheck, settings

from proxy_http.logging import configure_logging

settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_configure(config: pytest.Config) -> None:
    configure_logging("console", "info", cache_loggers=False)
