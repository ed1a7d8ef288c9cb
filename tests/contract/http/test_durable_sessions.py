"""Durable sessions end to end: a real server process, the real CLI, the fake upstream.

How the upstream tells the two kinds of turn apart: a resumed CLI session replays
the earlier turns from its transcript as separate messages; a fresh one receives the
whole history as one transcript-format prompt (it starts with the rendering's lead).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fake_upstream import FakeAnthropic, own_text
from tests.support.server import ServerProcess

TRANSCRIPT_LEAD = "Conversation transcript."
SESSION_FIELDS = {
    "externalId",
    "claudeSessionId",
    "model",
    "messageCount",
    "createdAt",
    "lastUsedAt",
}

StartServer = Callable[[], ServerProcess]


@pytest.fixture
def start_server(claude_bin: str, cli_env: dict[str, str], tmp_path: Path) -> Iterator[StartServer]:
    """Start `python -m proxy_http serve` on one sessions file; all are stopped at the end."""
    args = [
        "--cli-path",
        claude_bin,
        "--state-dir",
        str(tmp_path / "state"),
        "--sessions-db",
        str(tmp_path / "state" / "sessions.sqlite3"),
        "--first-event-timeout",
        "60",
    ]
    with ExitStack() as stack:
        count = 0

        def start() -> ServerProcess:
            nonlocal count
            count += 1
            server = ServerProcess(args, env=cli_env, log_path=tmp_path / f"server-{count}.log")
            return stack.enter_context(server)

        yield start


def chat(server: ServerProcess, session: str, *texts: str) -> str:
    """Send a conversation of alternating user texts and echo replies; return the reply."""
    messages: list[dict[str, str]] = []
    for i, text in enumerate(texts):
        if i:
            messages.append({"role": "assistant", "content": f"echo: {texts[i - 1]}"})
        messages.append({"role": "user", "content": text})
    answer = httpx.post(
        server.base_url + "/v1/chat/completions",
        json={"model": "sonnet", "messages": messages},
        headers={"X-Session-Id": session},
        timeout=90,
    )
    assert answer.status_code == 200, (answer.text, server.log())
    content: str = answer.json()["choices"][0]["message"]["content"]
    return content


def dialogue(request_body: Any) -> list[tuple[str, str]]:
    """(role, text) of each user/assistant message the upstream received."""
    pairs: list[tuple[str, str]] = []
    for message in request_body["messages"]:
        if message["role"] not in ("user", "assistant"):
            continue
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        text = "\n".join(
            b["text"]
            for b in blocks
            if b.get("type") == "text" and not b["text"].startswith("<system-reminder>")
        )
        pairs.append((message["role"], text))
    return pairs


def was_resumed(fake: FakeAnthropic) -> bool:
    """The last turn replayed the earlier ones, and sent only the new message itself."""
    body = fake.message_requests[-1].body
    return len(dialogue(body)) > 1 and not own_text(body).startswith(TRANSCRIPT_LEAD)


def was_rerendered(fake: FakeAnthropic) -> bool:
    """The last turn started a fresh CLI session with the whole history as one prompt."""
    body = fake.message_requests[-1].body
    return len(dialogue(body)) == 1 and own_text(body).startswith(TRANSCRIPT_LEAD)


def sessions(server: ServerProcess, **params: int) -> Any:
    answer = httpx.get(server.base_url + "/v1/sessions", params=params, timeout=30)
    assert answer.status_code == 200
    return answer.json()


def transcripts(cli_env: dict[str, str]) -> dict[str, Path]:
    """Transcript files under the CLI's projects dir, by session id."""
    projects = Path(cli_env["HOME"]) / ".claude" / "projects"
    return {path.stem: path for path in projects.rglob("*.jsonl")}


def test_a_conversation_continues_in_the_same_cli_session_after_a_restart(
    start_server: StartServer, fake_upstream: FakeAnthropic
) -> None:
    first = start_server()
    assert chat(first, "trip", "plan a trip") == "echo: plan a trip"
    [before] = sessions(first)["sessions"]
    first.stop()

    second = start_server()
    assert chat(second, "trip", "plan a trip", "to the sea") == "echo: to the sea"
    assert was_resumed(fake_upstream)
    assert dialogue(fake_upstream.message_requests[-1].body) == [
        ("user", "plan a trip"),
        ("assistant", "echo: plan a trip"),
        ("user", "to the sea"),
    ]
    [after] = sessions(second)["sessions"]
    assert after["claudeSessionId"] == before["claudeSessionId"]
    assert after["messageCount"] == 4


def test_sessions_are_listed_most_recent_first_in_pages_with_the_total(
    start_server: StartServer, fake_upstream: FakeAnthropic
) -> None:
    server = start_server()
    for name in ("one", "two", "three"):
        chat(server, name, f"hello {name}")
    page = sessions(server, limit=2, offset=0)
    assert set(page) == {"sessions", "total"}
    assert page["total"] == 3
    assert [s["externalId"] for s in page["sessions"]] == ["h:three", "h:two"]
    for session in page["sessions"]:
        assert set(session) == SESSION_FIELDS
        assert session["model"] == "sonnet"
        assert session["messageCount"] == 2
        assert session["createdAt"].endswith("Z")
        assert session["lastUsedAt"] >= session["createdAt"]
    rest = sessions(server, limit=2, offset=2)
    assert [s["externalId"] for s in rest["sessions"]] == ["h:one"]
    assert rest["total"] == 3


def test_a_deleted_session_restarts_with_the_full_history(
    start_server: StartServer, fake_upstream: FakeAnthropic
) -> None:
    server = start_server()
    chat(server, "gone", "remember this")
    old_id = sessions(server)["sessions"][0]["claudeSessionId"]
    answer = httpx.delete(server.base_url + "/v1/sessions/h:gone", timeout=30)
    assert answer.status_code == 200
    assert answer.json() == {"deleted": True, "externalId": "h:gone", "purged": False}
    assert sessions(server)["total"] == 0

    chat(server, "gone", "remember this", "and this")
    assert was_rerendered(fake_upstream)
    assert "remember this" in own_text(fake_upstream.message_requests[-1].body)
    assert sessions(server)["sessions"][0]["claudeSessionId"] != old_id


def test_deleting_an_unknown_session_is_a_404_with_an_openai_error_body(
    start_server: StartServer,
) -> None:
    server = start_server()
    answer = httpx.delete(server.base_url + "/v1/sessions/h:nobody", timeout=30)
    assert answer.status_code == 404
    body = answer.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"
    assert "h:nobody" in body["error"]["message"]


def test_resetting_all_sessions_restarts_every_conversation(
    start_server: StartServer, fake_upstream: FakeAnthropic
) -> None:
    server = start_server()
    chat(server, "a", "first a")
    chat(server, "b", "first b")
    answer = httpx.delete(server.base_url + "/v1/sessions", timeout=30)
    assert answer.status_code == 200
    assert answer.json() == {"deleted": 2, "purged": 0}
    assert sessions(server) == {"sessions": [], "total": 0}

    chat(server, "a", "first a", "second a")
    assert was_rerendered(fake_upstream)


def test_purging_a_session_deletes_its_transcript(
    start_server: StartServer, fake_upstream: FakeAnthropic, cli_env: dict[str, str]
) -> None:
    server = start_server()
    chat(server, "kept", "keep my transcript")
    chat(server, "purged", "drop my transcript")
    ids = {s["externalId"]: s["claudeSessionId"] for s in sessions(server)["sessions"]}
    assert set(transcripts(cli_env)) >= set(ids.values())

    plain = httpx.delete(server.base_url + "/v1/sessions/kept", timeout=30)
    purged = httpx.delete(server.base_url + "/v1/sessions/purged?purge=true", timeout=30)
    assert plain.json() == {"deleted": True, "externalId": "h:kept", "purged": False}
    assert purged.json() == {"deleted": True, "externalId": "h:purged", "purged": True}
    left = transcripts(cli_env)
    assert ids["h:kept"] in left
    assert ids["h:purged"] not in left
