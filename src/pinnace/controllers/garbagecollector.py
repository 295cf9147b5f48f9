"""Garbage collector: deletes objects whose owners are gone, and carries out
foreground and orphan deletion (Kubernetes' ``pkg/controller/garbagecollector``).

Everything it knows comes from the API:

* **Discovery** lists every resource that supports ``list``, ``watch`` and
  ``delete`` (core and every group, custom resources included) and is re-read
  periodically, so kinds that appear later (a new CRD) are watched too.
* One cluster-wide informer per resource feeds the **graph**: a node per object
  uid, holding its identity, its ``ownerReferences`` and its deletion state,
  with edges owner uid → dependent uids.  A referenced uid that no informer has
  shown is a *virtual* node; whether it exists is settled by a live GET.
* Work goes through a rate-limited queue of ``(action, uid)`` keys:

  - ``("delete", uid)`` — *attemptToDelete*: classify the object's owners as
    solid (exist), dangling (absent: 404 or a different uid, verified live) or
    waiting (being deleted in the foreground).  With a solid owner, only the
    references to absent/waiting owners are patched out; otherwise the object
    is deleted (Foreground if an owner waits on it, else Background) with a uid
    precondition.  For an owner being deleted in the foreground the same key
    removes the ``foregroundDeletion`` finalizer once no dependent with
    ``blockOwnerDeletion: true`` remains.
  - ``("orphan", uid)`` — strip the owner's references from all its
    dependents, then remove its ``orphan`` finalizer.

Syncs are idempotent: each reads current state (graph, then live objects
before writing) and writes only what is still needed; writes carry preconditions
(uid, and a JSON-patch ``test`` of the list being replaced) so a stale view
fails rather than clobbers, and the key is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..client.events import EventRecorder
from ..client.informer import EventHandler, Informer, SharedInformerFactory
from ..client.rest import ApiException, RestClient
from ..client.workqueue import RateLimitingQueue, run_workers

log = logging.getLogger(__name__)

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
# Kubernetes' GC ignores events: they are numerous and never own anything.
IGNORED_RESOURCES = {("", "events"), ("events.k8s.io", "events")}
DISCOVERY_INTERVAL = 30.0
SYNC_TIMEOUT = 30.0
ABSENT_CACHE_SIZE = 10000
PATCH_ATTEMPTS = 5
REDISCOVER_MIN_INTERVAL = 2.0

Key = tuple[str, str]  # (action, uid)


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


@dataclass
class Node:
    """One object (or, while ``observed`` is False, a uid known only from
    someone's ownerReference)."""

    uid: str
    api_version: str = ""
    kind: str = ""
    name: str = ""
    namespace: str = ""
    observed: bool = False
    owners: list[dict] = field(default_factory=list)
    dependents: set[str] = field(default_factory=set)
    being_deleted: bool = False
    finalizers: tuple[str, ...] = ()

    @property
    def deleting_dependents(self) -> bool:
        return self.being_deleted and FOREGROUND in self.finalizers

    def owner_ref(self, uid: str) -> dict | None:
        return next((r for r in self.owners if r.get("uid") == uid), None)

    def __repr__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"<{self.kind or '?'} {where}{self.name or '?'} uid={self.uid}>"


@dataclass(frozen=True)
class Mapping:
    api_version: str
    plural: str
    namespaced: bool


class OwnerState:
    SOLID, DANGLING, WAITING = "solid", "dangling", "waiting"


class GarbageCollector:
    """``start()`` then ``await stop()``.  ``workers`` keys are processed at once."""

    def __init__(self, client: RestClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None,
                 *, workers: int = 5, discovery_interval: float = DISCOVERY_INTERVAL,
                 sync_timeout: float = SYNC_TIMEOUT):
        self.client = client
        self.factory = factory
        self.recorder = recorder
        self.workers = workers
        self.discovery_interval = discovery_interval
        self.sync_timeout = sync_timeout
        self.queue: RateLimitingQueue[Key] = RateLimitingQueue("garbagecollector")
        self.nodes: dict[str, Node] = {}
        # (group, version, kind) → how to reach it; every served version, for owner lookups.
        self.mapper: dict[tuple[str, str, str], Mapping] = {}
        # (apiVersion, plural) → (informer, our handler): the resources being watched.
        self.monitors: dict[tuple[str, str], tuple[Informer, EventHandler]] = {}
        # Owners verified absent, by (uid, namespace looked in): uids never come back.
        self._absent: OrderedDict[tuple[str, str], None] = OrderedDict()
        # Clear while monitors sync: decisions need a complete graph.
        self._graph_synced = asyncio.Event()
        self._rediscovered_at = float("-inf")
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._discovery_loop(), name="garbagecollector-discovery"),
            asyncio.create_task(run_workers(self.queue, self.workers, self._sync, "garbagecollector"),
                                name="garbagecollector"),
        ]

    async def stop(self) -> None:
        self.queue.shutdown()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for inf, handler in self.monitors.values():
            inf.remove_event_handler(handler)
        self.monitors.clear()

    @property
    def has_synced(self) -> bool:
        return self._graph_synced.is_set()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._graph_synced.wait()
        except TimeoutError:
            return False
        return True

    # -- discovery and monitors ------------------------------------------------------

    async def _discovery_loop(self) -> None:
        while True:
            try:
                await self.resync_monitors()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("garbagecollector: discovery failed: %s", e)
                if not self.monitors:
                    # Nothing watched yet (the API server is still starting?): try again soon.
                    await asyncio.sleep(min(1.0, self.discovery_interval))
                    continue
            await asyncio.sleep(self.discovery_interval)

    async def _discover(self) -> tuple[dict[tuple[str, str, str], Mapping], list[tuple[str, str, str]], set[str]]:
        """Every (group, version, kind) mapping; the deletable resources of each
        group's preferred version as (apiVersion, plural, kind); the groupVersions
        whose discovery failed (their resources are unknown, not gone)."""
        failed: set[str] = set()
        docs: list[tuple[str, dict, bool]] = [("v1", await self.client.request("GET", "/api/v1"), True)]
        for g in (await self.client.request("GET", "/apis"))["groups"]:
            preferred = g["preferredVersion"]["groupVersion"]
            for v in g["versions"]:
                gv = v["groupVersion"]
                try:
                    docs.append((gv, await self.client.request("GET", f"/apis/{gv}"), gv == preferred))
                except ApiException as e:
                    # One broken group (an aggregated API that is down) must not stop the rest.
                    log.warning("garbagecollector: discovery of %s failed: %s", gv, e)
                    failed.add(gv)
        mapper: dict[tuple[str, str, str], Mapping] = {}
        deletable: list[tuple[str, str, str]] = []
        for gv, doc, preferred in docs:
            group, version = _group(gv), gv.rpartition("/")[2]
            for r in doc.get("resources") or ():
                if "/" in r["name"]:
                    continue  # subresources
                mapper[(group, version, r["kind"])] = Mapping(gv, r["name"], bool(r.get("namespaced")))
                if (preferred and {"list", "watch", "delete"} <= set(r.get("verbs") or ())
                        and (group, r["name"]) not in IGNORED_RESOURCES):
                    deletable.append((gv, r["name"], r["kind"]))
        return mapper, deletable, failed

    async def resync_monitors(self) -> None:
        """Re-read discovery; watch resources not yet watched, drop vanished ones."""
        mapper, deletable, failed = await self._discover()
        self.mapper = mapper
        wanted = {(gv, plural): kind for gv, plural, kind in deletable}
        for key in [k for k in self.monitors if k not in wanted and k[0] not in failed]:
            inf, handler = self.monitors.pop(key)
            inf.remove_event_handler(handler)
            # Not evidence that the objects are gone (only that we stop watching):
            # their dependents re-verify them live.
            for obj in inf.indexer.list():
                self._unobserve((obj.get("metadata") or {}).get("uid") or "")
            log.info("garbagecollector: no longer monitoring %s/%s", *key)
        new = [k for k in wanted if k not in self.monitors]
        if new:
            # Pause decisions until the new kinds are in the graph: a dependent we
            # have not seen yet could otherwise be missed (an owner finalized early).
            self._graph_synced.clear()
            for gv, plural in new:
                inf = self.factory.informer(gv, plural)
                handler = self._attach(inf, gv, wanted[(gv, plural)])
                self.monitors[(gv, plural)] = (inf, handler)
                inf.start()
            informers = [self.monitors[k][0] for k in new]
            synced = await asyncio.gather(*(i.wait_for_sync(self.sync_timeout) for i in informers))
            for inf, ok in zip(informers, synced, strict=True):
                if not ok:
                    log.warning("garbagecollector: %r did not sync in %.0fs; going on without it",
                                inf, self.sync_timeout)
            log.info("garbagecollector: monitoring %d resources (%d new)", len(self.monitors), len(new))
        self._graph_synced.set()

    def _attach(self, inf: Informer, api_version: str, kind: str) -> EventHandler:
        def fill(obj: dict) -> dict:
            # List items may lack apiVersion/kind; the monitor knows them.
            if obj.get("kind") and obj.get("apiVersion"):
                return obj
            return {**obj, "apiVersion": obj.get("apiVersion") or api_version, "kind": obj.get("kind") or kind}

        return inf.add_event_handler(on_add=lambda o: self._observe(fill(o)),
                                     on_update=lambda _old, new: self._observe(fill(new)),
                                     on_delete=lambda o: self._forget(fill(o)))

    # -- the graph (informer handlers: synchronous, on the event loop) -----------------

    def _node(self, uid: str) -> Node:
        node = self.nodes.get(uid)
        if node is None:
            node = self.nodes[uid] = Node(uid)
        return node

    def _observe(self, obj: dict) -> None:
        meta = obj.get("metadata") or {}
        uid = meta.get("uid")
        if not uid:
            return
        node = self._node(uid)
        old_owners = {r.get("uid"): r for r in node.owners}
        was_deleting_dependents, had_orphan = node.deleting_dependents, node.being_deleted and ORPHAN in node.finalizers
        node.api_version, node.kind = obj.get("apiVersion", ""), obj.get("kind", "")
        node.name, node.namespace = meta.get("name", ""), meta.get("namespace") or ""
        node.observed = True
        node.owners = [dict(r) for r in meta.get("ownerReferences") or () if r.get("uid")]
        node.being_deleted = bool(meta.get("deletionTimestamp"))
        node.finalizers = tuple(meta.get("finalizers") or ())
        new_owners = {r["uid"]: r for r in node.owners}

        for ouid in old_owners.keys() - new_owners.keys():
            self._unlink(ouid, uid)
        for ouid in new_owners.keys() - old_owners.keys():
            self._node(ouid).dependents.add(uid)
        # New or changed references may point at absent owners: check them.
        if any(old_owners.get(u) != r for u, r in new_owners.items()):
            self.queue.add(("delete", uid))
        # A removed reference, or one that stopped blocking, may release a waiting owner.
        for ouid, ref in old_owners.items():
            if ref.get("blockOwnerDeletion") and not (new_owners.get(ouid) or {}).get("blockOwnerDeletion"):
                self._poke_waiting_owner(ouid)

        if node.deleting_dependents and not was_deleting_dependents:
            # Foreground deletion began: every dependent goes, then the owner.
            self.queue.add(("delete", uid))
            for dep in node.dependents:
                self.queue.add(("delete", dep))
        if node.being_deleted and ORPHAN in node.finalizers and not had_orphan:
            self.queue.add(("orphan", uid))

    def _forget(self, obj: dict) -> None:
        """The object was deleted (a watch DELETED event, or missing from a relist)."""
        uid = (obj.get("metadata") or {}).get("uid") or ""
        node = self.nodes.get(uid)
        if node is not None and node.observed:
            if node.dependents:
                # uids are never reused: no need to ask the server about this one again.
                self._mark_absent(node.uid, node.namespace)
            self._unobserve(uid)

    def _unobserve(self, uid: str) -> None:
        node = self.nodes.get(uid)
        if node is None:
            return
        for ref in node.owners:
            self._unlink(ref["uid"], node.uid)
            if ref.get("blockOwnerDeletion"):
                self._poke_waiting_owner(ref["uid"])
        node.owners = []
        if node.dependents:
            # Keep it as a virtual node so the dependents stay linked, and make
            # each of them look at its owners again.
            node.observed, node.being_deleted, node.finalizers = False, False, ()
            for dep in node.dependents:
                self.queue.add(("delete", dep))
        else:
            del self.nodes[node.uid]

    def _unlink(self, owner_uid: str, dep_uid: str) -> None:
        owner = self.nodes.get(owner_uid)
        if owner is None:
            return
        owner.dependents.discard(dep_uid)
        if not owner.observed and not owner.dependents:
            del self.nodes[owner_uid]  # a virtual node nobody refers to any more

    def _poke_waiting_owner(self, owner_uid: str) -> None:
        owner = self.nodes.get(owner_uid)
        if owner is not None and owner.deleting_dependents:
            self.queue.add(("delete", owner_uid))

    def _mark_absent(self, uid: str, namespace: str) -> None:
        self._absent[(uid, namespace)] = None
        self._absent.move_to_end((uid, namespace))
        while len(self._absent) > ABSENT_CACHE_SIZE:
            self._absent.popitem(last=False)

    # -- workers ---------------------------------------------------------------------

    async def _sync(self, key: Key) -> None:
        await self._graph_synced.wait()
        action, uid = key
        if action == "orphan":
            await self.orphan_dependents(uid)
        else:
            await self.attempt_to_delete(uid)

    def _mapping(self, api_version: str, kind: str) -> Mapping | None:
        group, _, version = api_version.rpartition("/") if "/" in api_version else ("", "", api_version)
        m = self.mapper.get((group, version, kind))
        if m is None:
            # The reference may name a version that is not served; any version of the kind reaches it.
            m = next((v for (g, _v, k), v in self.mapper.items() if g == group and k == kind), None)
        return m

    async def _resolve(self, api_version: str, kind: str) -> Mapping:
        m = self._mapping(api_version, kind)
        now = asyncio.get_running_loop().time()
        if m is None and now - self._rediscovered_at >= REDISCOVER_MIN_INTERVAL:
            # Perhaps a kind that just appeared (a new CRD): look again before giving
            # up, but not on every retry of every object naming an unknown kind.
            self._rediscovered_at = now
            self.mapper, _, _ = await self._discover()
            m = self._mapping(api_version, kind)
        if m is None:
            # Not "absent": an unknown kind cannot be verified, so retry with backoff.
            raise LookupError(f"no resource for kind {kind!r} in {api_version!r}")
        return m

    async def _get_live(self, node: Node) -> dict | None:
        """The object as the API server has it now, or None if gone (or replaced)."""
        m = await self._resolve(node.api_version, node.kind)
        try:
            obj = await self.client.get(m.api_version, m.plural, node.name, node.namespace if m.namespaced else "")
        except ApiException as e:
            if e.status in (404, 410):
                return None
            raise
        return obj if obj["metadata"].get("uid") == node.uid else None

    async def owner_state(self, dependent: Node, ref: dict) -> str:
        """Classify one ownerReference of ``dependent``."""
        m = await self._resolve(ref.get("apiVersion", ""), ref.get("kind", ""))
        if m.namespaced and not dependent.namespace:
            # A cluster-scoped object cannot have a namespaced owner: the reference
            # is unresolvable, and (as in Kubernetes) never makes it collectable.
            self._warn(dependent, "OwnerRefInvalidNamespace",
                       f"ownerRef {ref} does not exist in namespace \"\" (a cluster-scoped dependent)")
            return OwnerState.SOLID
        namespace = dependent.namespace if m.namespaced else ""
        if (ref["uid"], namespace) in self._absent:
            return OwnerState.DANGLING
        owner = self.nodes.get(ref["uid"])
        if (owner is not None and owner.observed and owner.name == ref.get("name")
                and owner.namespace == namespace and _group(owner.api_version) == _group(ref.get("apiVersion", ""))):
            # The graph has it (kept current by its informer): no need to ask the server.
            return OwnerState.WAITING if owner.deleting_dependents else OwnerState.SOLID
        try:
            obj = await self.client.get(m.api_version, m.plural, ref.get("name", ""), namespace)
        except ApiException as e:
            if e.status not in (404, 410):
                raise
            obj = None
        if obj is None or obj["metadata"].get("uid") != ref["uid"]:
            self._mark_absent(ref["uid"], namespace)
            return OwnerState.DANGLING
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") and FOREGROUND in (meta.get("finalizers") or ()):
            return OwnerState.WAITING
        return OwnerState.SOLID

    async def attempt_to_delete(self, uid: str) -> None:
        node = self.nodes.get(uid)
        if node is None:
            return
        if not node.observed:
            # A virtual owner: its dependents each verify it live.
            for dep in node.dependents:
                self.queue.add(("delete", dep))
            return
        if node.deleting_dependents:
            await self._process_deleting_dependents(node)
            return
        if node.being_deleted or not node.owners:
            return  # already going away, or nothing owns it
        # Decide on the object as it is now, not as the cache last saw it (a new
        # owner may just have been added); a changed object is re-enqueued by its event.
        live = await self._get_live(node)
        if live is None or live["metadata"].get("deletionTimestamp"):
            return
        refs = [r for r in live["metadata"].get("ownerReferences") or () if r.get("uid")]
        states: dict[str, str] = {}
        for ref in refs:
            states[ref["uid"]] = await self.owner_state(node, ref)
        solid = [u for u, s in states.items() if s == OwnerState.SOLID]
        gone = [u for u, s in states.items() if s != OwnerState.SOLID]
        waiting = [u for u, s in states.items() if s == OwnerState.WAITING]
        if solid:
            if gone:
                # It stays (a live owner keeps it); it no longer belongs to the others.
                if await self._remove_owner_refs(node, set(gone)):
                    log.info("garbagecollector: %r: removed references to absent or deleting owners %s", node, gone)
            return
        if waiting and node.dependents:
            # It will be deleted in the foreground too; break any cycle that would
            # leave both sides waiting for each other.
            for dep_uid in list(node.dependents):
                dep = self.nodes.get(dep_uid)
                if dep is not None and dep.deleting_dependents:
                    await self._unblock_owner_refs(dep, node.uid)
        policy = "Foreground" if waiting else "Background"
        log.info("garbagecollector: deleting %r (owners %s absent or being deleted; propagation %s)", node, gone,
                 policy)
        await self._delete(node, policy)

    async def _process_deleting_dependents(self, node: Node) -> None:
        blocking = []
        for dep_uid in node.dependents:
            dep = self.nodes.get(dep_uid)
            ref = dep.owner_ref(node.uid) if dep is not None and dep.observed else None
            if ref is not None and ref.get("blockOwnerDeletion"):
                blocking.append(dep)
        if blocking:
            for dep in blocking:
                if not dep.being_deleted or dep.deleting_dependents:
                    self.queue.add(("delete", dep.uid))
            return  # their deletion events bring us back here
        if await self._remove_finalizer(node, FOREGROUND):
            log.info("garbagecollector: %r: no blocking dependents left; removed %s", node, FOREGROUND)

    async def orphan_dependents(self, uid: str) -> None:
        node = self.nodes.get(uid)
        if node is None or not node.observed:
            return
        live = await self._get_live(node)
        if live is None or ORPHAN not in (live["metadata"].get("finalizers") or ()):
            return
        for dep_uid in list(node.dependents):
            dep = self.nodes.get(dep_uid)
            if dep is not None and dep.observed:
                await self._remove_owner_refs(dep, {uid})
        if await self._remove_finalizer(node, ORPHAN):
            log.info("garbagecollector: %r: dependents orphaned; removed %s", node, ORPHAN)

    # -- writes ----------------------------------------------------------------------

    async def _delete(self, node: Node, policy: str) -> None:
        m = await self._resolve(node.api_version, node.kind)
        try:
            await self.client.delete(m.api_version, m.plural, node.name, node.namespace if m.namespaced else "",
                                     propagationPolicy=policy, preconditions={"uid": node.uid})
        except ApiException as e:
            # Already gone, or the name now belongs to another object: nothing to do.
            if e.status == 404 or (e.status == 409 and "UID" in e.message):
                return
            raise

    async def _patch_list(self, node: Node, path: str, change: Any) -> bool:
        """Rewrite the list at ``/metadata/<path>`` of the live object with
        ``change(old_list) -> new_list | None`` (None: leave it), guarded by JSON
        patch tests of the uid and the old list; retried if it moved under us.
        True if it wrote."""
        m = await self._resolve(node.api_version, node.kind)
        ns = node.namespace if m.namespaced else ""
        for _ in range(PATCH_ATTEMPTS):
            live = await self._get_live(node)
            if live is None:
                return False
            old = live["metadata"].get(path)
            new = change(list(old or ()))
            if new is None:
                return False
            ops: list[dict] = [{"op": "test", "path": "/metadata/uid", "value": node.uid}]
            if old is not None:
                ops.append({"op": "test", "path": f"/metadata/{path}", "value": old})
            ops.append({"op": "replace", "path": f"/metadata/{path}", "value": new} if new
                       else {"op": "remove", "path": f"/metadata/{path}"})
            try:
                await self.client.patch(m.api_version, m.plural, node.name, ops, ns, patch_type="json")
                return True
            except ApiException as e:
                if e.status == 404:
                    return False
                if e.status not in (409, 422):
                    raise
                # A failed test: someone changed the list; read it again.
        raise RuntimeError(f"{node!r}: {path} kept changing; will retry")

    async def _remove_owner_refs(self, node: Node, owner_uids: set[str]) -> bool:
        def change(refs: list[dict]) -> list[dict] | None:
            kept = [r for r in refs if r.get("uid") not in owner_uids]
            return kept if len(kept) != len(refs) else None

        return await self._patch_list(node, "ownerReferences", change)

    async def _unblock_owner_refs(self, node: Node, owner_uid: str) -> None:
        def change(refs: list[dict]) -> list[dict] | None:
            if not any(r.get("uid") == owner_uid and r.get("blockOwnerDeletion") for r in refs):
                return None
            return [{**r, "blockOwnerDeletion": False} if r.get("uid") == owner_uid else r for r in refs]

        await self._patch_list(node, "ownerReferences", change)

    async def _remove_finalizer(self, node: Node, finalizer: str) -> bool:
        def change(finalizers: list[str]) -> list[str] | None:
            return [f for f in finalizers if f != finalizer] if finalizer in finalizers else None

        return await self._patch_list(node, "finalizers", change)

    def _warn(self, node: Node, reason: str, message: str) -> None:
        log.warning("garbagecollector: %r: %s", node, message)
        if self.recorder is not None:
            obj = {"apiVersion": node.api_version, "kind": node.kind,
                   "metadata": {"name": node.name, "namespace": node.namespace, "uid": node.uid}}
            with contextlib.suppress(Exception):
                self.recorder.event(obj, "Warning", reason, message)


__all__ = ["GarbageCollector", "Node", "OwnerState"]
