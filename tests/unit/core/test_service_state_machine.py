"""A state machine over the service: whatever a client does, the ledger stays true.

The model is the conversation the client holds. Invariants after every step: a
turn continues the CLI session only when the request extends what that session
saw; a CONTINUE sends exactly the new messages; a failed turn leaves the ledger
as it was; and the ledger always equals the client's history plus our reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from proxy_core import (
    ChatError,
    ChatRequest,
    ChatService,
    Event,
    Failed,
    FailureReason,
    FakeRunner,
    InMemorySessionStore,
    PlanKind,
    TurnPlan,
    echo_script,
    fingerprint,
    parse_conversation,
    reply_fingerprint,
)

KEY = "h:conversation"


class ConversationMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.fail_next = False
        self.runner = FakeRunner(self._script)
        self.service = ChatService(self.runner, InMemorySessionStore())
        self.history: list[dict[str, object]] = []
        self.confirmed: list[dict[str, object]] | None = (
            None  # history the ledger holds, with our reply
        )

    def _script(self, plan: TurnPlan) -> Sequence[Event]:
        if self.fail_next:
            return [Failed(FailureReason.UPSTREAM_ERROR, "boom")]
        return echo_script(plan)

    def teardown(self) -> None:
        self.loop.close()

    def _send(self, messages: list[dict[str, object]]) -> None:
        plans_before = len(self.runner.plans)
        request = ChatRequest(model="sonnet", messages=messages, session_id="conversation")
        try:
            completion = self.loop.run_until_complete(self.service.complete(request))
        except ChatError:
            assert self.fail_next
            return
        plan = self.runner.plans[-1]
        assert len(self.runner.plans) == plans_before + 1
        extends = self.confirmed is not None and len(messages) > len(self.confirmed)
        extends = extends and _seen(messages[: len(self.confirmed or [])]) == _seen(
            self.confirmed or []
        )
        if extends:
            assert self.confirmed is not None
            assert plan.kind is PlanKind.CONTINUE
            assert len(plan.messages) == len(messages) - len(self.confirmed)
        else:
            assert plan.kind in (PlanKind.NEW, PlanKind.RESTART)
            assert len(plan.messages) == len(messages)
        self.confirmed = [*messages, {"role": "assistant", "content": completion.text}]
        self.history = list(self.confirmed)

    @initialize(text=st.text(min_size=1, max_size=20))
    def open_conversation(self, text: str) -> None:
        self._send([{"role": "user", "content": text}])

    @rule(text=st.text(max_size=20))
    def follow_up(self, text: str) -> None:
        self._send([*self.history, {"role": "user", "content": text}])

    @precondition(lambda self: len(self.history) >= 2)
    @rule()
    def regenerate_last_reply(self) -> None:
        self._send(self.history[:-1])

    @precondition(lambda self: len(self.history) >= 2)
    @rule(index=st.integers(min_value=0), text=st.text(max_size=20))
    def edit_an_earlier_message(self, index: int, text: str) -> None:
        edited = list(self.history)
        at = index % len(edited)
        edited[at] = {"role": edited[at]["role"], "content": text + "(edited)"}
        self._send([*edited, {"role": "user", "content": "after edit"}])

    @rule(text=st.text(max_size=20))
    def a_turn_fails(self, text: str) -> None:
        ledger_before = self.loop.run_until_complete(self.service.store.get(KEY))
        self.fail_next = True
        try:
            self._send([*self.history, {"role": "user", "content": text}])
        finally:
            self.fail_next = False
        assert self.loop.run_until_complete(self.service.store.get(KEY)) == ledger_before

    @rule()
    def reset(self) -> None:
        self.loop.run_until_complete(self.service.reset_session(KEY))
        self.confirmed = None

    @invariant()
    def the_ledger_is_the_confirmed_history(self) -> None:
        record = self.loop.run_until_complete(self.service.store.get(KEY))
        if self.confirmed is None:
            assert record is None
            return
        assert record is not None
        conversation = parse_conversation(self.confirmed[:-1])
        expected = (
            *(fingerprint(m) for m in conversation.messages),
            reply_fingerprint(str(self.confirmed[-1]["content"])),
        )
        assert record.fingerprints == expected

    @invariant()
    def nothing_is_left_running(self) -> None:
        assert (self.service.active, self.service.queued, self.runner.active) == (0, 0, 0)


def _seen(messages: list[dict[str, object]]) -> list[tuple[object, str]]:
    """What the model sees of each message: role and text, surrounding whitespace aside."""
    return [(m["role"], str(m["content"]).strip()) for m in messages]


TestConversationMachine = ConversationMachine.TestCase
