"""Turn planning: compare a request with the ledger and decide what the CLI is sent."""

from __future__ import annotations

import enum

import msgspec

from proxy_core.conversation import Base64Image, Conversation, Message, Role
from proxy_core.effort import Effort
from proxy_core.ledger import SessionRecord, fingerprints, system_hash
from proxy_core.rendering import Block, render_messages
from proxy_core.tools import ToolOffer, ToolResult


class PlanKind(enum.StrEnum):
    NEW = "NEW"
    CONTINUE = "CONTINUE"
    RESTART = "RESTART"


class RestartReason(enum.StrEnum):
    SYSTEM_CHANGED = "system_changed"
    HISTORY_DIVERGED = "history_diverged"
    REGENERATED = "regenerated"
    SESSION_MISSING = "session_missing"
    RESET = "reset"
    # The session's last reply called client tools, and the request goes on without
    # answering exactly those calls first: the suspended turn cannot take it.
    TOOL_TURN_ABANDONED = "tool_turn_abandoned"


class TurnPlan(msgspec.Struct, frozen=True):
    """What to run for one request.

    `prompt` is the user turn's blocks; `messages` the messages it renders (all of
    them for NEW/RESTART, exactly the new ones for CONTINUE). `seen` is the ledger
    once this turn succeeds, before our reply is appended. `effort` is the reasoning
    level the request asked for (None: the backend's default) and `json_schema` the
    schema its reply must follow (JSON text; None for free text): planning leaves
    both to the service, which sets them from the request, as it does `tools` (the
    client tools offered; None for none). `tool_results` are set when the new
    messages answer the calls the session's last reply ended with: the backend
    resumes that suspended turn with them instead of sending `prompt`. `resume_point`
    and `meter` hand a continued session's backend markers back (see `Finished`).
    """

    kind: PlanKind
    session_key: str
    cli_session_id: str
    model: str
    system: str | None
    prompt: tuple[Block, ...]
    messages: tuple[Message, ...]
    seen: tuple[str, ...]
    restart_reason: RestartReason | None = None
    resume_point: str | None = None
    meter: str | None = None
    effort: Effort | None = None
    json_schema: str | None = None
    tools: ToolOffer | None = None
    tool_results: tuple[ToolResult, ...] = ()


def plan_turn(
    record: SessionRecord | None,
    conversation: Conversation,
    *,
    session_key: str,
    model: str,
    new_session_id: str,
    seen: tuple[str, ...] | None = None,
) -> TurnPlan:
    """Decide NEW, CONTINUE (exactly the new messages) or RESTART (full history, with why).

    CONTINUE needs the same system prompt and a request whose messages extend what
    the session has seen by at least one message; anything else starts over, so two
    conversations can never mix. When the session's last reply called client tools,
    a CONTINUE must bring exactly the results of those calls (`tool_results`), which
    resume the backend's suspended turn; text-only user messages after the results go
    with the last of them (`ToolResult.notes`). `seen` are the messages' fingerprints
    when the caller has them already (see `history.HistoryMemo`).
    """
    if seen is None:
        seen = fingerprints(conversation.messages)
    if record is None:
        return _fresh(PlanKind.NEW, None, conversation, session_key, model, new_session_id, seen)
    reason = _divergence(record, conversation, seen)
    if reason is not None:
        return _fresh(
            PlanKind.RESTART, reason, conversation, session_key, model, new_session_id, seen
        )
    new = conversation.messages[len(record.fingerprints) :]
    results: tuple[ToolResult, ...] = ()
    if record.pending_calls:
        answered = _tool_results(record, conversation.messages, new)
        if answered is None:
            return _fresh(
                PlanKind.RESTART,
                RestartReason.TOOL_TURN_ABANDONED,
                conversation,
                session_key,
                model,
                new_session_id,
                seen,
            )
        results = answered
    return TurnPlan(
        kind=PlanKind.CONTINUE,
        session_key=session_key,
        cli_session_id=record.cli_session_id,
        model=model,
        system=conversation.system,
        prompt=render_messages(new),
        messages=new,
        seen=seen,
        resume_point=record.resume_point,
        meter=record.meter,
        tool_results=results,
    )


def _tool_results(
    record: SessionRecord, messages: tuple[Message, ...], new: tuple[Message, ...]
) -> tuple[ToolResult, ...] | None:
    """The results the new messages bring for the calls the session's last reply made
    (our reply is the last message the record has seen), in the backend's ids and its
    order of the calls, whatever order the client sent them in; None unless the new
    messages are tool messages answering exactly those calls, each once, followed by
    nothing but text-only user messages (which become the last result's `notes`), and
    whose images the turn can take (`_carried_images`)."""
    reply = messages[len(record.fingerprints) - 1]
    if reply.role is not Role.ASSISTANT or len(reply.tool_calls) != len(record.pending_calls):
        return None
    pairs = zip(reply.tool_calls, record.pending_calls, strict=True)
    backend = {call.id: pending for call, pending in pairs}
    answers: dict[str, ToolResult] = {}
    replies = [m for m in new if m.role is Role.TOOL]
    notes = _notes(new[len(replies) :])
    if notes is None:
        return None
    for message in replies:
        call_id = backend.get(message.tool_call_id or "")
        images = _carried_images(message)
        if call_id is None or call_id in answers or images is None:
            return None
        answers[call_id] = ToolResult(
            call_id, message.text, is_error=message.is_error, images=images
        )
    if len(answers) != len(record.pending_calls):
        return None
    ordered = [answers[call_id] for call_id in record.pending_calls]
    if notes:
        ordered[-1] = msgspec.structs.replace(ordered[-1], notes=notes)
    return tuple(ordered)


def _carried_images(message: Message) -> tuple[Base64Image, ...] | None:
    """A tool message's images as the waiting turn takes them; None when it cannot,
    and the request starts over, where the transcript carries them as image blocks:
    - an image by URL: an MCP tool result carries an image's bytes only, and fetching
      it here would make the proxy fetch what a client names;
    - any image of an error result: the CLI keeps only an error result's text (seen
      with 2.1.331), so its images would be lost without a word."""
    if message.is_error and message.images:
        return None
    images: list[Base64Image] = []
    for part in message.images:
        if not isinstance(part.source, Base64Image):
            return None
        images.append(part.source)
    return tuple(images)


def _notes(after: tuple[Message, ...]) -> tuple[str, ...] | None:
    """The texts of the user messages that follow a request's tool results; None when
    anything else follows (a tool message out of place, an assistant turn, an image),
    which the waiting turn cannot take."""
    notes: list[str] = []
    for message in after:
        if message.role is not Role.USER or message.images:
            return None
        if message.text:
            notes.append(message.text)
    return tuple(notes)


def restart_plan(
    plan: TurnPlan, conversation: Conversation, reason: RestartReason, new_session_id: str
) -> TurnPlan:
    """The same request, started over in a fresh CLI session with the full history."""
    fresh = _fresh(
        PlanKind.RESTART,
        reason,
        conversation,
        plan.session_key,
        plan.model,
        new_session_id,
        plan.seen,
    )
    return msgspec.structs.replace(
        fresh, effort=plan.effort, json_schema=plan.json_schema, tools=plan.tools
    )


def _divergence(
    record: SessionRecord, conversation: Conversation, seen: tuple[str, ...]
) -> RestartReason | None:
    if record.system_hash != system_hash(conversation.system):
        return RestartReason.SYSTEM_CHANGED
    known = record.fingerprints
    if len(seen) > len(known) and seen[: len(known)] == known:
        return None
    if len(seen) <= len(known) and known[: len(seen) - 1] == seen[:-1]:
        return RestartReason.REGENERATED
    return RestartReason.HISTORY_DIVERGED


def _fresh(
    kind: PlanKind,
    reason: RestartReason | None,
    conversation: Conversation,
    session_key: str,
    model: str,
    new_session_id: str,
    seen: tuple[str, ...],
) -> TurnPlan:
    return TurnPlan(
        kind=kind,
        session_key=session_key,
        cli_session_id=new_session_id,
        model=model,
        system=conversation.system,
        prompt=render_messages(conversation.messages),
        messages=conversation.messages,
        seen=seen,
        restart_reason=reason,
    )
