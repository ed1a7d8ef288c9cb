"""Typed failures: every way a chat turn can fail, as one reason code."""

from __future__ import annotations

import enum


class FailureReason(enum.StrEnum):
    """Why a turn failed; adapters map each reason to their own error shape."""

    INVALID_REQUEST = "invalid_request"
    MODEL_NOT_FOUND = "model_not_found"
    BUSY = "busy"
    BACKEND_UNAVAILABLE = "backend_unavailable"
    NOT_LOGGED_IN = "not_logged_in"
    RATE_LIMITED = "rate_limited"
    INSUFFICIENT_QUOTA = "insufficient_quota"
    """The account's credit (or extra usage) is used up or not enabled upstream."""
    BUDGET_EXCEEDED = "budget_exceeded"
    """The caller's own spending budget (set by the operator) is used up."""
    OVERLOADED = "overloaded"
    UPSTREAM_ERROR = "upstream_error"
    SESSION_MISSING = "session_missing"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    CLI_CRASHED = "cli_crashed"
    STORE_UNAVAILABLE = "store_unavailable"


class ChatError(Exception):
    """A failure with a typed reason, a human message and, for bad input, the field path.

    `param` names the offending field in OpenAI's style (`messages[3].content[1].type`);
    `retry_after` is in seconds when the cause says when to come back.
    """

    def __init__(
        self,
        reason: FailureReason,
        message: str,
        *,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.param = param
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"ChatError({self.reason.value!r}, {self.message!r}, param={self.param!r})"


# What a user is told to do about a missing login or a missing CLI: one wording, used by
# the HTTP 503 bodies, doctor, the start-up warning and the CLI-missing message alike.
LOGIN_HELP = (
    "Log the Claude CLI in: run `make login` in the proxy's checkout (or `claude auth login`). "
    "On a server without a browser, run `claude setup-token` on a machine with one and give "
    "the token to the server in CLAUDE_CODE_OAUTH_TOKEN or in a file named by "
    "--oauth-token-file; or set ANTHROPIC_API_KEY."
)
"""How to log the CLI in (for a person, with a browser or without one)."""
INSTALL_HELP = (
    "Install it with `make cli` in the proxy's checkout (or `npm install -g "
    "@anthropic-ai/claude-code`), or point --cli-path or CLAUDE_CLI_PATH at the executable; "
    "then log it in with `make login`."
)
"""How to install the CLI, or tell the server where it is."""
CREDIT_HELP = (
    "Claim or top up the plan's usage credit (or enable extra usage) at "
    "https://claude.ai/settings/usage, then retry."
)
"""What a user is told when the account's credit or extra usage refuses a request."""
DOCTOR_HELP = "`claude-max-api doctor` checks the setup."
"""The pointer to `doctor`, added where the reader is not running it already."""

NO_RESULT = "The turn ended without a result."
"""What a caller is told of a turn whose events stopped before its end (Finished/Failed)."""


def no_result() -> ChatError:
    """The failure of a turn whose events stopped before its end."""
    return ChatError(FailureReason.CLI_CRASHED, NO_RESULT)


def invalid(message: str, param: str | None = None) -> ChatError:
    """Shorthand for the most common failure: the caller sent something we cannot use."""
    return ChatError(FailureReason.INVALID_REQUEST, message, param=param)
