"""Settings: every knob of the server, declared once, in sections.

`Settings` nests one section per part of the server; the adapters' and the core's
own configs (`HttpOptions`, `SecurityOptions`, `ServiceLimits`, `CliRunnerConfig`,
`LiveConfig`) are parts of it, handed over whole by the composition root. Every
field with a `msgspec.Meta` description is a setting: it gets a `serve` flag, an env
var (`CLAUDE_PROXY_<NAME>`; `PORT` too) and a row in docs/configuration.md, all
generated here. A setting whose default is not a plain value (unset, or computed at
start-up) says what it means in its Meta's `extra={"default": ...}`. Precedence is
flag > env > default. A field without a description is wiring (filled by the
composition root), not a setting.

`python -m claude_max_api.docgen` prints docs/configuration.md (`make docs`).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Annotated, Any, Literal, get_args, get_origin

import msgspec
from msgspec import Meta

from proxy_cli_backend.config import CliRunnerConfig
from proxy_cli_backend.live_runner import LiveConfig
from proxy_core import ServiceLimits
from proxy_http.browser_policy import parse_allowed_hosts, parse_allowed_origins
from proxy_http.config import SECRET_FIELDS, HttpOptions, SecurityOptions
from proxy_http.instance import check_instance_name

ENV_PREFIX = "CLAUDE_PROXY_"


class ServerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Server: where it listens, its connections, its logs."""

    http: HttpOptions = msgspec.field(default_factory=HttpOptions)
    port: Annotated[
        int, Meta(description="TCP port (the `PORT` variable is honoured too, below this one).")
    ] = 3456
    instance_name: Annotated[
        str | None,
        Meta(
            description="This server's name, sent as the `X-Proxy-Instance` header of every "
            "response, so that behind a load balancer each answer says which instance "
            "served it (docs/deploy.md).",
            extra={"default": "<hostname>:<port>"},
        ),
    ] = None
    header_timeout: Annotated[
        float,
        Meta(
            description="Seconds a connection has to send a complete request head (from "
            "connecting, or from the previous response); then it is closed. 0 disables."
        ),
    ] = 10.0
    max_connections: Annotated[
        int,
        Meta(
            description="Most client connections open at once; beyond it a new one gets 503 "
            "and is closed. 0 disables."
        ),
    ] = 1000
    shutdown_grace: Annotated[
        float, Meta(description="Seconds in-flight requests get to finish on SIGTERM/SIGINT.")
    ] = 30.0
    log_format: Annotated[
        Literal["console", "json"],
        Meta(description="`console` (human) or `json` (one object a line)."),
    ] = "console"
    log_level: Annotated[
        str,
        Meta(description="debug, info, warning or error (debug adds the CLI backend's detail)."),
    ] = "info"


class SecuritySettings(msgspec.Struct, frozen=True, kw_only=True):
    """Security: API keys, and the hosts and web origins the server answers."""

    access: SecurityOptions = msgspec.field(default_factory=SecurityOptions)
    allow_unauthenticated: Annotated[
        bool,
        Meta(description="Allow a non-loopback --host without API keys (trusted networks)."),
    ] = False


class ModelSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Models: which ids are served and what unknown ones get."""

    default_model: Annotated[
        str, Meta(description="Model used for unknown ids (when not strict).")
    ] = "sonnet"
    strict_models: Annotated[
        bool,
        Meta(
            description="Answer 404 model_not_found for unknown model ids instead of the default."
        ),
    ] = False
    model_overrides: Annotated[
        dict[str, str],
        Meta(description="Extra or replaced ids: JSON object or `id=cli_model,id2=cli_model2`."),
    ] = msgspec.field(default_factory=dict)


class BackendSettings(msgspec.Struct, frozen=True, kw_only=True):
    """CLI backend: how `claude` is started and supervised."""

    cli: CliRunnerConfig = msgspec.field(default_factory=CliRunnerConfig)
    watchdog_interval: Annotated[
        float,
        Meta(description="Seconds between sweeps for CLI processes that outlived their turn."),
    ] = 10.0


class LiveSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Live CLI processes: one per conversation, and a warm pool for new ones."""

    spawn_per_turn: Annotated[
        bool,
        Meta(description="Start a CLI process per request instead of one live per conversation."),
    ] = False
    processes: LiveConfig = msgspec.field(default_factory=LiveConfig)


class SessionSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Sessions: where conversations are kept, and for how long."""

    sessions_db: Annotated[
        str | None,
        Meta(
            description="Session database (`:memory:` allowed).",
            extra={"default": "<state_dir>/sessions.sqlite3"},
        ),
    ] = None
    session_ttl: Annotated[float, Meta(description="Seconds an idle conversation is kept.")] = (
        7 * 24 * 3600.0
    )
    max_sessions: Annotated[
        int, Meta(description="Most conversations kept; the least recently used go first.")
    ] = 10_000
    session_sweep_interval: Annotated[
        float,
        Meta(
            description="Seconds between sweeps of expired conversations and orphaned transcripts."
        ),
    ] = 600.0
    transcript_grace: Annotated[
        float,
        Meta(
            description="Seconds a CLI transcript no conversation points to is kept before "
            "the sweep deletes it (0: never swept)."
        ),
    ] = 3600.0
    responses_db: Annotated[
        str | None,
        Meta(
            description="Database of stored Responses API replies (`:memory:` allowed).",
            extra={"default": "<state_dir>/responses.sqlite3"},
        ),
    ] = None
    response_ttl: Annotated[
        float,
        Meta(
            description="Seconds a stored Responses API reply is kept unused (0: until "
            "evicted); continuing its conversation uses it again."
        ),
    ] = 7 * 24 * 3600.0
    max_responses: Annotated[
        int,
        Meta(
            description="Most stored Responses API replies kept; the least recently used go first."
        ),
    ] = 10_000
    spend_db: Annotated[
        str | None,
        Meta(
            description="Database of what each API key spent, per model and UTC day, which "
            "budgets and /v1/usage read (`:memory:`: until the server stops).",
            extra={"default": "<state_dir>/spend.sqlite3"},
        ),
    ] = None


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """The server's configuration, one section per part (see docs/configuration.md)."""

    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    security: SecuritySettings = msgspec.field(default_factory=SecuritySettings)
    limits: ServiceLimits = msgspec.field(default_factory=ServiceLimits)
    models: ModelSettings = msgspec.field(default_factory=ModelSettings)
    backend: BackendSettings = msgspec.field(default_factory=BackendSettings)
    live: LiveSettings = msgspec.field(default_factory=LiveSettings)
    sessions: SessionSettings = msgspec.field(default_factory=SessionSettings)

    def __post_init__(self) -> None:
        # A malformed allow-list or instance name fails at start-up, not as requests
        # refused (or responses that cannot be written) later.
        name = self.server.instance_name
        if name is not None:
            try:
                check_instance_name(name)
            except ValueError as error:
                raise ValueError(
                    f"{flag_name('instance_name')} / {env_name('instance_name')}: {error}"
                ) from None
        access = self.security.access
        for name, value, parse in (
            ("allowed_hosts", access.allowed_hosts, parse_allowed_hosts),
            ("allowed_origins", access.allowed_origins, parse_allowed_origins),
        ):
            try:
                parse(value)
            except ValueError as error:
                raise ValueError(f"{flag_name(name)} / {env_name(name)}: {error}") from None

    @classmethod
    def from_values(cls, **values: object) -> Settings:
        """Settings from typed values keyed by setting name (`port=9000`), defaults elsewhere."""
        unknown = set(values) - set(BY_NAME)
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        return msgspec.convert(_nest(values), cls)

    def with_values(self, **values: object) -> Settings:
        """A copy with the named settings replaced."""
        return Settings.from_values(**{**self.values(), **values})

    def values(self) -> dict[str, object]:
        """Every setting's value, by setting name."""
        return {setting.name: setting.value_in(self) for setting in SETTINGS}

    def __repr__(self) -> str:
        # API keys are secrets: a settings dump (a log line, a traceback) shows a mask.
        shown: list[str] = []
        for setting in SETTINGS:
            value = setting.value_in(self)
            if value != setting.default or setting.name == "host":
                masked = setting.name in SECRET_FIELDS and value
                shown.append(f"{setting.name}={'<hidden>' if masked else repr(value)}")
        return f"Settings({', '.join(shown)})"


# The public names that predate the sections and differ from their field's name.
_PUBLIC_NAMES = {
    "backend.cli.extra_env": "cli_extra_env",
    "backend.cli.exit_wait": "cli_exit_wait",
    "backend.cli.max_line_bytes": "cli_max_line_bytes",
    "backend.cli.stderr_tail_bytes": "cli_stderr_tail_bytes",
    "backend.cli.version_timeout": "cli_version_timeout",
    "live.processes.max_live": "live_max",
    "live.processes.probe_timeout": "live_probe_timeout",
}


@dataclass(frozen=True)
class Setting:
    """One setting: where it lives in `Settings`, its public name, type, default, help."""

    name: str
    path: tuple[str, ...]
    type: Any
    default: object
    computed_default: bool
    description: str
    default_text: str | None = None  # what the default means, when not a plain value

    @property
    def section(self) -> str:
        return self.path[0]

    @property
    def flag(self) -> str:
        return flag_name(self.name)

    @property
    def env(self) -> str:
        return env_name(self.name)

    def value_in(self, settings: Settings) -> object:
        return reduce(getattr, self.path, settings)


def _described(kind: Any) -> tuple[Any, Meta | None]:
    """A field's type without `Annotated`, and its described Meta (None: not a setting)."""
    if get_origin(kind) is not Annotated:
        return kind, None
    base, *metas = get_args(kind)
    described = [m for m in metas if isinstance(m, Meta) and m.description]
    return base, (described[0] if described else None)


def _walk(struct: type[msgspec.Struct], path: tuple[str, ...]) -> Iterator[Setting]:
    for field in msgspec.structs.fields(struct):
        kind, meta = _described(field.type)
        where = (*path, field.name)
        if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
            yield from _walk(kind, where)
            continue
        if meta is None or meta.description is None:
            continue
        factory = field.default_factory
        computed = field.default is msgspec.NODEFAULT and factory not in (dict, list)
        default = field.default if field.default is not msgspec.NODEFAULT else factory()
        yield Setting(
            name=_PUBLIC_NAMES.get(".".join(where), field.name),
            path=where,
            type=kind,
            default=default,
            computed_default=computed,
            description=meta.description,
            default_text=(meta.extra or {}).get("default"),
        )


SETTINGS: tuple[Setting, ...] = tuple(_walk(Settings, ()))
"""Every setting, in declaration order."""
BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}
if len(BY_NAME) != len(SETTINGS):  # a flag and an env var would then set two fields
    raise RuntimeError("two settings share a public name")


def _nest(values: Mapping[str, object]) -> dict[str, Any]:
    """Values by setting name as the nested mapping `Settings` converts from."""
    nested: dict[str, Any] = {}
    for name, value in values.items():
        *parents, leaf = BY_NAME[name].path
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


class SettingsError(ValueError):
    """A setting value that cannot be used (names the flag or env var)."""


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


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


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def _from_text(kind: Any, raw: str) -> object:
    """The forms users type that msgspec's lax conversion does not read itself."""
    if get_origin(kind) is dict:
        return parse_pairs(raw)
    lowered = raw.strip().lower()
    if kind is bool:
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError("expected true or false (yes/no, on/off, 1/0)")
    if not lowered and type(None) in get_args(kind):
        return None
    number = _number_type(kind)
    # Python's own reading (spaces, `1_000`, `.5`), as the flags have always accepted.
    return number(raw) if number is not None else raw


def _number_type(kind: Any) -> type[int] | type[float] | None:
    """`int` or `float` when the setting is one (optional or not), else None."""
    options = [arg for arg in get_args(kind) if arg is not type(None)] or [kind]
    if options == [int]:
        return int
    if options == [float]:
        return float
    return None


def parse_value(setting: Setting, raw: str, source: str) -> object:
    """One textual value (a flag's or an env var's) as the setting's type."""
    try:
        return msgspec.convert(_from_text(setting.type, raw), setting.type, strict=False)
    except (ValueError, msgspec.ValidationError) as error:
        raise SettingsError(f"{source}: {error}") from error


def from_env(environ: Mapping[str, str]) -> dict[str, object]:
    """Values set by environment variables (PORT below CLAUDE_PROXY_PORT)."""
    values: dict[str, object] = {}
    if "PORT" in environ:
        values["port"] = parse_value(BY_NAME["port"], environ["PORT"], "PORT")
    for setting in SETTINGS:
        if setting.env in environ:
            values[setting.name] = parse_value(setting, environ[setting.env], setting.env)
    return values


def help_default(setting: Setting) -> str:
    """A setting's default as `--help` shows it: its value, or what its absence means."""
    value = setting.default
    if setting.default_text is not None:
        return setting.default_text
    if value is None:
        return "unset"
    if value == {}:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def help_text(setting: Setting) -> str:
    """A flag's help: what it does, its env var, and (last) its default."""
    text = f"{setting.description} [env {setting.env}] (default: {help_default(setting)})"
    return text.replace("%", "%%")  # argparse formats help with `%`


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, grouped by section as in docs/configuration.md; unset flags
    stay absent so env and defaults apply."""
    groups = {
        section: parser.add_argument_group(title, about)
        for section, (title, about) in SECTIONS.items()
    }
    for setting in SETTINGS:
        group = groups[setting.section]
        if setting.type is bool:
            group.add_argument(
                setting.flag,
                dest=setting.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text(setting),
            )
        else:
            group.add_argument(
                setting.flag, dest=setting.name, default=argparse.SUPPRESS, help=help_text(setting)
            )


def from_flags(namespace: argparse.Namespace) -> dict[str, object]:
    values: dict[str, object] = {}
    for setting in SETTINGS:
        if hasattr(namespace, setting.name):
            raw = getattr(namespace, setting.name)
            values[setting.name] = (
                raw if isinstance(raw, bool) else parse_value(setting, raw, setting.flag)
            )
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
        return Settings.from_values(**values)
    except msgspec.ValidationError as error:
        raise SettingsError(f"Invalid setting: {error}") from error


def parse_serve_args(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Settings for `serve` from its argv (used by tests; `cli` builds the real parser)."""
    parser = argparse.ArgumentParser(prog="claude-max-api serve")
    add_flags(parser)
    return load_settings(parser.parse_args(list(argv)), environ)


# -- docs/configuration.md ------------------------------------------------------------

SECTIONS: dict[str, tuple[str, str]] = {
    "server": ("Server", "Where it listens, its connections, its logs."),
    "security": ("Security", "API keys, and the hosts and web origins the server answers."),
    "limits": ("Limits", "Admission (turns at once, queued) and what one request may carry."),
    "models": ("Models", "Which ids are served and what unknown ones get."),
    "backend": ("CLI backend", "How `claude` is started and supervised."),
    "live": ("Live CLI processes", "One per conversation, and a warm pool for new ones."),
    "sessions": ("Sessions", "Where conversations are kept, and for how long."),
}
"""Each section of `Settings`: its title and what it covers, for the docs."""
if set(SECTIONS) != set(Settings.__struct_fields__):
    raise RuntimeError("every section of Settings needs a title in SECTIONS")


def _shown_default(setting: Setting) -> str:
    value = setting.default
    if setting.default_text is not None:
        # A path or a variable reads as code; words (`the CLI's own`) as words.
        text = setting.default_text
        return text if " " in text else f"`{text}`"
    if setting.computed_default:
        return "(see description)"
    if value is None or value == {}:
        return ""
    return f"`{help_default(setting)}`"


def markdown() -> str:
    """docs/configuration.md: one table per section, generated from the declaration."""
    lines = [
        "# Configuration",
        "",
        "<!-- Generated by `make docs` (python -m claude_max_api.docgen); do not edit. -->",
        "",
        "Every setting has a `claude-max-api serve` flag and an environment variable; a flag",
        "beats the env var, which beats the default. Booleans read `true/false`, `yes/no`,",
        "`on/off` or `1/0` (flags: `--name` / `--no-name`); an empty value leaves an optional",
        "setting unset. `Setting` is the field's place in `claude_max_api.settings.Settings`.",
    ]
    for section, (title, covers) in SECTIONS.items():
        lines += ["", f"## {title}", "", covers, ""]
        lines += ["| Setting | Flag | Env var | Default | Description |", "|---|---|---|---|---|"]
        for setting in (s for s in SETTINGS if s.section == section):
            description = setting.description.replace("|", "\\|")
            lines.append(
                f"| `{'.'.join(setting.path)}` | `{setting.flag}` | `{setting.env}` "
                f"| {_shown_default(setting)} | {description} |"
            )
    return "\n".join(lines) + "\n"
