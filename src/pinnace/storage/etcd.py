"""etcd v3 backend through etcd's JSON gRPC gateway (``/v3/...`` over HTTP).

etcd already has exactly the contract's model: one global revision, and per
key a create and a mod revision, so those map across unchanged.  Each guarded
write is one etcd transaction whose failure branch reads the key, so telling
``KeyNotFound`` from ``RevisionMismatch`` needs no second round trip and cannot
race.  Watches are one long POST to ``/v3/watch`` whose response is a stream of
newline-delimited JSON messages.

The gateway speaks proto3 JSON: keys and values are base64, int64 fields are
strings, and fields at their default value (``0``, ``false``, empty bytes,
empty lists) are left out, so every read below supplies a default.

``root`` is prepended to every key on the wire and stripped from keys that come
back, so several stores (tests, several clusters) can share one etcd.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from .base import (
    Compacted,
    Event,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    KeyValue,
    RangeResult,
    RevisionMismatch,
    StorageError,
    Store,
)

# Errors that mean the request never reached the server, so even a write can
# safely be sent to another endpoint.  ConnectionTimeoutError exists from
# aiohttp 3.10 on; older versions report connect timeouts as plain timeouts.
_NOT_SENT: tuple[type[BaseException], ...] = (aiohttp.ClientConnectorError,) + (
    (aiohttp.ConnectionTimeoutError,) if hasattr(aiohttp, "ConnectionTimeoutError") else ()
)
# Errors after which a read may be retried elsewhere (it has no effect to repeat).
_TRANSPORT = (aiohttp.ClientError, asyncio.TimeoutError)

_COMPACTED_MSG = "required revision has been compacted"
_FUTURE_MSG = "required revision is a future revision"

# Unary calls are short; a stuck endpoint should fail over rather than hang.
_UNARY_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=5)
# A watch lives as long as its consumer; only connecting is bounded.
_WATCH_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=None)
# aiohttp's threshold for "large raw bytes body" (values can reach etcd's 1.5 MiB).
_LARGE_BODY = 1 << 20
# Consecutive failures to (re)open a watch on every endpoint before giving up.
_WATCH_OPEN_ATTEMPTS = 5


class EtcdError(StorageError):
    """An error response from etcd (``code`` is the gRPC status code)."""

    def __init__(self, message: str, code: int = 0, status: int = 0):
        super().__init__(f"etcd: {message}")
        self.message, self.code, self.status = message, code, status


class _StreamBroken(Exception):
    """A watch stream ended or reported an error; it can be resumed."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(data: str) -> bytes:
    return base64.b64decode(data)


def _bytes_prefix_end(prefix: bytes) -> bytes:
    """etcd's range_end for "every key starting with prefix".  Works on bytes,
    not characters: etcd orders keys by their UTF-8 bytes."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return b"\x00"  # etcd: range_end "\0" means "every key >= key"
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def _body(payload: bytes) -> bytes | io.BytesIO:
    """aiohttp warns that a large raw bytes body blocks the loop while it is
    written; a file-like body is streamed in chunks instead.  Made afresh for
    each attempt, since sending consumes it."""
    return io.BytesIO(payload) if len(payload) > _LARGE_BODY else payload


def _normalize_endpoint(endpoint: str) -> str:
    endpoint = endpoint.strip().rstrip("/")
    return endpoint if "://" in endpoint else f"http://{endpoint}"


class _LineReader:
    """Splits a streamed body into newline-delimited JSON messages.

    Not ``StreamReader.readline``: that refuses lines beyond the read buffer's
    high-water mark, and one watch message can carry several megabytes."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self._buf = bytearray()

    async def next(self) -> dict[str, Any] | None:
        """The next message, or None at the end of the stream."""
        scanned = 0
        while True:
            i = self._buf.find(b"\n", scanned)
            if i >= 0:
                line = bytes(self._buf[:i])
                del self._buf[: i + 1]
                scanned = 0
                if line.strip():
                    return orjson.loads(line)
                continue
            scanned = len(self._buf)
            chunk = await self._resp.content.readany()
            if not chunk:
                return None
            self._buf += chunk


class EtcdStore(Store):
    def __init__(self, endpoints: list[str], root: str = "") -> None:
        if not endpoints:
            raise ValueError("EtcdStore needs at least one endpoint")
        self._endpoints = [_normalize_endpoint(e) for e in endpoints]
        self._current = 0  # index of the endpoint requests go to until it fails
        self._root = root.encode()
        self._session: aiohttp.ClientSession | None = None
        self._streams: set[aiohttp.ClientResponse] = set()  # open watch responses, for close()
        # etcd has no call that returns its compaction point; remember the
        # highest one we have seen (our own compact() or a watch's report).
        self._compacted = 0
        self._closed = False

    # -- plumbing --------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise StorageError("etcd store is closed")
        if self._session is None:
            # Created lazily: a session must be made inside the running loop.
            # No connection limit: each watch holds a connection for its whole
            # life, and a capped pool would starve unary calls behind them.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                timeout=_UNARY_TIMEOUT,
                headers={"Content-Type": "application/json"},
            )
        return self._session

    def _fail_over(self, index: int) -> None:
        # Only move on if nobody else already did, so concurrent failures on the
        # same endpoint don't skip past the healthy one.
        if self._current == index:
            self._current = (index + 1) % len(self._endpoints)

    async def _call(self, path: str, body: dict[str, Any], *, idempotent: bool) -> dict[str, Any]:
        """POST ``body`` to ``path`` and return the decoded reply.

        Endpoints are tried round robin.  Reads are retried on any transport
        error or unavailable member (two passes over the endpoints); writes
        only when the connection could not even be made, because a write whose
        request may have reached etcd must not be applied twice."""
        session = self._get_session()
        payload = orjson.dumps(body)
        n = len(self._endpoints)
        passes = 2 if idempotent else 1
        last: BaseException | None = None
        for attempt in range(n * passes):
            if attempt and attempt % n == 0:
                await asyncio.sleep(0.1)  # a whole pass failed: give the cluster a moment
            index = self._current
            try:
                async with session.post(self._endpoints[index] + path, data=_body(payload)) as resp:
                    status, raw = resp.status, await resp.read()
            except _NOT_SENT as e:
                last = e
                self._fail_over(index)
                continue
            except _TRANSPORT as e:
                if not idempotent:
                    raise StorageError(f"etcd {path} on {self._endpoints[index]} failed: {e!r}") from e
                last = e
                self._fail_over(index)
                continue
            if status == 200:
                return orjson.loads(raw)
            error = self._error(status, raw)
            # 503 is gRPC UNAVAILABLE (no leader, member stopping): a read can go elsewhere.
            if idempotent and status == 503:
                last = error
                self._fail_over(index)
                continue
            raise error
        raise StorageError(f"no etcd endpoint reachable ({', '.join(self._endpoints)}): {last!r}")

    @staticmethod
    def _error(status: int, raw: bytes) -> EtcdError:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return EtcdError(raw.decode(errors="replace") or f"HTTP {status}", status=status)
        if not isinstance(body, dict):
            return EtcdError(str(body), status=status)
        error = body.get("error")
        message = body.get("message") or (error if isinstance(error, str) else "") or f"HTTP {status}"
        return EtcdError(message, int(body.get("code", 0)), status)

    def _key(self, key: str) -> bytes:
        return self._root + key.encode()

    def _span(self, prefix: str) -> tuple[bytes, bytes]:
        """(key, range_end) of every wire key starting with ``root + prefix``."""
        start = self._key(prefix)
        return start, _bytes_prefix_end(start)

    def _kv(self, d: dict[str, Any]) -> KeyValue:
        key = _unb64(d["key"])[len(self._root) :].decode()
        return KeyValue(
            key,
            _unb64(d.get("value", "")),
            int(d.get("create_revision", 0)),
            int(d.get("mod_revision", 0)),
        )

    @staticmethod
    def _revision(reply: dict[str, Any]) -> int:
        return int(reply.get("header", {}).get("revision", 0))

    async def _txn(
        self, compare: list[dict[str, Any]], success: list[dict[str, Any]], failure: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return await self._call(
            "/v3/kv/txn", {"compare": compare, "success": success, "failure": failure}, idempotent=False
        )

    def _range_op(self, key: bytes) -> dict[str, Any]:
        return {"request_range": {"key": _b64(key)}}

    def _first_range_kv(self, reply: dict[str, Any]) -> KeyValue | None:
        """The kv read by a txn's single request_range, if the key exists."""
        responses = reply.get("responses") or [{}]
        kvs = responses[0].get("response_range", {}).get("kvs") or []
        return self._kv(kvs[0]) if kvs else None

    # -- reads -----------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        reply = await self._call("/v3/kv/range", {"key": _b64(self._key(key))}, idempotent=True)
        kvs = reply.get("kvs") or []
        return self._kv(kvs[0]) if kvs else None

    async def range(
        self, prefix: str, *, start_after: str = "", limit: int = 0, revision: int = 0
    ) -> RangeResult:
        start, end = self._span(prefix)
        if start_after:
            # The smallest key strictly after start_after is start_after + "\0".
            start = max(start, self._key(start_after) + b"\x00")
        body: dict[str, Any] = {"key": _b64(start), "range_end": _b64(end)}
        if limit:
            body["limit"] = str(limit)
        if revision:
            body["revision"] = str(revision)
        try:
            reply = await self._call("/v3/kv/range", body, idempotent=True)
        except EtcdError as e:
            if _COMPACTED_MSG in e.message:
                raise Compacted(revision, await self.compacted_revision()) from e
            if _FUTURE_MSG in e.message:
                raise FutureRevision(revision, await self.current_revision()) from e
            raise
        kvs = [self._kv(d) for d in reply.get("kvs") or []]
        # etcd's header carries the *current* revision even for a past read.
        return RangeResult(kvs, revision or self._revision(reply), bool(reply.get("more", False)))

    async def current_revision(self) -> int:
        # Any read's header carries the store revision; count one absent key.
        reply = await self._call("/v3/kv/range", {"key": _b64(b"\x00"), "count_only": True}, idempotent=True)
        return self._revision(reply)

    # -- writes ----------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> int:
        k = _b64(self._key(key))
        reply = await self._txn(
            [{"target": "CREATE", "result": "EQUAL", "key": k, "create_revision": "0"}],
            [{"request_put": {"key": k, "value": _b64(value)}}],
            [],
        )
        if not reply.get("succeeded", False):
            raise KeyExists(key)
        return self._revision(reply)

    def _guard(self, key: bytes, expected_revision: int) -> list[dict[str, Any]]:
        """Compares for "key exists (and is at expected_revision when non-zero)".
        The existence check matters: an absent key has mod_revision 0."""
        k = _b64(key)
        compare: list[dict[str, Any]] = [
            {"target": "CREATE", "result": "GREATER", "key": k, "create_revision": "0"}
        ]
        if expected_revision:
            compare.append(
                {"target": "MOD", "result": "EQUAL", "key": k, "mod_revision": str(expected_revision)}
            )
        return compare

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        wire = self._key(key)
        compare = self._guard(wire, expected_revision)
        if not expected_revision:
            # A revision of 0 never matches a live key (the other backends agree).
            compare.append({"target": "MOD", "result": "EQUAL", "key": _b64(wire), "mod_revision": "0"})
        reply = await self._txn(
            compare, [{"request_put": {"key": _b64(wire), "value": _b64(value)}}], [self._range_op(wire)]
        )
        if not reply.get("succeeded", False):
            current = self._first_range_kv(reply)
            if current is None:
                raise KeyNotFound(key)
            raise RevisionMismatch(key, expected_revision, current.mod_revision)
        return self._revision(reply)

    async def delete(self, key: str, expected_revision: int = 0) -> tuple[int, KeyValue]:
        wire = self._key(key)
        reply = await self._txn(
            self._guard(wire, expected_revision),
            [{"request_delete_range": {"key": _b64(wire), "prev_kv": True}}],
            [self._range_op(wire)],
        )
        if not reply.get("succeeded", False):
            current = self._first_range_kv(reply)
            if current is None:
                raise KeyNotFound(key)
            raise RevisionMismatch(key, expected_revision, current.mod_revision)
        deleted = (reply.get("responses") or [{}])[0].get("response_delete_range", {})
        prev_kvs = deleted.get("prev_kvs") or []
        if not prev_kvs:  # cannot happen: the guard proved the key existed
            raise StorageError(f"etcd deleted {key!r} but returned no previous value")
        return self._revision(reply), self._kv(prev_kvs[0])

    # -- watch -----------------------------------------------------------------

    def _event(self, d: dict[str, Any]) -> Event:
        prev = self._kv(d["prev_kv"]) if d.get("prev_kv") else None
        kv = d["kv"]
        if d.get("type") in ("DELETE", 1):
            # etcd's DELETE kv is only key + mod_revision; the contract wants the
            # last value, which is what prev_kv holds.
            key = _unb64(kv["key"])[len(self._root) :].decode()
            value, create = (prev.value, prev.create_revision) if prev else (b"", 0)
            return Event("DELETE", KeyValue(key, value, create, int(kv.get("mod_revision", 0))), prev)
        put = self._kv(kv)
        return Event("PUT", put, prev, created=put.create_revision == put.mod_revision)

    async def _open_watch(self, body: dict[str, Any]) -> tuple[aiohttp.ClientResponse, int]:
        """Start a watch stream, failing over like a read (opening one has no effect).
        Returns the response and the index of the endpoint serving it."""
        session = self._get_session()
        payload = orjson.dumps(body)
        last: BaseException | None = None
        for _ in range(len(self._endpoints)):
            index = self._current
            try:
                url = self._endpoints[index] + "/v3/watch"
                resp = await session.post(url, data=_body(payload), timeout=_WATCH_TIMEOUT)
            except _TRANSPORT as e:
                last = e
                self._fail_over(index)
                continue
            if resp.status == 200:
                return resp, index
            try:
                raw = await resp.read()
            finally:
                resp.close()
            error = self._error(resp.status, raw)
            if resp.status == 503:
                last = error
                self._fail_over(index)
                continue
            raise error
        raise StorageError(f"no etcd endpoint reachable ({', '.join(self._endpoints)}): {last!r}")

    async def watch(self, prefix: str, from_revision: int) -> AsyncIterator[Event]:
        # Checked locally too: etcd accepts a start revision equal to its
        # compaction point, but a delete at that revision is already gone.
        if from_revision < self._compacted:
            raise Compacted(from_revision, self._compacted)
        key, end = self._span(prefix)
        next_rev = from_revision + 1  # etcd's start_revision is inclusive
        open_failures = 0
        backoff = 0.05
        while True:
            request = {
                "create_request": {
                    "key": _b64(key),
                    "range_end": _b64(end),
                    "start_revision": str(next_rev),
                    "prev_kv": True,
                    "progress_notify": True,
                }
            }
            try:
                resp, index = await self._open_watch(request)
            except StorageError:
                if self._closed:
                    return
                open_failures += 1
                if open_failures >= _WATCH_OPEN_ATTEMPTS:
                    raise
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            open_failures = 0
            self._streams.add(resp)
            try:
                reader = _LineReader(resp)
                while True:
                    message = await reader.next()
                    if message is None:
                        raise _StreamBroken("watch stream ended")
                    if "error" in message:
                        # The gateway reports a failed gRPC stream in-band; resume.
                        raise _StreamBroken(str(message["error"]))
                    result = message.get("result", {})
                    compact = int(result.get("compact_revision", 0))
                    if compact:
                        self._compacted = max(self._compacted, compact)
                        raise Compacted(next_rev - 1, compact)
                    if result.get("canceled", False):
                        reason = result.get("cancel_reason") or "no reason given"
                        raise StorageError(f"etcd canceled the watch on {prefix!r}: {reason}")
                    # Messages without events are the "created" acknowledgement
                    # and progress notifications: nothing to deliver.
                    for raw_event in result.get("events") or []:
                        event = self._event(raw_event)
                        next_rev = event.revision + 1
                        backoff = 0.05
                        yield event
            except (_StreamBroken, *_TRANSPORT):
                # Connection lost or member went away: resume after the last
                # delivered revision, on whichever endpoint answers.
                if self._closed:
                    return
                self._fail_over(index)
            finally:
                self._streams.discard(resp)
                resp.close()  # closing the generator must drop the HTTP stream
            if self._closed:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    # -- maintenance -------------------------------------------------------------

    async def _readable_at(self, revision: int) -> bool:
        try:
            await self._call(
                "/v3/kv/range",
                {"key": _b64(b"\x00"), "count_only": True, "revision": str(revision)},
                idempotent=True,
            )
        except EtcdError as e:
            if _COMPACTED_MSG in e.message:
                return False
            raise
        return True

    async def compacted_revision(self) -> int:
        # etcd exposes no compaction point, but a read at revision r fails
        # exactly when r < that point.  Usually the point is the one we know
        # (one probe); otherwise another client compacted, so binary search.
        known = self._compacted
        low = max(known, 1)
        if await self._readable_at(low):
            return known
        high = await self.current_revision()  # the current revision is always readable
        while high - low > 1:
            mid = (low + high) // 2
            if await self._readable_at(mid):
                high = mid
            else:
                low = mid
        self._compacted = max(self._compacted, high)
        return self._compacted

    async def compact(self, revision: int) -> None:
        for _ in range(2):
            body = {"revision": str(revision), "physical": True}  # physical: return once it is done
            try:
                await self._call("/v3/kv/compaction", body, idempotent=False)
            except EtcdError as e:
                if _COMPACTED_MSG in e.message:
                    return  # already compacted at or past it: nothing to do
                if _FUTURE_MSG not in e.message:
                    raise
                # Like the other backends, compacting past the present means "up to now".
                revision = await self.current_revision()
                continue
            self._compacted = max(self._compacted, revision)
            return
        raise StorageError(f"etcd compaction to {revision} kept failing")

    async def close(self) -> None:
        self._closed = True
        for resp in list(self._streams):
            resp.close()  # wakes watchers blocked on a read; they see _closed and end
        self._streams.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
