"""Open files: the soft limit raised at start, connections capped to fit, and one log line
per interval when accept() runs out of descriptors."""

from __future__ import annotations

import asyncio
import errno
import json
import resource
import subprocess
import sys
from typing import Any

from proxy_http.open_files import (
    ACCEPT_FAILURE,
    DESCRIPTORS_RESERVED,
    AcceptFailureLog,
    connection_cap,
)


class Lines:
    """A logger that keeps what it is given."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []
        self.written = asyncio.Event()

    def error(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))
        self.written.set()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def accept_failure() -> dict[str, Any]:
    """What asyncio's accept loop hands the exception handler when descriptors run out."""
    return {
        "message": ACCEPT_FAILURE,
        "exception": OSError(errno.EMFILE, "Too many open files"),
    }


async def test_twenty_thousand_accept_failures_make_one_line() -> None:
    lines, clock = Lines(), Clock()
    handler = AcceptFailureLog(interval=10, clock=clock, logger=lines)
    loop = asyncio.get_running_loop()
    for _ in range(20_000):
        handler(loop, accept_failure())
    assert len(lines.lines) == 1
    event, fields = lines.lines[0]
    assert event == "out_of_file_descriptors"
    assert fields["repeated"] == 0
    assert "Too many open files" in fields["error"]
    assert "exc_info" not in fields
    # The next interval's first failure writes the next line, counting the rest.
    clock.now += 10
    handler(loop, accept_failure())
    assert len(lines.lines) == 2
    assert lines.lines[1][1]["repeated"] == 19_999


async def test_failures_at_the_end_of_a_burst_are_reported_when_the_interval_ends() -> None:
    lines = Lines()
    handler = AcceptFailureLog(interval=0.05, logger=lines)
    loop = asyncio.get_running_loop()
    for _ in range(500):
        handler(loop, accept_failure())
    assert len(lines.lines) == 1
    lines.written.clear()
    await asyncio.wait_for(lines.written.wait(), 10)
    assert [fields["repeated"] for _, fields in lines.lines] == [0, 499]
    await asyncio.sleep(0.2)
    assert len(lines.lines) == 2  # nothing more to say


async def test_other_loop_errors_go_to_the_previous_handler() -> None:
    seen: list[dict[str, Any]] = []
    lines = Lines()
    handler = AcceptFailureLog(lambda _, context: seen.append(context), logger=lines)
    loop = asyncio.get_running_loop()
    other = {"message": "Task exception was never retrieved", "exception": ValueError("x")}
    not_an_os_error = {"message": ACCEPT_FAILURE, "exception": RuntimeError("x")}
    handler(loop, other)
    handler(loop, not_an_os_error)
    assert seen == [other, not_an_os_error]
    assert lines.lines == []


def test_the_connection_cap_leaves_room_for_everything_else() -> None:
    assert connection_cap(1000, 1_048_576) == 1000
    assert connection_cap(1000, 1024) == 1024 - DESCRIPTORS_RESERVED
    assert connection_cap(1000, -1) == 1000  # unlimited
    assert connection_cap(0, 1024) == 0  # no cap asked for


def test_serve_raises_the_soft_open_files_limit_to_the_hard_one() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = 256 if hard == resource.RLIM_INFINITY else min(256, hard)

    def lower_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))

    code = (
        "import json, resource\n"
        "from proxy_http.open_files import raise_open_files_limit\n"
        "limit = raise_open_files_limit()\n"
        "now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]\n"
        "print(json.dumps([limit.before, limit.soft, limit.hard, now]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=lower_soft_limit,
        timeout=60,
    )
    before, soft, reported_hard, now = json.loads(result.stdout)
    assert before == low
    assert soft == now
    if hard != resource.RLIM_INFINITY:
        assert (soft, reported_hard) == (hard, hard)
    else:
        assert soft > low


async def test_accept_retries_failing_on_the_closed_listener_are_counted_not_printed() -> None:
    lines, clock = Lines(), Clock()
    handler = AcceptFailureLog(interval=10, clock=clock, logger=lines)
    loop = asyncio.get_running_loop()
    handler(loop, accept_failure())
    retry = {
        "message": "Exception in callback BaseSelectorEventLoop._start_serving(<function>, ...)",
        "exception": ValueError("Invalid file descriptor: -1"),
    }
    for _ in range(3_000):
        handler(loop, retry)
    clock.now += 10
    handler(loop, retry)
    assert [fields["repeated"] for _, fields in lines.lines] == [0, 3_000]
    handler(loop, retry)
    handler.flush()  # at exit: what the interval had not reported yet
    handler.flush()
    assert [fields["repeated"] for _, fields in lines.lines] == [0, 3_000, 1]
