"""A fake Anthropic Messages API on 127.0.0.1, for driving the real `claude` CLI in tests.

Behaviour is chosen per request by markers in the last user message's own text
(its text blocks that do not start with `<system-reminder>`):

- no marker: echo, the reply is `echo: <text>` streamed in a few `text_delta` chunks;
- `[[slow-first:S]]`: wait S seconds before the first byte of the response;
- `[[slow-stream:S]]`: wait S seconds before each text chunk;
- `[[error:STATUS]]`: answer STATUS (400, 401, 429 with retry-after, 500, 529, ...)
  with an Anthropic-shaped error body;
- `[[retry-after:S]]`: with `error`, send `retry-after: S` (a 429 sends 7 by default);
- `[[error-once:STATUS]]`: the first request for this text answers STATUS as `error`
  does; later ones (the CLI's retries) answer the echo;
- `[[reset]]`: close the connection without answering (no status, no body), for
  every request of the turn (the CLI's non-streaming fallback included);
- `[[disconnect]]`: start streaming, then close the socket mid-stream (every time);
- `[[disconnect-once]]`: the first request for this text closes the socket mid-stream,
  later ones (the CLI's retries) answer the same reply in full;
- `[[disconnect-vary]]`: like `disconnect-once`, but later requests answer a different
  text, `echo (retried): <text>`;
- `[[thinking]]`: a thinking block, then the echo text;
- `[[tool-use:NAME:JSON]]`: first a `tool_use` block calling tool NAME with input
  JSON (bare `[[tool-use]]` calls `Glob` with `{"pattern": "*"}`, harmless and in the
  read-only profile); when the CLI sends the tool result back, the reply is
  `tool result seen: <result>`. With `--tools ""` the CLI has no tool to run, so use
  a profile that includes the tool.

Every request is recorded (path, headers, JSON body). Latency knobs for benchmarks:
`first_token_delay` (seconds before the first event) and `tokens_per_second`
(pace of the text chunks; 0 means as fast as possible).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

_MARKER = re.compile(r"\[\[([a-z-]+)(?::([^\]]*))?\]\]")
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def is_message(self) -> bool:
        """A streamed Messages API call (not count_tokens or anything else)."""
        return self.path.startswith("/v1/messages") and "count_tokens" not in self.path

    @property
    def user_text(self) -> str:
        """The last user message's own text (what the markers are read from)."""
        return own_text(self.body)


def own_text(body: Any) -> str:
    """Text blocks of the last user-role message that are not CLI reminders."""
    messages = body.get("messages", []) if isinstance(body, dict) else []
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return "" if content.startswith("<system-reminder>") else content
        texts = [
            block.get("text", "")
            for block in content or []
            if block.get("type") == "text"
            and not block.get("text", "").startswith("<system-reminder>")
        ]
        return "\n".join(texts)
    return ""


def tool_result_of(body: Any) -> str | None:
    """The text of a tool_result block in the last user message, if there is one."""
    messages = body.get("messages", []) if isinstance(body, dict) else []
    users = [m for m in messages if m.get("role") == "user"]
    if not users:
        return None
    content = users[-1].get("content")
    for block in content if isinstance(content, list) else []:
        if block.get("type") == "tool_result":
            inner = block.get("content")
            if isinstance(inner, list):
                return "".join(b.get("text", "") for b in inner if isinstance(b, dict))
            return str(inner)
    return None


@dataclass
class FakeAnthropic:
    """The fake upstream. Start it, point the CLI's ANTHROPIC_BASE_URL at `base_url`."""

    first_token_delay: float = 0.0
    tokens_per_second: float = 0.0
    requests: list[RecordedRequest] = field(default_factory=list)
    _attempts: dict[str, int] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeAnthropic is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        handler = type("Handler", (_Handler,), {"fake": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def reset(self) -> None:
        """Forget recorded requests and restore the default latency."""
        with self._lock:
            self.requests.clear()
            self._attempts.clear()
        self.first_token_delay = 0.0
        self.tokens_per_second = 0.0

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def attempt(self, text: str) -> int:
        """Count one more Messages API call for this user text; returns its number (1, 2, ...)."""
        with self._lock:
            self._attempts[text] = self._attempts.get(text, 0) + 1
            return self._attempts[text]

    @property
    def message_requests(self) -> list[RecordedRequest]:
        """The Messages API calls received, in order."""
        with self._lock:
            return [r for r in self.requests if r.is_message]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    fake: FakeAnthropic
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        return

    def do_GET(self) -> None:
        self.fake.record(RecordedRequest("GET", self.path, dict(self.headers), None))
        self._json(200, {"data": [], "has_more": False})

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.end_headers()

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        request = RecordedRequest("POST", self.path, dict(self.headers), body)
        self.fake.record(request)
        if "count_tokens" in self.path:
            self._json(200, {"input_tokens": max(1, len(raw) // 4)})
        elif self.path.startswith("/v1/messages") and isinstance(body, dict):
            self._messages(body)
        else:
            self._json(200, {})

    # -- responses ---------------------------------------------------------

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:12]}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _messages(self, body: dict[str, Any]) -> None:
        fake = self.fake
        text = own_text(body)
        markers = {m.group(1): m.group(2) for m in _MARKER.finditer(text)}
        attempt = fake.attempt(text)
        once = {"disconnect-once", "disconnect-vary"} & markers.keys()
        if once and attempt == 1:
            markers["disconnect"] = None
        retried = "disconnect-vary" in markers and attempt > 1
        reply = f"echo (retried): {text}" if retried else f"echo: {text}"
        delay = float(markers.get("slow-first") or 0) + fake.first_token_delay
        if delay:
            time.sleep(delay)
        if "reset" in markers:
            # Ends the exchange before a status line: the client sees a dropped connection.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if "error-once" in markers and attempt == 1:
            markers["error"] = markers["error-once"]
        if "error" in markers:
            self._error(int(markers["error"] or 500), markers.get("retry-after"))
            return
        if not body.get("stream"):
            self._json(200, _message_json(body, reply))
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        chunk_delay = float(markers.get("slow-stream") or 0)
        try:
            for event in _script(body, reply, markers):
                if event is None:  # the disconnect point
                    self.connection.shutdown(2)
                    return
                if event[0] == "content_block_delta":
                    time.sleep(chunk_delay + self._pace(event[1]))
                self.wfile.write(f"event: {event[0]}\ndata: {json.dumps(event[1])}\n\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            return  # the client went away (a killed CLI): nothing to do

    def _pace(self, delta_event: dict[str, Any]) -> float:
        """Seconds a chunk takes at `tokens_per_second` (about 4 characters a token)."""
        rate = self.fake.tokens_per_second
        if not rate:
            return 0.0
        delta = delta_event.get("delta", {})
        size = len(delta.get("text") or delta.get("thinking") or delta.get("partial_json") or "")
        return max(1, size // 4) / rate

    def _error(self, status: int, retry_after: str | None = None) -> None:
        kind = _ERROR_TYPES.get(status, "api_error")
        message = {
            400: "prompt is too long: 250000 tokens > 200000 maximum",
            401: "invalid x-api-key",
            429: "Number of request tokens has exceeded your rate limit",
            529: "Overloaded",
        }.get(status, "Internal server error")
        headers = {"retry-after": retry_after or "7"} if status == 429 or retry_after else {}
        if status == 429:
            headers["anthropic-ratelimit-requests-reset"] = "2030-01-01T00:00:00Z"
        payload = {"type": "error", "error": {"type": kind, "message": message}}
        self._json(status, payload, headers)


def _usage(body: dict[str, Any], reply: str) -> dict[str, int]:
    size = len(json.dumps(body.get("messages", [])))
    return {
        "input_tokens": max(1, size // 40),
        "output_tokens": max(1, len(reply) // 4),
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 10,
    }


def _message_json(body: dict[str, Any], reply: str) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex[:20]}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "claude-fake"),
        "content": [{"type": "text", "text": reply}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": _usage(body, reply),
    }


Event = tuple[str, dict[str, Any]] | None


def _chunks(text: str, parts: int = 3) -> list[str]:
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _script(body: dict[str, Any], echo: str, markers: dict[str, str | None]) -> Iterator[Event]:
    """The SSE events of one streamed response (None marks a disconnect)."""
    result = tool_result_of(body)
    # Markers come from the last user message's own text, so a tool_result message
    # (no text) never asks again; one that also carries a new prompt (the CLI merges
    # the previous turn's last tool_result into it) may.
    wants_tool = "tool-use" in markers
    tool = markers.get("tool-use") or "" if wants_tool else None
    reply = f"tool result seen: {result}" if result is not None else echo
    usage = _usage(body, reply)
    start = dict(usage)
    start["output_tokens"] = 1
    message = {
        "id": f"msg_{uuid.uuid4().hex[:20]}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "claude-fake"),
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": start,
    }
    yield "message_start", {"type": "message_start", "message": message}
    index = 0
    if "thinking" in markers:
        yield from _block(index, {"type": "thinking", "thinking": "", "signature": ""}, [])
        for piece in _chunks("Let me think about this.", 2):
            delta = {"type": "thinking_delta", "thinking": piece}
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        sig = {"type": "signature_delta", "signature": "c2lnbmF0dXJl"}
        yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": sig}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
        index += 1
    stop_reason = "end_turn"
    if tool is not None:
        name, _, arguments = (tool or 'Glob:{"pattern": "*"}').partition(":")
        tool_id = f"toolu_{uuid.uuid4().hex[:20]}"
        block: dict[str, Any] = {"type": "tool_use", "id": tool_id, "name": name, "input": {}}
        yield from _block(index, block, [])
        delta = {"type": "input_json_delta", "partial_json": arguments or "{}"}
        yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
        stop_reason = "tool_use"
    else:
        chunks = _chunks(reply)
        yield from _block(index, {"type": "text", "text": ""}, [])
        for n, piece in enumerate(chunks):
            if "disconnect" in markers and n == 1:
                yield None
                return
            delta = {"type": "text_delta", "text": piece}
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    end = {"stop_reason": stop_reason, "stop_sequence": None}
    yield "message_delta", {"type": "message_delta", "delta": end, "usage": usage}
    yield "message_stop", {"type": "message_stop"}


def _block(index: int, block: dict[str, Any], _: list[None]) -> Iterator[Event]:
    yield (
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )
