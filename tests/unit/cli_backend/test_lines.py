"""Bounded line reads of the CLI's stdout."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from proxy_cli_backend.command import CliCommand
from proxy_cli_backend.process import CliProcess, LineReader


async def read_all(chunks: list[bytes], limit: int) -> list[bytes]:
    reader = LineReader(limit)
    for chunk in chunks:
        reader.data_received(chunk)
    reader.eof_received()
    lines: list[bytes] = []
    while (line := await reader.readline()) is not None:
        lines.append(line)
    return lines


async def test_lines_split_across_chunks_are_joined() -> None:
    assert await read_all([b'{"a":', b"1}\n{", b'"b":2}\n'], 100) == [b'{"a":1}', b'{"b":2}']


async def test_a_last_line_without_newline_is_returned() -> None:
    assert await read_all([b"one\ntwo"], 100) == [b"one", b"two"]


async def test_an_over_long_line_is_skipped_whole_and_reading_goes_on() -> None:
    long = b"x" * 300_000
    lines = await read_all([b"before\n", long[:100_000], long[100_000:] + b"\nafter\n"], 1000)
    assert lines == [b"before", b"after"]


async def test_an_over_long_line_within_one_chunk_is_skipped() -> None:
    assert await read_all([b"short\n" + b"y" * 50 + b"\nok\n"], 10) == [b"short", b"ok"]


async def test_an_over_long_unterminated_last_line_is_dropped() -> None:
    assert await read_all([b"ok\n" + b"z" * 5000], 100) == [b"ok"]


async def test_a_waiting_reader_wakes_for_a_line_not_for_part_of_one() -> None:
    reader = LineReader(100)
    waiting = asyncio.ensure_future(reader.readline())
    await asyncio.sleep(0)
    reader.data_received(b'{"a":')
    await asyncio.sleep(0)
    assert not waiting.done()
    reader.data_received(b"1}\n")
    assert await waiting == b'{"a":1}'
    reader.connection_lost(None)
    assert await reader.readline() is None


class FakeTransport(asyncio.ReadTransport):
    def __init__(self) -> None:
        super().__init__()
        self.paused = False

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


async def test_reading_pauses_while_unread_lines_pile_up_and_resumes_once_read() -> None:
    transport = FakeTransport()
    reader = LineReader(1000, high_water=100)
    reader.connection_made(transport)
    for _ in range(30):
        reader.data_received(b"x" * 9 + b"\n")  # 270 bytes of lines, unread
    assert transport.paused
    lines = [await reader.readline() for _ in range(25)]
    assert lines == [b"x" * 9] * 25
    assert not transport.paused
    assert [await reader.readline() for _ in range(5)] == [b"x" * 9] * 5


async def test_a_spawned_processs_stdout_reaches_the_reader_line_by_line(tmp_path: Any) -> None:
    command = CliCommand(
        argv=(sys.executable, "-c", "print('one'); print('two', flush=True)"),
        env={},
        cwd=str(tmp_path),
        files={},
    )
    process = await CliProcess.spawn(command, max_line_bytes=100, stderr_tail_bytes=100)
    assert [await process.readline() for _ in range(3)] == [b"one", b"two", None]
    assert await process.terminate(1.0) == 0
