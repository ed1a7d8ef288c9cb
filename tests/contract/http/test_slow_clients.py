"""Slow, huge and many clients against a real `serve` process, over raw sockets.

Each limit is set small for the test and every wait has a generous bound: the tests
count what the server did (closed, answered 408, answered 503), never how fast.
"""

from __future__ import annotations

import json
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess

PATIENCE = 60.0  # far beyond every timeout set below, for a loaded machine
MB = 1_000_000


@pytest.fixture
def start_server(claude_bin: str, cli_env: dict[str, str], tmp_path: Path) -> Iterator[object]:
    """Start `serve` with extra flags (no warm pool: these tests run no turn)."""
    started: list[ServerProcess] = []

    def start(*flags: str, **options: object) -> ServerProcess:
        args = [
            "--cli-path",
            claude_bin,
            "--state-dir",
            str(tmp_path / "state"),
            "--sessions-db",
            ":memory:",
            "--pool-size",
            "0",
            *flags,
        ]
        log = tmp_path / f"server-{len(started)}.log"
        server = ServerProcess(args, env=cli_env, log_path=log, **options)  # type: ignore[arg-type]
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE)


def read_to_close(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a socket timeout fails the test)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def response_of(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def head(content_length: int, *, expect_continue: bool = False) -> bytes:
    lines = [
        "POST /v1/chat/completions HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {content_length}",
    ]
    if expect_continue:
        lines.append("Expect: 100-continue")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_half_sent_head_is_closed_without_an_answer_even_with_keys_required(
    start_server: object,
) -> None:
    server = start_server("--header-timeout", "1", "--api-keys", "k-5d1e")  # type: ignore[operator]
    with connect(server) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthoriza")
        assert read_to_close(sock) == b""
    with connect(server) as idle:  # one that says nothing at all
        assert read_to_close(idle) == b""
    assert httpx.get(server.base_url + "/health", timeout=PATIENCE).status_code == 200


def test_a_body_announced_and_never_sent_gets_408_and_the_connection_closes(
    start_server: object,
) -> None:
    server = start_server("--body-timeout", "1")  # type: ignore[operator]
    with connect(server) as sock:
        sock.sendall(head(500))
        status, headers, body = response_of(read_to_close(sock))
    assert status == 408
    assert headers["connection"] == "close"
    error = json.loads(body)["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "request_timeout")


def await_continue(sock: socket.socket) -> bytes:
    """The server's first answer to a head that expects 100-continue."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def test_bodies_beyond_the_budget_get_503_before_they_are_sent(start_server: object) -> None:
    server = start_server(  # type: ignore[operator]
        *("--max-body-bytes", str(MB), "--max-body-bytes-in-flight", str(2 * MB + MB // 2)),
        *("--body-timeout", "120"),
    )
    holders = [connect(server), connect(server)]
    try:
        # Two bodies of 1 MB are admitted: the server asks for them (100 Continue)...
        for holder in holders:
            holder.sendall(head(MB, expect_continue=True))
            assert await_continue(holder).startswith(b"HTTP/1.1 100 ")
        # ...and a third does not fit: 503 at once, though not a byte of it was sent.
        for _ in range(3):
            with connect(server) as refused:
                refused.sendall(head(MB, expect_continue=True))
                status, headers, body = response_of(read_to_close(refused))
            assert status == 503
            assert int(headers["retry-after"]) >= 1
            assert headers["connection"] == "close"
            assert json.loads(body)["error"]["code"] == "server_busy"
        # A client that leaves gives its bytes back: a new body is admitted again.
        holders.pop().close()
        admitted = False
        for _ in range(200):  # the release follows the close; count attempts, not time
            with connect(server) as again:
                again.sendall(head(MB, expect_continue=True))
                if await_continue(again).startswith(b"HTTP/1.1 100 "):
                    admitted = True
                    break
            time.sleep(0.05)
        assert admitted
    finally:
        for holder in holders:
            holder.close()


def test_connections_beyond_the_cap_get_503_and_are_closed(start_server: object) -> None:
    server = start_server("--max-connections", "3", "--header-timeout", "3")  # type: ignore[operator]
    sockets = [connect(server) for _ in range(6)]
    try:
        answers = [read_to_close(sock) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    refused = [response_of(raw) for raw in answers if raw]
    # Three were accepted (and closed at the head deadline, saying nothing); three refused.
    assert len(refused) == 3
    for status, headers, body in refused:
        assert status == 503
        assert headers["connection"] == "close"
        assert json.loads(body)["error"]["code"] == "server_busy"
    assert httpx.get(server.base_url + "/health", timeout=PATIENCE).status_code == 200


def test_running_out_of_file_descriptors_logs_a_line_not_a_traceback_per_accept(
    start_server: object,
) -> None:
    limit = 64

    def few_descriptors() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    server = start_server(  # type: ignore[operator]
        "--max-connections", "0", "--header-timeout", "60", preexec_fn=few_descriptors
    )
    held: list[socket.socket] = []
    try:
        for _ in range(limit + 40):  # more than the server can hold open
            held.append(connect(server))
        # The server can accept no more: wait until it says so in its log.
        log_path = Path(str(server.log_path))
        deadline = time.monotonic() + PATIENCE
        while "out_of_file_descriptors" not in log_path.read_text(errors="replace"):
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.2)
        time.sleep(1.5)  # let the accept loop retry a few times (it does each second)
    finally:
        for sock in held:
            sock.close()
    assert httpx.get(server.base_url + "/health", timeout=PATIENCE).status_code == 200
    # Retries of the failed accepts still wait when the server stops: its whole log counts.
    assert server.stop() == 0
    log = log_path.read_text(errors="replace")
    assert "soft=64" in log  # the hard limit was the ceiling
    assert 1 <= log.count("out_of_file_descriptors") <= 3, log[-4000:]
    assert "Traceback" not in log
    assert "out of system resource" not in log
    assert len(log) < 100_000


def test_serve_raises_the_soft_open_files_limit_to_the_hard_one_and_logs_both(
    start_server: object,
) -> None:
    def soft_below_hard() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 1024))

    server = start_server(preexec_fn=soft_below_hard)  # type: ignore[operator]
    assert server.process is not None
    limits = Path(f"/proc/{server.process.pid}/limits").read_text()
    open_files = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    assert open_files.split()[3:5] == ["1024", "1024"]
    log = server.log()
    assert "open_files_limit" in log
    assert "soft=1024 soft_before=256" in log
    # 1000 connections would not fit in 1024 descriptors with room for the rest.
    assert "max_connections_lowered" in log
