"""The agent CLIs as clients of our server: Codex over /v1/responses, Claude Code over
/v1/messages.

Each runs in private directories (its config, HOME and working directory under a root
the test owns), pointed at a base URL, with its stdin closed, bounded by a timeout that
kills its whole process group. Nothing of the user's own configuration or credentials
reaches it. What the two CLIs send was observed against a stub (see
`docs/agent-clients.md`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.fake_upstream import RecordedRequest

# Variables of the outer environment that would point a client elsewhere, give it
# credentials, or (CLAUDECODE) make the Claude CLI refuse to run nested.
_FOREIGN = (
    "ANTHROPIC_",
    "CLAUDE_",
    "CLAUDECODE",
    "CODEX_",
    "OPENAI_",
    "AZURE_OPENAI",
)

# The Codex config of issue 15, plus: no retries, so a failed request shows at once
# instead of after Codex's 4 request retries times 5 stream retries; no approvals and
# no sandbox, so a command the (fake) model calls runs wherever the tests run, without
# the user namespaces Codex's bundled bubblewrap needs.
_CODEX_CONFIG = """\
model = "{model}"
model_provider = "proxy"
approval_policy = "never"
sandbox_mode = "danger-full-access"

[model_providers.proxy]
name = "proxy"
base_url = "{base_url}"
env_key = "PROXY_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
"""


@dataclass(frozen=True)
class ClientRun:
    """One finished (or timed-out and killed) client process."""

    argv: list[str]
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool

    def describe(self) -> str:
        """A failure message: what ran and how it ended, with the ends of its output."""
        ending = "timed out (process group killed)" if self.timed_out else f"exit {self.exit_code}"
        return (
            f"{' '.join(self.argv[:3])} ... {ending}\n"
            f"--- stdout:\n{self.stdout[-3000:]}\n--- stderr:\n{self.stderr[-3000:]}"
        )


def run_bounded(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path, timeout: float
) -> ClientRun:
    """Run `argv` in its own session to its end; past `timeout`, kill its process group."""
    process = subprocess.Popen(
        list(argv),
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    timed_out = False
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
    return ClientRun(
        argv=list(argv),
        exit_code=process.returncode,
        stdout=out.decode(errors="replace"),
        stderr=err.decode(errors="replace"),
        timed_out=timed_out,
    )


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any client configuration, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN)}
    env.update(extra)
    return env


def _dirs(root: Path, *names: str) -> list[Path]:
    paths = [root / name for name in names]
    for path in paths:
        path.mkdir(parents=True, exist_ok=True)
    return paths


class CodexClient:
    """`codex exec` with a private CODEX_HOME whose config.toml points at `base_url`.

    Turns run in one working directory, so `resume --last` finds this client's last
    session (Codex filters sessions by cwd).
    """

    def __init__(
        self,
        codex_bin: str,
        root: Path,
        base_url: str,
        *,
        api_key: str = "codex-test-key",
        model: str = "sonnet",
    ) -> None:
        self.codex_bin = codex_bin
        self.codex_home, self.home, self.workdir = _dirs(root, "codex-home", "home", "work")
        (self.codex_home / "config.toml").write_text(
            _CODEX_CONFIG.format(model=model, base_url=base_url.rstrip("/") + "/v1")
        )
        self.env = clean_env(
            CODEX_HOME=str(self.codex_home), HOME=str(self.home), PROXY_API_KEY=api_key
        )

    def exec(self, prompt: str, *args: str, timeout: float = 120) -> ClientRun:
        """`codex exec --skip-git-repo-check [ARGS] PROMPT`: a new Codex session."""
        argv = [self.codex_bin, "exec", "--skip-git-repo-check", *args, prompt]
        return run_bounded(argv, self.env, self.workdir, timeout)

    def resume_last(self, prompt: str, *args: str, timeout: float = 120) -> ClientRun:
        """`codex exec resume --last --skip-git-repo-check [ARGS] PROMPT`: the next turn
        of the newest session."""
        argv = [
            self.codex_bin,
            "exec",
            "resume",
            "--last",
            "--skip-git-repo-check",
            *args,
            prompt,
        ]
        return run_bounded(argv, self.env, self.workdir, timeout)


class ClaudeClient:
    """The Claude Code CLI with ANTHROPIC_BASE_URL at `base_url`, in a private config dir.

    No retries and no nonessential traffic: an error shows at once, and nothing leaves
    127.0.0.1.
    """

    def __init__(
        self, claude_bin: str, root: Path, base_url: str, *, api_key: str = "claude-test-key"
    ) -> None:
        self.claude_bin = claude_bin
        self.config_dir, self.home, self.workdir = _dirs(root, "claude-config", "home", "work")
        self.env = clean_env(
            HOME=str(self.home),
            CLAUDE_CONFIG_DIR=str(self.config_dir),
            ANTHROPIC_BASE_URL=base_url.rstrip("/"),
            ANTHROPIC_API_KEY=api_key,
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
            CLAUDE_CODE_MAX_RETRIES="0",
        )

    def print_json(self, prompt: str, *args: str, timeout: float = 120) -> ClientRun:
        """`claude -p PROMPT --output-format json [ARGS]`: one turn, its result as JSON."""
        argv = [self.claude_bin, "-p", prompt, "--output-format", "json", *args]
        return run_bounded(argv, self.env, self.workdir, timeout)


def json_result(run: ClientRun) -> dict[str, Any]:
    """The JSON object `claude -p --output-format json` printed last."""
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    assert lines, run.describe()
    found: dict[str, Any] = json.loads(lines[-1])
    return found


# -- what the server did with a client's turns ------------------------------------------


def server_sessions(base_url: str) -> dict[str, dict[str, Any]]:
    """The server's conversations by key (GET /v1/sessions; a server without keys)."""
    listed = httpx.get(base_url.rstrip("/") + "/v1/sessions", timeout=10)
    assert listed.status_code == 200, listed.text
    return {s["externalId"]: s for s in listed.json()["sessions"]}


def message_text(message: dict[str, Any]) -> str:
    """All the text of one Messages API message (every text block, reminders included)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "\n".join(
        b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text"
    )


def last_user_turn(request: RecordedRequest) -> tuple[list[dict[str, Any]], str]:
    """What an upstream request holds before its last user message, and that message's
    text: the history the CLI kept, and what it was sent for this turn."""
    messages: list[dict[str, Any]] = request.body["messages"]
    last = max(i for i, m in enumerate(messages) if m.get("role") == "user")
    return messages[:last], message_text(messages[last])


def answered(history: list[dict[str, Any]], text: str) -> bool:
    """Whether an assistant message of `history` holds `text`."""
    return any(m.get("role") == "assistant" and text in message_text(m) for m in history)
