"""A minimal list+watch loop (the simulator needs no cache or indexers, only events)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ..client.rest import ApiException, RestClient

log = logging.getLogger(__name__)
RETRY_SECONDS = 1.0
WATCH_TIMEOUT = 300


class _Relist(Exception):
    pass


async def list_watch(client: RestClient, api_version: str, plural: str, *,
                     on_list: Callable[[list[dict]], None], on_event: Callable[[str, dict], None],
                     synced: asyncio.Event | None = None, **params: Any) -> None:
    """List, hand the items to ``on_list``, then stream events to ``on_event`` for ever.

    Re-watches from the last seen resourceVersion when a watch times out, and
    relists when the server says that version is gone (410) — so ``on_list``
    must reconcile, not just add.
    """
    while True:
        try:
            listed = await client.list(api_version, plural, **params)
            on_list(listed.get("items") or [])
            if synced is not None:
                synced.set()
            rv = listed["metadata"]["resourceVersion"]
            while True:
                async for event in client.watch(api_version, plural, resourceVersion=rv, allowWatchBookmarks="true",
                                                timeoutSeconds=WATCH_TIMEOUT, **params):
                    etype, obj = event.get("type"), event.get("object") or {}
                    if etype == "ERROR":
                        raise _Relist(obj.get("message", ""))
                    rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                    if etype != "BOOKMARK":
                        on_event(etype, obj)
        except asyncio.CancelledError:
            raise
        except _Relist as e:
            log.debug("%s watch expired (%s); relisting", plural, e)
        except ApiException as e:
            if e.status == 410:  # the client raises expiry itself: the version is gone, relist at once
                log.debug("%s watch expired (%s); relisting", plural, e)
                continue
            log.warning("%s watch failed (%s); retrying", plural, e)
            await asyncio.sleep(RETRY_SECONDS)
        except Exception as e:
            log.warning("%s watch failed (%s: %s); retrying", plural, type(e).__name__, e)
            await asyncio.sleep(RETRY_SECONDS)
