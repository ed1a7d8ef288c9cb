"""A state machine over tool turns: whatever a client does with calls, results, edits
and lost suspended turns, the ledger stays true.

The model is the conversation the client holds; the fake model's replies (text, or
text and 1-3 calls) are chosen by the test. After every step: the ledger equals the
client's history plus our last reply as the client echoes it; its pending calls are
that reply's calls; nothing is left running and the backend was never sent a prompt
into a suspended turn. Each request is checked as it runs: a CONTINUE sends exactly
the new messages; a plan resumes a suspended turn (`tool_results`) only when the
request answers exactly its pending calls, in the backend's order; a NEW or RESTART
prompt parses back to the client's whole history.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from proxy_core import (
    ChatError,
    ChatRequest,
    ChatService,
    Completion,
    FailureReason,
    InMemorySessionStore,
    PlanKind,
    RestartReason,
    ToolCall,
    ToolResult,
    parse_conversation,
    parse_rendering,
)
from proxy_core.ledger import fingerprints
from tests.support.tool_runner import Call, Reply, ToolRunner

KEY = "h:conversation"
NAMES = ("weather", "time", "search")
TOOLS = [
    {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
    for name in NAMES
]
Message = dict[str, Any]

texts = st.text(max_size=12)
arguments = st.dictionaries(
    st.sampled_from(["city", "n", "q"]),
    st.one_of(st.integers(-5, 5), st.text(max_size=5), st.booleans()),
    max_size=2,
)
calls = st.lists(
    st.builds(
        lambda name, values: Call(name, json.dumps(values, separators=(",", ":"))),
        st.sampled_from(NAMES),
        arguments,
    ),
    min_size=1,
    max_size=3,
)
# What the fake model answers a turn: text alone, or text (maybe none) and calls.
replies = st.one_of(
    st.builds(Reply, texts),
    st.builds(lambda text, made: Reply(text, tuple(made)), texts, calls),
)


class ToolConversationMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.runner = ToolRunner()
        self.service = ChatService(self.runner, InMemorySessionStore())
        self.history: list[Message] = []  # what the client holds, our replies echoed
        self.confirmed: list[Message] | None = None  # what the ledger holds, our reply last
        self.calls: tuple[ToolCall, ...] = ()  # the calls our last recorded reply made

    def teardown(self) -> None:
        self.loop.close()

    # -- the client ----------------------------------------------------------------

    @property
    def pending(self) -> tuple[ToolCall, ...]:
        """The calls the client must answer before it may go on (its last message is
        our reply and made them)."""
        last = self.history[-1] if self.history else None
        if last is None or last["role"] != "assistant" or not last.get("tool_calls"):
            return ()
        return tuple(
            ToolCall(c["id"], c["function"]["name"], c["function"]["arguments"])
            for c in last["tool_calls"]
        )

    def _send(self, messages: list[Message], reply: Reply) -> Completion | None:
        """Send `messages` with the model answering `reply`; check the plans it ran."""
        before = len(self.runner.plans)
        self.runner.replies.clear()
        self.runner.reply(reply)
        request = ChatRequest(
            model="sonnet", messages=messages, session_id="conversation", tools=TOOLS
        )
        expected = self._expected(messages)
        failure: ChatError | None = None
        try:
            completion: Completion | None = self.loop.run_until_complete(
                self.service.complete(request)
            )
        except ChatError as error:
            failure, completion = error, None
        # Only the model's own failure fails a turn: a lost suspended turn never does.
        assert failure is None or reply.fail is not None, failure
        self._check_plans(messages, self.runner.plans[before:], expected)
        if completion is None:
            return None
        echoed = _echo(completion)
        self.confirmed = [*messages, echoed]
        self.history = list(self.confirmed)
        self.calls = completion.tool_calls
        return completion

    def _expected(self, messages: list[Message]) -> tuple[str, ...] | None:
        """The backend ids the request's results answer in order, when it answers exactly
        the pending calls of the ledger it extends; None otherwise."""
        if self.confirmed is None or not self.calls:
            return None
        if not _extends(messages, self.confirmed):
            return None
        new = messages[len(self.confirmed) :]
        answered = [m.get("tool_call_id") for m in new if m["role"] == "tool"]
        ids = [c.id for c in self.calls]
        if len(answered) != len(new) or sorted(map(str, answered)) != sorted(ids):
            return None
        return tuple(ids)

    def _check_plans(
        self, messages: list[Message], plans: list[Any], answers: tuple[str, ...] | None
    ) -> None:
        assert plans, "every valid request runs a plan"
        client = parse_conversation(messages).messages
        first = plans[0]
        resumes = [plan for plan in plans if plan.tool_results]
        if answers is None:
            assert resumes == []
        else:
            assert resumes == [first]
            assert tuple(r.call_id for r in first.tool_results) == answers
            by_id = {m["tool_call_id"]: m for m in messages[len(self.confirmed or []) :]}
            assert first.tool_results == tuple(
                ToolResult(i, _text(by_id[i]["content"]), bool(by_id[i].get("is_error")))
                for i in answers
            )
        extends = self.confirmed is not None and _extends(messages, self.confirmed)
        if self.confirmed is None:
            assert first.kind is PlanKind.NEW
        elif extends and (not self.calls or answers is not None):
            assert first.kind is PlanKind.CONTINUE
            assert first.messages == client[len(self.confirmed) :]
        elif extends:
            assert first.kind is PlanKind.RESTART
            assert first.restart_reason is RestartReason.TOOL_TURN_ABANDONED
        else:
            assert first.kind is PlanKind.RESTART
        # A resumed turn that is gone is started again once, with everything.
        assert len(plans) == (2 if first in self.runner.missing else 1)
        for plan in plans:
            if plan.kind is not PlanKind.CONTINUE:
                assert plan.messages == client
                assert parse_rendering(plan.prompt) == client
        if len(plans) == 2:
            assert plans[1].restart_reason is RestartReason.SESSION_MISSING
        # What the runs covered (`--hypothesis-show-statistics`).
        for plan in plans:
            reason = plan.restart_reason.value if plan.restart_reason else ""
            event(f"{plan.kind.value} {reason}{' with results' if plan.tool_results else ''}")

    # -- rules ---------------------------------------------------------------------

    @precondition(lambda self: not self.pending)
    @rule(text=texts, reply=replies)
    def a_user_turn(self, text: str, reply: Reply) -> None:
        self._send([*self.history, {"role": "user", "content": text}], reply)

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data(), reply=replies, respell=st.booleans())
    def the_results_of_the_calls(self, data: st.DataObject, reply: Reply, respell: bool) -> None:
        results = data.draw(_results(self.pending))
        history = _respelled(self.history) if respell else self.history
        self._send([*history, *results], reply)

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data(), text=texts, reply=replies)
    def results_then_a_user_message(self, data: st.DataObject, text: str, reply: Reply) -> None:
        results = data.draw(_results(self.pending))
        self._send([*self.history, *results, {"role": "user", "content": text}], reply)

    @precondition(lambda self: len(self.pending) > 1)
    @rule(data=st.data())
    def only_some_results_is_a_400_naming_the_missing(self, data: st.DataObject) -> None:
        results = data.draw(_results(self.pending))[1:]
        missing = {m["tool_call_id"] for m in _results_for(self.pending)} - {
            m["tool_call_id"] for m in results
        }
        before = self._record()
        plans = len(self.runner.plans)
        request = ChatRequest(
            model="sonnet", messages=[*self.history, *results], session_id="conversation"
        )
        with pytest.raises(ChatError) as caught:
            self.loop.run_until_complete(self.service.complete(request))
        assert caught.value.reason is FailureReason.INVALID_REQUEST
        assert caught.value.param == f"messages[{len(self.history) - 1}].tool_calls"
        assert all(call_id in caught.value.message for call_id in missing)
        assert len(self.runner.plans) == plans
        assert self._record() == before

    @precondition(lambda self: len(self.history) >= 2)
    @rule(data=st.data(), text=texts, reply=replies)
    def edit_an_earlier_message(self, data: st.DataObject, text: str, reply: Reply) -> None:
        at = data.draw(st.integers(0, len(self.history) - 2))
        edited = list(self.history)
        edited[at] = {**edited[at], "content": text + " (edited)"}
        tail = _results_for(self.pending) if self.pending else []
        self._send([*edited, *tail, {"role": "user", "content": "after the edit"}], reply)

    @precondition(lambda self: bool(self.history) and self.history[-1]["role"] == "assistant")
    @rule(reply=replies)
    def regenerate_the_last_reply(self, reply: Reply) -> None:
        self._send(self.history[:-1], reply)

    @rule()
    def the_suspended_turn_is_lost(self) -> None:
        self.runner.lose()

    @rule(data=st.data())
    def a_turn_fails(self, data: st.DataObject) -> None:
        before = self._record()
        if self.pending:
            messages = [*self.history, *data.draw(_results(self.pending))]
        else:
            messages = [*self.history, {"role": "user", "content": "this one fails"}]
        assert self._send(messages, Reply(fail=FailureReason.UPSTREAM_ERROR)) is None
        assert self._record() == before

    @rule()
    def the_conversation_is_forgotten(self) -> None:
        self.loop.run_until_complete(self.service.reset_session(KEY))
        self.confirmed = None
        self.calls = ()

    def _record(self) -> Any:
        return self.loop.run_until_complete(self.service.store.get(KEY))

    # -- invariants ----------------------------------------------------------------

    @invariant()
    def the_ledger_is_the_history_and_our_last_reply(self) -> None:
        record = self._record()
        if self.confirmed is None:
            assert record is None
            return
        assert record is not None
        assert record.fingerprints == _fingerprints(self.confirmed)
        assert record.pending_calls == tuple(call.id for call in self.calls)

    @invariant()
    def nothing_runs_and_no_prompt_went_into_a_suspended_turn(self) -> None:
        assert (self.service.active, self.service.queued, self.runner.active) == (0, 0, 0)
        assert self.runner.violations == []


# -- the client's messages ---------------------------------------------------------------


def _echo(completion: Completion) -> Message:
    """Our reply as the client keeps it: content null when it wrote nothing and called."""
    if not completion.tool_calls:
        return {"role": "assistant", "content": completion.text}
    return {
        "role": "assistant",
        "content": completion.text or None,
        "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in completion.tool_calls
        ],
    }


def _respelled(history: list[Message]) -> list[Message]:
    """The history with every call's arguments re-serialised as LangChain does."""
    out: list[Message] = []
    for message in history:
        if message.get("tool_calls"):
            message = {
                **message,
                "tool_calls": [
                    {
                        **c,
                        "function": {
                            **c["function"],
                            "arguments": json.dumps(json.loads(c["function"]["arguments"])),
                        },
                    }
                    for c in message["tool_calls"]
                ],
            }
        out.append(message)
    return out


def _result(call_id: str, text: str, as_parts: bool, is_error: bool) -> Message:
    content: Any = [{"type": "text", "text": text}] if as_parts else text
    message: Message = {"role": "tool", "tool_call_id": call_id, "content": content}
    if is_error:
        message["is_error"] = True
    return message


def _results_for(calls: tuple[ToolCall, ...]) -> list[Message]:
    return [_result(call.id, f"result of {call.name}", False, False) for call in calls]


@st.composite
def _results(draw: st.DrawFn, calls: tuple[ToolCall, ...]) -> list[Message]:
    """One result per call, in any order, as text or text parts, some marked as errors."""
    order = draw(st.permutations(calls))
    return [
        _result(call.id, draw(texts), draw(st.booleans()), draw(st.booleans())) for call in order
    ]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(part["text"] for part in content if part["text"])


def _fingerprints(messages: list[Message]) -> tuple[str, ...]:
    """The fingerprints of a history whose last message may be calls not yet answered
    (parsed with answers after it, as a conversation must have)."""
    last = messages[-1]
    answers = [
        {"role": "tool", "tool_call_id": c["id"], "content": "-"}
        for c in last.get("tool_calls") or ()
    ]
    parsed = parse_conversation([*messages, *answers]).messages
    return fingerprints(parsed[: len(parsed) - len(answers)])


def _extends(messages: list[Message], confirmed: list[Message]) -> bool:
    """The request goes on from what the ledger holds (the same messages as the model
    saw them, and at least one more)."""
    if len(messages) <= len(confirmed):
        return False
    return _fingerprints(messages[: len(confirmed)]) == _fingerprints(confirmed)


TestToolConversationMachine = ToolConversationMachine.TestCase
# The loaded profile's examples (200 under `ci`), each up to 30 steps: enough for calls,
# results, edits and losses to interleave, and the whole run stays around ten seconds.
TestToolConversationMachine.settings = settings(settings.default, stateful_step_count=30)
