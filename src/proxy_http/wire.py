"""OpenAI wire types: every request and response body the HTTP adapter speaks.

The chat request is `proxy_core.openai_wire.ChatCompletionRequest` (re-exported
here): its messages, content parts and options are typed, so a bad field fails
decoding with msgspec naming its path (`messages[3].content[1].type`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import msgspec

# The request is the core's, typed once for every caller; its names stay importable here.
from proxy_core.openai_wire import IGNORED_REQUEST_FIELDS as IGNORED_REQUEST_FIELDS
from proxy_core.openai_wire import ChatCompletionRequest as ChatCompletionRequest
from proxy_core.ports import BackendDetails


def iso_time(seconds: float) -> str:
    """A Unix time as ISO 8601 in UTC (`2026-12-02T03:04:05.123456Z`), as every body
    and log line writes times."""
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


# -- chat completions ----------------------------------------------------------

FinishReason = Literal["stop", "length", "tool_calls", "function_call"]


class PromptTokensDetails(msgspec.Struct, frozen=True):
    cached_tokens: int = 0


class CompletionUsage(msgspec.Struct, frozen=True):
    """OpenAI's usage, plus `cost`: what the turn cost in USD at API rates, left out when
    it is not known (never a made-up 0)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails = msgspec.field(default_factory=PromptTokensDetails)
    cost: float | msgspec.UnsetType = msgspec.UNSET


class FunctionCallOut(msgspec.Struct, frozen=True):
    """The function a tool call names, with its arguments as JSON text."""

    name: str
    arguments: str


class ToolCallOut(msgspec.Struct, frozen=True):
    """One call of a client tool in a reply."""

    id: str
    function: FunctionCallOut
    type: Literal["function"] = "function"


class AssistantMessage(msgspec.Struct, frozen=True, omit_defaults=True):
    """The reply; `reasoning_content` only appears when thinking was asked for. A reply
    that calls tools has `tool_calls` (or the legacy `function_call`), and its content
    is null when it wrote no text."""

    role: Literal["assistant"]
    content: str | None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallOut] | None = None
    function_call: FunctionCallOut | None = None


class Choice(msgspec.Struct, frozen=True):
    index: int
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: None = None


class ChatCompletion(msgspec.Struct, frozen=True):
    """A non-streamed `chat.completion`."""

    id: str
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    object: Literal["chat.completion"] = "chat.completion"
    system_fingerprint: str | None = None


class FunctionDelta(msgspec.Struct, frozen=True, omit_defaults=True):
    """A streamed call's function: its name in the call's first chunk, then fragments
    of its arguments."""

    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(msgspec.Struct, frozen=True, omit_defaults=True):
    """A piece of call `index`: its first chunk has `id`, `type` and the name."""

    index: int
    function: FunctionDelta
    id: str | None = None
    type: Literal["function"] | None = None


class Delta(msgspec.Struct, frozen=True, omit_defaults=True):
    """What one chunk adds; absent fields are left out of the JSON."""

    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    function_call: FunctionDelta | None = None


class ChunkChoice(msgspec.Struct, frozen=True):
    index: int
    delta: Delta
    finish_reason: FinishReason | None = None
    logprobs: None = None


class ChatCompletionChunk(msgspec.Struct, frozen=True):
    """One streamed `chat.completion.chunk`.

    As OpenAI does it: without `include_usage` no chunk has a `usage` field (UNSET
    leaves it out); with it, every chunk has `"usage": null` but the last one, which
    has no choices and the turn's usage.
    """

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | msgspec.UnsetType | None = msgspec.UNSET


# -- errors ------------------------------------------------------------------


class ErrorDetail(msgspec.Struct, frozen=True):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(msgspec.Struct, frozen=True):
    """OpenAI's error shape: `{"error": {"message", "type", "param", "code"}}`."""

    error: ErrorDetail


# -- models --------------------------------------------------------------------


class Model(msgspec.Struct, frozen=True):
    id: str
    created: int
    object: Literal["model"] = "model"
    owned_by: str = "anthropic"


class ModelList(msgspec.Struct, frozen=True):
    data: list[Model]
    object: Literal["list"] = "list"


class AnthropicModel(msgspec.Struct, frozen=True):
    """A model as the Anthropic Models API shows it."""

    id: str
    display_name: str
    created_at: str
    type: Literal["model"] = "model"


class AnthropicModelList(msgspec.Struct, frozen=True):
    """A page of the Anthropic Models API's list."""

    data: list[AnthropicModel]
    has_more: bool
    first_id: str | None
    last_id: str | None


# -- health and stats (camelCase shapes, a public contract) -------------------------


class BackendHealth(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """Backend readiness: whether the CLI was found, its version, what is wrong.

    `details` are the backend's own facts (live CLI processes, their memory, the pool),
    left out when it reports none. `checks_pending` is true (else left out) until the
    setup checks' first run has finished: their problems are not in `problems` yet.
    """

    ready: bool
    name: str
    version: str | None
    problems: list[str]
    details: BackendDetails | None = None
    checks_pending: bool = False


class HealthStatus(msgspec.Struct, frozen=True):
    """`/health` for a caller without a valid key when keys are configured: the verdict
    only, since the details (paths, processes, sessions) are for key holders."""

    status: Literal["ok", "degraded"]


class Health(msgspec.Struct, frozen=True, rename="camel"):
    status: Literal["ok", "degraded"]
    provider: str
    sessions: int
    active_subprocesses: int
    concurrency_limit: int
    queued_requests: int
    timestamp: str
    backend: BackendHealth
    tracked_children: int = 0  # CLI processes the watchdog tracks
    orphans_killed: int = 0  # processes it killed for outliving their turn


class Uptime(msgspec.Struct, frozen=True):
    ms: int
    human: str


class RequestCounts(msgspec.Struct, frozen=True, rename="camel"):
    total: int
    completed: int
    errors: int
    active: int
    queued: int
    by_endpoint: dict[str, int] = msgspec.field(default_factory=dict)
    """Requests per API surface: `chat.completions`, `responses`, `messages`, ..."""


class Concurrency(msgspec.Struct, frozen=True):
    limit: int
    active: int


class SessionCount(msgspec.Struct, frozen=True):
    total: int


class TokenCounts(msgspec.Struct, frozen=True, rename="camel"):
    total_input: int
    total_output: int
    total: int


class CostTotals(msgspec.Struct, frozen=True, rename="camel"):
    """What the turns served since start cost in USD at API rates (`totalUsd`)."""

    total_usd: float


class Performance(msgspec.Struct, frozen=True, rename="camel"):
    avg_response_ms: float
    p50_response_ms: float
    p95_response_ms: float
    sampled_requests: int


class ProcessStats(msgspec.Struct, frozen=True):
    """Live CLI processes kept between turns, and their resident memory (0 per turn);
    `suspended_turns` are those waiting for a client's tool results."""

    live: int = 0
    live_rss_bytes: int = 0
    pool_ready: int = 0
    suspended_turns: int = 0


class Stats(msgspec.Struct, frozen=True, omit_defaults=True):
    uptime: Uptime
    requests: RequestCounts
    concurrency: Concurrency
    sessions: SessionCount
    tokens: TokenCounts
    cost: CostTotals
    performance: Performance
    processes: ProcessStats | None = None  # only when the backend keeps live processes


# -- sessions ------------------------------------------------------------------


class SessionInfo(msgspec.Struct, frozen=True, rename="camel"):
    """One conversation; `external_id` is the session key (`h:<header>`, `u:<user>`, ...)."""

    external_id: str
    claude_session_id: str
    model: str
    message_count: int
    created_at: str
    last_used_at: str


class SessionList(msgspec.Struct, frozen=True):
    sessions: list[SessionInfo]
    total: int


class SessionsReset(msgspec.Struct, frozen=True):
    """`DELETE /v1/sessions`: how many conversations were forgotten, and how many of
    their transcripts were really deleted (with `purge=true`)."""

    deleted: int
    purged: int = 0


class SessionDeleted(msgspec.Struct, frozen=True, rename="camel"):
    """`DELETE /v1/sessions/{id}`: the key that was forgotten; `purged` says whether its
    transcript was really deleted (false when asked but nothing was there or it failed)."""

    deleted: bool
    external_id: str
    purged: bool
