"""proxy_cli_backend: the Claude Code CLI as a `proxy_core` runner, and the session store.

What an embedding app needs: a runner (`ClaudeCliRunner` spawns a CLI per turn,
`LiveCliRunner` keeps a live process per conversation), its configuration, the SQLite
session store, and the setup checks `doctor` runs. The other modules are internals.
"""

from proxy_cli_backend.binary import CliBinary, CliNotFound, find_cli
from proxy_cli_backend.config import (
    READ_ONLY_TOOLS,
    CliRunnerConfig,
    ToolsProfile,
    default_state_dir,
    parse_tools,
)
from proxy_cli_backend.diagnostics import Finding, diagnose
from proxy_cli_backend.live_runner import LiveCliRunner, LiveConfig
from proxy_cli_backend.oauth_token import TokenFileError, with_oauth_token
from proxy_cli_backend.runner import BackendStartupError, ClaudeCliRunner
from proxy_cli_backend.session_store import (
    SchemaTooNewError,
    SessionStoreError,
    SqliteSessionStore,
    default_database_path,
)

__all__ = [
    "READ_ONLY_TOOLS",
    "BackendStartupError",
    "ClaudeCliRunner",
    "CliBinary",
    "CliNotFound",
    "CliRunnerConfig",
    "Finding",
    "LiveCliRunner",
    "LiveConfig",
    "SchemaTooNewError",
    "SessionStoreError",
    "SqliteSessionStore",
    "TokenFileError",
    "ToolsProfile",
    "default_database_path",
    "default_state_dir",
    "diagnose",
    "find_cli",
    "parse_tools",
    "with_oauth_token",
]
