"""Embed the proxy's core in a Python program: a two-turn streamed chat, no HTTP.

Run it from the checkout with the CLI logged in (`make login` once):

    make example                    # or: .venv/bin/python examples/embed.py

Settings come from the environment: CLAUDE_CLI_PATH (the `claude` executable; else
`claude` on PATH, then the pinned CLI `make` installs under .tools/),
EMBED_MODEL (default `sonnet`), EMBED_STATE_DIR (where the CLI's working directory
lives). Anything else the CLI reads (ANTHROPIC_BASE_URL, HOME, ...) is passed through.
"""

from __future__ import annotations

import asyncio
import os
import sys

from proxy_cli_backend import (
    BackendStartupError,
    ClaudeCliRunner,
    CliRunnerConfig,
    default_state_dir,
)
from proxy_core import (
    ChatRequest,
    ChatService,
    Failed,
    Finished,
    InMemorySessionStore,
    TextDelta,
    Usage,
)

QUESTIONS = ("Name a colour of the sky.", "And one of grass?")


async def ask(service: ChatService, model: str, messages: list[dict[str, object]]) -> str:
    """Stream one turn to stdout and return the reply's text."""
    reply: list[str] = []
    async for event in service.stream(ChatRequest(model=model, messages=messages)):
        if isinstance(event, TextDelta):
            reply.append(event.text)
            print(event.text, end="", flush=True)
        elif isinstance(event, Usage):
            print(f"\n[usage] in={event.prompt_tokens} out={event.output_tokens}")
        elif isinstance(event, Finished):
            print(f"[finished] {event.stop_reason}")
        elif isinstance(event, Failed):
            raise SystemExit(f"[failed] {event.reason.value}: {event.message}")
    return "".join(reply)


async def main() -> None:
    model = os.environ.get("EMBED_MODEL", "sonnet")
    config = CliRunnerConfig(
        cli_path=os.environ.get("CLAUDE_CLI_PATH"),
        state_dir=os.environ.get("EMBED_STATE_DIR") or default_state_dir(),
        tools="none",
    )
    runner = ClaudeCliRunner(config)
    try:
        await runner.start()
    except BackendStartupError as error:
        raise SystemExit(f"cannot start the Claude CLI backend: {error}") from None
    service = ChatService(runner, InMemorySessionStore())
    try:
        messages: list[dict[str, object]] = [
            {"role": "system", "content": "Answer in one short sentence."}
        ]
        for question in QUESTIONS:
            print(f"> {question}")
            messages.append({"role": "user", "content": question})
            answer = await ask(service, model, messages)
            # Sending the whole conversation back is enough: the service sees that it
            # extends the previous turn and sends the CLI only the new message.
            messages.append({"role": "assistant", "content": answer})
        print(f"[sessions] {(await service.stats()).sessions}")
    finally:
        await service.aclose()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
