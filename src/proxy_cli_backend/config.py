"""Settings of the Claude CLI runner, with their defaults."""

from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from proxy_core import Effort, TurnPlan
from proxy_core.redact import masked_repr

READ_ONLY_TOOLS = ("Read", "Glob", "Grep", "WebSearch", "WebFetch")


class ToolsProfile(enum.StrEnum):
    """The named values of the `tools` setting."""

    NONE = "none"
    READ_ONLY = "read-only"
    FULL = "full"


Tools = ToolsProfile | tuple[str, ...]
"""A `tools` setting, parsed: a named profile, or an explicit list of tool names."""


def parse_tools(text: str) -> Tools:
    """`none` (or blank), `read-only`, `full`, or a comma-separated list of tool names."""
    stripped = text.strip()
    if not stripped:
        return ToolsProfile.NONE
    try:
        return ToolsProfile(stripped)
    except ValueError:
        return tuple(name.strip() for name in stripped.split(",") if name.strip())


def default_state_dir() -> str:
    """`$XDG_STATE_HOME/claude-max-api-proxy`, else `~/.local/state/claude-max-api-proxy`."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(base) / "claude-max-api-proxy")


class CliRunnerConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How the runner starts and supervises `claude`.

    `tools` is a profile (`none`, `read-only`, `full`) or an explicit comma-separated
    tool list. Timeouts are in seconds: `first_event_timeout` until the model's first
    output, `idle_timeout` between outputs, `total_timeout` for the whole turn;
    `kill_grace` is how long a SIGTERMed process group gets before SIGKILL, and
    `exit_wait` how long the CLI may take to exit by itself after its result.
    `upstream_retries` bounds the CLI's own retries of a failed upstream request
    (`CLAUDE_CODE_MAX_RETRIES`; None leaves the CLI's default, ten with back-off).
    `effort` is the reasoning level of turns whose request names none (None leaves
    the CLI's default). `max_budget_usd` caps each turn's cost (the CLI's
    `--max-budget-usd`; None: no cap). `oauth_token` (a token from `claude setup-token`) reaches the
    CLI as CLAUDE_CODE_OAUTH_TOKEN; `oauth_token_file` names a file to read it from
    (`proxy_cli_backend.oauth_token.with_oauth_token` reads it).
    """

    cli_path: Annotated[
        str | None,
        Meta(
            description="The `claude` binary (else $CLAUDE_CLI_PATH, then `claude` on PATH, "
            "then the CLI `make cli` pins in this checkout's .tools)."
        ),
    ] = None
    oauth_token_file: Annotated[
        str | None,
        Meta(
            description="File holding a token from `claude setup-token`, passed to the CLI as "
            "CLAUDE_CODE_OAUTH_TOKEN (for a server without a browser to log in with)."
        ),
    ] = None
    # Wiring, not a setting: the token itself, read from `oauth_token_file` at start-up
    # (see proxy_cli_backend.oauth_token), or given by an embedding program. Never shown.
    oauth_token: str | None = None
    tools: Annotated[
        str,
        Meta(description="CLI tools profile: none, read-only, full, or a list like `Read,Grep`."),
    ] = "none"
    workdir: Annotated[
        str | None,
        Meta(description="Working directory of the CLI.", extra={"default": "<state_dir>/workdir"}),
    ] = None
    state_dir: Annotated[
        str,
        Meta(
            description="State directory.",
            extra={"default": "$XDG_STATE_HOME/claude-max-api-proxy"},
        ),
    ] = msgspec.field(default_factory=default_state_dir)
    allow_root_tools: Annotated[
        bool, Meta(description="Allow the `full` tools profile when running as root.")
    ] = False
    extra_env: Annotated[
        dict[str, str],
        Meta(description="Extra environment for the CLI: JSON object or `NAME=value,...`."),
    ] = msgspec.field(default_factory=dict)
    first_event_timeout: Annotated[
        float, Meta(description="Seconds to wait for the CLI's first output of a turn.")
    ] = 90.0
    idle_timeout: Annotated[
        float, Meta(description="Seconds of CLI silence mid-turn before it is killed.")
    ] = 120.0
    total_timeout: Annotated[float, Meta(description="Seconds one turn may take in all.")] = 900.0
    kill_grace: Annotated[
        float, Meta(description="Seconds between SIGTERM and SIGKILL when ending a CLI process.")
    ] = 2.0
    exit_wait: Annotated[
        float, Meta(description="Seconds the CLI may take to exit by itself after its result.")
    ] = 5.0
    max_line_bytes: Annotated[
        int, Meta(description="Longest line of CLI output accepted (bytes).")
    ] = 16 * 1024 * 1024
    stderr_tail_bytes: Annotated[
        int,
        Meta(description="How much of the CLI's stderr is kept for error messages (bytes)."),
    ] = 64 * 1024
    version_timeout: Annotated[
        float, Meta(description="Seconds `claude --version` may take at startup.")
    ] = 30.0
    upstream_retries: Annotated[
        int | None,
        Meta(
            description="Retries the CLI makes of a failed upstream request (empty: CLI default)."
        ),
    ] = 2
    effort: Annotated[
        Effort | None,
        Meta(
            description="Reasoning effort when a request sets none: low, medium, high, xhigh, max.",
            extra={"default": "the CLI's own"},
        ),
    ] = None
    max_budget_usd: Annotated[
        float | None,
        Meta(
            description="Most one CLI turn may cost (USD), passed to the CLI as "
            "--max-budget-usd (empty: no cap); see docs/usage.md.",
        ),
    ] = None

    def __post_init__(self) -> None:
        if self.max_budget_usd is not None and not self.max_budget_usd > 0:
            raise ValueError("max_budget_usd must be more than 0 (or empty for no cap)")

    def __repr__(self) -> str:
        # The OAuth token is a credential: a dump of the config (a log line, a traceback)
        # shows a mask instead.
        return masked_repr(self, ("oauth_token",))

    def effort_for(self, plan: TurnPlan) -> Effort | None:
        """The level a turn runs at: the request's, else this default."""
        return plan.effort or self.effort

    @property
    def resolved_workdir(self) -> str:
        """The CLI's working directory: the setting, else `<state_dir>/workdir`."""
        return self.workdir or str(Path(self.state_dir) / "workdir")

    @property
    def tool_set(self) -> Tools:
        """The `tools` setting, parsed (the text stays as typed, for /health)."""
        return parse_tools(self.tools)

    @property
    def full_tools(self) -> bool:
        """Whether the CLI may use every tool unprompted (the `full` profile)."""
        return self.tool_set is ToolsProfile.FULL
