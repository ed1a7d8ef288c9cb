"""The OAuth token of a server without a browser: read once from `oauth_token_file`.

`claude setup-token` (run where a browser is) prints a long-lived token; the server
hands it to every CLI process as CLAUDE_CODE_OAUTH_TOKEN. The token is a credential:
no message here, nor anywhere it travels, contains it.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from proxy_cli_backend.config import CliRunnerConfig

OAUTH_TOKEN_ENV = "CLAUDE_CODE_OAUTH_TOKEN"
"""The CLI's variable for a token from `claude setup-token`."""


class TokenFileError(ValueError):
    """The token file cannot be used; the message names the file, never its content."""


def read_token_file(path: str) -> str:
    """The token in `path`: its one line, surrounding whitespace removed."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise TokenFileError(f"cannot read {path}: {reason}") from None
    token = text.strip()
    if not token:
        raise TokenFileError(f"{path} is empty: put the token `claude setup-token` printed in it")
    if any(char.isspace() or not char.isprintable() for char in token):
        raise TokenFileError(
            f"{path} holds more than a token: it should hold the one line "
            "`claude setup-token` printed, and nothing else"
        )
    return token


def with_oauth_token(config: CliRunnerConfig) -> CliRunnerConfig:
    """`config` with the token of its `oauth_token_file` loaded (unchanged when it names
    no file or already holds a token); raises TokenFileError."""
    if config.oauth_token_file is None or config.oauth_token is not None:
        return config
    return msgspec.structs.replace(config, oauth_token=read_token_file(config.oauth_token_file))
