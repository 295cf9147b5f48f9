"""SQLite backend: the embedded default.

Like k3s' kine, every write appends a row to one log table whose
auto-increment id *is* the revision; the live value of a key is its newest
row, a delete appends a tombstone row.  That one table serves gets, ranges at a
past revision (for consistent pagination), and watch history.  Compaction
drops rows that newer rows have superseded.

The API server is the only process that opens the file, so statements run
inline on the event loop.  Writes use *group commit*: every write made during
one turn of the event loop joins one open transaction, which commits at the
end of that turn; each write is acknowledged, and its event handed to
watchers, only after that COMMIT.  (One COMMIT per write costs ~4x more.)
WAL with ``synchronous=NORMAL`` means a committed write is in the WAL file
before it is acknowledged: it survives ``kill -9`` of the server (use
``synchronous=FULL`` to also survive power loss).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

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
    prefix_end,
)
from .hub import EventHub

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    rev INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    create_rev INTEGER NOT NULL,
    prev_rev INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS kv_name_rev ON kv (name, rev);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
"""

# The newest row of each key in [lo, hi) at or before a revision, if live.
RANGE_SQL = """
SELECT k.name, k.value, k.create_rev, k.rev FROM kv k
JOIN (SELECT name, MAX(rev) AS mrev FROM kv
      WHERE name >= ? AND name > ? AND name < ? AND rev <= ? GROUP BY name) m
  ON k.rev = m.mrev
WHERE k.deleted = 0 ORDER BY k.name LIMIT ?
"""

HISTORY_SQL = """
SELECT k.rev, k.name, k.deleted, k.create_rev, k.value, p.value, p.rev, p.create_rev, p.deleted
FROM kv k LEFT JOIN kv p ON p.rev = k.prev_rev
WHERE k.rev > ? AND k.name >= ? AND k.name < ? ORDER BY k.rev
"""


class SQLiteStore(Store):
    def __init__(self, path: str | Path, synchronous: str = "NORMAL") -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'kv'").fetchone()
        self._revision = row[0] if row else 0
        row = self._db.execute("SELECT v FROM meta WHERE k = 'compacted'").fetchone()
        self._compacted = row[0] if row else 0
        self._committed_revision = self._revision
        self._hub = EventHub()
        # The open group-commit transaction: writes waiting for its COMMIT.
        self._pending: list[tuple[asyncio.Future[None], Event | None]] | None = None

    # -- reads ---------------------------------------------------------------

    def _latest(self, key: str) -> tuple[int, int, int, bytes] | None:
        """(rev, create_rev, deleted, value) of the newest row of ``key``."""
        return self._db.execute(
            "SELECT rev, create_rev, deleted, value FROM kv WHERE name = ? ORDER BY rev DESC LIMIT 1",
            (key,),
        ).fetchone()

    def _live(self, key: str) -> KeyValue | None:
        row = self._latest(key)
        if row is None or row[2]:
            return None
        return KeyValue(key, row[3], row[1], row[0])

    async def get(self, key: str) -> KeyValue | None:
        return self._live(key)

    async def range(
        self, prefix: str, *, start_after: str = "", limit: int = 0, revision: int = 0
    ) -> RangeResult:
        if revision and revision < self._compacted:
            raise Compacted(revision, self._compacted)
        if revision > self._revision:
            raise FutureRevision(revision, self._revision)
        at = revision or self._revision
        rows = self._db.execute(
            RANGE_SQL, (prefix, start_after, prefix_end(prefix), at, limit + 1 if limit else -1)
        ).fetchall()
        more = bool(limit) and len(rows) > limit
        if more:
            rows = rows[:limit]
        return RangeResult([KeyValue(r[0], r[1], r[2], r[3]) for r in rows], at, more)

    # -- writes --------------------------------------------------------------

    def _begin(self) -> None:
        """Join the open transaction, or open one that commits at the end of this loop turn."""
        if self._pending is None:
            self._db.execute("BEGIN IMMEDIATE")
            self._pending = []
            asyncio.get_running_loop().call_soon(self._commit)

    def _commit(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as e:
            self._db.execute("ROLLBACK")
            self._revision = self._committed_revision
            for fut, _ in pending:
                if not fut.done():
                    fut.set_exception(StorageError(f"commit failed: {e}"))
            return
        self._committed_revision = self._revision
        for fut, event in pending:
            if event is not None:
                self._hub.publish(event)
            if not fut.done():
                fut.set_result(None)

    async def _durable(self, event: Event | None) -> None:
        """Wait until the transaction holding this write has committed."""
        assert self._pending is not None
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((fut, event))
        await fut

    def _append(self, key: str, deleted: int, create_rev: int, prev_rev: int, value: bytes) -> int:
        # The sole writer knows the next revision; inserting it explicitly saves an UPDATE.
        rev = self._revision + 1
        self._db.execute(
            "INSERT INTO kv (rev, name, deleted, create_rev, prev_rev, value) VALUES (?, ?, ?, ?, ?, ?)",
            (rev, key, deleted, create_rev or rev, prev_rev, value),
        )
        self._revision = rev
        return rev

    async def create(self, key: str, value: bytes) -> int:
        self._begin()
        latest = self._latest(key)
        if latest is not None and not latest[2]:
            raise KeyExists(key)
        rev = self._append(key, 0, 0, latest[0] if latest else 0, value)
        await self._durable(Event("PUT", KeyValue(key, value, rev, rev), None, created=True))
        return rev

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        self._begin()
        prev = self._live(key)
        if prev is None:
            raise KeyNotFound(key)
        if prev.mod_revision != expected_revision:
            raise RevisionMismatch(key, expected_revision, prev.mod_revision)
        rev = self._append(key, 0, prev.create_revision, prev.mod_revision, value)
        await self._durable(Event("PUT", KeyValue(key, value, prev.create_revision, rev), prev))
        return rev

    async def delete(self, key: str, expected_revision: int = 0) -> tuple[int, KeyValue]:
        self._begin()
        prev = self._live(key)
        if prev is None:
            raise KeyNotFound(key)
        if expected_revision and prev.mod_revision != expected_revision:
            raise RevisionMismatch(key, expected_revision, prev.mod_revision)
        rev = self._append(key, 1, prev.create_revision, prev.mod_revision, prev.value)
        await self._durable(Event("DELETE", KeyValue(key, prev.value, prev.create_revision, rev), prev))
        return rev, prev

    # -- watch ---------------------------------------------------------------

    def _history(self, prefix: str, from_revision: int) -> Iterator[Event]:
        rows = self._db.execute(HISTORY_SQL, (from_revision, prefix, prefix_end(prefix))).fetchall()
        for rev, name, deleted, create_rev, value, pvalue, prev_rev, pcreate, pdeleted in rows:
            prev = None if pvalue is None or pdeleted else KeyValue(name, pvalue, pcreate, prev_rev)
            kind = "DELETE" if deleted else "PUT"
            yield Event(kind, KeyValue(name, value, create_rev, rev), prev, created=not deleted and rev == create_rev)

    async def watch(self, prefix: str, from_revision: int) -> AsyncIterator[Event]:
        if from_revision < self._compacted:
            raise Compacted(from_revision, self._compacted)
        async for event in self._hub.watch(prefix, from_revision, lambda: self._history(prefix, from_revision)):
            yield event

    # -- maintenance ---------------------------------------------------------

    async def current_revision(self) -> int:
        return self._revision

    async def compacted_revision(self) -> int:
        return self._compacted

    async def compact(self, revision: int) -> None:
        revision = min(revision, self._revision)
        if revision <= self._compacted:
            return
        self._begin()
        # Rows superseded by a newer row of the same key at or before the
        # compaction point, and tombstones at or before it, are history only.
        self._db.execute(
            """DELETE FROM kv WHERE rev <= :r AND (deleted = 1 OR rev < (
                   SELECT MAX(k2.rev) FROM kv k2 WHERE k2.name = kv.name AND k2.rev <= :r))""",
            {"r": revision},
        )
        self._db.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('compacted', ?)", (revision,))
        await self._durable(None)
        self._compacted = revision

    async def close(self) -> None:
        self._commit()
        self._hub.close()
        self._db.close()
