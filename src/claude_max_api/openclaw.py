"""`claude-max-api setup-openclaw`: point an OpenClaw install at this proxy.

It writes the `claude-proxy` provider into `agents/main/agent/models.json`, its
profile into `auth-profiles.json`, and the default models into `openclaw.json`,
keeping every other key. A file is only rewritten when its content changes, after
a timestamped backup; `--dry-run` prints the diff instead. Then it asks a running
OpenClaw gateway to reload (SIGUSR1). No network is used beyond 127.0.0.1.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import msgspec

from claude_max_api.probe import BUSY, proxy_health
from proxy_cli_backend.procfs import PROC, command_lines
from proxy_core import ModelCatalog

PROVIDER = "claude-proxy"
PROFILE = f"{PROVIDER}:default"
DEFAULT_PORT = 3456
DEFAULT_PRIMARY = "claude-sonnet-4"
DEFAULT_FALLBACKS = ("claude-haiku-4",)
# The proxy ignores the key unless it is started with API keys; OpenClaw wants one.
PLACEHOLDER_KEY = "not-needed"
# OpenClaw's idle timer ignores SSE comments, the proxy's default keepalive: the server
# (which this command does not start nor configure) should send empty chunks instead.
SERVE_FLAGS = "--keepalive-style chunk"
KEEPALIVE_ADVICE = (
    "keepalive: OpenClaw's idle timer ignores SSE comments, so serve the proxy with "
    f"`{SERVE_FLAGS}` (or CLAUDE_PROXY_KEEPALIVE_STYLE=chunk) if it does not already: "
    "its keepalives are then empty chunks, and a turn that thinks for long is not cut off"
)

_DATED = re.compile(r"-\d{8}$")
_VERSION = re.compile(r"-(\d+)-(\d+)$")
_WORD_VERSION = re.compile(r"-(\d+)$")

JsonObject = dict[str, Any]


class ModelSpec(msgspec.Struct, frozen=True):
    """One model as OpenClaw's models.json lists it (field names are OpenClaw's)."""

    id: str
    name: str
    reasoning: bool
    input: tuple[str, ...]
    cost: dict[str, int]
    contextWindow: int
    maxTokens: int


class ConfigChange(msgspec.Struct, frozen=True):
    """One file's old and new text (old is None for a file that does not exist yet)."""

    path: Path
    old: str | None
    new: str

    @property
    def changed(self) -> bool:
        return self.old is None or _parsed(self.old) != _parsed(self.new)


class SetupError(Exception):
    """A problem that stops the setup before anything is written."""


# -- the model list ------------------------------------------------------------


def openclaw_models(catalog: ModelCatalog | None = None) -> list[ModelSpec]:
    """The catalog's Claude ids (without dated duplicates), with per-family limits."""
    specs: list[ModelSpec] = []
    for entry in (catalog or ModelCatalog()).list():
        if not entry.id.startswith("claude-") or _DATED.search(entry.id):
            continue
        family = entry.id.split("-")[1]
        context, max_tokens, reasoning = _FAMILY_LIMITS.get(family, (200_000, 32_000, False))
        specs.append(
            ModelSpec(
                id=entry.id,
                name=f"{_display_name(entry.id, entry.cli_model)} (via claude-max-api-proxy)",
                reasoning=reasoning,
                input=("text", "image"),
                cost={"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
                contextWindow=context,
                maxTokens=max_tokens,
            )
        )
    return specs


# family -> (context window, max output tokens, supports reasoning)
_FAMILY_LIMITS: dict[str, tuple[int, int, bool]] = {
    "opus": (200_000, 64_000, True),
    "sonnet": (200_000, 64_000, True),
    "haiku": (200_000, 64_000, False),
}


def _display_name(model_id: str, cli_model: str) -> str:
    """`claude-sonnet-4-6` -> `Claude Sonnet 4.6`; an id run as a family alias -> `(latest)`."""
    if cli_model in _FAMILY_LIMITS:
        return f"Claude {cli_model.capitalize()} (latest)"
    stem = _VERSION.sub(lambda m: f" {m[1]}.{m[2]}", model_id)
    stem = _WORD_VERSION.sub(lambda m: f" {m[1]}", stem)
    return " ".join(word.capitalize() for word in stem.replace("-", " ").split())


# -- the three files -------------------------------------------------------------


def patch_models(current: JsonObject, models: list[ModelSpec], port: int, key: str) -> JsonObject:
    """models.json with our provider set and every other provider and key kept."""
    patched = copy.deepcopy(current)
    providers = patched.setdefault("providers", {})
    providers[PROVIDER] = {
        "baseUrl": f"http://127.0.0.1:{port}/v1",
        "api": "openai-completions",
        "apiKey": key,
        "models": msgspec.to_builtins(models),
    }
    return patched


def patch_auth_profiles(current: JsonObject, key: str) -> JsonObject:
    """auth-profiles.json with our profile (OpenClaw's own stats are left alone)."""
    patched = copy.deepcopy(current)
    patched.setdefault("version", 1)
    patched.setdefault("profiles", {})[PROFILE] = {
        "type": "api_key",
        "provider": PROVIDER,
        "key": key,
    }
    patched.setdefault("lastGood", {})[PROVIDER] = PROFILE
    return patched


def patch_openclaw(
    current: JsonObject, models: list[ModelSpec], primary: str, fallbacks: list[str]
) -> JsonObject:
    """openclaw.json with our default model and fallbacks, and our models offered.

    Only `model.primary` and `model.fallbacks` are set; other keys of `model` and
    existing per-model options in `models` (aliases, params) are kept.
    """
    patched = copy.deepcopy(current)
    defaults = patched.setdefault("agents", {}).setdefault("defaults", {})
    model = defaults.get("model")
    model = model if isinstance(model, dict) else {}
    model["primary"] = f"{PROVIDER}/{primary}"
    model["fallbacks"] = [f"{PROVIDER}/{name}" for name in fallbacks]
    defaults["model"] = model
    offered = defaults.setdefault("models", {})
    for spec in models:
        offered.setdefault(f"{PROVIDER}/{spec.id}", {})
    return patched


def plan_changes(
    home: Path, models: list[ModelSpec], port: int, primary: str, fallbacks: list[str], key: str
) -> list[ConfigChange]:
    """The new text of each file; raises SetupError if an existing file is not JSON."""
    agent = home / "agents" / "main" / "agent"
    targets: list[tuple[Path, Callable[[JsonObject], JsonObject]]] = [
        (agent / "models.json", lambda data: patch_models(data, models, port, key)),
        (agent / "auth-profiles.json", lambda data: patch_auth_profiles(data, key)),
        (home / "openclaw.json", lambda data: patch_openclaw(data, models, primary, fallbacks)),
    ]
    changes: list[ConfigChange] = []
    for path, patch in targets:
        old = path.read_text(encoding="utf-8") if path.exists() else None
        current = _load(path, old)
        changes.append(ConfigChange(path, old, _dump(patch(current))))
    return changes


def _load(path: Path, text: str | None) -> JsonObject:
    if text is None or not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise SetupError(
            f"{path} is not plain JSON ({error}); fix or move it away, then run again"
        ) from error
    if not isinstance(data, dict):
        raise SetupError(f"{path} does not hold a JSON object; fix or move it away")
    return data


def _dump(data: JsonObject) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _parsed(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def apply_change(change: ConfigChange, stamp: str) -> Path | None:
    """Back up the old file (if any), then replace it atomically; returns the backup."""
    change.path.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    mode = 0o600
    if change.old is not None:
        mode = change.path.stat().st_mode & 0o777
        backup = _free_name(change.path.with_name(f"{change.path.name}.bak.{stamp}"))
        backup.write_text(change.old, encoding="utf-8")
        os.chmod(backup, mode)
    temporary = change.path.with_name(f".{change.path.name}.tmp-{os.getpid()}")
    temporary.write_text(change.new, encoding="utf-8")
    os.chmod(temporary, mode)
    os.replace(temporary, change.path)
    return backup


def _free_name(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        candidate, n = path.with_name(f"{path.name}.{n}"), n + 1
    return candidate


def diff(change: ConfigChange) -> str:
    """A unified diff from the file on disk to what would be written."""
    old = (change.old or "").splitlines(keepends=True)
    return "".join(
        difflib.unified_diff(
            old,
            change.new.splitlines(keepends=True),
            fromfile=str(change.path) if change.old is not None else "/dev/null",
            tofile=str(change.path),
        )
    )


# -- the proxy and the gateway -----------------------------------------------------


def gateway_pids(proc_root: Path = PROC) -> list[int]:
    """Processes whose command line is an OpenClaw gateway (`openclaw-gateway ...` or
    `[node] .../openclaw gateway ...`), found via <proc>/<pid>/cmdline."""
    found: list[int] = []
    for pid, argv in command_lines(proc_root):
        if pid != os.getpid() and _is_gateway(argv):
            found.append(pid)
    return sorted(found)


def _is_gateway(argv: list[str]) -> bool:
    names = [Path(arg).name for arg in argv[:3]]
    if "openclaw-gateway" in names:
        return True
    for i, name in enumerate(names):
        if name in ("openclaw", "openclaw.mjs", "openclaw.js") and i + 1 < len(argv):
            return argv[i + 1] == "gateway"
    return False


# -- the command ---------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="claude-max-api setup-openclaw",
        description="Configure OpenClaw to use this proxy as its `claude-proxy` provider.",
    )
    parser.add_argument(
        "--openclaw-home",
        type=Path,
        default=Path(os.environ.get("OPENCLAW_HOME") or Path.home() / ".openclaw"),
        help="OpenClaw's state directory (default: $OPENCLAW_HOME, else ~/.openclaw).",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"The proxy's port (default: {DEFAULT_PORT}).",
    )
    parser.add_argument(
        "--primary", default=DEFAULT_PRIMARY, help=f"Default model (default: {DEFAULT_PRIMARY})."
    )
    parser.add_argument(
        "--fallback",
        action="append",
        dest="fallbacks",
        help=f"A fallback model; repeat for several (default: {', '.join(DEFAULT_FALLBACKS)}).",
    )
    parser.add_argument(
        "--api-key",
        default=PLACEHOLDER_KEY,
        help="Key OpenClaw sends, needed only when the proxy is started with API keys "
        f"(default: {PLACEHOLDER_KEY}).",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="Print the diff of each file; write nothing (default: off, files are written).",
    )
    parser.add_argument(
        "--skip-check",
        action="store_true",
        help="Do not check that the proxy answers first (default: off, it is checked).",
    )
    return parser


def setup_openclaw(
    argv: list[str] | None,
    *,
    out: TextIO | None = None,
    proc_root: Path = PROC,
    clock: Callable[[], float] = time.time,
) -> int:
    """Run the command; returns the exit code (0 done or nothing to do, 1 a problem)."""
    args = build_parser().parse_args(argv)
    say = _printer(out or sys.stdout)
    home: Path = args.openclaw_home.expanduser()
    models = openclaw_models()
    try:
        primary = _model_id(args.primary, models)
        fallbacks = [_model_id(name, models) for name in args.fallbacks or DEFAULT_FALLBACKS]
        if not home.is_dir():
            raise SetupError(
                f"OpenClaw home {home} does not exist: run OpenClaw once "
                "(`openclaw gateway run`) or pass --openclaw-home DIR"
            )
        changes = plan_changes(home, models, args.port, primary, fallbacks, args.api_key)
    except SetupError as error:
        say(f"error: {error}")
        return 1

    if not args.skip_check:
        verdict = proxy_health(args.port)
        if verdict is not None:
            shown = "busy: at its connection limit" if verdict == BUSY else f"status: {verdict}"
            say(f"proxy: answering at http://127.0.0.1:{args.port}/health ({shown})")
        else:
            say(
                f"proxy: nothing answers at http://127.0.0.1:{args.port}/health; "
                f"start it with `claude-max-api serve --port {args.port} {SERVE_FLAGS}` "
                "(the OpenClaw config is written anyway)"
            )
    say(KEEPALIVE_ADVICE)

    pending = [change for change in changes if change.changed]
    if args.dry_run:
        for change in pending:
            say(diff(change), end="")
        say(f"dry run: {len(pending)} file(s) would change; nothing written")
        return 0
    if not pending:
        say("OpenClaw is already set up for this proxy: nothing changed, no backup made")
        return 0
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(clock()))
    for change in pending:
        backup = apply_change(change, stamp)
        saved = f" (backup: {backup})" if backup else " (new file)"
        say(f"wrote {change.path}{saved}")
    say(f"primary model: {PROVIDER}/{primary}; fallbacks: {', '.join(fallbacks) or 'none'}")
    _reload_gateway(proc_root, say)
    return 0


def _model_id(name: str, models: list[ModelSpec]) -> str:
    bare = name.removeprefix(f"{PROVIDER}/")
    if any(spec.id == bare for spec in models):
        return bare
    known = ", ".join(spec.id for spec in models)
    raise SetupError(f"unknown model {name!r}; choose one of: {known}")


def _reload_gateway(proc_root: Path, say: Callable[..., None]) -> None:
    pids = gateway_pids(proc_root)
    if not pids:
        say("gateway: no OpenClaw gateway runs; it reads the new config when it starts")
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGUSR1)
        except ProcessLookupError:
            say(f"gateway: process {pid} ended before it could be told to reload")
        except PermissionError:
            say(f"gateway: not allowed to signal process {pid}; run `kill -USR1 {pid}` as its user")
        else:
            say(f"gateway: asked process {pid} to reload (SIGUSR1)")


def _printer(stream: TextIO) -> Callable[..., None]:
    def say(text: str, end: str = "\n") -> None:
        stream.write(text + end)
        stream.flush()

    return say
