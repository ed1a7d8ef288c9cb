"""Turn planning: compare a request with the ledger and decide what the CLI is sent."""

from __future__ import annotations

import enum

import msgspec

from proxy_core.conversation import Conversation, Message
from proxy_core.effort import Effort
from proxy_core.ledger import SessionRecord, fingerprints, system_hash
from proxy_core.rendering import Block, render_messages


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


class TurnPlan(msgspec.Struct, frozen=True):
    """What to run for one request.

    `prompt` is the user turn's blocks; `messages` the messages it renders (all of
    them for NEW/RESTART, exactly the new ones for CONTINUE). `seen` is the ledger
    once this turn succeeds, before our reply is appended. `effort` is the reasoning
    level the request asked for (None: the backend's default) and `json_schema` the
    schema its reply must follow (JSON text; None for free text): planning leaves
    both to the service, which sets them from the request.
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
    effort: Effort | None = None
    json_schema: str | None = None


def plan_turn(
    record: SessionRecord | None,
    conversation: Conversation,
    *,
    session_key: str,
    model: str,
    new_session_id: str,
) -> TurnPlan:
    """Decide NEW, CONTINUE (exactly the new messages) or RESTART (full history, with why).

    CONTINUE needs the same system prompt and a request whose messages extend what
    the session has seen by at least one message; anything else starts over, so two
    conversations can never mix.
    """
    seen = fingerprints(conversation.messages)
    if record is None:
        return _fresh(PlanKind.NEW, None, conversation, session_key, model, new_session_id, seen)
    reason = _divergence(record, conversation, seen)
    if reason is not None:
        return _fresh(
            PlanKind.RESTART, reason, conversation, session_key, model, new_session_id, seen
        )
    new = conversation.messages[len(record.fingerprints) :]
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
    )


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
    return msgspec.structs.replace(fresh, effort=plan.effort, json_schema=plan.json_schema)


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
