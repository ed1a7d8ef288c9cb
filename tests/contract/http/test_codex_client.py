"""Codex CLI (the pinned `@openai/codex`) as a client of POST /v1/responses, against a live
server over the real `claude` CLI and the fake upstream.

Codex runs as issue 15 configures it: a private CODEX_HOME whose config.toml names our
server as a `wire_api = "responses"` provider. Every request it sends carries the whole
history (`store: false`) and a `prompt_cache_key` that stays the same for the Codex
session, across `codex exec resume`. The fake upstream answers `[[reply:TEXT]]` with
exactly TEXT, so Codex's stdout (the final answer alone) shows what came back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.agent_clients import CodexClient, answered, last_user_turn, server_sessions
from tests.support.client_tools import tool_results_in, tools_server
from tests.support.fake_upstream import FakeAnthropic
from tests.support.server import ServerProcess

pytestmark = pytest.mark.cli


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, claude_bin: str, fake_upstream_server: FakeAnthropic
) -> Iterator[ServerProcess]:
    """One server for the module's Codex sessions (each test starts its own)."""
    with tools_server(tmp_path_factory.mktemp("codex"), claude_bin, fake_upstream_server) as s:
        yield s


@pytest.fixture
def codex(codex_bin: str, server: ServerProcess, tmp_path: Path) -> CodexClient:
    return CodexClient(codex_bin, tmp_path, server.base_url)


def test_codex_exec_prints_the_upstream_answer(
    codex: CodexClient, fake_upstream: FakeAnthropic
) -> None:
    run = codex.exec("Greet the proxy. [[reply:Codex got its answer]]")

    assert run.exit_code == 0, run.describe()
    assert run.stdout.strip() == "Codex got its answer", run.describe()
    # The model was asked once, through our server's CLI, with the prompt Codex sent.
    [asked] = fake_upstream.message_requests
    assert "Greet the proxy." in last_user_turn(asked)[1]


def test_codex_resume_continues_the_same_cli_session(
    codex: CodexClient, server: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    before = server_sessions(server.base_url)
    first = codex.exec("First turn. [[reply:first answer]]")
    assert first.exit_code == 0, first.describe()
    assert first.stdout.strip() == "first answer", first.describe()
    [key] = server_sessions(server.base_url).keys() - before.keys()
    opened = server_sessions(server.base_url)[key]

    second = codex.resume_last("Second turn. [[reply:second answer]]")

    assert second.exit_code == 0, second.describe()
    assert second.stdout.strip() == "second answer", second.describe()
    # No new conversation: Codex's second request (the whole history again) continued
    # the first one's, in the same CLI session.
    after = server_sessions(server.base_url)
    assert after.keys() - before.keys() == {key}
    assert after[key]["claudeSessionId"] == opened["claudeSessionId"]
    assert after[key]["messageCount"] > opened["messageCount"]
    # The CLI was sent only the new text; the first turn came from its own session.
    history, sent = last_user_turn(fake_upstream.message_requests[-1])
    assert "Second turn." in sent
    assert "First turn." not in sent
    assert answered(history, "first answer")


def test_codex_runs_the_command_the_model_calls_and_answers_with_its_output(
    codex: CodexClient, fake_upstream: FakeAnthropic
) -> None:
    # The model calls Codex's own `exec_command` tool; Codex runs it and sends the output
    # back in its next request, which resumes the model's turn with it.
    run = codex.exec('Run it. [[call:exec_command:{"cmd": "echo codex-ran-this"}]]')

    assert run.exit_code == 0, run.describe()
    assert run.stdout.startswith("tool result seen: "), run.describe()
    assert "codex-ran-this" in run.stdout
    _, resumed = fake_upstream.message_requests
    history, _ = last_user_turn(resumed)
    [call] = [b for b in history[-1]["content"] if b["type"] == "tool_use"]
    assert call["name"].endswith("__exec_command")
    assert call["input"] == {"cmd": "echo codex-ran-this"}
    [(call_id, output)] = tool_results_in(resumed).items()
    assert call_id == call["id"]
    assert "codex-ran-this" in output
