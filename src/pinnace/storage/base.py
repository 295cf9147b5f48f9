"""The storage contract every backend implements (ARCHITECTURE §3).

A flat key space with one global, monotonic revision.  Every successful write
gets a new revision, which the API server exposes as ``resourceVersion``.
Values are opaque bytes (the API server stores JSON).

Backends: :mod:`.memory` (tests), :mod:`.sqlite` (embedded default, kine-style
log table) and :mod:`.etcd` (etcd v3 through its JSON gateway).  One contract
test suite (``tests/unit/test_storage_contract.py``) runs against all three.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal


class StorageError(Exception):
    """Base class of every error a backend raises."""


class KeyExists(StorageError):
    def __init__(self, key: str):
        super().__init__(f"key {key!r} already exists")
        self.key = key


class KeyNotFound(StorageError):
    def __init__(self, key: str):
        super().__init__(f"key {key!r} not found")
        self.key = key


class RevisionMismatch(StorageError):
    """An update or delete guarded by a revision found a different one."""

    def __init__(self, key: str, expected: int, actual: int):
        super().__init__(f"key {key!r} is at revision {actual}, not {expected}")
        self.key, self.expected, self.actual = key, expected, actual


class Compacted(StorageError):
    """A read or watch asked for a revision older than the compaction point."""

    def __init__(self, requested: int, compacted: int):
        super().__init__(f"revision {requested} has been compacted (oldest available: {compacted + 1})")
        self.requested, self.compacted = requested, compacted


class FutureRevision(StorageError):
    """A read asked for a revision the store has not reached yet."""

    def __init__(self, requested: int, current: int):
        super().__init__(f"revision {requested} is newer than the current revision {current}")
        self.requested, self.current = requested, current


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


EventType = Literal["PUT", "DELETE"]


@dataclass(frozen=True, slots=True)
class Event:
    """One change.  For DELETE, ``kv.value`` is the last value and
    ``kv.mod_revision`` is the revision of the delete itself."""

    type: EventType
    kv: KeyValue
    prev: KeyValue | None
    # True when the PUT created the key (no previous live value).
    created: bool = False

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


@dataclass(frozen=True, slots=True)
class RangeResult:
    kvs: list[KeyValue]
    revision: int  # the revision the read was served at
    more: bool  # True when ``limit`` cut the result short


def prefix_end(prefix: str) -> str:
    """The smallest key greater than every key starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class Store(abc.ABC):
    """Revisioned key-value store with watch."""

    @abc.abstractmethod
    async def get(self, key: str) -> KeyValue | None: ...

    @abc.abstractmethod
    async def range(
        self, prefix: str, *, start_after: str = "", limit: int = 0, revision: int = 0
    ) -> RangeResult:
        """Keys beginning with ``prefix`` in key order, strictly after
        ``start_after`` when given, at most ``limit`` (0: all), as of
        ``revision`` (0: now).  Raises :class:`Compacted` or :class:`FutureRevision`."""

    @abc.abstractmethod
    async def create(self, key: str, value: bytes) -> int:
        """Create ``key`` if absent; returns the new revision.  Raises :class:`KeyExists`."""

    @abc.abstractmethod
    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        """Replace ``key`` if its mod revision is ``expected_revision``.
        Raises :class:`KeyNotFound` or :class:`RevisionMismatch`."""

    @abc.abstractmethod
    async def delete(self, key: str, expected_revision: int = 0) -> tuple[int, KeyValue]:
        """Delete ``key`` (only if at ``expected_revision`` when non-zero).
        Returns the delete's revision and the deleted value."""

    @abc.abstractmethod
    def watch(self, prefix: str, from_revision: int) -> AsyncIterator[Event]:
        """Every event on keys under ``prefix`` with revision > ``from_revision``,
        in order, then live events until the iterator is closed.
        Raises :class:`Compacted` when ``from_revision`` is older than the
        compaction point."""

    @abc.abstractmethod
    async def current_revision(self) -> int: ...

    @abc.abstractmethod
    async def compact(self, revision: int) -> None:
        """Forget history at and before ``revision``."""

    async def compacted_revision(self) -> int:
        return 0

    async def close(self) -> None:  # noqa: B027 - optional for backends with nothing to release
        pass


def open_store(url: str) -> Store:
    """Open a backend from a URL: ``memory://``, ``sqlite:///path/to/db`` or
    ``etcd://host:port[,host:port][/prefix]``."""
    if url.startswith("memory:"):
        from .memory import MemoryStore

        return MemoryStore()
    if url.startswith("sqlite://"):
        from .sqlite import SQLiteStore

        path = url[len("sqlite://") :]
        if not path:
            raise ValueError("sqlite storage needs a path: sqlite:///path/to/state.db")
        return SQLiteStore(path)
    if url.startswith("etcd://"):
        from .etcd import EtcdStore

        # etcd://host:port[,host:port][/prefix] - a prefix lets clusters share one etcd.
        hosts, _, root = url[len("etcd://") :].partition("/")
        endpoints = [e for e in hosts.split(",") if e]
        if not endpoints:
            raise ValueError("etcd storage needs endpoints: etcd://127.0.0.1:2379[,host:port][/prefix]")
        return EtcdStore(endpoints, root="/" + root.strip("/") if root.strip("/") else "")
    raise ValueError(f"unknown storage URL {url!r}; use sqlite:///PATH, etcd://HOST:PORT or memory://")
