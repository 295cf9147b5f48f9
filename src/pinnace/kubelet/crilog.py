"""Container logs in the CRI log format, as containerd and CRI-O write them:

    2016-10-06T00:17:09.669794202Z stdout F a complete line
    2016-10-06T00:17:10.113242941Z stderr P a long line's first part

One line per chunk of output: RFC 3339 timestamp with nanoseconds, the stream,
``F`` (full: the line ended) or ``P`` (partial: continued in the next entry),
then the bytes.  ``kubectl logs`` reassembles partial lines and can show the
timestamps.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Longer lines are split into partial entries (containerd's default max container log line).
MAX_LINE = 16 * 1024


def timestamp(ns: int | None = None) -> str:
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    return dt.datetime.fromtimestamp(secs, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def encode(stream: str, data: bytes, ns: int | None = None) -> bytes:
    """CRI entries for ``data``: one per line ending in ``\\n`` (tag F), the rest as partial (P)."""
    out = []
    stamp = timestamp(ns).encode()
    # Only "\n" ends a line (as in containerd); bytes.splitlines() would also split at "\r",
    # turning every progress-bar update into a partial entry.
    for line in _lines(data):
        while len(line) > MAX_LINE + (1 if line.endswith(b"\n") else 0):
            out.append(b"%s %s P %s\n" % (stamp, stream.encode(), line[:MAX_LINE]))
            line = line[MAX_LINE:]
        if line.endswith(b"\n"):
            out.append(b"%s %s F %s" % (stamp, stream.encode(), line))
        else:
            out.append(b"%s %s P %s\n" % (stamp, stream.encode(), line))
    return b"".join(out)


async def pump(reader: asyncio.StreamReader, path: Path, stream: str) -> None:
    """Copy a container's ``stdout``/``stderr`` pipe into ``path`` until EOF.  Appends (the
    file is shared by both streams; each write is one whole entry, O_APPEND keeps them whole)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    pending = b""
    try:
        while True:
            chunk = await reader.read(64 * 1024)
            if not chunk:
                break
            data = pending + chunk
            # Hold back an unfinished line briefly so a line written in two pieces stays one entry,
            # but never beyond MAX_LINE (then it is logged as partial).
            cut = data.rfind(b"\n") + 1
            complete, pending = data[:cut], data[cut:]
            if len(pending) >= MAX_LINE:
                complete, pending = data, b""
            if complete:
                _write_all(fd, encode(stream, complete))
            if pending and reader.at_eof():
                break
    finally:
        # Also on cancellation (the runtime gives up on a pipe a stray process keeps open):
        # the held-back unfinished line is output too.
        try:
            if pending:
                _write_all(fd, encode(stream, pending))
        finally:
            os.close(fd)


def _lines(data: bytes) -> Iterator[bytes]:
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end + 1
        yield data[start:end]
        start = end


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


@dataclass
class Entry:
    time: str  # RFC 3339 with nanoseconds
    stream: str
    partial: bool
    content: bytes


def parse_line(line: bytes) -> Entry | None:
    """One CRI log line (with or without its newline); None when garbled."""
    # The newline only ends the entry; strip it first so an empty entry written without
    # the space before the (empty) content ("... stdout F\n") still parses.
    parts = line.removesuffix(b"\n").split(b" ", 3)
    if len(parts) < 3:
        return None
    stamp, stream, tag = parts[0], parts[1], parts[2]
    content = parts[3] if len(parts) == 4 else b""
    if tag not in (b"F", b"P"):
        return None
    if tag == b"F":
        content += b"\n"
    return Entry(stamp.decode(errors="replace"), stream.decode(errors="replace"), tag == b"P", content)


def read_entries(path: Path) -> Iterator[Entry]:
    try:
        with open(path, "rb") as f:
            for line in f:
                entry = parse_line(line)
                if entry is not None:
                    yield entry
    except FileNotFoundError:
        return


__all__ = ["MAX_LINE", "Entry", "encode", "parse_line", "pump", "read_entries", "timestamp"]
