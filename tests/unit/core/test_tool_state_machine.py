"""A state machine over tool turns: whatever a client does with calls, results, edits
and lost suspended turns, the ledger stays true.

The model is the conversation the client holds; the fake model's replies (text, or
text and 1-3 calls) are chosen by the test. The client speaks `tools` (calls answered
by tool messages) or, in the second machine, the legacy `functions` (one call, its
`function_call` echoed without an id and answered by name); every other turn is
streamed, and some are cut by a stop sequence (the client keeps the cut reply, the
ledger does not). After every step: the ledger equals the client's history up to our
last remembered reply, as the client echoes it; its pending calls are that reply's
calls; the only suspended turn is the conversation's own; nothing is left running and
the backend was never sent a prompt into a suspended turn. Each request is checked as
it runs: a CONTINUE sends exactly the new messages; a plan resumes a suspended turn
(`tool_results`) only when the request answers exactly its pending calls, in the
backend's order; a NEW or RESTART prompt parses back to the client's whole history.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar, NamedTuple

import msgspec
import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from proxy_core import (
    ChatError,
    ChatRequest,
    ChatService,
    FailureReason,
    InMemorySessionStore,
    PlanKind,
    ReplyCollector,
    RestartReason,
    SessionRecord,
    ToolCall,
    ToolResult,
    TurnPlan,
    parse_conversation,
    parse_rendering,
)
from proxy_core.ledger import fingerprints
from tests.support.tool_runner import Call, Reply, ToolRunner

KEY = "h:conversation"
NAMES = ("weather", "time", "search")
FUNCTIONS = [{"name": name, "parameters": {"type": "object"}} for name in NAMES]
TOOLS = [{"type": "function", "function": function} for function in FUNCTIONS]
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


class Outcome(NamedTuple):
    """What the client got of a turn."""

    text: str
    calls: tuple[ToolCall, ...]
    stop_reason: str | None


class ToolConversationMachine(RuleBasedStateMachine):
    legacy: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.runner = ToolRunner()
        self.service = ChatService(self.runner, InMemorySessionStore())
        self.history: list[Message] = []  # what the client holds, our replies echoed
        self.confirmed: list[Message] | None = None  # what the ledger holds, our reply last
        self.calls: tuple[ToolCall, ...] = ()  # the calls our last recorded reply made
        self.sent = 0

    def teardown(self) -> None:
        self.loop.run_until_complete(self.service.aclose())
        self.loop.close()

    # -- the client ----------------------------------------------------------------

    @property
    def pending(self) -> list[tuple[str, str]]:
        """The calls the client must answer before it may go on, as (the id it answers
        by, the function's name): those of its last message, when that is our reply."""
        return _calls_of(self.history[-1]) if self.history else []

    def _request(self, messages: list[Message], stop: str | None = None) -> ChatRequest:
        offer: dict[str, Any] = {"functions": FUNCTIONS} if self.legacy else {"tools": TOOLS}
        return ChatRequest(
            model="sonnet", messages=messages, session_id="conversation", stop=stop, **offer
        )

    async def _run(self, request: ChatRequest) -> Outcome:
        """The turn's reply, taken whole or streamed (every other one)."""
        self.sent += 1
        if self.sent % 2:
            completion = await self.service.complete(request)
            return Outcome(completion.text, completion.tool_calls, completion.stop_reason)
        collected = ReplyCollector()
        async for item in self.service.stream(request):
            collected.add(item)
        assert collected.finished is not None
        return Outcome(collected.text, collected.tool_calls, collected.finished.stop_reason)

    def _send(
        self, messages: list[Message], reply: Reply, stop: str | None = None
    ) -> Outcome | None:
        """Send `messages` with the model answering `reply`; check the plans it ran and
        keep the reply (a reply cut by `stop` is the client's, not the ledger's)."""
        if self.legacy:  # a legacy reply makes one call at most
            reply = Reply(reply.text, reply.calls[:1], reply.fail)
        before = len(self.runner.plans)
        self.runner.replies.clear()
        self.runner.reply(reply)
        expected = self._expected(messages)
        failure: ChatError | None = None
        outcome: Outcome | None = None
        try:
            outcome = self.loop.run_until_complete(self._run(self._request(messages, stop)))
        except ChatError as error:
            failure = error
        # Only the model's own failure fails a turn: a lost suspended turn never does.
        assert failure is None or reply.fail is not None, failure
        self._check_plans(messages, self.runner.plans[before:], expected)
        if outcome is None:
            return None
        echoed = self._echo(outcome.text, outcome.calls)
        self.history = [*messages, echoed]
        if outcome.stop_reason != "stop_sequence":
            self.confirmed = list(self.history)
            self.calls = outcome.calls
        return outcome

    def _echo(self, text: str, made: tuple[ToolCall, ...]) -> Message:
        """Our reply as the client keeps it: content null when it wrote nothing and
        called; a legacy call as `function_call`, which has no id."""
        if not made:
            return {"role": "assistant", "content": text}
        functions = [{"name": c.name, "arguments": c.arguments} for c in made]
        message: Message = {"role": "assistant", "content": text or None}
        if self.legacy:
            (message["function_call"],) = functions
        else:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": f}
                for c, f in zip(made, functions, strict=True)
            ]
        return message

    def _expected(self, messages: list[Message]) -> tuple[ToolResult, ...] | None:
        """The results the backend must be given, in its order of the calls, when the
        request answers exactly the pending calls of the ledger it extends; else None."""
        if self.confirmed is None or not self.calls or not _extends(messages, self.confirmed):
            return None
        new = messages[len(self.confirmed) :]
        replies = [m for m in new if m["role"] in ("tool", "function")]
        after = new[len(replies) :]  # text-only user messages go with the last result
        answered = {_answers(m): m for m in replies}
        asked = [call_id for call_id, _ in _calls_of(self.confirmed[-1])]
        if len(answered) != len(replies) or sorted(answered) != sorted(asked):
            return None
        if any(m["role"] != "user" for m in after):
            return None
        results = [
            ToolResult(call.id, _text(answered[i]["content"]), bool(answered[i].get("is_error")))
            for i, call in zip(asked, self.calls, strict=True)
        ]
        notes = tuple(text for m in after if (text := _text(m["content"])))
        if notes:
            results[-1] = msgspec.structs.replace(results[-1], notes=notes)
        return tuple(results)

    def _check_plans(
        self,
        messages: list[Message],
        plans: list[TurnPlan],
        results: tuple[ToolResult, ...] | None,
    ) -> None:
        assert plans, "every valid request runs a plan"
        client = parse_conversation(messages).messages
        first = plans[0]
        resumes = [plan for plan in plans if plan.tool_results]
        if results is None:
            assert resumes == []
        else:
            assert resumes == [first]
            assert first.tool_results == results
        extends = self.confirmed is not None and _extends(messages, self.confirmed)
        if self.confirmed is None:
            assert first.kind is PlanKind.NEW
        elif extends and (not self.calls or results is not None):
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
            assert plan.tools is not None
            assert plan.tools.legacy is self.legacy
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

    @precondition(lambda self: not self.pending)
    @rule(text=texts, reply=replies, before=texts)
    def a_turn_cut_by_a_stop_sequence(self, text: str, reply: Reply, before: str) -> None:
        # The model writes the stop sequence before its calls (if any): the reply ends
        # there, without them, and is not remembered; the client keeps what it got.
        cut = Reply(before + "STOP" + reply.text, reply.calls)
        ledger = self._record()
        outcome = self._send([*self.history, {"role": "user", "content": text}], cut, "STOP")
        assert outcome is not None
        assert (outcome.stop_reason, outcome.calls) == ("stop_sequence", ())
        assert outcome.text == before.split("STOP")[0]
        assert self._record() == ledger

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data(), reply=replies, respell=st.booleans())
    def the_results_of_the_calls(self, data: st.DataObject, reply: Reply, respell: bool) -> None:
        results = data.draw(_results(self.pending, legacy=self.legacy))
        history = _respelled(self.history) if respell else self.history
        self._send([*history, *results], reply)

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data(), text=texts, reply=replies)
    def results_then_a_user_message(self, data: st.DataObject, text: str, reply: Reply) -> None:
        results = data.draw(_results(self.pending, legacy=self.legacy))
        self._send([*self.history, *results, {"role": "user", "content": text}], reply)

    @precondition(lambda self: len(self.pending) > 1)
    @rule(data=st.data())
    def only_some_results_is_a_400_naming_the_missing(self, data: st.DataObject) -> None:
        results = data.draw(_results(self.pending, legacy=self.legacy))[1:]
        missing = {call_id for call_id, _ in self.pending} - {_answers(m) for m in results}
        before = self._record()
        plans = len(self.runner.plans)
        request = self._request([*self.history, *results])
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
        tail = [_result(i, name, "done", legacy=self.legacy) for i, name in self.pending]
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
            messages = [*self.history, *data.draw(_results(self.pending, legacy=self.legacy))]
        else:
            messages = [*self.history, {"role": "user", "content": "this one fails"}]
        assert self._send(messages, Reply(fail=FailureReason.UPSTREAM_ERROR)) is None
        assert self._record() == before

    @rule()
    def the_conversation_is_forgotten(self) -> None:
        self.loop.run_until_complete(self.service.reset_session(KEY))
        self.confirmed = None
        self.calls = ()

    def _record(self) -> SessionRecord | None:
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
    def the_only_suspended_turn_is_the_conversations_own(self) -> None:
        record = self._record()
        waiting = self.runner.suspended
        assert set(waiting) <= ({record.cli_session_id} if record else set())
        if record is not None and record.cli_session_id in waiting:
            assert waiting[record.cli_session_id].pending == record.pending_calls

    @invariant()
    def nothing_runs_and_no_prompt_went_into_a_suspended_turn(self) -> None:
        assert (self.service.active, self.service.queued, self.runner.active) == (0, 0, 0)
        assert self.runner.violations == []


class LegacyFunctionMachine(ToolConversationMachine):
    legacy = True


# -- the client's messages ---------------------------------------------------------------


def _calls_of(message: Message) -> list[tuple[str, str]]:
    """The calls an assistant message made, as (the id a result answers by, name)."""
    if message["role"] != "assistant":
        return []
    if message.get("function_call"):
        name = message["function_call"]["name"]
        return [(name, name)]
    return [(c["id"], c["function"]["name"]) for c in message.get("tool_calls") or ()]


def _answers(result: Message) -> str:
    """The call a result answers: its tool_call_id, or a function message's name."""
    return str(result.get("tool_call_id") or result["name"])


def _respelled(history: list[Message]) -> list[Message]:
    """The history with every call's arguments re-serialised as LangChain does."""

    def respell(function: Message) -> Message:
        return {**function, "arguments": json.dumps(json.loads(function["arguments"]))}

    out: list[Message] = []
    for message in history:
        if message.get("tool_calls"):
            made = [{**c, "function": respell(c["function"])} for c in message["tool_calls"]]
            message = {**message, "tool_calls": made}
        elif message.get("function_call"):
            message = {**message, "function_call": respell(message["function_call"])}
        out.append(message)
    return out


def _result(
    call_id: str,
    name: str,
    text: str,
    *,
    legacy: bool,
    as_parts: bool = False,
    is_error: bool = False,
) -> Message:
    content: Any = [{"type": "text", "text": text}] if as_parts else text
    if legacy:
        return {"role": "function", "name": name, "content": content}
    message: Message = {"role": "tool", "tool_call_id": call_id, "content": content}
    if is_error:
        message["is_error"] = True
    return message


@st.composite
def _results(draw: st.DrawFn, pending: list[tuple[str, str]], *, legacy: bool) -> list[Message]:
    """One result per call, in any order, as text or text parts, some marked as errors."""
    return [
        _result(
            call_id,
            name,
            draw(texts),
            legacy=legacy,
            as_parts=draw(st.booleans()),
            is_error=draw(st.booleans()),
        )
        for call_id, name in draw(st.permutations(pending))
    ]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(part["text"] for part in content if part["text"])


def _fingerprints(messages: list[Message]) -> tuple[str, ...]:
    """The fingerprints of a history whose last message may be calls not yet answered
    (parsed with answers after it, as a conversation must have)."""
    legacy = "function_call" in messages[-1]
    answers = [_result(i, name, "-", legacy=legacy) for i, name in _calls_of(messages[-1])]
    parsed = parse_conversation([*messages, *answers]).messages
    return fingerprints(parsed[: len(parsed) - len(answers)])


def _extends(messages: list[Message], confirmed: list[Message]) -> bool:
    """The request goes on from what the ledger holds (the same messages as the model
    saw them, and at least one more)."""
    if len(messages) <= len(confirmed):
        return False
    return _fingerprints(messages[: len(confirmed)]) == _fingerprints(confirmed)


# The loaded profile's examples (200 under `ci`), each up to 30 steps: enough for calls,
# results, edits and losses to interleave, with both machines' runs near ten seconds.
TestToolConversationMachine = ToolConversationMachine.TestCase
TestToolConversationMachine.settings = settings(settings.default, stateful_step_count=30)
TestLegacyFunctionMachine = LegacyFunctionMachine.TestCase
TestLegacyFunctionMachine.settings = settings(
    settings.default, stateful_step_count=30, max_examples=settings.default.max_examples // 2
)
