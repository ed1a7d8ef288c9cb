"""Per-key separation over HTTP, with the official openai SDK as the client: with API
keys configured, each key has its own conversations (the same X-Session-Id, `user`
or opening under two keys is two conversations), sees, continues and deletes only its
own, and admin keys see and delete them all. /health gives details to key holders only.
"""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from claude_max_api.settings import Settings
from proxy_core import ChatService, FakeRunner, PlanKind
from tests.support.server import LiveServer

from .conftest import MakeServer

KEY_A, KEY_B, ADMIN = "alice-key-5f1c", "bob-key-93aa", "admin-key-07de"
SETTINGS = Settings.from_values(api_keys=f"{KEY_A},{KEY_B}", admin_api_keys=ADMIN)


class Setup:
    def __init__(self, server: LiveServer, service: ChatService, runner: FakeRunner) -> None:
        self.server, self.service, self.runner = server, service, runner

    def client(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.server.base_url + "/v1", api_key=key, max_retries=0)

    def chat(
        self, key: str, *texts: str, session: str | None = None, user: str | None = None
    ) -> tuple[str, str]:
        """Send a conversation of user texts with echo replies between; (reply, X-Session-Id)."""
        messages: list[Any] = []
        for i, text in enumerate(texts):
            if i:
                messages.append({"role": "assistant", "content": f"echo: {texts[i - 1]}"})
            messages.append({"role": "user", "content": text})
        extra: dict[str, Any] = {"extra_headers": {"X-Session-Id": session}} if session else {}
        if user is not None:
            extra["user"] = user
        raw = self.client(key).chat.completions.with_raw_response.create(
            model="sonnet", messages=messages, **extra
        )
        reply = raw.parse().choices[0].message.content
        assert reply is not None
        return reply, raw.headers["x-session-id"]

    def sessions(self, key: str) -> Any:
        return self.client(key).get("/sessions", cast_to=httpx.Response).json()

    def delete(self, key: str, path: str) -> httpx.Response:
        return httpx.delete(
            self.server.base_url + "/v1/sessions" + path,
            headers={"Authorization": f"Bearer {key}"},
        )

    def last_plan(self) -> tuple[PlanKind, str]:
        plan = self.runner.plans[-1]
        return plan.kind, plan.cli_session_id


@pytest.fixture
def keyed(make_server: MakeServer) -> Setup:
    server, service, runner = make_server(settings=SETTINGS)
    return Setup(server, service, runner)


WAYS = {
    "x-session-id": {"session": "shared"},
    "user": {"user": "shared"},
    "automatic": {},
}


@pytest.mark.parametrize("way", list(WAYS))
def test_the_same_session_key_under_two_keys_is_two_conversations(keyed: Setup, way: str) -> None:
    how = WAYS[way]
    _, shown_a = keyed.chat(KEY_A, "secret plans", **how)
    kind_a, cli_a = keyed.last_plan()
    # Bob sends Alice's conversation, as if continuing it under the same key.
    _, shown_b = keyed.chat(KEY_B, "secret plans", "what did I say?", **how)
    kind_b, cli_b = keyed.last_plan()
    assert (kind_a, kind_b) == (PlanKind.NEW, PlanKind.NEW)
    assert cli_b != cli_a
    assert [m.text for m in keyed.runner.plans[-1].messages] == [
        "secret plans",
        "echo: secret plans",
        "what did I say?",
    ]
    # Each client sees its own key, without any namespace.
    assert shown_a == shown_b
    if way != "automatic":
        assert shown_a == ("h:shared" if way == "x-session-id" else "u:shared")
    # And each key still continues its own conversation.
    keyed.chat(KEY_A, "secret plans", "more", **how)
    assert keyed.last_plan() == (PlanKind.CONTINUE, cli_a)


def test_a_key_lists_only_its_own_sessions_under_its_own_ids(keyed: Setup) -> None:
    keyed.chat(KEY_A, "hi", session="mine")
    keyed.chat(KEY_A, "hello", session="also/mine")
    keyed.chat(KEY_B, "hi", session="mine")
    listed = keyed.sessions(KEY_A)
    assert listed["total"] == 2
    assert sorted(s["externalId"] for s in listed["sessions"]) == ["h:also/mine", "h:mine"]
    listed_b = keyed.sessions(KEY_B)
    assert [s["externalId"] for s in listed_b["sessions"]] == ["h:mine"]
    claude_ids = {s["claudeSessionId"] for s in listed["sessions"]}
    assert listed_b["sessions"][0]["claudeSessionId"] not in claude_ids


def test_a_key_deletes_only_its_own_sessions(keyed: Setup) -> None:
    keyed.chat(KEY_A, "hi", session="mine")
    keyed.chat(KEY_A, "hello", session="a/b")
    keyed.chat(KEY_B, "hi", session="mine")
    admin_view = {s["externalId"] for s in keyed.sessions(ADMIN)["sessions"]}
    alices_full_key = next(k for k in admin_view if k.endswith(":h:a/b"))
    # Bob can name Alice's session neither by her id nor by its full store key.
    assert keyed.delete(KEY_B, "/a%2Fb").status_code == 404
    assert keyed.delete(KEY_B, "/" + alices_full_key).status_code == 404
    # Bob's reset-all removes Bob's sessions only.
    assert keyed.delete(KEY_B, "").json() == {"deleted": 1, "purged": 0}
    assert keyed.sessions(KEY_B)["total"] == 0
    assert keyed.sessions(KEY_A)["total"] == 2
    # Alice deletes hers by the id she knows, a slash included.
    deleted = keyed.delete(KEY_A, "/a%2Fb")
    assert deleted.status_code == 200
    assert deleted.json()["externalId"] == "h:a/b"
    assert [s["externalId"] for s in keyed.sessions(KEY_A)["sessions"]] == ["h:mine"]


def test_an_admin_key_chats_in_its_own_namespace_and_sees_and_deletes_every_session(
    keyed: Setup,
) -> None:
    keyed.chat(KEY_A, "hi", session="mine")
    keyed.chat(KEY_B, "hi", session="mine")
    _, shown = keyed.chat(ADMIN, "hi", session="mine")
    assert shown == "h:mine"
    assert keyed.last_plan()[0] is PlanKind.NEW  # not Alice's nor Bob's conversation
    listed = keyed.sessions(ADMIN)
    assert listed["total"] == 3
    ids = [s["externalId"] for s in listed["sessions"]]
    # Admins see full store keys: each names its owner's namespace, never a key.
    assert len(set(ids)) == 3
    assert all(i.startswith("ns:") and i.endswith(":h:mine") for i in ids)
    assert not any(key in i for i in ids for key in (KEY_A, KEY_B, ADMIN))
    # A raw id means the admin's own session; a listed full key means anyone's.
    assert keyed.delete(ADMIN, "/mine").json()["deleted"] is True
    alices = ids[-1]
    assert keyed.delete(ADMIN, "/" + alices).json()["externalId"] == alices
    assert keyed.sessions(KEY_A)["total"] + keyed.sessions(KEY_B)["total"] == 1
    assert keyed.delete(ADMIN, "").json() == {"deleted": 1, "purged": 0}
    assert keyed.sessions(ADMIN)["total"] == 0


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}], ids=["no-key", "wrong-key"]
)
def test_health_without_a_valid_key_says_only_ok_or_degraded(
    keyed: Setup, headers: dict[str, str]
) -> None:
    keyed.chat(KEY_A, "hi", session="mine")
    response = httpx.get(keyed.server.base_url + "/health", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("key", [KEY_A, ADMIN])
def test_health_with_a_valid_key_has_the_details(keyed: Setup, key: str) -> None:
    keyed.chat(KEY_A, "hi", session="mine")
    response = httpx.get(
        keyed.server.base_url + "/health", headers={"Authorization": f"Bearer {key}"}
    )
    body = response.json()
    assert body["status"] == "ok"
    assert body["sessions"] == 1
    assert body["backend"]["name"] == "fake"


def test_without_keys_health_keeps_its_details_and_sessions_are_shared(
    make_server: MakeServer,
) -> None:
    setup = Setup(*make_server())
    assert "backend" in httpx.get(setup.server.base_url + "/health").json()
    setup.chat("anything", "hi", session="s")
    setup.chat("something else", "hi", "more", session="s")
    assert setup.last_plan()[0] is PlanKind.CONTINUE
    assert [s["externalId"] for s in setup.sessions("x")["sessions"]] == ["h:s"]
