"""setup-openclaw: writes OpenClaw's three files for this proxy, safely and idempotently."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar, Response, get

from claude_max_api.openclaw import gateway_pids, openclaw_models, setup_openclaw
from proxy_http.errors import AT_CAPACITY
from proxy_http.wire import ErrorBody
from tests.support.server import live_app

EXISTING_MODELS: dict[str, Any] = {
    "providers": {
        "other": {"baseUrl": "https://example.invalid/v1", "api": "openai-completions"},
        "claude-proxy": {"baseUrl": "http://127.0.0.1:1/v1", "models": []},
    },
    "custom": {"keep": True},
}
EXISTING_PROFILES: dict[str, Any] = {
    "version": 1,
    "profiles": {"other:default": {"type": "api_key", "provider": "other", "key": "k"}},
    "usageStats": {"other:default": {"lastUsed": 1, "errorCount": 0}},
}
EXISTING_OPENCLAW: dict[str, Any] = {
    "gateway": {"port": 18789},
    "agents": {
        "defaults": {
            "workspace": "/srv/ws",
            "model": {"primary": "other/x", "fallbacks": [], "note": "mine"},
            "models": {
                "other/x": {"alias": "x"},
                "claude-proxy/claude-opus-4": {"alias": "big"},
            },
        },
        "list": [{"id": "main"}],
    },
    "auth": {"profiles": {}},
}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An OpenClaw home with a config of its own in each file."""
    root = tmp_path / "openclaw"
    agent = root / "agents" / "main" / "agent"
    agent.mkdir(parents=True)
    (agent / "models.json").write_text(json.dumps(EXISTING_MODELS, indent=4))
    (agent / "auth-profiles.json").write_text(json.dumps(EXISTING_PROFILES))
    (root / "openclaw.json").write_text(json.dumps(EXISTING_OPENCLAW, indent=2))
    return root


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    """An empty stand-in for /proc, so no real process is ever signalled."""
    root = tmp_path / "proc"
    root.mkdir()
    return root


def run(home: Path, proc: Path, *extra: str) -> tuple[int, str]:
    out = io.StringIO()
    argv = ["--openclaw-home", str(home), "--port", "4567", "--skip-check", *extra]
    code = setup_openclaw(argv, out=out, proc_root=proc, clock=lambda: 1_700_000_000.0)
    return code, out.getvalue()


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def models_json(home: Path) -> Any:
    return load(home / "agents" / "main" / "agent" / "models.json")


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}


def test_the_provider_points_at_the_proxy_port_with_every_model_free(
    home: Path, proc: Path
) -> None:
    code, _ = run(home, proc)
    assert code == 0
    provider = models_json(home)["providers"]["claude-proxy"]
    assert provider["baseUrl"] == "http://127.0.0.1:4567/v1"
    assert provider["api"] == "openai-completions"
    ids = [m["id"] for m in provider["models"]]
    assert ids == [m.id for m in openclaw_models()]
    assert "claude-sonnet-4" in ids
    for model in provider["models"]:
        assert model["input"] == ["text", "image"]
        assert set(model["cost"].values()) == {0}
        assert model["contextWindow"] >= 100_000
        assert 0 < model["maxTokens"] <= model["contextWindow"]


def test_the_auth_profile_is_written_and_marked_last_good(home: Path, proc: Path) -> None:
    run(home, proc)
    profiles = load(home / "agents" / "main" / "agent" / "auth-profiles.json")
    assert profiles["profiles"]["claude-proxy:default"] == {
        "type": "api_key",
        "provider": "claude-proxy",
        "key": "not-needed",
    }
    assert profiles["lastGood"]["claude-proxy"] == "claude-proxy:default"


def test_openclaw_json_gets_the_primary_fallbacks_and_offered_models(
    home: Path, proc: Path
) -> None:
    run(
        home,
        proc,
        "--primary",
        "claude-opus-4-5",
        "--fallback",
        "claude-haiku-4-5",
        "--fallback",
        "claude-proxy/claude-sonnet-4",
    )
    defaults = load(home / "openclaw.json")["agents"]["defaults"]
    assert defaults["model"]["primary"] == "claude-proxy/claude-opus-4-5"
    assert defaults["model"]["fallbacks"] == [
        "claude-proxy/claude-haiku-4-5",
        "claude-proxy/claude-sonnet-4",
    ]
    for model in openclaw_models():
        assert f"claude-proxy/{model.id}" in defaults["models"]


def test_every_unrelated_key_is_kept(home: Path, proc: Path) -> None:
    run(home, proc)
    models = models_json(home)
    assert models["providers"]["other"] == EXISTING_MODELS["providers"]["other"]
    assert models["custom"] == {"keep": True}
    profiles = load(home / "agents" / "main" / "agent" / "auth-profiles.json")
    assert profiles["profiles"]["other:default"] == EXISTING_PROFILES["profiles"]["other:default"]
    assert profiles["usageStats"] == EXISTING_PROFILES["usageStats"]
    config = load(home / "openclaw.json")
    assert config["gateway"] == {"port": 18789}
    assert config["auth"] == {"profiles": {}}
    assert config["agents"]["list"] == [{"id": "main"}]
    defaults = config["agents"]["defaults"]
    assert defaults["workspace"] == "/srv/ws"
    assert defaults["model"]["note"] == "mine"
    assert defaults["models"]["other/x"] == {"alias": "x"}
    assert defaults["models"]["claude-proxy/claude-opus-4"] == {"alias": "big"}


def test_each_changed_file_is_backed_up_with_its_old_content(home: Path, proc: Path) -> None:
    before = snapshot(home)
    _, output = run(home, proc)
    backups = sorted(p for p in home.rglob("*.bak.*"))
    assert len(backups) == 3
    for backup in backups:
        original = str(backup.relative_to(home)).split(".bak.")[0]
        assert backup.read_text() == before[original]
        assert str(backup) in output


def test_a_second_run_changes_nothing_and_makes_no_backup(home: Path, proc: Path) -> None:
    run(home, proc)
    after_first = snapshot(home)
    code, output = run(home, proc)
    assert code == 0
    assert snapshot(home) == after_first
    assert "nothing changed" in output


def test_a_dry_run_prints_the_diff_and_writes_nothing(home: Path, proc: Path) -> None:
    before = snapshot(home)
    code, output = run(home, proc, "--dry-run")
    assert code == 0
    assert snapshot(home) == before
    assert "+++ " in output
    assert '+      "baseUrl": "http://127.0.0.1:4567/v1",' in output
    assert "nothing written" in output


def test_missing_files_are_created_without_backups(tmp_path: Path, proc: Path) -> None:
    bare = tmp_path / "fresh"
    bare.mkdir()
    code, output = run(bare, proc)
    assert code == 0
    assert models_json(bare)["providers"]["claude-proxy"]["api"] == "openai-completions"
    assert load(bare / "openclaw.json")["agents"]["defaults"]["model"]["primary"] == (
        "claude-proxy/claude-sonnet-4"
    )
    assert not list(bare.rglob("*.bak.*"))
    assert output.count("(new file)") == 3


def test_a_missing_openclaw_home_is_an_error_naming_the_option(tmp_path: Path, proc: Path) -> None:
    code, output = run(tmp_path / "absent", proc)
    assert code == 1
    assert "--openclaw-home" in output


def test_an_unknown_model_is_refused_before_writing(home: Path, proc: Path) -> None:
    before = snapshot(home)
    code, output = run(home, proc, "--primary", "gpt-9")
    assert code == 1
    assert "unknown model 'gpt-9'" in output
    assert snapshot(home) == before


def test_a_file_that_is_not_json_is_refused_before_writing(home: Path, proc: Path) -> None:
    (home / "openclaw.json").write_text("{ // json5 comment\n}")
    before = snapshot(home)
    code, output = run(home, proc)
    assert code == 1
    assert "openclaw.json is not plain JSON" in output
    assert snapshot(home) == before


def test_without_a_running_proxy_it_says_how_to_start_it(home: Path, proc: Path) -> None:
    out = io.StringIO()
    # Port 9 (discard) is never served on the test machine's loopback.
    argv = ["--openclaw-home", str(home), "--port", "9", "--dry-run"]
    assert setup_openclaw(argv, out=out, proc_root=proc) == 0
    assert "start it with `claude-max-api serve --port 9 --keepalive-style chunk`" in out.getvalue()


def test_it_recommends_chunk_keepalives_for_openclaws_idle_timer(home: Path, proc: Path) -> None:
    out = io.StringIO()
    argv = ["--openclaw-home", str(home), "--skip-check", "--dry-run"]
    assert setup_openclaw(argv, out=out, proc_root=proc) == 0
    assert "`--keepalive-style chunk`" in out.getvalue()
    assert "CLAUDE_PROXY_KEEPALIVE_STYLE=chunk" in out.getvalue()


def test_a_proxy_at_its_connection_limit_is_found_busy(home: Path, proc: Path) -> None:
    @get("/health")
    async def full() -> Response[ErrorBody]:
        return Response(AT_CAPACITY.body("At capacity."), status_code=503)

    out = io.StringIO()
    with live_app(Litestar([full])) as server:
        argv = ["--openclaw-home", str(home), "--port", str(server.port), "--dry-run"]
        assert setup_openclaw(argv, out=out, proc_root=proc) == 0
    assert (
        f"proxy: answering at http://127.0.0.1:{server.port}/health (busy: at its connection limit)"
    ) in out.getvalue().splitlines()


def test_without_a_gateway_it_says_none_runs(home: Path, proc: Path) -> None:
    _, output = run(home, proc)
    assert "no OpenClaw gateway runs" in output


# -- the gateway reload ------------------------------------------------------------

GATEWAY = """
import signal, sys, time
signal.signal(signal.SIGUSR1, lambda *_: (print("reloaded", flush=True), sys.exit(0)))
print("ready", flush=True)
time.sleep(60)
"""


@pytest.fixture
async def gateway(proc: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """A child standing in for the gateway, listed in the fake /proc as `openclaw gateway`."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", GATEWAY, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    assert await asyncio.wait_for(child.stdout.readline(), 30) == b"ready\n"
    entry = proc / str(child.pid)
    entry.mkdir()
    (entry / "cmdline").write_bytes(b"node\0/usr/lib/node_modules/openclaw/openclaw.mjs\0gateway\0")
    yield child
    if child.returncode is None:
        child.send_signal(signal.SIGKILL)
    await asyncio.wait_for(child.wait(), 30)


async def test_a_running_gateway_is_asked_to_reload(
    home: Path, proc: Path, gateway: asyncio.subprocess.Process
) -> None:
    _, output = await asyncio.to_thread(run, home, proc)
    assert f"asked process {gateway.pid} to reload" in output
    assert gateway.stdout is not None
    assert await asyncio.wait_for(gateway.stdout.readline(), 30) == b"reloaded\n"


@pytest.mark.parametrize(
    ("cmdline", "is_gateway"),
    [
        (b"openclaw-gateway\0", True),
        (b"/usr/bin/openclaw\0gateway\0run\0", True),
        (b"node\0/opt/openclaw/openclaw.mjs\0gateway\0", True),
        (b"node\0/opt/openclaw/openclaw.mjs\0agent\0", False),
        (b"vim\0openclaw-gateway.md\0", False),
        (b"bash\0-c\0echo openclaw gateway\0", False),
    ],
)
def test_the_gateway_is_recognised_by_its_command_line(
    proc: Path, cmdline: bytes, is_gateway: bool
) -> None:
    (proc / "4242").mkdir()
    (proc / "4242" / "cmdline").write_bytes(cmdline)
    (proc / "self").mkdir()
    assert gateway_pids(proc) == ([4242] if is_gateway else [])
