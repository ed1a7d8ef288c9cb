"""The CLI's stderr is kept for error messages and logged at debug level."""

from __future__ import annotations

import asyncio
import logging

import pytest

from proxy_cli_backend.process import StderrTail


async def test_cli_stderr_is_logged_at_debug_and_kept_in_the_tail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    proc = await asyncio.create_subprocess_exec(
        "sh", "-c", "echo 'warning: something odd' >&2", stderr=asyncio.subprocess.PIPE
    )
    assert proc.stderr is not None
    with caplog.at_level(logging.DEBUG, logger="proxy_cli_backend.process"):
        tail = StderrTail(proc.stderr, limit=1024, pid=proc.pid)
        await proc.wait()
        await tail.finish(5.0)
    assert "warning: something odd" in tail.text()
    assert any(
        "warning: something odd" in r.getMessage() and r.levelno == logging.DEBUG
        for r in caplog.records
    )
