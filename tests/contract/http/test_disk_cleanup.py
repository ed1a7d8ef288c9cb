"""Nothing is left on disk that nobody can remove: a served proxy, the real CLI, the fake upstream.

A failed first turn leaves no transcript; a failed follow-up keeps its conversation's;
transcripts no conversation points to are swept once older than the grace period;
purging reports what really happened, with a work directory whose path the CLI
counts in UTF-16 units.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy_cli_backend.transcripts import project_dir, transcript_path
from tests.support.fake_upstream import FakeAnthropic
from tests.support.server import ServerProcess

StartServer = Callable[..., ServerProcess]
HOUR = 3600.0


@pytest.fixture
def start_server(claude_bin: str, cli_env: dict[str, str], tmp_path: Path) -> Iterator[StartServer]:
    """Start `python -m proxy_http serve` on one state dir; all are stopped at the end."""
    base = ["--cli-path", claude_bin, "--state-dir", str(tmp_path / "state")]
    with ExitStack() as stack:
        count = 0

        def start(*args: str) -> ServerProcess:
            nonlocal count
            count += 1
            server = ServerProcess(
                [*base, *args], env=cli_env, log_path=tmp_path / f"server-{count}.log"
            )
            return stack.enter_context(server)

        yield start


def projects(cli_env: dict[str, str]) -> Path:
    return Path(cli_env["HOME"]) / ".claude" / "projects"


def transcripts(cli_env: dict[str, str]) -> set[str]:
    """Session ids of every transcript under the CLI's projects directory."""
    return {path.stem for path in projects(cli_env).rglob("*.jsonl")}


def say(server: ServerProcess, session: str, *texts: str) -> httpx.Response:
    """Send a conversation of alternating user texts and echo replies."""
    messages: list[dict[str, str]] = []
    for i, text in enumerate(texts):
        if i:
            messages.append({"role": "assistant", "content": f"echo: {texts[i - 1]}"})
        messages.append({"role": "user", "content": text})
    return httpx.post(
        server.base_url + "/v1/chat/completions",
        json={"model": "sonnet", "messages": messages},
        headers={"X-Session-Id": session},
        timeout=90,
    )


def cli_sessions(server: ServerProcess) -> dict[str, str]:
    """externalId -> claudeSessionId of every conversation the server keeps."""
    answer = httpx.get(server.base_url + "/v1/sessions", timeout=30).json()
    return {s["externalId"]: s["claudeSessionId"] for s in answer["sessions"]}


def wait_until(predicate: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within}s")
        time.sleep(0.05)


def age(path: Path, seconds: float) -> None:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


@pytest.mark.parametrize("mode", [[], ["--spawn-per-turn"]], ids=["live", "spawn-per-turn"])
def test_a_failed_first_turn_leaves_no_transcript_and_a_failed_follow_up_keeps_its_own(
    start_server: StartServer,
    fake_upstream: FakeAnthropic,
    cli_env: dict[str, str],
    mode: list[str],
) -> None:
    server = start_server(*mode)
    assert say(server, "kept", "hello").status_code == 200
    failed_follow_up = say(server, "kept", "hello", "[[error:400]] Prompt is too long")
    failed_first = say(server, "failed", "[[error:400]] Prompt is too long")
    assert failed_follow_up.status_code == 400, server.log()
    assert failed_first.status_code == 400, server.log()
    kept = cli_sessions(server)
    assert set(kept) == {"h:kept"}
    wait_until(lambda: transcripts(cli_env) == {kept["h:kept"]})
    server.stop()  # lets every pending clean-up finish
    assert transcripts(cli_env) == {kept["h:kept"]}


def test_the_sweep_removes_old_orphans_only_in_its_own_project_folder(
    start_server: StartServer,
    fake_upstream: FakeAnthropic,
    cli_env: dict[str, str],
    tmp_path: Path,
) -> None:
    first = start_server()
    assert say(first, "kept", "hello").status_code == 200
    kept = cli_sessions(first)["h:kept"]
    first.stop()
    path = transcript_path(projects(cli_env), str(tmp_path / "state" / "workdir"), kept)
    assert path.exists()
    folder = path.parent
    age(path, 2 * HOUR)  # old, but a conversation points to it

    def orphan(where: Path, seconds: float) -> Path:
        where.mkdir(parents=True, exist_ok=True)
        file = where / f"{uuid.uuid4()}.jsonl"
        file.write_text('{"type":"user"}\n')
        age(file, seconds)
        return file

    old = orphan(folder, 2 * HOUR)
    young = orphan(folder, 60)
    foreign = orphan(projects(cli_env) / "-somebody-elses-project", 2 * HOUR)

    server = start_server("--transcript-grace", str(HOUR), "--session-sweep-interval", "0.5")
    # The start-up sweep ran before the server answered.
    assert not old.exists()
    assert young.exists()
    assert path.exists()
    assert foreign.exists()
    # The periodic sweep takes the young orphan once it is old enough.
    age(young, 2 * HOUR)
    wait_until(lambda: not young.exists())
    assert path.exists()
    assert foreign.exists()
    assert say(server, "kept", "hello", "again").status_code == 200


def test_purge_deletes_the_transcript_of_an_emoji_work_directory_and_reports_what_happened(
    start_server: StartServer,
    fake_upstream: FakeAnthropic,
    cli_env: dict[str, str],
    tmp_path: Path,
) -> None:
    workdir = str(tmp_path / "wd-\U0001f600-\u00e9")
    server = start_server("--workdir", workdir)
    for key in ("purged", "vanished", "all-1", "all-2"):
        assert say(server, key, "hello").status_code == 200, server.log()
    ids = cli_sessions(server)
    files = {key: transcript_path(projects(cli_env), workdir, ids[key]) for key in ids}
    assert all(path.exists() for path in files.values())
    assert {path.parent for path in files.values()} == {project_dir(projects(cli_env), workdir)}

    purged = httpx.delete(server.base_url + "/v1/sessions/purged?purge=true", timeout=30)
    assert purged.json() == {"deleted": True, "externalId": "h:purged", "purged": True}
    assert not files["h:purged"].exists()

    files["h:vanished"].unlink()  # deleted behind the server's back
    vanished = httpx.delete(server.base_url + "/v1/sessions/vanished?purge=true", timeout=30)
    assert vanished.json() == {"deleted": True, "externalId": "h:vanished", "purged": False}

    files["h:all-1"].unlink()
    everything: Any = httpx.delete(server.base_url + "/v1/sessions?purge=true", timeout=30).json()
    assert everything == {"deleted": 2, "purged": 1}
    assert transcripts(cli_env) == set()
