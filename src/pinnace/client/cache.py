"""The informer's local store: objects by key plus secondary indexes (client-go's
``cache.Indexer``), and :class:`Lister` for the reads controllers make.

Everything runs on the event loop, so no locks.  Objects are the decoded API
dicts and are **shared**: the store, every event handler and every lister
caller see the same instance.  Treat them as read-only; ``copy.deepcopy`` an
object before changing it (for example before sending an update), or the cache
silently diverges from the server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..api.selectors import LabelSelector, from_label_selector_object, matches_labels, parse_label_selector

IndexFunc = Callable[[dict], list[str]]

NAMESPACE_INDEX = "namespace"


def object_key(obj: dict) -> str:
    """``namespace/name``, or ``name`` for a cluster-scoped object (client-go's
    ``MetaNamespaceKeyFunc``)."""
    meta = obj.get("metadata") or {}
    ns, name = meta.get("namespace") or "", meta.get("name") or ""
    return f"{ns}/{name}" if ns else name


def split_key(key: str) -> tuple[str, str]:
    """``"ns/name"`` → ``("ns", "name")``; ``"name"`` → ``("", "name")``."""
    ns, _, name = key.rpartition("/")
    return ns, name


def namespace_index(obj: dict) -> list[str]:
    # Cluster-scoped objects index under "" so by_index("namespace", "") finds them.
    return [(obj.get("metadata") or {}).get("namespace") or ""]


class Indexer:
    """Objects keyed by :func:`object_key`, with named indexes.

    An index function maps an object to the index values it should be found
    under (several, one, or none).  ``namespace`` is always present.
    """

    def __init__(self, key_func: Callable[[dict], str] = object_key):
        self.key_func = key_func
        self._items: dict[str, dict] = {}
        self._index_funcs: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}
        self.add_index(NAMESPACE_INDEX, namespace_index)

    # -- indexes ---------------------------------------------------------------------

    def add_index(self, name: str, fn: IndexFunc) -> None:
        """Register an index; objects already stored are indexed at once, so an
        index may be added after the informer has synced."""
        if name in self._index_funcs:
            raise ValueError(f"index {name!r} already exists")
        self._index_funcs[name] = fn
        self._indices[name] = {}
        for key, obj in self._items.items():
            self._index_one(name, fn, key, obj)

    def _index_one(self, name: str, fn: IndexFunc, key: str, obj: dict) -> None:
        index = self._indices[name]
        for value in fn(obj) or ():
            index.setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: dict) -> None:
        for name, fn in self._index_funcs.items():
            index = self._indices[name]
            for value in fn(obj) or ():
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]  # no empty buckets left behind by churn

    # -- writes (the informer's) ---------------------------------------------------------

    def add(self, obj: dict) -> dict | None:
        """Insert or replace; returns the object previously under that key."""
        key = self.key_func(obj)
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name, fn in self._index_funcs.items():
            self._index_one(name, fn, key, obj)
        return old

    update = add

    def delete(self, obj_or_key: dict | str) -> dict | None:
        """Remove by object or key; returns the removed object, if any."""
        key = obj_or_key if isinstance(obj_or_key, str) else self.key_func(obj_or_key)
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def replace(self, objs: Iterable[dict]) -> None:
        """Swap the whole content (after a relist)."""
        self._items = {}
        self._indices = {name: {} for name in self._index_funcs}
        for obj in objs:
            self.add(obj)

    # -- reads -----------------------------------------------------------------------

    def get(self, key: str) -> dict | None:
        return self._items.get(key)

    def get_object(self, obj: dict) -> dict | None:
        return self._items.get(self.key_func(obj))

    def list(self) -> list[dict]:
        return list(self._items.values())

    def keys(self) -> list[str]:
        return list(self._items)

    def index_keys(self, name: str, value: str) -> list[str]:
        if name not in self._indices:
            raise KeyError(f"no index named {name!r}")
        return sorted(self._indices[name].get(value, ()))

    def by_index(self, name: str, value: str) -> list[dict]:
        """Objects whose index function returned ``value`` (in key order)."""
        return [self._items[k] for k in self.index_keys(name, value)]

    def index_values(self, name: str) -> list[str]:
        if name not in self._indices:
            raise KeyError(f"no index named {name!r}")
        return sorted(self._indices[name])

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items


Selector = str | LabelSelector | dict | None


def _selector(selector: Selector) -> LabelSelector | None:
    if selector is None or selector == "":
        return None
    if isinstance(selector, str):
        return parse_label_selector(selector)
    if isinstance(selector, dict):
        # A metav1.LabelSelector object; {} selects everything.
        return from_label_selector_object(selector)
    return selector


class Lister:
    """Read-side helper over an :class:`Indexer` (client-go's generated listers,
    untyped).  Returned objects are the cached instances: do not mutate them."""

    def __init__(self, indexer: Indexer):
        self.indexer = indexer

    def list(self, namespace: str | None = None, selector: Selector = None) -> list[dict]:
        """Objects in ``namespace`` (all when None) matching the label selector,
        given as a string (``app=web,tier in (a,b)``), a parsed selector, or a
        ``metav1.LabelSelector`` dict."""
        sel = _selector(selector)
        if namespace is None:
            items = sorted(self.indexer.list(), key=self.indexer.key_func)
        else:
            items = self.indexer.by_index(NAMESPACE_INDEX, namespace)
        if sel is None:
            return items
        return [o for o in items if matches_labels(sel, (o.get("metadata") or {}).get("labels"))]

    def get(self, name: str, namespace: str = "") -> dict | None:
        return self.indexer.get(f"{namespace}/{name}" if namespace else name)

    def by_index(self, name: str, value: str) -> list[dict]:
        return self.indexer.by_index(name, value)

    def namespaced(self, namespace: str) -> NamespaceLister:
        return NamespaceLister(self, namespace)


class NamespaceLister:
    """A :class:`Lister` bound to one namespace."""

    def __init__(self, lister: Lister, namespace: str):
        self.lister, self.namespace = lister, namespace

    def list(self, selector: Selector = None) -> list[dict]:
        return self.lister.list(self.namespace, selector)

    def get(self, name: str) -> dict | None:
        return self.lister.get(name, self.namespace)


__all__ = ["NAMESPACE_INDEX", "IndexFunc", "Indexer", "Lister", "NamespaceLister", "object_key", "split_key"]
