"""Container logs in the CRI log format, as containerd and CRI-O write them:

    2016-10-06T00:17:09.669794202Z stdout F a complete line
    2016-10-06T00:17:10.113242941Z stderr P a long line's first part

One line per chunk of output: RFC 3339 timestamp with nanoseconds, the stream,
``F`` (full: the line ended) or ``P`` (partial: continued in the next entry),
then the bytes.  ``kubectl logs`` reassembles partial lines and can show the
timestamps.

The writing side (:func:`encode`, :class:`LogWriter`) lives in the runc shim's module
(:mod:`.runtime.shim`, stdlib only: the shim runs without this package) and is
re-exported here.  Rotation (:mod:`.logrotation`) renames ``N.log`` to
``N.log.<YYYYMMDD-hhmmss>`` and later gzips it; :func:`log_files` lists what a reader
reads, oldest first: the rotated files not compressed yet, then the current file.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .runtime.shim import MAX_LINE, CriStream, LogWriter, encode, timestamp

COMPRESSED_SUFFIX = ".gz"  # rotated files compressed by the log manager, as the kubelet's
TMP_SUFFIX = ".tmp"  # a compression in progress (or cut short)

# The pumps writing each log file (by path), for reopen() after a rotation.
_writers: dict[str, set[LogWriter]] = {}


async def pump(reader: asyncio.StreamReader, path: Path, stream: str) -> None:
    """Copy a container's ``stdout``/``stderr`` pipe into ``path`` until EOF.  Appends (the
    file is shared by both streams; each write is one whole entry, O_APPEND keeps them whole).
    An unfinished line is held back until its end comes, never beyond MAX_LINE."""
    writer = LogWriter(path)
    key = os.fspath(path)
    _writers.setdefault(key, set()).add(writer)
    out = CriStream(writer, stream)
    try:
        while chunk := await reader.read(64 * 1024):
            out.feed(chunk)
    finally:
        # Also on cancellation (the runtime gives up on a pipe a stray process keeps open):
        # the held-back unfinished line is output too.
        try:
            out.flush()
        finally:
            writers = _writers.get(key)
            if writers is not None:
                writers.discard(writer)
                if not writers:
                    del _writers[key]
            writer.close()


def reopen(path: Path) -> int:
    """Make the pumps writing ``path`` write to a (new) file at that path from now on: the
    old one was renamed away (rotation).  How many pumps that concerned."""
    writers = list(_writers.get(os.fspath(path), ()))
    for w in writers:
        w.reopen()
    return len(writers)


def rotated_logs(path: Path) -> list[Path]:
    """The rotated generations of the log ``path`` still in plain text, oldest first: the
    ``<path>.*`` files that are neither compressed, nor a compression's temporary file, nor
    already compressed beside (a compression cut short before the original went)."""
    prefix = path.name + "."
    try:
        names = {e.name for e in os.scandir(path.parent) if e.name.startswith(prefix)}
    except FileNotFoundError:
        return []
    return [path.with_name(n) for n in sorted(names)
            if not n.endswith((COMPRESSED_SUFFIX, TMP_SUFFIX)) and n + COMPRESSED_SUFFIX not in names]


def log_files(path: Path) -> list[Path]:
    """What ``kubectl logs`` reads for the log ``path``, oldest first: its rotated plain-text
    generations, then ``path`` itself."""
    return [*rotated_logs(path), path]


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


__all__ = ["COMPRESSED_SUFFIX", "MAX_LINE", "TMP_SUFFIX", "CriStream", "Entry", "LogWriter", "encode", "log_files",
           "parse_line", "pump", "read_entries", "reopen", "rotated_logs", "timestamp"]
