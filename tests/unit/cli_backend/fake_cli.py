#!/usr/bin/env python3
"""A stand-in for `claude -p --input-format stream-json`: just enough protocol for unit tests.

User text decides the turn: `fail` ends in an error result, `hang` streams one delta
and then waits for an `interrupt`, `die` exits without a result; anything else is
echoed as `echo: <text>`, and text starting with `linger` also makes the process take
0.3 s to exit once stdin closes (a slow ending). `set_model` reports a `/model` user
line before its answer. `FAKE_CLI_SLOW_INIT=S` in the environment delays the answer
to `initialize` by S seconds (a slow start).
"""

import json
import os
import sys
import time
import uuid
from typing import Any


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main() -> int:
    args = sys.argv[1:]
    if "--version" in args:
        print("2.1.331 (Claude Code)")
        return 0
    session = args[args.index("--session-id") + 1] if "--session-id" in args else None
    session = session or (args[args.index("--resume") + 1] if "--resume" in args else "none")
    hanging = False
    linger = 0.0
    for raw in sys.stdin:
        line = json.loads(raw)
        if line["type"] == "control_request":
            request = line["request"]
            if request["subtype"] == "initialize":
                time.sleep(float(os.environ.get("FAKE_CLI_SLOW_INIT", "0")))
            if request["subtype"] == "set_model":
                emit({"type": "user", "message": {"role": "user", "content": "/model"}})
            if request["subtype"] == "interrupt" and hanging:
                hanging = False
                emit({"type": "result", "subtype": "error_during_execution", "is_error": True})
            ok = {"subtype": "success", "request_id": line["request_id"], "response": {}}
            emit({"type": "control_response", "response": ok})
            continue
        text = line["message"]["content"][0]["text"]
        emit({"type": "system", "subtype": "init", "session_id": session})
        if text == "die":
            return 3
        if text == "hang":
            hanging = True
            delta = {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "par"}}
            emit({"type": "stream_event", "event": delta})
            continue
        if text == "fail":
            emit(
                {"type": "result", "is_error": True, "api_error_status": 529, "result": "API Error"}
            )
            continue
        if text.startswith("linger"):
            linger = 0.3
        reply = f"echo: {text}"
        delta = {"type": "content_block_delta", "delta": {"type": "text_delta", "text": reply}}
        emit({"type": "stream_event", "event": delta})
        message = {"model": "fake", "content": [{"type": "text", "text": reply}]}
        emit({"type": "assistant", "message": message, "uuid": str(uuid.uuid4())})
        emit({"type": "result", "result": reply, "session_id": session, "stop_reason": "end_turn"})
    time.sleep(linger)
    return 0


if __name__ == "__main__":
    sys.exit(main())
