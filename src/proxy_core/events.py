"""What running one turn yields, in order: deltas and activity, then usage, then an end."""

from __future__ import annotations

import msgspec

from proxy_core.conversation import ToolCall
from proxy_core.errors import ChatError, FailureReason
from proxy_core.plan import PlanState


class TextDelta(msgspec.Struct, frozen=True, tag="text"):
    """A piece of the reply's visible text."""

    text: str


class TextRetracted(msgspec.Struct, frozen=True, tag="retracted"):
    """The last `chars` characters of the reply text yielded so far are void.

    The backend redid its reply (its upstream connection dropped mid-reply) and the
    new attempt does not continue the text already given; the attempt's own text
    follows as TextDeltas. Whoever has shown the void text cannot take it back.
    """

    chars: int


class ThinkingDelta(msgspec.Struct, frozen=True, tag="thinking"):
    """A piece of the model's reasoning, shown only to callers that asked for it."""

    text: str


class ToolActivity(msgspec.Struct, frozen=True, tag="tool"):
    """The agent used one of its own tools (name and a short summary of the input)."""

    name: str
    summary: str


class ToolCallStarted(msgspec.Struct, frozen=True, tag="tool_call"):
    """The model began a call of a client tool: the `index`-th call of this reply, its
    id and the client's own name for the function. Its arguments follow as
    ToolArguments of the same index; the Finished that ends the reply lists every call
    whole."""

    index: int
    id: str
    name: str


class ToolArguments(msgspec.Struct, frozen=True, tag="tool_arguments"):
    """A fragment of the JSON arguments of call `index`, as the model writes them."""

    index: int
    text: str


class ModelUsage(msgspec.Struct, frozen=True):
    """What one model of a turn used and cost (a turn may use several: a fallback, the
    CLI's own small-model calls)."""

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    cost_usd: float = 0.0


class Usage(msgspec.Struct, frozen=True, tag="usage"):
    """Token counts for the turn, as the upstream reported them.

    `cost_usd` is what the turn cost at API rates, as the backend priced it (None: not
    known, e.g. a turn suspended on client tool calls, whose cost the request that
    completes it reports whole); `models` splits usage and cost per model.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    cost_usd: float | None = None
    models: tuple[ModelUsage, ...] = ()

    @property
    def prompt_tokens(self) -> int:
        """All input tokens, cached or not, as OpenAI counts `prompt_tokens`."""
        return self.input_tokens + self.cache_read_tokens + self.cache_creation_tokens


class Finished(msgspec.Struct, frozen=True, tag="finished"):
    """The turn ended well.

    `stop_reason` is the upstream's (`end_turn`, `max_tokens`, ...). `session_id` is
    the backend session that now holds the conversation, when the backend knows it;
    `resume_point` is an opaque backend marker for where the next turn continues.
    `tool_calls` are the client tool calls the reply ends with (stop_reason
    `tool_use`): the backend's turn waits for their results, which the next request
    brings (each call's id is the backend's: see `pending`). `stop_sequence` is the
    caller's stop sequence the reply was cut at (stop_reason `stop_sequence`).
    `meter` is an opaque backend reading of what the session has cost so far, kept
    with the conversation and handed back in the next turn's plan, so that turn's own
    cost is known even where the backend lost its own reading (a restart).
    """

    stop_reason: str | None = None
    text: str = ""
    session_id: str | None = None
    resume_point: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    stop_sequence: str | None = None
    meter: str | None = None

    @property
    def pending(self) -> tuple[str, ...]:
        """The backend's ids of the calls its turn waits on, in the reply's order."""
        return tuple(call.id for call in self.tool_calls)


class PlanStatus(msgspec.Struct, frozen=True, tag="plan"):
    """The backend saw the account's plan windows (a subscription's rate limits)."""

    state: PlanState


class Failed(msgspec.Struct, frozen=True, tag="failed"):
    """The turn ended in a typed failure; nothing after it."""

    reason: FailureReason
    message: str
    retry_after: float | None = None


Event = (
    TextDelta
    | TextRetracted
    | ThinkingDelta
    | ToolActivity
    | ToolCallStarted
    | ToolArguments
    | Usage
    | PlanStatus
    | Finished
    | Failed
)
TerminalEvent = Finished | Failed


class ReplyCollector:
    """Gathers a turn's events into its whole reply (for callers that do not stream).

    `add` returns the Finished event when the turn ends well and raises the
    failure as a ChatError when it ends badly.
    """

    def __init__(self) -> None:
        self._text: list[str] = []
        self._thinking: list[str] = []
        self.usage = Usage()
        self.finished: Finished | None = None

    def add(self, event: Event) -> Finished | None:
        if isinstance(event, TextDelta):
            self._text.append(event.text)
        elif isinstance(event, TextRetracted):
            text = "".join(self._text)
            self._text = [text[: max(0, len(text) - event.chars)]]
        elif isinstance(event, ThinkingDelta):
            self._thinking.append(event.text)
        elif isinstance(event, Usage):
            self.usage = event
        elif isinstance(event, Failed):
            raise ChatError(event.reason, event.message, retry_after=event.retry_after)
        elif isinstance(event, Finished):
            self.finished = event
            return event
        return None

    @property
    def text(self) -> str:
        """The streamed text, or the final text when nothing was streamed."""
        streamed = "".join(self._text)
        return streamed or (self.finished.text if self.finished else "")

    @property
    def thinking(self) -> str:
        return "".join(self._thinking)

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The client tool calls the reply ended with."""
        return self.finished.tool_calls if self.finished else ()
