"""What a client sends cannot break the log or the stream: a real `serve` process and CLI.

Control characters in a path or a header reach the log escaped; a reply holding line or
paragraph separators reaches a line-splitting SSE reader as whole events.
"""

from __future__ import annotations

import json
import socket
import unicodedata
from pathlib import Path

import httpx

from tests.support.server import ServerProcess

PATIENCE = 120.0


def serve_args(claude_bin: str, tmp_path: Path) -> list[str]:
    return [
        *("--cli-path", claude_bin, "--state-dir", str(tmp_path / "state")),
        *("--sessions-db", ":memory:", "--pool-size", "0"),
    ]


def raw_get(port: int, target: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as sock:
        sock.sendall(
            b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_control_characters_from_paths_and_headers_reach_the_log_escaped(
    claude_bin: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    log_path = tmp_path / "server.log"
    server = ServerProcess(serve_args(claude_bin, tmp_path), env=cli_env, log_path=log_path)
    with server:
        # ESC (clear screen, set the terminal title), BEL, NUL, CR LF and a forged line.
        hostile = b"/v1/%1b%5b2J%1b%5d0;owned%07%00x%0d%0a2026-01-01%20[info]%20forged"
        assert raw_get(server.port, hostile).startswith(b"HTTP/1.1 404 ")
        # Header bytes 0x80-0xff pass HTTP parsing: C1 controls (CSI, NEL) among them.
        response = httpx.post(
            server.base_url + "/v1/chat/%1b%5b31m%00completions",
            json={"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]},
            headers={
                "User-Agent": b"agent\x9b2J\x85",  # type: ignore[dict-item]
                "X-Session-Id": b"abc\x9b31m\x85def",  # type: ignore[dict-item]
            },
            timeout=PATIENCE,
        )
        assert response.status_code == 404, response.text
        response = httpx.post(
            server.base_url + "/v1/chat/completions",
            json={"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]},
            headers={"X-Session-Id": b"abc\x9b31m\x85def"},  # type: ignore[dict-item]
            timeout=PATIENCE,
        )
        assert response.json()["error"]["param"] == "X-Session-Id"
    log = log_path.read_bytes().decode("utf-8")
    controls = {c for c in log if unicodedata.category(c) == "Cc" and c != "\n"}
    assert controls == set()
    # (The console quotes a value with spaces as Python would, doubling each `\\`.)
    assert (
        "/v1/\\\\x1b[2J\\\\x1b]0;owned\\\\x07\\\\x00x\\\\x0d\\\\x0a2026-01-01 [info] forged" in log
    )
    assert "/v1/chat/\\x1b[31m\\x00completions" in log
    assert not any(line.startswith("2026-01-01") for line in log.splitlines())


def test_a_reply_with_line_separators_streams_as_whole_events(
    claude_bin: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    text = "one\u2028two\u2029three\x85four"
    body = {"model": "sonnet", "stream": True, "messages": [{"role": "user", "content": text}]}
    with (
        ServerProcess(serve_args(claude_bin, tmp_path), env=cli_env) as server,
        httpx.stream(
            "POST", server.base_url + "/v1/chat/completions", json=body, timeout=PATIENCE
        ) as response,
    ):
        assert response.status_code == 200
        raw = b"".join(response.iter_raw())
    for separator in ("\u2028", "\u2029", "\x85"):
        assert separator.encode() not in raw
    # A reader that splits lines as str.splitlines does (httpx's iter_lines) sees only
    # whole events, and the text comes back whole.
    lines = [line for line in raw.decode().splitlines() if line]
    assert all(line.startswith("data: ") for line in lines), lines
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    reply = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text in reply
