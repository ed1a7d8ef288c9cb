"""A fake Anthropic Messages API on 127.0.0.1, for driving the real `claude` CLI in tests.

Behaviour is chosen per request by markers in the last user message's own text (its
text blocks minus the `<system-reminder>` sections they start with: the CLI's own
reminder blocks hold nothing else, and a client's reminders, such as the Claude CLI's
as a client of the proxy, may reach the fake merged into the text the proxy wrote):

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
- `[[reply:TEXT]]`: the reply is exactly TEXT instead of the echo (the last such marker
  wins), so an agent client (Codex, the Claude CLI itself) gets an exact answer that
  differs from its prompt;
- `[[plan:STATUS]]`: the response carries the `anthropic-ratelimit-unified-*` headers of
  a subscription's plan windows (see `PlanWindows`) with status STATUS (`allowed`, or
  `allowed_warning`, whose 5-hour window is then 92% used);
- `[[limit:WINDOW]]` / `[[limit:WINDOW:SECONDS]]`: a refusal by an exhausted plan window:
  429 `rate_limit_error` with `-status: rejected`, WINDOW (`five_hour`, `seven_day`) as
  the representative claim, fully used, resetting in SECONDS (default 7200);
- `[[extra-usage]]`: Anthropic's 400 for subscription traffic billed as extra usage
  (`EXTRA_USAGE_MESSAGE`, "Third-party apps now draw from your extra usage...");
- `[[credit-exhausted]]`: the API's 400 for an organization with no credit left
  (`CREDIT_EXHAUSTED_MESSAGE`, "Your credit balance is too low...");
- `[[tool-use:NAME:JSON]]`: first a `tool_use` block calling tool NAME with input
  JSON (bare `[[tool-use]]` calls `Glob` with `{"pattern": "*"}`, harmless and in the
  read-only profile), its input sent as one `input_json_delta`. With `--tools ""` the
  CLI has no built-in tool to run, so use a profile that includes the tool.

Client tools (a model that calls the tools a request offers in its `tools`; the CLI
offers a client's tools as `mcp__<server>__NAME`). Call markers are read from the last
user message's own text or, when that text has no call marker and the message carries
tool_result blocks, from the text of those results (so a tool result can script the
next call):

- `[[call:NAME]]` / `[[call:NAME:JSON]]`: a `tool_use` block calling the offered tool
  named NAME or ending with `__NAME`, with input JSON, or without JSON a small valid
  input generated from the tool's `input_schema` (every property; string "example",
  integer 1, number 1.5, boolean true, one array item, first enum value or
  anyOf/oneOf branch, `$ref`s into `$defs`/`definitions` resolved). Several call
  markers give several tool_use blocks in ONE message (parallel calls), in order. Each
  input is streamed as 3 `input_json_delta` fragments; `stop_reason` is `tool_use`.
  A NAME the request does not offer: the reply is the text `tool NAME is not offered`;
- `[[say:TEXT]]`: with call markers, a text block TEXT before the tool_use blocks;
- instruction following, when there is no call marker and the last user message
  carries no tool_result: a text (the last user message's own text, else the system
  prompt) containing "Call the `NAME` tool" calls NAME; one containing "Call one of
  these tools:" followed by backticked names calls the first of them that is offered
  (none offered: `tool A or B is not offered`). The input is the first `[[args:JSON]]`
  found in any user message's text, else generated from the schema. Without a marker
  or an instruction, a request that offers tools gets the echo (a lazy model);
- a last user message carrying tool_result blocks and no call marker: the reply is
  `tool result seen: <text of each result, joined by " | ">`, each result that has
  `is_error: true` prefixed with `error: `;
- a call or args marker whose JSON does not parse: the reply is `bad marker: ...`;
- a last user message that is the proxy's transcript of a whole conversation (a fresh
  CLI session after its suspended turn was lost) is read as the model would: call
  markers and instructions only from its last message (a user's), and the tool
  messages it ends with as the tool results they report.

`FakeAnthropic.offered_tools(request)` and `FakeAnthropic.tool_results(request)` read a
recorded request's offered tool names and its last user message's tool results.

Subscription mode: with `plan` set (a `PlanWindows`), every Messages response carries
its `anthropic-ratelimit-unified-*` headers (a `plan` or `limit` marker overrides it for
that response), as Anthropic answers a CLI logged in with `CLAUDE_CODE_OAUTH_TOKEN`.

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

from tests.support.fake_tools import Block, offered_tools, text_block, tool_reply, tool_results

EXTRA_USAGE_MESSAGE = (
    "Third-party apps now draw from your extra usage, not your plan limits. "
    "Enable extra usage at claude.ai/settings/usage to keep going."
)
"""The fake's wording of Anthropic's 400 for subscription traffic outside the plan."""
CREDIT_EXHAUSTED_MESSAGE = (
    "Your credit balance is too low to access the Anthropic API. "
    "Please go to Plans & Billing to upgrade or purchase credits."
)
"""The Anthropic API's 400 for an organization with no credit left (its exact wording, which
the CLI itself recognizes)."""
_MARKER = re.compile(r"\[\[([a-z-]+)(?::([^\]]*))?\]\]")
_LEADING_REMINDERS = re.compile(r"\A(?:\s*<system-reminder>.*?</system-reminder>)+\s*", re.DOTALL)
_LIMIT_MESSAGE = "This request would exceed your account's rate limit. Please try again later."
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
    """The last user-role message's text blocks, without the reminders they start with."""
    messages = body.get("messages", []) if isinstance(body, dict) else []
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return _own_part(content) or ""
        texts = [block.get("text", "") for block in content or [] if block.get("type") == "text"]
        return "\n".join(part for part in map(_own_part, texts) if part is not None)
    return ""


def _own_part(text: str) -> str | None:
    """A text block minus the `<system-reminder>` sections it starts with; None when it
    holds nothing else (a reminder block of the CLI's own)."""
    if not text.startswith("<system-reminder>"):
        return text
    rest = _LEADING_REMINDERS.sub("", text, count=1)
    return rest if rest and not rest.startswith("<system-reminder>") else None


@dataclass(frozen=True)
class PlanWindows:
    """A subscription's plan windows, as the `anthropic-ratelimit-unified-*` headers say.

    Utilizations are 0..1; resets are seconds from the response's time. `claim` is the
    representative window (whose reset is also the overall `-reset`).
    """

    status: str = "allowed"
    five_hour: float = 0.25
    seven_day: float = 0.1
    five_hour_reset_in: float = 7200.0
    seven_day_reset_in: float = 3 * 86400.0
    claim: str = "five_hour"
    overage_status: str = "rejected"
    overage_disabled_reason: str | None = "org_level_disabled"

    def reset_at(self, window: str, now: float) -> int:
        """The epoch second at which `window` (`five_hour`, `seven_day`) resets."""
        offset = self.seven_day_reset_in if window == "seven_day" else self.five_hour_reset_in
        return round(now + offset)

    def headers(self, now: float | None = None) -> dict[str, str]:
        now = time.time() if now is None else now
        prefix = "anthropic-ratelimit-unified-"
        out = {
            "status": self.status,
            "reset": str(self.reset_at(self.claim, now)),
            "5h-status": "rejected" if self.five_hour >= 1 else "allowed",
            "5h-utilization": f"{self.five_hour:g}",
            "5h-reset": str(self.reset_at("five_hour", now)),
            "7d-status": "rejected" if self.seven_day >= 1 else "allowed",
            "7d-utilization": f"{self.seven_day:g}",
            "7d-reset": str(self.reset_at("seven_day", now)),
            "representative-claim": self.claim,
            "fallback-percentage": "0.5",
            "overage-status": self.overage_status,
        }
        if self.overage_disabled_reason:
            out["overage-disabled-reason"] = self.overage_disabled_reason
        return {prefix + name: value for name, value in out.items()}


def _marked_plan(markers: dict[str, str | None], default: PlanWindows | None) -> PlanWindows | None:
    """The plan windows a response reports: a `limit` or `plan` marker's, else the fake's."""
    if "limit" in markers:
        window, _, seconds = (markers["limit"] or "five_hour").partition(":")
        reset_in = float(seconds or 7200)
        base = default or PlanWindows()
        if window == "seven_day":
            return PlanWindows(
                status="rejected",
                five_hour=base.five_hour,
                seven_day=1.0,
                seven_day_reset_in=reset_in,
                claim="seven_day",
            )
        return PlanWindows(
            status="rejected",
            five_hour=1.0,
            seven_day=base.seven_day,
            five_hour_reset_in=reset_in,
            claim=window,
        )
    if "plan" in markers:
        status = markers["plan"] or "allowed"
        return PlanWindows(status=status, five_hour=0.92 if status == "allowed_warning" else 0.25)
    return default


@dataclass
class FakeAnthropic:
    """The fake upstream. Start it, point the CLI's ANTHROPIC_BASE_URL at `base_url`."""

    first_token_delay: float = 0.0
    tokens_per_second: float = 0.0
    plan: PlanWindows | None = None
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
        self.plan = None

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def attempt(self, text: str) -> int:
        """Count one more Messages API call for this user text; returns its number (1, 2, ...)."""
        with self._lock:
            self._attempts[text] = self._attempts.get(text, 0) + 1
            return self._attempts[text]

    @staticmethod
    def offered_tools(request: RecordedRequest) -> list[str]:
        """Names of the tools a recorded request offered the model, in order."""
        return offered_tools(request.body)

    @staticmethod
    def tool_results(request: RecordedRequest) -> list[dict[str, Any]]:
        """The tool_result blocks of a recorded request's last user message
        (`tool_use_id`, `text`, `is_error`)."""
        return tool_results(request.body)

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
        echo = f"echo (retried): {text}" if retried else f"echo: {text}"
        blocks = _reply_blocks(body, text, echo, markers)
        delay = float(markers.get("slow-first") or 0) + fake.first_token_delay
        if delay:
            time.sleep(delay)
        if "reset" in markers:
            # Ends the exchange before a status line: the client sees a dropped connection.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        plan = _marked_plan(markers, fake.plan)
        plan_headers = {} if plan is None else plan.headers()
        if "limit" in markers and plan is not None:
            # Anthropic's 429s say when to come back: here, when the window resets.
            wait = max(1, plan.reset_at(plan.claim, time.time()) - round(time.time()))
            headers = {**plan_headers, "retry-after": str(wait)}
            self._refusal(429, "rate_limit_error", _LIMIT_MESSAGE, headers)
            return
        if "extra-usage" in markers:
            self._refusal(400, "invalid_request_error", EXTRA_USAGE_MESSAGE, plan_headers)
            return
        if "credit-exhausted" in markers:
            self._refusal(400, "invalid_request_error", CREDIT_EXHAUSTED_MESSAGE, plan_headers)
            return
        if "error-once" in markers and attempt == 1:
            markers["error"] = markers["error-once"]
        if "error" in markers:
            self._error(int(markers["error"] or 500), markers.get("retry-after"))
            return
        if not body.get("stream"):
            self._json(200, _message_json(body, blocks), plan_headers)
            return
        self.send_response(200)
        for name, value in plan_headers.items():
            self.send_header(name, value)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        chunk_delay = float(markers.get("slow-stream") or 0)
        try:
            for event in _script(body, blocks, markers):
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

    def _refusal(self, status: int, kind: str, message: str, headers: dict[str, str]) -> None:
        payload = {"type": "error", "error": {"type": kind, "message": message}}
        self._json(status, payload, headers)

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


def _reply_blocks(
    body: dict[str, Any], text: str, echo: str, markers: dict[str, str | None]
) -> list[Block]:
    """The content of the reply: a `tool-use` marker's call, else a `reply` marker's
    text, else the client-tool behaviour (calls, tool results), else the echo."""
    if "tool-use" in markers:
        name, _, arguments = (markers["tool-use"] or 'Glob:{"pattern": "*"}').partition(":")
        # Sent as written (one delta), so a test may pass input the CLI must reject.
        return [_raw_tool_use(name, arguments or "{}")]
    if "reply" in markers:
        return [text_block(markers["reply"] or "")]
    return tool_reply(body, text) or [text_block(echo)]


def _raw_tool_use(name: str, arguments: str) -> Block:
    try:
        parsed = json.loads(arguments)
    except ValueError:
        parsed = {}
    block: Block = {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:20]}", "name": name}
    return {**block, "input": parsed, "_partial_json": arguments}


def _public(block: Block) -> Block:
    return {k: v for k, v in block.items() if not k.startswith("_")}


def _stop_reason(blocks: list[Block]) -> str:
    return "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"


def _usage(body: dict[str, Any], blocks: list[Block]) -> dict[str, int]:
    size = len(json.dumps(body.get("messages", [])))
    written = sum(len(b.get("text", "")) + len(json.dumps(b.get("input", ""))) for b in blocks)
    return {
        "input_tokens": max(1, size // 40),
        "output_tokens": max(1, written // 4),
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 10,
    }


def _message_json(body: dict[str, Any], blocks: list[Block]) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex[:20]}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "claude-fake"),
        "content": [_public(b) for b in blocks],
        "stop_reason": _stop_reason(blocks),
        "stop_sequence": None,
        "usage": _usage(body, blocks),
    }


Event = tuple[str, dict[str, Any]] | None


def _chunks(text: str, parts: int = 3) -> list[str]:
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _delta(index: int, delta: dict[str, Any]) -> Event:
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}


def _script(
    body: dict[str, Any], blocks: list[Block], markers: dict[str, str | None]
) -> Iterator[Event]:
    """The SSE events of one streamed response (None marks a disconnect)."""
    usage = _usage(body, blocks)
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
            yield _delta(index, {"type": "thinking_delta", "thinking": piece})
        yield _delta(index, {"type": "signature_delta", "signature": "c2lnbmF0dXJl"})
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
        index += 1
    for number, block in enumerate(blocks):
        if block["type"] == "tool_use":
            yield from _block(index, {**_public(block), "input": {}}, [])
            partial = block.get("_partial_json")
            pieces = [partial] if partial is not None else _chunks(json.dumps(block["input"]))
            for piece in pieces:
                yield _delta(index, {"type": "input_json_delta", "partial_json": piece})
        else:
            yield from _block(index, {"type": "text", "text": ""}, [])
            for n, piece in enumerate(_chunks(block["text"])):
                if "disconnect" in markers and number == 0 and n == 1:
                    yield None
                    return
                yield _delta(index, {"type": "text_delta", "text": piece})
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
        index += 1
    end = {"stop_reason": _stop_reason(blocks), "stop_sequence": None}
    yield "message_delta", {"type": "message_delta", "delta": end, "usage": usage}
    yield "message_stop", {"type": "message_stop"}


def _block(index: int, block: dict[str, Any], _: list[None]) -> Iterator[Event]:
    yield (
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )
