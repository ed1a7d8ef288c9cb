"""Scale-out: two servers behind nginx running deploy/nginx.conf (docs/deploy.md).

Two `serve` processes, alpha and beta (the real CLI, the fake upstream, each its own
state dir with a durable session ledger, one key file for both), behind nginx on
127.0.0.1. Ten conversations go through nginx with the official openai SDK: seven
send `X-Session-Id`, three rely on the API-key fallback, each with its own key. Every
answer names its instance (`X-Proxy-Instance`), so the test sees where each turn went:

1. turn 1: each conversation is answered where nginx hashes it;
2. alpha is killed (SIGKILL, a crash) between turns; turn 2: alpha's conversations
   continue on beta without an error, each in a fresh CLI session given the whole
   history, and beta's own continue as before;
3. alpha comes back on the same state dir; turn 3: every conversation is back where
   it started. Alpha's ledger remembers its conversations as of turn 1, while the
   request carries turn 2, which beta answered: the upstream must see that turn too.

Which conversations to hold is decided by asking nginx first (GET /v1/models with
the same headers), so each instance always holds some of both kinds.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from proxy_http.instance import INSTANCE_HEADER
from tests.contract.conftest import cli_processes
from tests.support.fake_upstream import FakeAnthropic, own_text
from tests.support.nginx import Nginx, nginx_path
from tests.support.server import ServerProcess, cli_server_env, free_port

pytestmark = pytest.mark.cli

TRANSCRIPT_LEAD = "Conversation transcript."
KEYS = [f"scale-out-key-{n:02d}" for n in range(20)]
"""The key file's keys: the first for the X-Session-Id conversations, the others
candidates for the fallback ones (some hash to each instance)."""
VICTIM, SURVIVOR = "alpha", "beta"


@dataclass
class Instance:
    """One `serve` behind nginx, restartable on the same port and state dir."""

    name: str
    root: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    server: ServerProcess | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        log = self.root / f"{self.name}-{self.starts}.log"
        self.server = ServerProcess(env=self.env, port=self.port, log_path=log).start()

    def crash(self) -> None:
        """SIGKILL the server alone, as a crash would; then its CLI processes, left
        without their parent, are waited for (they end when their stdin closes) and
        killed if they linger."""
        assert self.server is not None
        assert self.server.process is not None
        orphans = [(pid, _started(pid)) for pid in cli_processes(self.server.process.pid)]
        self.server.process.kill()
        self.server.process.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_started(p) == s for p, s in orphans):
            time.sleep(0.1)
        for pid, started in orphans:
            if started is not None and _started(pid) == started:
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def _started(pid: int) -> str | None:
    """A process's start time (to tell it from a later one with its pid); None: gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rindex(")") + 2 :].split()[19]


@dataclass
class Cluster:
    nginx: Nginx
    instances: dict[str, Instance]
    fake: FakeAnthropic

    def routed_to(self, headers: dict[str, str]) -> str:
        """The instance nginx sends a request with these headers (a valid key among
        them) to. It asks GET /v1/models, which costs the instance nothing; /health
        would start its setup checks (a CLI run) again every 30 s."""
        answer = httpx.get(self.nginx.base_url + "/v1/models", headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        name: str = answer.headers[INSTANCE_HEADER]
        return name


@pytest.fixture(scope="module")
def cluster(
    claude_bin: str, fake_upstream_server: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    executable = nginx_path()
    root = tmp_path_factory.mktemp("scale-out")
    key_file = root / "keys"
    key_file.write_text("".join(f"{key}\n" for key in KEYS))
    fake_upstream_server.reset()
    instances: dict[str, Instance] = {}
    for name in (VICTIM, SURVIVOR):
        home = root / name
        home.mkdir()
        env = cli_server_env(
            home,
            claude_bin,
            fake_upstream_server.base_url,
            CLAUDE_PROXY_SESSIONS_DB=str(home / "state" / "sessions.sqlite3"),
            CLAUDE_PROXY_API_KEY_FILE=str(key_file),
            CLAUDE_PROXY_INSTANCE_NAME=name,
        )
        instances[name] = Instance(name, home, env)
    nginx = Nginx(root / "nginx", free_port(), [i.port for i in instances.values()])
    with ExitStack() as stack:
        # Stopped in reverse: nginx first, then both servers, whatever happened.
        for instance in instances.values():
            stack.callback(instance.stop)
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(Instance.start, instances.values()))
        stack.callback(nginx.stop)
        nginx.start(executable)
        yield Cluster(nginx, instances, fake_upstream_server)


@dataclass
class Conversation:
    """A conversation through nginx: its own client, its history, where it began."""

    name: str
    client: openai.OpenAI
    headers: dict[str, str]
    stream: bool
    home: str = ""
    messages: list[dict[str, str]] = field(default_factory=list)

    def say(self, turn: int) -> str:
        """One turn (the fake answers exactly `<name> heard <turn>`); the instance."""
        text = f"{self.name} says {turn} [[reply:{self.name} heard {turn}]]"
        messages: list[Any] = [*self.messages, {"role": "user", "content": text}]
        chat = self.client.chat.completions
        if self.stream:
            with chat.with_streaming_response.create(
                model="sonnet", messages=messages, stream=True
            ) as response:
                instance = response.headers.get(INSTANCE_HEADER)
                pieces = [c.choices[0].delta.content or "" for c in response.parse() if c.choices]
                reply = "".join(pieces)
        else:
            raw = chat.with_raw_response.create(model="sonnet", messages=messages)
            instance = raw.headers.get(INSTANCE_HEADER)
            reply = raw.parse().choices[0].message.content or ""
        assert reply == f"{self.name} heard {turn}", (self.name, turn, reply)
        self.messages = [*messages, {"role": "assistant", "content": reply}]
        return str(instance)

    def history(self, turn: int) -> list[str]:
        """What the upstream must have seen by `turn`: every message's own text."""
        said = [f"{self.name} says {n}" for n in range(1, turn + 1)]
        heard = [f"{self.name} heard {n}" for n in range(1, turn)]
        return said + heard


def client(key: str, headers: dict[str, str], base_url: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=base_url + "/v1", api_key=key, max_retries=0, timeout=120, default_headers=headers
    )


def place(cluster: Cluster) -> list[Conversation]:
    """Ten conversations: two X-Session-Id ones and one fallback key on the victim
    (those move), five and two on the survivor (those stay)."""
    base = cluster.nginx.base_url
    wanted = {VICTIM: 2, SURVIVOR: 5}
    placed: list[Conversation] = []
    for n in count():
        if not any(wanted.values()) or n > 200:
            break
        headers = {"X-Session-Id": f"scale-out-{n}"}
        where = cluster.routed_to({**headers, "Authorization": f"Bearer {KEYS[0]}"})
        if wanted[where]:
            wanted[where] -= 1
            name = f"s{len(placed)}"
            placed.append(Conversation(name, client(KEYS[0], headers, base), headers, False, where))
    assert not any(wanted.values()), f"nginx did not spread X-Session-Id values: {wanted}"
    wanted = {VICTIM: 1, SURVIVOR: 2}
    routes = routed(cluster, [{"Authorization": f"Bearer {key}"} for key in KEYS[1:]])
    for key, where in zip(KEYS[1:], routes, strict=True):
        if wanted[where]:
            wanted[where] -= 1
            name = f"k{len(placed) - 7}"
            placed.append(Conversation(name, client(key, {}, base), {}, False, where))
    assert not any(wanted.values()), f"nginx did not spread API keys: {wanted}"
    for index, conversation in enumerate(placed):
        conversation.stream = index % 2 == 0  # half of each kind streams
    return placed


def routed(cluster: Cluster, probes: list[dict[str, str]]) -> list[str]:
    """The instance each set of headers is sent to, asked eight at a time."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(cluster.routed_to, probes))


def run_turn(conversations: list[Conversation], turn: int) -> dict[str, str]:
    """Turn `turn` of every conversation, four at a time; the instance of each."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        instances = list(pool.map(lambda c: c.say(turn), conversations))
    return {c.name: where for c, where in zip(conversations, instances, strict=True)}


def upstream_request(fake: FakeAnthropic, conversation: Conversation, turn: int) -> Any:
    """The body of the last Messages call that carried this turn's new text."""
    marker = f"{conversation.name} says {turn} "
    bodies = [r.body for r in fake.message_requests if marker in own_text(r.body)]
    assert bodies, f"the upstream never saw {marker!r}"
    return bodies[-1]


def seen_text(body: Any) -> str:
    """Every text block of every message the upstream was sent."""
    texts: list[str] = []
    for message in body["messages"]:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        texts += [b["text"] for b in blocks if b.get("type") == "text"]
    return "\n".join(texts)


def test_bearer_and_x_api_key_reach_the_same_instance(cluster: Cluster) -> None:
    bearer = routed(cluster, [{"Authorization": f"Bearer {key}"} for key in KEYS])
    x_api_key = routed(cluster, [{"x-api-key": key} for key in KEYS])
    assert x_api_key == bearer
    assert set(bearer) == {VICTIM, SURVIVOR}  # the key is hashed, not ignored


def test_conversations_stick_fail_over_with_their_history_and_come_back(
    cluster: Cluster,
) -> None:
    conversations = place(cluster)
    fake = cluster.fake
    moved = [c for c in conversations if c.home == VICTIM]
    stayed = [c for c in conversations if c.home == SURVIVOR]

    first = run_turn(conversations, 1)
    assert first == {c.name: c.home for c in conversations}

    cluster.instances[VICTIM].crash()
    second = run_turn(conversations, 2)
    assert second == dict.fromkeys(first, SURVIVOR)
    for conversation in moved:
        body = upstream_request(fake, conversation, 2)
        # A fresh CLI session on the survivor, told the whole conversation at once.
        assert own_text(body).startswith(TRANSCRIPT_LEAD), conversation.name
        assert all(text in own_text(body) for text in conversation.history(2))
    for conversation in stayed:
        # Its own CLI session goes on: only the new message is the prompt.
        assert not own_text(upstream_request(fake, conversation, 2)).startswith(TRANSCRIPT_LEAD)

    cluster.instances[VICTIM].start()
    probe = {**moved[0].headers, "Authorization": f"Bearer {KEYS[0]}"}
    deadline = time.monotonic() + 40  # nginx tries it again after fail_timeout (10 s)
    while cluster.routed_to(probe) != VICTIM and time.monotonic() < deadline:
        time.sleep(0.5)

    third = run_turn(conversations, 3)
    assert third == first
    for conversation in conversations:
        # The victim's ledger stopped at turn 1; turn 2 (the survivor's) must not be lost.
        seen = seen_text(upstream_request(fake, conversation, 3))
        missing = [text for text in conversation.history(3) if text not in seen]
        assert not missing, (conversation.name, conversation.home, missing)
    # Every request was answered; some reached the victim's address first, when it was
    # down, and nginx passed them on (two addresses in the line) without an error.
    lines = cluster.nginx.access_log().splitlines()
    assert {re.search(r'" (\d{3}) ', line)[1] for line in lines} == {"200"}  # type: ignore[index]
    assert any(re.search(r"upstream=\S+, \S+ ", line) for line in lines)
