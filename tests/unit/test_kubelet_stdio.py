"""The kubelet's stream plumbing for exec and attach (pinnace.kubelet.runtime.stdio):
writing a FIFO or pty from asyncio with backpressure, and terminal sizes."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from pinnace.kubelet.runtime.stdio import FdWriter, get_winsize, open_fifo_writer, read_stream, set_winsize


async def test_writer_waits_for_room_and_delivers_everything() -> None:
    r, w = os.pipe()
    writer = FdWriter(w)
    data = os.urandom(1024 * 1024)  # far more than a pipe holds: drain() must wait for the reader
    reader, transport = await read_stream(r)
    os.close(r)
    writer.write(data)
    drained = asyncio.create_task(writer.drain())
    got = bytearray()
    async with asyncio.timeout(10):
        while len(got) < len(data):
            got += await reader.read(65536)
        await drained
    writer.close()
    assert await reader.read() == b""  # the writer's close is the end of file
    transport.close()
    assert bytes(got) == data


async def test_close_wakes_a_waiting_drain() -> None:
    r, w = os.pipe()
    try:
        writer = FdWriter(w)
        writer.write(b"x" * (1024 * 1024))  # nobody reads: drain waits
        drained = asyncio.create_task(writer.drain())
        await asyncio.sleep(0.05)
        assert not drained.done()
        writer.close()
        with pytest.raises(ConnectionResetError):
            async with asyncio.timeout(5):
                await drained
        with pytest.raises(ConnectionResetError):
            writer.write(b"more")
    finally:
        os.close(r)


async def test_fifo_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "stdin"
    assert open_fifo_writer(fifo) is None  # no FIFO
    os.mkfifo(fifo)
    assert open_fifo_writer(fifo) is None  # nobody reads it (the container is gone)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        writer = open_fifo_writer(fifo)
        assert writer is not None
        writer.write(b"line\n")
        await writer.drain()
        assert os.read(fd, 100) == b"line\n"
    finally:
        os.close(fd)
    writer.write(b"lost\n")
    with pytest.raises(ConnectionResetError):  # EPIPE: the reader went away
        await writer.drain()
    writer.close()


def test_terminal_size_is_set_on_the_master_and_seen_on_the_slave() -> None:
    master, slave = os.openpty()
    try:
        set_winsize(master, 132, 43)
        assert get_winsize(slave) == (132, 43)
        set_winsize(master, 100_000, -1)  # clamped to what the kernel's struct holds
        assert get_winsize(slave) == (65535, 0)
    finally:
        os.close(master)
        os.close(slave)
