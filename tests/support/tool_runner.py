"""A FakeRunner whose turns can end in client tool calls and stay suspended, as the CLI
backend's live processes do.

`ToolRunner` replies with what the test queues (`reply(...)`), or echoes. A reply with
calls streams them (ToolCallStarted, then ToolArguments fragments per call), ends with
Finished("tool_use", tool_calls=...) and leaves its session *suspended*
waiting for exactly those ids. A plan with `tool_results` is answered only when its
session is suspended with exactly those ids (in that order) at the same resume point;
anything else is Failed(SESSION_MISSING), as the real runner reports a suspended turn
that is gone. A turn is suspended once its Finished is handed on (a caller that closes
the turn before that leaves nothing waiting). `lose()` drops every suspended turn
(expiry, a server restart, an eviction).

`violations` lists what the core should never ask: a plain prompt sent into a
suspended turn (the real runner would end that turn and resume the session from its
transcript, so it means the core lost track of the pending calls), or results resumed
at another resume point.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field

from proxy_core import (
    Event,
    Failed,
    FailureReason,
    FakeRunner,
    Finished,
    PlanKind,
    TextDelta,
    ToolArguments,
    ToolCall,
    ToolCallStarted,
    TurnPlan,
    Usage,
)


@dataclass(frozen=True)
class Call:
    """A call the fake model makes: the tool's name and its arguments (JSON text)."""

    name: str
    arguments: str = "{}"


@dataclass(frozen=True)
class Reply:
    """What the fake model answers one turn: text, then calls (if any); or a failure."""

    text: str = ""
    calls: tuple[Call, ...] = ()
    fail: FailureReason | None = None


@dataclass
class Suspended:
    """A session whose turn waits for the results of `pending` (the backend's ids)."""

    pending: tuple[str, ...]
    resume_point: str
    calls: tuple[ToolCall, ...] = field(default=())


def args(**values: object) -> str:
    """Arguments as the model writes them: compact JSON."""
    return json.dumps(values, separators=(",", ":"))


class ToolRunner(FakeRunner):
    """A scripted runner that models suspended tool turns (see the module docstring)."""

    def __init__(self, *, delay: float = 0.0, fragment: int = 5) -> None:
        super().__init__(self._script, delay=delay)
        self.replies: deque[Reply] = deque()
        self.suspended: dict[str, Suspended] = {}
        self.violations: list[str] = []
        self.resumed: list[TurnPlan] = []  # plans that resumed a suspended turn
        self.missing: list[TurnPlan] = []  # tool_results plans answered SESSION_MISSING
        self._fragment = fragment
        self._ids = itertools.count(1)

    def reply(self, *replies: Reply) -> None:
        """Queue what the next turns answer (one Reply each; echo once they run out)."""
        self.replies.extend(replies)

    def lose(self) -> None:
        """Every suspended turn is gone (its process expired, was evicted or restarted)."""
        self.suspended.clear()

    async def forget(self, cli_session_id: str, *, purge: bool = False) -> bool:
        # A forgotten session's suspended turn is ended with it.
        self.suspended.pop(cli_session_id, None)
        return await super().forget(cli_session_id, purge=purge)

    async def run(self, plan: TurnPlan) -> AsyncGenerator[Event, None]:
        async with aclosing(super().run(plan)) as events:
            async for event in events:
                if isinstance(event, Finished) and event.pending:
                    resume_point = event.resume_point or ""
                    waiting = Suspended(event.pending, resume_point, event.tool_calls)
                    self.suspended[plan.cli_session_id] = waiting
                yield event

    def _script(self, plan: TurnPlan) -> Sequence[Event]:
        session = plan.cli_session_id
        if plan.tool_results:
            waiting = self.suspended.pop(session, None)
            answered = tuple(result.call_id for result in plan.tool_results)
            if waiting is None or waiting.pending != answered:
                self.missing.append(plan)
                return [Failed(FailureReason.SESSION_MISSING, "the suspended turn is gone")]
            if waiting.resume_point != plan.resume_point:
                self.violations.append(f"resume point {plan.resume_point} of {session}")
            self.resumed.append(plan)
        elif plan.kind is PlanKind.CONTINUE and session in self.suspended:
            self.violations.append(f"a prompt sent into the suspended turn of {session}")
            self.suspended.pop(session)
        reply = self.replies.popleft() if self.replies else Reply(_echo(plan))
        if reply.fail is not None:
            return [Failed(reply.fail, "the fake model failed")]
        return self._events(plan, reply)

    def _events(self, plan: TurnPlan, reply: Reply) -> list[Event]:
        events: list[Event] = [TextDelta(reply.text)] if reply.text else []
        calls: list[ToolCall] = []
        for index, call in enumerate(reply.calls):
            call_id = f"toolu_{next(self._ids):04d}"
            calls.append(ToolCall(call_id, call.name, call.arguments))
            events.append(ToolCallStarted(index, call_id, call.name))
            step = self._fragment
            events += [
                ToolArguments(index, call.arguments[at : at + step])
                for at in range(0, len(call.arguments), step)
            ]
        events.append(Usage(input_tokens=10, output_tokens=1 + len(reply.text) // 4))
        resume_point = f"rp-{next(self._ids)}"
        stop = "tool_use" if calls else "end_turn"
        events.append(
            Finished(
                stop,
                # As the CLI backend's: a reply that suspends at calls has streamed its
                # text and has no final result of its own.
                "" if calls else reply.text,
                plan.cli_session_id,
                resume_point=resume_point,
                tool_calls=tuple(calls),
            )
        )
        return events


def _echo(plan: TurnPlan) -> str:
    """The default reply: what the turn was given, named (results or the last message)."""
    if plan.tool_results:
        return "results: " + "; ".join(r.text for r in plan.tool_results)
    return "echo: " + (plan.messages[-1].text if plan.messages else "")
