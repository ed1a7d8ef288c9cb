"""The Claude Code CLI itself as a client of POST /v1/messages, against a live server over
the real `claude` CLI and the fake upstream.

The client CLI runs with ANTHROPIC_BASE_URL at our server, in its own config dir: it
sends `POST /v1/messages?beta=true` with `x-api-key`, a streamed request holding its
system blocks, its tools, a `role: "system"` message and `metadata.user_id` (a JSON
string naming its session), and the whole history on every turn. The fake upstream
answers `[[reply:TEXT]]` with exactly TEXT, so the client's JSON result shows what came
back through us.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.agent_clients import (
    ClaudeClient,
    answered,
    json_result,
    last_user_turn,
    server_sessions,
)
from tests.support.client_tools import tool_results_in, tools_server
from tests.support.fake_upstream import FakeAnthropic
from tests.support.server import ServerProcess

pytestmark = pytest.mark.cli


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, claude_bin: str, fake_upstream_server: FakeAnthropic
) -> Iterator[ServerProcess]:
    """One server for the module's client sessions (each test starts its own)."""
    with tools_server(tmp_path_factory.mktemp("claude"), claude_bin, fake_upstream_server) as s:
        yield s


@pytest.fixture
def client(claude_bin: str, server: ServerProcess, tmp_path: Path) -> ClaudeClient:
    return ClaudeClient(claude_bin, tmp_path, server.base_url)


def test_claude_print_completes_through_messages(
    client: ClaudeClient, fake_upstream: FakeAnthropic
) -> None:
    run = client.print_json("Say hi to the proxy. [[reply:hi from the upstream]]")

    assert run.exit_code == 0, run.describe()
    result = json_result(run)
    assert result["is_error"] is False, run.describe()
    assert result["result"] == "hi from the upstream"
    # The model was asked once, through our server's CLI, with the client's prompt.
    [asked] = fake_upstream.message_requests
    assert "Say hi to the proxy." in last_user_turn(asked)[1]


def test_claude_continue_goes_on_in_the_same_cli_session(
    client: ClaudeClient, server: ServerProcess, fake_upstream: FakeAnthropic
) -> None:
    before = server_sessions(server.base_url)
    first = client.print_json("First question. [[reply:first answer]]")
    assert first.exit_code == 0, first.describe()
    assert json_result(first)["result"] == "first answer", first.describe()
    [key] = server_sessions(server.base_url).keys() - before.keys()
    opened = server_sessions(server.base_url)[key]

    second = client.print_json("Second question. [[reply:second answer]]", "--continue")

    assert second.exit_code == 0, second.describe()
    assert json_result(second)["result"] == "second answer", second.describe()
    after = server_sessions(server.base_url)
    assert after.keys() - before.keys() == {key}
    assert after[key]["claudeSessionId"] == opened["claudeSessionId"]
    # The client resent its whole history; our server's CLI was sent only the new text
    # and had the first turn in its own session.
    history, sent = last_user_turn(fake_upstream.message_requests[-1])
    assert "Second question." in sent
    assert "First question." not in sent
    assert answered(history, "first answer")


def test_claude_client_runs_the_tool_the_model_calls_and_answers_with_its_result(
    client: ClaudeClient, fake_upstream: FakeAnthropic
) -> None:
    # The model calls the client's own Read tool; the client CLI reads the file and sends
    # the tool_result back, which resumes the model's turn with it.
    note = client.workdir / "note.txt"
    note.write_text("note-token-42\n")
    prompt = f'Read the note. [[call:Read:{{"file_path": "{note}"}}]]'

    run = client.print_json(prompt, "--allowedTools", "Read")

    assert run.exit_code == 0, run.describe()
    result = json_result(run)
    assert result["result"].startswith("tool result seen: "), run.describe()
    assert "note-token-42" in result["result"]
    assert result["num_turns"] == 2
    _, resumed = fake_upstream.message_requests
    [(_, output)] = tool_results_in(resumed).items()
    assert "note-token-42" in output
