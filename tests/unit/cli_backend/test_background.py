"""Background tasks that outlive a request do not log under that request's id."""

from __future__ import annotations

import asyncio
import logging

import pytest
import structlog

from proxy_cli_backend.background import detached_task
from proxy_cli_backend.process import StderrTail


async def bound_fields() -> dict[str, object]:
    return dict(structlog.contextvars.get_contextvars())


async def test_a_detached_task_sees_none_of_the_fields_bound_where_it_started() -> None:
    with structlog.contextvars.bound_contextvars(request_id="req_started_it"):
        inherited = await asyncio.create_task(bound_fields())
        detached = await detached_task(bound_fields(), name="probe")
    assert inherited == {"request_id": "req_started_it"}  # what a plain task would carry
    assert detached == {}


async def test_a_cli_processes_stderr_is_not_logged_under_the_request_that_spawned_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    proc = await asyncio.create_subprocess_exec(
        "sh", "-c", "sleep 0.2; echo 'later line' >&2", stderr=asyncio.subprocess.PIPE
    )
    assert proc.stderr is not None
    with caplog.at_level(logging.DEBUG, logger="proxy_cli_backend.process"):
        with structlog.contextvars.bound_contextvars(request_id="req_spawned_it"):
            tail = StderrTail(proc.stderr, limit=1024, pid=proc.pid)
        await proc.wait()
        await tail.finish(5.0)
    lines = [r.getMessage() for r in caplog.records if "later line" in r.getMessage()]
    assert lines, "the stderr line was logged"
    assert not any("req_spawned_it" in line for line in lines)
