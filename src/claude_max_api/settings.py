"""Settings: every knob of the server, with a `serve` flag, an env var and a default.

Precedence is flag > env (`CLAUDE_PROXY_<NAME>`; the seed's `PORT` too) > default.
The flag and env names derive from the field name, so the three can never drift.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

import msgspec

from proxy_core import Effort
from proxy_http.browser_policy import parse_allowed_hosts, parse_allowed_origins

ENV_PREFIX = "CLAUDE_PROXY_"
# Settings whose values are secrets: shown masked wherever the settings are printed.
_SECRETS = frozenset({"api_keys", "admin_api_keys"})


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """The server's configuration (see `HELP` for what each field means)."""

    # HTTP
    host: str = "127.0.0.1"
    port: int = 3456
    max_body_bytes: int = 32 * 1024 * 1024
    max_body_bytes_in_flight: int | None = None
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 1000
    keepalive_interval: float = 15.0
    stream_hold: float = 3.0
    reasoning: bool = False
    shutdown_grace: float = 30.0
    # Security
    api_keys: str | None = None
    api_key_file: str | None = None
    admin_api_keys: str | None = None
    allow_unauthenticated: bool = False
    allowed_hosts: str | None = None
    allowed_origins: str | None = None
    watchdog_interval: float = 10.0
    log_format: Literal["console", "json"] = "console"
    log_level: str = "info"
    # Service limits
    max_concurrent: int = 4
    max_queued: int = 8
    busy_retry_after: float = 1.0
    max_messages: int = 10_000
    max_message_chars: int = 4_000_000
    max_images: int = 100
    max_image_bytes: int = 20 * 1024 * 1024
    # Model catalog
    default_model: str = "sonnet"
    strict_models: bool = False
    model_overrides: dict[str, str] = msgspec.field(default_factory=dict)
    # Sessions
    sessions_db: str | None = None
    session_ttl: float = 7 * 24 * 3600.0
    max_sessions: int = 10_000
    session_sweep_interval: float = 600.0
    transcript_grace: float = 3600.0
    # CLI backend (CliRunnerConfig)
    cli_path: str | None = None
    tools: str = "none"
    workdir: str | None = None
    state_dir: str | None = None
    allow_root_tools: bool = False
    cli_extra_env: dict[str, str] = msgspec.field(default_factory=dict)
    first_event_timeout: float = 90.0
    idle_timeout: float = 120.0
    total_timeout: float = 900.0
    kill_grace: float = 2.0
    cli_exit_wait: float = 5.0
    cli_max_line_bytes: int = 16 * 1024 * 1024
    cli_stderr_tail_bytes: int = 64 * 1024
    cli_version_timeout: float = 30.0
    upstream_retries: int | None = 2
    effort: Effort | None = None
    # Live CLI processes (LiveCliRunner; see README "Process model")
    spawn_per_turn: bool = False
    live_max: int = 8
    live_idle_timeout: float = 600.0
    live_probe_timeout: float = 2.0
    pool_size: int = 1

    def __post_init__(self) -> None:
        # A malformed allow-list fails at start-up, not as requests refused later.
        for field, parse in (
            ("allowed_hosts", parse_allowed_hosts),
            ("allowed_origins", parse_allowed_origins),
        ):
            try:
                parse(getattr(self, field))
            except ValueError as error:
                raise ValueError(f"{flag_name(field)} / {env_name(field)}: {error}") from None

    def __repr__(self) -> str:
        # API keys are secrets: a settings dump (a log line, a traceback) shows a mask.
        fields: list[str] = []
        for field in msgspec.structs.fields(self):
            value = getattr(self, field.name)
            default = (
                field.default if field.default is not msgspec.NODEFAULT else field.default_factory()
            )
            if value != default or field.name == "host":
                shown = "<hidden>" if field.name in _SECRETS and value else repr(value)
                fields.append(f"{field.name}={shown}")
        return f"Settings({', '.join(fields)})"


HELP: dict[str, str] = {
    "host": "Interface to bind (loopback by default).",
    "port": "TCP port (the seed's PORT env var is honoured too).",
    "max_body_bytes": "Largest request body accepted; larger ones get 413.",
    "max_body_bytes_in_flight": (
        "Most request-body bytes held at once by all requests (default 4 x max_body_bytes); "
        "beyond it 503 with Retry-After, before the body is read."
    ),
    "header_timeout": (
        "Seconds a connection has to send a complete request head (from connecting, or "
        "from the previous response); then it is closed. 0 disables."
    ),
    "body_timeout": (
        "Seconds a request body may go without a byte; then 408 and the connection "
        "closes. 0 disables."
    ),
    "max_connections": (
        "Most client connections open at once; beyond it a new one gets 503 and is "
        "closed. 0 disables."
    ),
    "keepalive_interval": "Seconds between `: keep-alive` SSE comments while a stream waits.",
    "stream_hold": "Seconds a stream waits for its first content before sending headers, "
    "so an early failure gets its own status (0: send at once).",
    "reasoning": "Always send thinking as `reasoning_content` (else only with reasoning_effort).",
    "shutdown_grace": "Seconds in-flight requests get to finish on SIGTERM/SIGINT.",
    "api_keys": "API keys clients must send (Bearer or x-api-key), comma-separated.",
    "api_key_file": "File of API keys, one per line (`#` comments allowed).",
    "admin_api_keys": "Admin API keys (see and delete every key's sessions), comma-separated.",
    "allow_unauthenticated": "Allow a non-loopback --host without API keys (trusted networks).",
    "allowed_hosts": "Host names answered besides loopback and --host (`name[:port]`, "
    "comma-separated; `*`: any); others get 421.",
    "allowed_origins": "Web origins that may call the server, with CORS "
    "(`https://app.example`, comma-separated); other pages get 403.",
    "watchdog_interval": "Seconds between sweeps for CLI processes that outlived their turn.",
    "log_format": "`console` (human) or `json` (one object a line).",
    "log_level": "debug, info, warning or error (debug adds the CLI backend's detail).",
    "max_concurrent": "Turns running at once (CLI processes busy).",
    "max_queued": "Turns waiting for a slot; beyond it requests get 429.",
    "busy_retry_after": "Retry-After seconds sent with a 429 busy answer.",
    "max_messages": "Most messages one request may carry.",
    "max_message_chars": "Most text characters in one message.",
    "max_images": "Most images in one request.",
    "max_image_bytes": "Largest decoded image, in bytes.",
    "default_model": "Model used for unknown ids (when not strict).",
    "strict_models": "Answer 404 model_not_found for unknown model ids instead of the default.",
    "model_overrides": "Extra or replaced ids: JSON object or `id=cli_model,id2=cli_model2`.",
    "sessions_db": "Session database (`:memory:` allowed); default <state_dir>/sessions.sqlite3.",
    "session_ttl": "Seconds an idle conversation is kept.",
    "max_sessions": "Most conversations kept; the least recently used go first.",
    "session_sweep_interval": "Seconds between sweeps of expired conversations and orphaned "
    "transcripts.",
    "transcript_grace": "Seconds a CLI transcript no conversation points to is kept before the "
    "sweep deletes it (0: never swept).",
    "cli_path": "The `claude` binary (else $CLAUDE_CLI_PATH, then `claude` on PATH).",
    "tools": "CLI tools profile: none, read-only, full, or a list like `Read,Grep`.",
    "workdir": "Working directory of the CLI (default <state_dir>/workdir).",
    "state_dir": "State directory (default $XDG_STATE_HOME/claude-max-api-proxy).",
    "allow_root_tools": "Allow the `full` tools profile when running as root.",
    "cli_extra_env": "Extra environment for the CLI: JSON object or `NAME=value,...`.",
    "first_event_timeout": "Seconds to wait for the CLI's first output of a turn.",
    "idle_timeout": "Seconds of CLI silence mid-turn before it is killed.",
    "total_timeout": "Seconds one turn may take in all.",
    "kill_grace": "Seconds between SIGTERM and SIGKILL when ending a CLI process.",
    "cli_exit_wait": "Seconds the CLI may take to exit by itself after its result.",
    "cli_max_line_bytes": "Longest line of CLI output accepted (bytes).",
    "cli_stderr_tail_bytes": "How much of the CLI's stderr is kept for error messages (bytes).",
    "cli_version_timeout": "Seconds `claude --version` may take at startup.",
    "upstream_retries": "Retries the CLI makes of a failed upstream request (empty: CLI default).",
    "effort": "Reasoning effort when a request sets none: low, medium, high, xhigh, max.",
    "spawn_per_turn": "Start a CLI process per request instead of one live per conversation.",
    "live_max": "Most CLI processes alive at once (live, pooled, ending); turns beyond wait.",
    "live_idle_timeout": "Seconds an idle live CLI process is kept before it is ended.",
    "live_probe_timeout": "Seconds a reused CLI process has to answer a probe (0: no probe).",
    "pool_size": "Pre-started CLI processes waiting for new conversations (0 disables the pool).",
}


class SettingsError(ValueError):
    """A setting value that cannot be used (names the flag or env var)."""


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _field_types() -> dict[str, Any]:
    return {f.name: f.type for f in msgspec.structs.fields(Settings)}


def parse_pairs(text: str) -> dict[str, str]:
    """A mapping from a JSON object or from `key=value` pairs split by commas."""
    stripped = text.strip()
    if not stripped:
        return {}
    if stripped.startswith("{"):
        data = json.loads(stripped)
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return {str(k): str(v) for k, v in data.items()}
    pairs: dict[str, str] = {}
    for item in stripped.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected key=value, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def _convert(field: str, raw: str, source: str) -> object:
    """Turn one textual value into the field's type (msgspec validates the result)."""
    kind = _field_types()[field]
    text = str(kind)
    try:
        if "dict" in text:
            return parse_pairs(raw)
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError("expected true or false")
        if raw.strip() == "" and type(None) in get_args(kind):
            return None
        if kind in (int, int | None):
            return int(raw)
        if kind in (float, float | None):
            return float(raw)
        return raw
    except ValueError as error:
        raise SettingsError(f"{source}: {error}") from error


def from_env(environ: Mapping[str, str]) -> dict[str, object]:
    """Values set by environment variables (PORT below CLAUDE_PROXY_PORT)."""
    values: dict[str, object] = {}
    if "PORT" in environ:
        values["port"] = _convert("port", environ["PORT"], "PORT")
    for field in _field_types():
        name = env_name(field)
        if name in environ:
            values[field] = _convert(field, environ[name], name)
    return values


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; unset flags stay absent so env and defaults apply."""
    for field, kind in _field_types().items():
        help_text = f"{HELP.get(field, '')} [env {env_name(field)}]"
        if kind is bool:
            parser.add_argument(
                flag_name(field),
                dest=field,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        else:
            parser.add_argument(
                flag_name(field), dest=field, default=argparse.SUPPRESS, help=help_text
            )


def from_flags(namespace: argparse.Namespace) -> dict[str, object]:
    values: dict[str, object] = {}
    for field in _field_types():
        if hasattr(namespace, field):
            raw = getattr(namespace, field)
            values[field] = raw if isinstance(raw, bool) else _convert(field, raw, flag_name(field))
    return values


def load_settings(
    namespace: argparse.Namespace | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Settings from flags over env vars over defaults; raises SettingsError if invalid."""
    values = from_env(os.environ if environ is None else environ)
    if namespace is not None:
        values.update(from_flags(namespace))
    try:
        return msgspec.convert(values, Settings)
    except msgspec.ValidationError as error:
        raise SettingsError(f"Invalid setting: {error}") from error


def parse_serve_args(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Settings for `serve` from its argv (used by tests; `cli` builds the real parser)."""
    parser = argparse.ArgumentParser(prog="claude-max-api serve")
    add_flags(parser)
    return load_settings(parser.parse_args(list(argv)), environ)
