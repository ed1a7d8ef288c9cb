"""The least a Python proxy can do: a reference for the proxy's own cost, not a server.

    python -m bench.minimal --cli PATH

prints its base URL on the first line of stdout, then serves until killed. It answers
`POST /v1/chat/completions` (whole or streamed) for the benchmark's bare-httpx
conversation and nothing else: bare asyncio HTTP/1.1 (Content-Length bodies,
keep-alive), one CLI process per `X-Session-Id` driven with the proxy's own flags,
every stdout line decoded with msgspec, only the newest user message sent. It has no
framework, no ledger or durable state, no admission, time limits, auth, logs or
metrics, and no error handling: what any Python proxy of this design pays at least,
on this machine, per request. The benchmark runs its conversation against this the
way it runs it against the live proxy (`bench.run.measure_minimal`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import time
import uuid
from typing import Any

import msgspec

from bench.drivers import MODEL
from bench.server import ChildServer, free_port
from proxy_cli_backend.command import BASE_ARGS, tool_args
from proxy_cli_backend.config import ToolsProfile

_ENCODE = msgspec.json.Encoder().encode
_DECODE = msgspec.json.Decoder().decode


class MinimalProxy:
    """One CLI process per session key, kept for the server's life."""

    def __init__(self, cli: str) -> None:
        self.cli = cli
        self.processes: dict[str, asyncio.subprocess.Process] = {}

    async def _process(self, key: str) -> asyncio.subprocess.Process:
        found = self.processes.get(key)
        if found is None:
            argv = [self.cli, *BASE_ARGS, "--model", MODEL, *tool_args(ToolsProfile.NONE)]
            found = await asyncio.create_subprocess_exec(
                *argv,
                "--session-id",
                str(uuid.uuid4()),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
                limit=16 * 1024 * 1024,
            )
            self.processes[key] = found
        return found

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                await self._answer(reader, writer)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length, key = 0, ""
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            match name.strip().lower():
                case b"content-length":
                    length = int(value)
                case b"x-session-id":
                    key = value.strip().decode()
        ask: dict[str, Any] = _DECODE(await reader.readexactly(length))
        text = ask["messages"][-1]["content"]
        process = await self._process(key)
        assert process.stdin is not None
        assert process.stdout is not None
        content = [{"type": "text", "text": text}]
        process.stdin.write(
            _ENCODE({"type": "user", "message": {"role": "user", "content": content}})
        )
        process.stdin.write(b"\n")
        stream = ask.get("stream") is True
        if stream:
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
        parts: list[str] = []
        while raw := await process.stdout.readline():
            event = _DECODE(raw)
            kind = event.get("type")
            if kind == "result":
                break
            if kind != "stream_event":
                continue
            delta = event["event"].get("delta") or {}
            if delta.get("type") == "text_delta":
                parts.append(delta["text"])
                if stream:
                    _chunk(writer, _sse({"content": delta["text"]}))
        if stream:
            _chunk(writer, _sse({}, "stop") + b"data: [DONE]\n\n")
            writer.write(b"0\r\n\r\n")
            return
        reply = _ENCODE(
            {
                "id": "chatcmpl-minimal",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(parts)},
                        "finish_reason": "stop",
                    }
                ],
            }
        )
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(reply), reply)
        )


def _sse(delta: dict[str, str], finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-minimal",
        "object": "chat.completion.chunk",
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + _ENCODE(chunk) + b"\n\n"


def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(b"%x\r\n%s\r\n" % (len(data), data))


async def _main(cli: str, port: int) -> None:
    proxy = MinimalProxy(cli)
    server = await asyncio.start_server(proxy.serve, "127.0.0.1", port)
    print(f"http://127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()
    for process in proxy.processes.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


class MinimalServer(ChildServer):
    """Starts `python -m bench.minimal` (env: the CLI's); stops it and its CLIs on exit."""

    def __init__(self, cli: str, env: dict[str, str], cwd: str) -> None:
        super().__init__("bench.minimal", ["--cli", cli], env, cwd)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.minimal")
    parser.add_argument("--cli", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(_main(args.cli, args.port or free_port()))


if __name__ == "__main__":
    main()
