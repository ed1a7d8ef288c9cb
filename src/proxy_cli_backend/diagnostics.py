"""Readiness facts about the CLI backend, for `doctor` and /health.

Each check gives a Finding: what was checked, whether it is fine, what was seen,
and for a problem one line saying what to run. Nothing here spends a model request:
the login state comes from `claude auth status`, which only reads local credentials.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import msgspec

from proxy_cli_backend.binary import CliBinary, CliNotFound, find_cli
from proxy_cli_backend.command import child_env
from proxy_cli_backend.config import CliRunnerConfig
from proxy_cli_backend.oauth_token import OAUTH_TOKEN_ENV
from proxy_core import CREDIT_HELP, INSTALL_HELP, LOGIN_HELP

AUTH_STATUS_TIMEOUT = 20.0
SUBSCRIPTION_METHODS = frozenset({"claude.ai", "oauth_token"})
"""`claude auth status` login methods of a Claude plan (not an API key)."""
CREDIT_NOTE = (
    "a Claude plan login: since 2026-06-15, `claude -p` (so every request here) draws "
    "from the plan's monthly usage credit at API rates (Pro $20, Max 5x $100, Max 20x "
    "$200), apart from the plan's 5-hour and 7-day windows; when the credit runs out, "
    "requests answer 429 insufficient_quota. " + CREDIT_HELP
)
"""What `doctor` says about the credit when the CLI is logged in to a plan."""


class Finding(msgspec.Struct, frozen=True):
    """One checked fact. `fix` is set for problems: the command or setting that cures it."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None


class LoginState(msgspec.Struct, frozen=True):
    """The part of `claude auth status` we use (its JSON has more fields)."""

    loggedIn: bool
    authMethod: str | None = None
    apiKeySource: str | None = None


def diagnose(
    config: CliRunnerConfig,
    *,
    environ: Mapping[str, str] | None = None,
    euid: Callable[[], int] = os.geteuid,
    auth_timeout: float = AUTH_STATUS_TIMEOUT,
) -> list[Finding]:
    """Every backend check, in the order an operator would fix them."""
    env = dict(os.environ if environ is None else environ)
    findings: list[Finding] = []
    binary, found = check_cli(config)
    findings.append(found)
    if binary is not None:
        findings += login_findings(config, binary.path, env, auth_timeout)
    findings.append(check_root(config, euid()))
    findings.append(check_claudecode(env))
    findings.append(check_writable("state_dir", Path(config.state_dir), "--state-dir"))
    findings.append(check_writable("workdir", Path(config.resolved_workdir), "--workdir"))
    return findings


def check_cli(config: CliRunnerConfig) -> tuple[CliBinary | None, Finding]:
    """Whether the `claude` executable is found, and its version."""
    try:
        binary = find_cli(config.cli_path, version_timeout=config.version_timeout)
    except CliNotFound as missing:
        return None, Finding("cli", False, missing.problem, INSTALL_HELP)
    if binary.version is None:
        return binary, Finding(
            "cli",
            False,
            f"{binary.path} does not answer `--version`",
            f"run `{binary.path} --version` to see why; reinstall the CLI if it fails",
        )
    return binary, Finding("cli", True, f"{binary.path} (version {binary.version})")


def login_findings(
    config: CliRunnerConfig, cli_path: str, environ: Mapping[str, str], timeout: float
) -> list[Finding]:
    """The login state of the CLI at `cli_path` with the environment the runner gives
    it (from `environ`), naming where an OAuth token came from; for a plan's login,
    what the requests draw from (`credit`)."""
    login_env = child_env(config, environ, is_root=False)
    source: str | None
    if config.oauth_token:
        source = "--oauth-token-file" if config.oauth_token_file else "the runner's config"
    else:
        source = OAUTH_TOKEN_ENV if OAUTH_TOKEN_ENV in login_env else None
    finding, state = read_login(cli_path, login_env, timeout, token_source=source)
    if state is None or state.apiKeySource or state.authMethod not in SUBSCRIPTION_METHODS:
        return [finding]
    return [finding, Finding("credit", True, CREDIT_NOTE)]


def check_login(
    cli_path: str, env: Mapping[str, str], timeout: float, *, token_source: str | None = None
) -> Finding:
    """The login state from `claude auth status` (local; spends no request).

    `token_source` names where an OAuth token in `env` came from (the CLI only says
    it uses one); the token itself is never shown.
    """
    return read_login(cli_path, env, timeout, token_source=token_source)[0]


def read_login(
    cli_path: str, env: Mapping[str, str], timeout: float, *, token_source: str | None = None
) -> tuple[Finding, LoginState | None]:
    """`check_login`'s finding, and the state it read when the CLI is logged in."""
    try:
        output = _run_bounded([cli_path, "auth", "status"], env, timeout)
    except (OSError, subprocess.TimeoutExpired) as error:
        return Finding("login", False, f"`claude auth status` failed: {error}", LOGIN_HELP), None
    try:
        state = msgspec.json.decode(output.strip() or b"{}", type=LoginState)
    except msgspec.DecodeError:
        excerpt = output.decode(errors="replace").strip()[:200]
        problem = f"`claude auth status` printed no status: {excerpt!r}"
        return Finding("login", False, problem, LOGIN_HELP), None
    if not state.loggedIn:
        return Finding("login", False, "the CLI is not logged in", LOGIN_HELP), None
    how = state.authMethod or "unknown method"
    if state.apiKeySource:
        how += f" from {state.apiKeySource}"
    elif state.authMethod == "oauth_token" and token_source:
        how = f"oauth token from {token_source}"
    return Finding("login", True, f"logged in ({how})"), state


def check_root(config: CliRunnerConfig, euid: int) -> Finding:
    """`full` tools as root need an explicit opt-in (the CLI refuses otherwise)."""
    if euid == 0 and config.full_tools and not config.allow_root_tools:
        return Finding(
            "root",
            False,
            "running as root with tools=full: the CLI refuses to skip permissions as root",
            "run as a normal user, or add --allow-root-tools (sets IS_SANDBOX=1; "
            "only inside a sandbox), or use --tools read-only",
        )
    who = "root" if euid == 0 else f"uid {euid}"
    return Finding("root", True, f"running as {who} with tools={config.tools}")


def check_claudecode(environ: Mapping[str, str]) -> Finding:
    """CLAUDECODE set means this shell runs inside a Claude Code session."""
    if "CLAUDECODE" in environ:
        return Finding(
            "claudecode",
            False,
            "CLAUDECODE is set: this shell runs inside Claude Code, and a nested CLI refuses "
            "to start (the server strips it from the CLI's environment)",
            "unset CLAUDECODE  (or start the server from a shell outside Claude Code)",
        )
    return Finding("claudecode", True, "CLAUDECODE is not set")


def check_writable(name: str, directory: Path, flag: str) -> Finding:
    """Whether `directory` exists (or can be made) and takes a new file."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".doctor-"):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        return Finding(
            name,
            False,
            f"{directory} is not writable: {reason}",
            f"mkdir -p {directory} && chown $(id -u) {directory}  (or choose another with {flag})",
        )
    return Finding(name, True, f"{directory} is writable")


def _run_bounded(argv: list[str], env: Mapping[str, str], timeout: float) -> bytes:
    """Run a short command and return its stdout; its whole process group dies on timeout."""
    child = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=dict(env),
        start_new_session=True,
    )
    try:
        stdout, _ = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        raise
    # `auth status` exits 1 when logged out; its JSON on stdout is what counts.
    return stdout
