"""The CRI log format: encoding, parsing, and pumping a pipe into a log file."""

from __future__ import annotations

import asyncio
import re

from pinnace.kubelet import crilog

NS = 1_475_713_029_669_794_202  # 2016-10-06T00:17:09.669794202Z


def contents(path) -> list[tuple[str, bool, bytes]]:
    return [(e.stream, e.partial, e.content) for e in crilog.read_entries(path)]


def test_timestamp_is_rfc3339_with_nanoseconds():
    assert crilog.timestamp(NS) == "2016-10-06T00:17:09.669794202Z"
    assert crilog.timestamp(1_000_000_000) == "1970-01-01T00:00:01.000000000Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", crilog.timestamp())


def test_encode_full_and_partial_lines():
    out = crilog.encode("stdout", b"one\n\ntwo", NS)
    assert out == (b"2016-10-06T00:17:09.669794202Z stdout F one\n"
                   b"2016-10-06T00:17:09.669794202Z stdout F \n"
                   b"2016-10-06T00:17:09.669794202Z stdout P two\n")
    assert crilog.encode("stderr", b"", NS) == b""


def test_encode_splits_only_at_newline():
    # A carriage return (progress bars) is content, not a line end, as in containerd.
    out = crilog.encode("stdout", b"10%\r50%\r100%\n", NS)
    assert out == b"2016-10-06T00:17:09.669794202Z stdout F 10%\r50%\r100%\n"
    assert crilog.encode("stdout", b"dos\r\n", NS).endswith(b" F dos\r\n")


def test_encode_splits_long_lines():
    line = b"x" * (crilog.MAX_LINE * 2 + 5) + b"\n"
    entries = [crilog.parse_line(raw) for raw in crilog.encode("stdout", line, NS).splitlines(keepends=True)]
    assert [(e.partial, len(e.content)) for e in entries] == [(True, crilog.MAX_LINE), (True, crilog.MAX_LINE),
                                                             (False, 6)]
    assert b"".join(e.content for e in entries) == line
    # Exactly MAX_LINE bytes plus the newline is still one full entry.
    exact = crilog.encode("stdout", b"y" * crilog.MAX_LINE + b"\n", NS)
    assert exact.count(b"\n") == 1 and b" F " in exact


def test_parse_line():
    e = crilog.parse_line(b"2016-10-06T00:17:09.669794202Z stderr F hello world\n")
    assert e == crilog.Entry("2016-10-06T00:17:09.669794202Z", "stderr", False, b"hello world\n")
    e = crilog.parse_line(b"2016-10-06T00:17:09.669794202Z stdout P part\n")
    assert e is not None and e.partial and e.content == b"part"
    # The last line of a file may lack its newline; an empty entry may lack the space.
    assert crilog.parse_line(b"t stdout F tail").content == b"tail\n"
    assert crilog.parse_line(b"t stdout F\n").content == b"\n"
    assert crilog.parse_line(b"t stdout F \n").content == b"\n"
    assert crilog.parse_line(b"t stdout X nope\n") is None
    assert crilog.parse_line(b"garbage\n") is None


def test_encode_parse_roundtrip():
    data = b"a\rb\n\nccc" + b"z" * crilog.MAX_LINE + b"\nend"
    raw = crilog.encode("stdout", data, NS)
    lines = raw.split(b"\n")[:-1]  # not splitlines(): it would split at the "\r" too
    assert b"".join(crilog.parse_line(line).content for line in lines) == data


async def feed(reader: asyncio.StreamReader, *chunks: bytes, eof: bool = True) -> None:
    for chunk in chunks:
        reader.feed_data(chunk)
        await asyncio.sleep(0)  # let the pump read each chunk separately
    if eof:
        reader.feed_eof()


async def test_pump_joins_a_line_written_in_pieces(tmp_path):
    path = tmp_path / "log"
    reader = asyncio.StreamReader()
    task = asyncio.create_task(crilog.pump(reader, path, "stdout"))
    await feed(reader, b"hel", b"lo\nwor", b"ld\nno newline")
    await task
    assert contents(path) == [("stdout", False, b"hello\n"), ("stdout", False, b"world\n"),
                              ("stdout", True, b"no newline")]


async def test_pump_appends_both_streams_to_one_file(tmp_path):
    path = tmp_path / "log"
    out, err = asyncio.StreamReader(), asyncio.StreamReader()
    tasks = [asyncio.create_task(crilog.pump(out, path, "stdout")),
             asyncio.create_task(crilog.pump(err, path, "stderr"))]
    await feed(out, b"o1\n")
    await feed(err, b"e1\n")
    await asyncio.gather(*tasks)
    assert contents(path) == [("stdout", False, b"o1\n"), ("stderr", False, b"e1\n")]


async def test_pump_does_not_hold_back_more_than_max_line(tmp_path):
    path = tmp_path / "log"
    reader = asyncio.StreamReader()
    task = asyncio.create_task(crilog.pump(reader, path, "stdout"))
    await feed(reader, b"a" * (crilog.MAX_LINE - 1), b"bb", eof=False)
    for _ in range(10):
        await asyncio.sleep(0)
    # Written before EOF: an overlong unfinished line goes out as partial entries.
    assert [(s, p, len(c)) for s, p, c in contents(path)] == [("stdout", True, crilog.MAX_LINE), ("stdout", True, 1)]
    await feed(reader, b"c\n")
    await task
    assert contents(path)[-1] == ("stdout", False, b"c\n")


async def test_pump_flushes_held_back_line_when_cancelled(tmp_path):
    path = tmp_path / "log"
    reader = asyncio.StreamReader()
    task = asyncio.create_task(crilog.pump(reader, path, "stderr"))
    await feed(reader, b"done\nlast words", eof=False)
    for _ in range(10):
        await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert contents(path) == [("stderr", False, b"done\n"), ("stderr", True, b"last words")]


def test_read_entries_of_a_missing_file(tmp_path):
    assert list(crilog.read_entries(tmp_path / "nope")) == []
