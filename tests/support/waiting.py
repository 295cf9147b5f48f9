"""Waiting for a condition in the integration tests, and reading objects back.

One copy of the poller every controller test used to carry: ``await eventually(fetch,
ok)`` calls ``fetch`` until ``ok(value)`` holds and returns that value, or fails with the
last value seen.  ``wait_until`` is the same for plain (synchronous) code, such as the
end-to-end tests driving kubectl against a server process.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any


def _not_met(what: str, timeout: float, value: Any) -> AssertionError:
    return AssertionError(f"{what or 'condition'} not met within {timeout}s; last value: {value!r}")


async def eventually(fn: Callable[[], Awaitable[Any] | Any], ok: Callable[[Any], Any] = bool,
                     timeout: float = 10, *, what: str = "", interval: float = 0.05) -> Any:
    """Poll ``fn`` (async, or plain) every ``interval`` s until ``ok`` of its value is true,
    and return that value; raise AssertionError naming ``what`` after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = fn()
        if inspect.isawaitable(value):
            value = await value
        if ok(value):
            return value
        if loop.time() > deadline:
            raise _not_met(what, timeout, value)
        await asyncio.sleep(interval)


def wait_until(fn: Callable[[], Any], ok: Callable[[Any], Any] = bool, timeout: float = 30, *,
               what: str = "", interval: float = 0.2) -> Any:
    """Call ``fn`` every ``interval`` s (blocking) until ``ok`` of its value is true, and
    return that value; raise AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise _not_met(what, timeout, value)
        time.sleep(interval)


async def get_ok(api: Any, path: str) -> Any:
    """GET ``path``, which must answer 200; its body."""
    status, body = await api.call("GET", path)
    assert status == 200, body
    return body


async def get_or_none(api: Any, path: str) -> Any:
    """GET ``path``: its body when it answers 200, else None (gone, or not there yet)."""
    status, body = await api.call("GET", path)
    return body if status == 200 else None


async def status_of(api: Any, path: str) -> int:
    """GET ``path``; only its HTTP status."""
    return (await api.call("GET", path))[0]


__all__ = ["eventually", "get_ok", "get_or_none", "status_of", "wait_until"]
