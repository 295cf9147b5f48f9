"""EtcdStore endpoint failover, against the session's real etcd.

A dead endpoint is a loopback port nobody listens on (connection refused at
once), so these stay fast."""

from __future__ import annotations

import asyncio
import uuid

from pinnace.storage.etcd import EtcdStore
from tests.support.processes import free_port


def _root() -> str:
    return f"/failover-{uuid.uuid4().hex[:8]}"


async def _next(watch, seconds: float = 5.0):
    return await asyncio.wait_for(watch.__anext__(), seconds)


async def test_dead_first_endpoint_fails_over_to_live_one(etcd_endpoint: str):
    store = EtcdStore([f"127.0.0.1:{free_port()}", etcd_endpoint], root=_root())
    try:
        base = await store.current_revision()
        # A write whose connection was refused never reached etcd, so it is retried.
        r1 = await store.create("/k/a", b"1")
        r2 = await store.update("/k/a", b"2", r1)
        kv = await store.get("/k/a")
        assert kv is not None and kv.value == b"2" and kv.mod_revision == r2
        assert [k.key for k in (await store.range("/k/")).kvs] == ["/k/a"]

        watch = aiter(store.watch("/k/", base))
        try:
            assert [(await _next(watch)).revision for _ in range(2)] == [r1, r2]
        finally:
            await watch.aclose()

        rev, prev = await store.delete("/k/a")
        assert rev > r2 and prev.value == b"2"
    finally:
        await store.close()


class _Proxy:
    """A TCP proxy to etcd that can be killed, cutting every open connection."""

    def __init__(self, target: str) -> None:
        self.host, port = target.rsplit(":", 1)
        self.port = int(port)
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def kill(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.transport.abort()
        await self.server.wait_closed()


async def test_watch_resumes_on_next_endpoint_when_stream_drops(etcd_endpoint: str):
    proxy = _Proxy(etcd_endpoint)
    via_proxy = await proxy.start()
    root = _root()
    store = EtcdStore([via_proxy, etcd_endpoint], root=root)
    # Writes go through their own store so that only the watch sees the cut.
    writer = EtcdStore([etcd_endpoint], root=root)
    try:
        base = await writer.current_revision()
        watch = aiter(store.watch("/w/", base))
        try:
            r1 = await writer.create("/w/a", b"1")
            assert (await _next(watch)).revision == r1
            await proxy.kill()  # the watch stream (and the endpoint) dies mid-watch
            r2 = await writer.create("/w/b", b"2")
            r3 = await writer.update("/w/a", b"3", r1)
            # Nothing lost, nothing repeated: resumed right after r1.
            assert [(await _next(watch)).revision for _ in range(2)] == [r2, r3]
        finally:
            await watch.aclose()
    finally:
        await store.close()
        await writer.close()
