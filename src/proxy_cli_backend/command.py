"""The `claude` command line and environment for one planned turn."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path

import msgspec

from proxy_cli_backend.client_tools import (
    CALL_TIMEOUT_MS,
    TOOL_ENV,
    mcp_config,
    offered,
    upstream_name,
)
from proxy_cli_backend.config import READ_ONLY_TOOLS, CliRunnerConfig, Tools, ToolsProfile
from proxy_cli_backend.oauth_token import OAUTH_TOKEN_ENV
from proxy_core import PlanKind, TurnPlan

BASE_ARGS = (
    "-p",
    "--input-format",
    "stream-json",
    "--output-format",
    "stream-json",
    "--verbose",
    "--include-partial-messages",
)
# The CLI's environment is built from an allow-list, never inherited whole: the
# server's own settings and secrets (CLAUDE_PROXY_API_KEYS above all) must not reach
# a process whose environment the model can print with tools on, or that any local
# user may read in /proc/<pid>/environ. What is kept is what the CLI and the tools
# it runs need: the basics of a login, locale, temp dirs, network proxies and CA
# bundles, and the variables Claude Code documents (its own, the Anthropic API's,
# Bedrock's, Vertex's and Foundry's, telemetry, and its tuning knobs). Anything else
# the CLI should see goes in `cli_extra_env`.
CHILD_ENV_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TERM",
        "TMPDIR",
        "TEMP",
        "TMP",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "NODE_EXTRA_CA_CERTS",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "CLAUDE_CONFIG_DIR",
        "CLOUD_ML_REGION",
        "API_TIMEOUT_MS",
        "USE_BUILTIN_RIPGREP",
        "SLASH_COMMAND_TOOL_CHAR_BUDGET",
        "IS_SANDBOX",
    }
)
CHILD_ENV_PREFIXES = (
    "LC_",
    "XDG_",
    "ANTHROPIC_",
    "CLAUDE_CODE_",
    "AWS_",
    "AZURE_",
    "GOOGLE_",
    "CLOUDSDK_",
    "VERTEX_REGION_",
    "OTEL_",
    "DISABLE_",
    "ENABLE_",
    "MCP_",
    "MAX_",
    "BASH_",
)
# Never passed on, whatever the lists above say: our own settings, and CLAUDECODE
# (the CLI refuses to start nested inside another Claude Code session when it is set).
_NEVER_PREFIXES = ("CLAUDE_PROXY_",)
_NEVER_NAMES = frozenset({"CLAUDECODE"})
# How many times the CLI retries a failed upstream request (429, 5xx, 529, even 401).
MAX_RETRIES_ENV = "CLAUDE_CODE_MAX_RETRIES"
# Linux refuses any single argument over 128 KiB (E2BIG); longer system prompts go
# through a file instead, `<state_dir>/prompts/system-<hex>.txt`.
MAX_ARG_BYTES = 100_000
PROMPTS_DIR = "prompts"
_PROMPT_FILES = "system-*.txt"
# With its default system prompt (no client system prompt), the CLI takes its
# per-machine sections (memory paths, git status) out of the system prompt, which
# then stays the same wherever it runs, and leaves out a line about its interactive
# /fast command (docs/benchmarks.md has what each turn sends with and without it).
# The CLI ignores the flag with --system-prompt, so it is passed only without one.
EXCLUDE_DYNAMIC_SECTIONS = "--exclude-dynamic-system-prompt-sections"
# The default system prompt teaches a file-based memory (about 2 kB each turn) kept in
# the CLI's one working directory, which every conversation of every key shares: what
# the model saved in one conversation would be loaded into all the others. So it is
# off, whatever the tools (the operator's own CLAUDE_CODE_DISABLE_AUTO_MEMORY wins).
NO_MEMORY_ENV = "CLAUDE_CODE_DISABLE_AUTO_MEMORY"


class CliCommand(msgspec.Struct, frozen=True):
    """Everything needed to spawn the CLI: argv (program first), environment and cwd.

    `files` (path -> text) are written before the spawn and deleted after the process.
    """

    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str
    files: dict[str, str] = msgspec.field(default_factory=dict)


class RootToolsRefused(Exception):
    """`full` tools were asked for as root without the operator's opt-in."""


ROOT_TOOLS_MESSAGE = (
    "The `full` tools profile runs the CLI with --dangerously-skip-permissions, which "
    "the CLI refuses as root. Either run the proxy as a non-root user, or opt in with "
    "allow_root_tools (CLAUDE_PROXY_ALLOW_ROOT_TOOLS=1) to pass IS_SANDBOX=1 in a "
    "sandboxed container; or choose another tools profile (none, read-only, a list)."
)


def tool_args(tools: Tools) -> tuple[str, ...]:
    """CLI flags for a tools profile (`none`, `read-only`, `full`) or an explicit list."""
    match tools:
        case ToolsProfile.NONE:
            return ("--tools", "")
        case ToolsProfile.READ_ONLY:
            return ("--tools", ",".join(READ_ONLY_TOOLS))
        case ToolsProfile.FULL:
            return ("--dangerously-skip-permissions",)
        case names:
            return ("--tools", ",".join(names))


def inherited(name: str) -> bool:
    """Whether a variable of the server's environment is passed on to the CLI."""
    if name in _NEVER_NAMES or name.startswith(_NEVER_PREFIXES):
        return False
    return name in CHILD_ENV_NAMES or name.startswith(CHILD_ENV_PREFIXES)


def child_env(config: CliRunnerConfig, base: Mapping[str, str], *, is_root: bool) -> dict[str, str]:
    """The allowed part of the inherited environment (see `inherited`), plus the
    operator's extra variables, plus the configured OAuth token.

    CLAUDE_CODE_OAUTH_TOKEN in the server's environment passes on like any
    CLAUDE_CODE_ variable; a token in `config.oauth_token` (read from
    `oauth_token_file`) replaces it, being the more explicit choice.

    `upstream_retries` becomes CLAUDE_CODE_MAX_RETRIES unless the environment or
    `extra_env` names it already: the CLI's default (ten retries with back-off) holds
    a client for minutes on an upstream 5xx, and OpenAI clients retry on their own.
    Raises RootToolsRefused for `full` tools as root without `allow_root_tools`.
    """
    env = {name: value for name, value in base.items() if inherited(name)}
    if config.upstream_retries is not None:
        env.setdefault(MAX_RETRIES_ENV, str(config.upstream_retries))
    env.update(config.extra_env)
    if config.oauth_token:
        env[OAUTH_TOKEN_ENV] = config.oauth_token
    if config.full_tools and is_root:
        if not config.allow_root_tools:
            raise RootToolsRefused(ROOT_TOOLS_MESSAGE)
        env["IS_SANDBOX"] = "1"
    return env


def build_command(
    cli_path: str,
    plan: TurnPlan,
    config: CliRunnerConfig,
    *,
    base_env: Mapping[str, str],
    is_root: bool,
) -> CliCommand:
    """The command for a turn: a new session for NEW/RESTART, `--resume` for CONTINUE;
    with client tools offered, the MCP server that serves them (`client_tools`).

    A CONTINUE with a resume point also passes `--resume-session-at`, so a failed turn
    left in the transcript is not replayed to the model (see the README).
    """
    argv = [cli_path, *BASE_ARGS, "--model", plan.model]
    if plan.kind is PlanKind.CONTINUE:
        argv += ["--resume", plan.cli_session_id]
        if plan.resume_point:
            argv += ["--resume-session-at", plan.resume_point]
    else:
        argv += ["--session-id", plan.cli_session_id]
    files: dict[str, str] = {}
    if plan.system and len(plan.system.encode("utf-8", "surrogatepass")) > MAX_ARG_BYTES:
        path = str(Path(config.state_dir) / PROMPTS_DIR / f"system-{secrets.token_hex(8)}.txt")
        files[path] = plan.system
        argv += ["--system-prompt-file", path]
    elif plan.system:
        argv += ["--system-prompt", plan.system]
    else:
        argv.append(EXCLUDE_DYNAMIC_SECTIONS)
    argv += tool_args(config.tool_set)
    effort = config.effort_for(plan)
    if effort is not None:
        argv += ["--effort", effort.value]
    if plan.json_schema is not None:
        argv += ["--json-schema", plan.json_schema]
    if config.max_budget_usd is not None:
        argv += ["--max-budget-usd", str(config.max_budget_usd)]
    tools = offered(plan.tools)
    if tools:
        # The client's tools, served by us as the CLI's in-process MCP server.
        allowed = ",".join(upstream_name(tool.name) for tool in tools)
        argv += ["--mcp-config", mcp_config(CALL_TIMEOUT_MS), "--allowedTools", allowed]
    env = child_env(config, base_env, is_root=is_root)
    env.setdefault(NO_MEMORY_ENV, "1")
    if tools:
        env.update(TOOL_ENV)
    return CliCommand(argv=tuple(argv), env=env, cwd=config.resolved_workdir, files=files)


def remove_prompt_files(state_dir: str) -> int:
    """Delete the system prompt files a crashed server left behind; returns how many.

    Each file is deleted after its process, so at start-up any still there is a
    leftover (the state directory belongs to one server: its sessions database is
    there too).
    """
    removed = 0
    for path in (Path(state_dir) / PROMPTS_DIR).glob(_PROMPT_FILES):
        if path.is_symlink() or not path.is_file():
            continue
        path.unlink(missing_ok=True)
        removed += 1
    return removed
