"""Bounded line reads of the CLI's stdout."""

from __future__ import annotations

import asyncio

from proxy_cli_backend.process import LineReader


async def read_all(chunks: list[bytes], limit: int) -> list[bytes]:
    stream = asyncio.StreamReader()
    for chunk in chunks:
        stream.feed_data(chunk)
    stream.feed_eof()
    reader = LineReader(stream, limit)
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
