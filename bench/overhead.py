"""What the upstream gets beyond the client's own text, per turn, before and after the
proxy's leaner CLI invocation (`--exclude-dynamic-system-prompt-sections` and no file
memory, whatever the tools; see proxy_cli_backend.command).

    python -m bench.overhead [--turns 3] [--output docs/benchmarks.md]

Runs the real server (as `make bench` does) against the fake upstream, which records
every request, for each case: a plain chat turn, a client system prompt, client tools
(the default `none` profile), and the `read-only` and `full` built-in tool profiles;
in live and spawn-per-turn mode. "before" runs the same CLI through a wrapper that
takes out what the leaner invocation adds; "flag only" keeps the flag but not the
memory switch. Loopback only, no network; about two minutes on 2 cores. Needs the
real CLI ($CLAUDE_PROXY_TEST_CLI, else `claude` on PATH). The table replaces the
section between the OVERHEAD markers of the output file (appended if absent).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tests.support.fake_upstream import FakeAnthropic, RecordedRequest

from bench.overhead_doc import END, START, write_section
from bench.run import cli_env, cli_path, cli_version
from bench.server import ProxyServer
from proxy_cli_backend.command import EXCLUDE_DYNAMIC_SECTIONS, NO_MEMORY_ENV

ROOT = Path(__file__).resolve().parents[1]

# Variant -> (take the flag out, take the memory switch out) of the CLI's invocation.
VARIANTS = {"before": (True, True), "flag only": (False, True), "after": (False, False)}
MODES = ("live", "spawn-per-turn")
SYSTEM = "You are a terse assistant. Answer in one short sentence."
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city."}},
            "required": ["city"],
        },
    },
}


@dataclass(frozen=True)
class Case:
    """One kind of conversation, on a server with one tools profile."""

    name: str
    profile: str
    system: str | None = None
    tools: tuple[dict[str, Any], ...] = ()


CASES = (
    Case("plain chat (tools: none)", "none"),
    Case("client system prompt (tools: none)", "none", system=SYSTEM),
    Case("client tools (tools: none)", "none", tools=(WEATHER,)),
    Case("built-in tools: read-only", "read-only"),
    Case("built-in tools: full", "full"),
)


@dataclass
class Turn:
    """One turn's upstream request(s), measured."""

    sent: int  # bytes on the wire (Content-Length), every Messages call of the turn
    client: int  # the client's own text in them: its messages, replies, tool schemas
    parts: dict[str, int]  # where the rest went (characters)
    requests: int
    reply: str


@dataclass
class Run:
    turns: list[Turn] = field(default_factory=list)
    stable_prefix: bool = True  # each request starts with the whole previous one


def wrapper(directory: Path, cli: str, drop_flag: bool, drop_memory: bool) -> str:
    """An executable that runs `cli` without what this variant takes out."""
    lines = ["#!/bin/sh"]
    if drop_memory:
        lines.append(f"unset {NO_MEMORY_ENV}")
    lines.append("for arg do")
    lines.append("  shift")
    if drop_flag:
        lines.append(f'  [ "$arg" = {EXCLUDE_DYNAMIC_SECTIONS} ] && continue')
    lines += ['  set -- "$@" "$arg"', "done", f'exec "{cli}" "$@"']
    path = directory / f"claude-{int(drop_flag)}{int(drop_memory)}"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def client_tool_bytes(tool: dict[str, Any]) -> int:
    function = tool["function"]
    schema = json.dumps(function["parameters"], separators=(",", ":"))
    return len(function["name"]) + len(function["description"]) + len(schema)


def texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [b.get("text", "") for b in content or [] if b.get("type") == "text"]


def measure_turn(requests: list[RecordedRequest], own: list[str], case: Case, reply: str) -> Turn:
    """Split each request into the client's own text and the rest, by part."""
    sent = client = 0
    parts = {"system": 0, "tools": 0, "context": 0, "envelope": 0}
    for request in requests:
        body = request.body
        size = int(request.headers.get("Content-Length") or len(json.dumps(body)))
        mine = 0
        here = dict.fromkeys(parts, 0)
        for block in body.get("system") or []:
            text = block.get("text", "")
            if text == case.system:
                mine += len(text)
            else:
                here["system"] += len(text)
        tool_mine = sum(client_tool_bytes(t) for t in case.tools)
        mine += tool_mine
        here["tools"] = len(json.dumps(body.get("tools") or [], separators=(",", ":"))) - tool_mine
        for message in body.get("messages") or []:
            for text in texts(message.get("content")):
                if text in own:
                    mine += len(text)
                else:
                    here["context"] += len(text)
        here["envelope"] = size - mine - sum(here.values())
        sent += size
        client += mine
        for name, value in here.items():
            parts[name] += value
    return Turn(sent, client, parts, len(requests), reply)


def without_cache_marks(value: Any) -> Any:
    """`value` as the prompt cache sees it: without the cache marks (they move from turn
    to turn) and with a string content as the one text block it stands for."""
    if isinstance(value, dict):
        if isinstance(value.get("content"), str):
            value = {**value, "content": [{"type": "text", "text": value["content"]}]}
        return {k: without_cache_marks(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [without_cache_marks(v) for v in value]
    return value


def extends(earlier: dict[str, Any], later: dict[str, Any]) -> bool:
    """Whether `later` starts with all of `earlier` (system, tools, messages), so the
    upstream's prompt cache can serve that prefix (cache marks aside: they move)."""
    a, b = without_cache_marks(earlier), without_cache_marks(later)
    if a.get("system") != b.get("system") or a.get("tools") != b.get("tools"):
        return False
    before, after = a.get("messages") or [], b.get("messages") or []
    return after[: len(before)] == before


async def converse(base_url: str, fake: FakeAnthropic, case: Case, turns: int) -> Run:
    messages: list[dict[str, Any]] = [{"role": "system", "content": case.system}]
    messages = messages if case.system else []
    own: list[str] = []
    run = Run()
    previous: dict[str, Any] | None = None
    for number in range(1, turns + 1):
        text = f"Question {number}: what is {number} plus {number}?"
        messages.append({"role": "user", "content": text})
        own.append(text)
        body: dict[str, Any] = {"model": "sonnet", "messages": messages}
        if case.tools:
            body["tools"] = list(case.tools)
        seen = len(fake.message_requests)
        async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
            answer = await client.post("/v1/chat/completions", json=body)
        answer.raise_for_status()
        reply = answer.json()["choices"][0]["message"]["content"]
        requests = fake.message_requests[seen:]
        run.turns.append(measure_turn(requests, own, case, reply))
        if previous is not None and requests:
            run.stable_prefix &= extends(previous, requests[0].body)
        previous = requests[-1].body if requests else previous
        messages.append({"role": "assistant", "content": reply})
        own.append(reply)
    return run


async def measure(cli: str, work: Path, turns: int) -> dict[tuple[str, str, str], Run]:
    results: dict[tuple[str, str, str], Run] = {}
    home, cwd = work / "home", work / "cwd"
    home.mkdir()
    cwd.mkdir()
    with FakeAnthropic() as fake:
        env = cli_env(fake.base_url, home)
        runs = 0
        for variant, (drop_flag, drop_memory) in VARIANTS.items():
            program = wrapper(work, cli, drop_flag, drop_memory)
            for mode in MODES:
                for profile in dict.fromkeys(case.profile for case in CASES):
                    runs += 1
                    # Same length for every run: the paths appear in what the CLI sends.
                    state = work / f"state-{runs:03d}"
                    flags = [
                        *("--cli-path", program, "--state-dir", str(state)),
                        *("--workdir", str(cwd), "--tools", profile, "--pool-size", "0"),
                        *("--log-level", "warning"),
                    ]
                    flags += ["--spawn-per-turn"] if mode == "spawn-per-turn" else []
                    flags += ["--allow-root-tools"] if profile == "full" else []
                    print(f"measuring {variant} / {mode} / tools {profile} ...", flush=True)
                    async with ProxyServer(flags, env, work) as server:
                        for case in CASES:
                            if case.profile == profile:
                                run = await converse(server.base_url, fake, case, turns)
                                results[variant, mode, case.name] = run
    return results


def tokens(chars: int) -> int:
    return round(chars / 4)


def overhead(turn: Turn) -> int:
    return turn.sent - turn.client


def table(results: dict[tuple[str, str, str], Run], mode: str) -> str:
    head = (
        "| case | turn | client's own text | beyond it: before | flag only | after "
        "| saved | after, by part (system / tools / context / envelope) |"
    )
    rows = [head, "|---|---|---:|---:|---:|---:|---:|---|"]
    for case in CASES:
        runs = {v: results[v, mode, case.name] for v in VARIANTS}
        for index, label in ((0, "first"), (-1, "follow-up")):
            picked = {v: run.turns[index] for v, run in runs.items()}
            before, flag, after = (overhead(picked[v]) for v in VARIANTS)
            parts = " / ".join(f"{tokens(n)}" for n in picked["after"].parts.values())
            rows.append(
                f"| {case.name} | {label} | {picked['after'].client} B "
                f"| {before} B (~{tokens(before)} tok) | {flag} B (~{tokens(flag)} tok) "
                f"| {after} B (~{tokens(after)} tok) | ~{tokens(before - after)} tok "
                f"| {parts} |"
            )
    return "\n".join(rows)


def checks(results: dict[tuple[str, str, str], Run]) -> list[str]:
    """What must hold in every run: the same replies, one upstream call per turn, and a
    stable prefix turn after turn (so the prompt cache keeps serving it)."""
    lines = []
    for mode in MODES:
        for case in CASES:
            runs = {v: results[v, mode, case.name] for v in VARIANTS}
            replies = {v: [t.reply for t in run.turns] for v, run in runs.items()}
            same = len({json.dumps(r) for r in replies.values()}) == 1
            calls = sorted({t.requests for run in runs.values() for t in run.turns})
            stable = ", ".join(
                f"{v}: {'yes' if run.stable_prefix else 'NO'}" for v, run in runs.items()
            )
            lines.append(
                f"- {mode}, {case.name}: replies {'identical' if same else 'DIFFER'} across "
                f"variants; upstream calls per turn {calls}; each request extends the "
                f"previous one ({stable})"
            )
    return lines


INTRO = """\
## What each turn sends upstream beyond the client's own text

Generated by `python -m bench.overhead --turns {turns}` (`make bench-overhead`), with
Claude Code CLI {version}: the real server, driven over HTTP, against the fake upstream,
which records every request (loopback only, no network). One conversation per case, each
turn one user question; **follow-up** is its last turn, whose request carries the whole
conversation so far.

- **Client's own text**: the characters the client sent (its system prompt, its
  messages and the replies it got back, its tool schemas): the physical limit of what a
  turn must send.
- **Beyond it**: the request's bytes on the wire minus those, and an estimate in tokens
  at 4 characters each (the fake upstream has no tokenizer).
- **before**: the CLI invoked as the proxy did before this change; **flag only**: with
  `--exclude-dynamic-system-prompt-sections`; **after**: as shipped (the flag whenever
  the CLI's default system prompt is used, and `CLAUDE_CODE_DISABLE_AUTO_MEMORY=1`
  whatever the tools).
- **By part**, after, in estimated tokens: the CLI's system blocks, tool schemas beyond
  the client's, text blocks the CLI adds to the messages (reminders, its environment
  note), and the JSON envelope (model, metadata, thinking settings, the structure).
"""

NOTES = """\
What the CLI sends, and why only some of it goes (observed with CLI {version}):

- `--exclude-dynamic-system-prompt-sections` applies only to the CLI's default system
  prompt (the CLI ignores it with `--system-prompt`, so the proxy passes it only
  without a client system prompt: the system-prompt rows are the same in every
  column). It moves the file-memory section (about 2.2 kB; it names $HOME and the
  working directory) out of the system prompt into a `<system-reminder>` that opens the
  first user message, and drops a line about the interactive `/fast` command (about
  180 characters). Nothing else: the environment note (working directory, platform,
  OS, model, date; about 920 characters) is already a trailing `system` message, and a
  git repository's status a user-message reminder, with or without it. On its own it
  saves at most about 45 tokens (**flag only**); what it buys besides is a system
  prompt that names no path of this machine.
- The memory section teaches the model a file memory, kept in the CLI's working
  directory. That directory is one for every conversation of every key, so what the
  model saved in one conversation would be loaded into all the others: the proxy turns
  it off with `CLAUDE_CODE_DISABLE_AUTO_MEMORY=1` whatever the tools (an operator's own
  value of that variable wins). It is besides about 580 tokens a turn (about 620 with
  `full`), and with `none`, `read-only` or client tools only, instructions the model
  could not follow (no tool writes files).
- The prompt cache keeps working: in every run each request starts with the whole
  previous one (system blocks, tools and messages byte for byte, cache marks aside),
  in live mode and in spawn-per-turn mode (`--resume` replays the same prefix); see
  the checks below.
- What is left beyond the client's text, and why it stays: the CLI's default system
  prompt (about 1,100 tokens) when the client sends none, which a client replaces by
  sending its own (the system-prompt rows: about 470 tokens beyond, of which the
  environment note is about 230, the CLI's two fixed system blocks about 34, the
  envelope about 200); the built-in tools of the profile the operator chose (read-only:
  about 2,000 tokens of schemas; full: about 7,900, plus an environment note that lists
  its deferred tools, agents and skills, and its memory and git-attribution reminders,
  about 3,000 together); the environment note, which no flag removes in this version;
  and the JSON envelope, which grows by about 25 tokens a message. Client tools cost
  their schemas plus a few tokens of MCP naming.
"""


def section(results: dict[tuple[str, str, str], Run], turns: int, version: str) -> str:
    lines = [START, INTRO.format(turns=turns, version=version)]
    for mode in MODES:
        lines += [f"### {mode}", "", table(results, mode), ""]
    lines += [NOTES.format(version=version), "Checks:", "", *checks(results), "", END]
    return "\n".join(lines)


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args(argv)
    cli = cli_path()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        results = await measure(cli, Path(tmp), args.turns)
    text = section(results, args.turns, cli_version(cli))
    print(text)
    write_section(Path(args.output), text)
    print(f"\nwrote {args.output} ({(time.monotonic() - started) / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
