"""SPDY/3.1 framing, as moby/spdystream (the library client-go uses) speaks it.

A frame is either a control frame (``1 | version:15 | type:16 | flags:8 | length:24``
then the payload) or a data frame (``0 | stream:31 | flags:8 | length:24`` then
the data).  Header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are ``count:32`` then
``len:32 name len:32 value`` pairs, zlib-compressed with the SPDY/3 dictionary;
each direction of a connection keeps one compression context for all its blocks
(sync-flushed at the end of each), so frames must be compressed in the order they
go on the wire.  Only what ``portforward.k8s.io`` needs is here: no flow control
(spdystream keeps none either), no priorities, no server push.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN, FLAG_UNIDIRECTIONAL = 0x01, 0x02
# RST_STREAM status codes.
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, CANCEL, INTERNAL_ERROR = 1, 2, 3, 5, 6
MAX_DATA = 0xFFFFFF  # the 24-bit length field

_WORDS = (
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
    "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
    "content-base", "content-encoding", "content-language", "content-length", "content-location", "content-md5",
    "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host", "if-match",
    "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
    "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer", "retry-after",
    "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
    "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url", "public",
    "set-cookie", "keep-alive", "origin",
)
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
# The header-compression dictionary of SPDY/3 (draft-mbelshe-httpbis-spdy-00, 2.6.10.1).
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()
assert len(DICTIONARY) == 1423


class ProtocolError(Exception):
    """The peer broke SPDY framing; the connection cannot go on."""


@dataclass
class Frame:
    """A parsed frame.  ``type`` is 0 for data frames."""

    type: int
    flags: int
    stream_id: int = 0
    data: bytes = b""  # a data frame's payload; a control frame's raw payload
    headers: dict[str, list[str]] = field(default_factory=dict)
    status: int = 0  # RST_STREAM / GOAWAY status
    ping_id: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


def encode_header_block(headers: dict[str, list[str]] | dict[str, str]) -> bytes:
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        raw = "\0".join(value) if isinstance(value, list) else value
        n, v = name.lower().encode(), raw.encode()
        out.append(struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v)
    return b"".join(out)


def decode_header_block(block: bytes) -> dict[str, list[str]]:
    try:
        (count,) = struct.unpack_from(">I", block, 0)
        pos, headers = 4, {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", block, pos)
            name = block[pos + 4:pos + 4 + n].decode().lower()
            pos += 4 + n
            (n,) = struct.unpack_from(">I", block, pos)
            value = block[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
            if pos > len(block):
                raise ProtocolError("truncated header block")
            headers.setdefault(name, []).extend(value.split("\0"))
        return headers
    except (struct.error, UnicodeDecodeError) as e:
        raise ProtocolError(f"bad header block: {e}") from None


class Framer:
    """Parses the bytes one peer sends (fed in pieces of any size) and builds the frames
    sent to it, each direction with its own zlib context."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zdict=DICTIONARY)

    # -- reading ---------------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames = []
        while len(self._buf) >= 8:
            word, flags_len = struct.unpack_from(">II", self._buf, 0)
            length = flags_len & 0xFFFFFF
            if len(self._buf) < 8 + length:
                break
            payload = bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            flags = flags_len >> 24
            if word & 0x80000000:
                version, ftype = (word >> 16) & 0x7FFF, word & 0xFFFF
                if version != VERSION:
                    raise ProtocolError(f"unsupported SPDY version {version}")
                frames.append(self._control(ftype, flags, payload))
            else:
                frames.append(Frame(0, flags, word & 0x7FFFFFFF, payload))
        return frames

    def _headers(self, block: bytes) -> dict[str, list[str]]:
        try:
            return decode_header_block(self._inflate.decompress(block))
        except zlib.error as e:
            raise ProtocolError(f"bad compressed header block: {e}") from None

    def _control(self, ftype: int, flags: int, p: bytes) -> Frame:
        try:
            if ftype == SYN_STREAM:
                (sid,) = struct.unpack_from(">I", p, 0)
                return Frame(ftype, flags, sid & 0x7FFFFFFF, p, self._headers(p[10:]))
            if ftype in (SYN_REPLY, HEADERS):
                (sid,) = struct.unpack_from(">I", p, 0)
                return Frame(ftype, flags, sid & 0x7FFFFFFF, p, self._headers(p[4:]))
            if ftype in (RST_STREAM, GOAWAY):
                sid, status = struct.unpack_from(">II", p, 0)
                return Frame(ftype, flags, sid & 0x7FFFFFFF, p, status=status)
            if ftype == PING:
                (pid,) = struct.unpack_from(">I", p, 0)
                return Frame(ftype, flags, 0, p, ping_id=pid)
            if ftype == WINDOW_UPDATE:
                (sid,) = struct.unpack_from(">I", p, 0)
                return Frame(ftype, flags, sid & 0x7FFFFFFF, p)
        except struct.error:
            raise ProtocolError(f"short control frame (type {ftype})") from None
        return Frame(ftype, flags, 0, p)  # SETTINGS and unknown types: kept raw, ignored

    # -- writing ---------------------------------------------------------------------------------

    @staticmethod
    def _control_frame(ftype: int, flags: int, payload: bytes) -> bytes:
        return struct.pack(">II", 0x80000000 | (VERSION << 16) | ftype, (flags << 24) | len(payload)) + payload

    def _compress(self, headers: dict[str, list[str]] | dict[str, str]) -> bytes:
        return self._deflate.compress(encode_header_block(headers)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def syn_reply(self, stream_id: int, headers: dict[str, list[str]] | dict[str, str] | None = None,
                  fin: bool = False) -> bytes:
        payload = struct.pack(">I", stream_id) + self._compress(headers or {})
        return self._control_frame(SYN_REPLY, FLAG_FIN if fin else 0, payload)

    def syn_stream(self, stream_id: int, headers: dict[str, list[str]] | dict[str, str], fin: bool = False,
                   associated: int = 0, priority: int = 0) -> bytes:
        payload = struct.pack(">IIBB", stream_id, associated, (priority & 7) << 5, 0) + self._compress(headers)
        return self._control_frame(SYN_STREAM, FLAG_FIN if fin else 0, payload)

    def rst_stream(self, stream_id: int, status: int = CANCEL) -> bytes:
        return self._control_frame(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def ping(self, ping_id: int) -> bytes:
        return self._control_frame(PING, 0, struct.pack(">I", ping_id))

    def goaway(self, last_stream_id: int, status: int = 0) -> bytes:
        return self._control_frame(GOAWAY, 0, struct.pack(">II", last_stream_id, status))

    @staticmethod
    def data(stream_id: int, data: bytes = b"", fin: bool = False) -> list[bytes]:
        """Data frames for ``data`` (split at the 24-bit length limit); ``fin`` on the last."""
        frames = []
        chunks = [data[i:i + MAX_DATA] for i in range(0, len(data), MAX_DATA)] or [b""]
        for i, chunk in enumerate(chunks):
            flags = FLAG_FIN if fin and i == len(chunks) - 1 else 0
            frames.append(struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(chunk)) + chunk)
        return frames


__all__ = ["CANCEL", "DICTIONARY", "FLAG_FIN", "GOAWAY", "HEADERS", "PING", "RST_STREAM", "SETTINGS",
           "SYN_REPLY", "SYN_STREAM", "WINDOW_UPDATE", "Frame", "Framer", "ProtocolError",
           "decode_header_block", "encode_header_block"]
