"""The informer cache: keys, the namespace index, custom indexes, listers."""

from __future__ import annotations

import pytest

from pinnace.client.cache import NAMESPACE_INDEX, Indexer, Lister, object_key, split_key


def pod(name: str, ns: str = "default", labels: dict | None = None, node: str = "", rv: str = "1") -> dict:
    obj = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": ns, "labels": labels or {}, "resourceVersion": rv},
           "spec": {}}
    if node:
        obj["spec"]["nodeName"] = node
    return obj


def by_node(obj: dict) -> list[str]:
    node = obj["spec"].get("nodeName")
    return [node] if node else []


def test_keys() -> None:
    assert object_key(pod("a", "ns1")) == "ns1/a"
    assert object_key({"metadata": {"name": "node-1"}}) == "node-1"
    assert split_key("ns1/a") == ("ns1", "a")
    assert split_key("node-1") == ("", "node-1")


def test_add_get_update_delete() -> None:
    idx = Indexer()
    assert idx.add(pod("a")) is None
    old = idx.get("default/a")
    assert old is not None
    assert idx.add(pod("a", rv="2")) is old
    assert idx.get("default/a")["metadata"]["resourceVersion"] == "2"
    assert "default/a" in idx and len(idx) == 1
    assert idx.delete("default/a")["metadata"]["resourceVersion"] == "2"
    assert idx.delete(pod("a")) is None
    assert idx.list() == [] and idx.keys() == []


def test_namespace_index_follows_changes() -> None:
    idx = Indexer()
    for name, ns in [("a", "ns1"), ("b", "ns1"), ("c", "ns2")]:
        idx.add(pod(name, ns))
    idx.add({"metadata": {"name": "node-1"}})
    assert [o["metadata"]["name"] for o in idx.by_index(NAMESPACE_INDEX, "ns1")] == ["a", "b"]
    assert idx.index_keys(NAMESPACE_INDEX, "ns2") == ["ns2/c"]
    assert idx.index_keys(NAMESPACE_INDEX, "") == ["node-1"]
    idx.delete("ns1/a")
    assert idx.index_keys(NAMESPACE_INDEX, "ns1") == ["ns1/b"]
    idx.delete("ns2/c")
    assert "ns2" not in idx.index_values(NAMESPACE_INDEX)  # no empty bucket left behind


def test_custom_index_updates_when_value_changes() -> None:
    idx = Indexer()
    idx.add_index("node", by_node)
    idx.add(pod("a", node="n1"))
    idx.add(pod("b", node="n1"))
    idx.add(pod("c"))  # unscheduled: not in the index at all
    assert idx.index_keys("node", "n1") == ["default/a", "default/b"]
    idx.update(pod("a", node="n2"))
    assert idx.index_keys("node", "n1") == ["default/b"]
    assert idx.index_keys("node", "n2") == ["default/a"]
    assert idx.index_values("node") == ["n1", "n2"]


def test_multi_valued_index_and_index_added_later() -> None:
    idx = Indexer()
    idx.add(pod("a", labels={"team": "x"}))
    idx.add(pod("b", labels={"team": "y"}))
    # Added after objects exist: built over them at once.
    idx.add_index("label-keys", lambda o: sorted(o["metadata"].get("labels") or {}))
    idx.add_index("both", lambda o: ["all", o["metadata"]["name"]])
    assert idx.index_keys("label-keys", "team") == ["default/a", "default/b"]
    assert idx.index_keys("both", "all") == ["default/a", "default/b"]
    assert idx.index_keys("both", "b") == ["default/b"]
    with pytest.raises(ValueError):
        idx.add_index("both", lambda o: [])
    with pytest.raises(KeyError):
        idx.by_index("nope", "x")


def test_replace_rebuilds_indexes() -> None:
    idx = Indexer()
    idx.add_index("node", by_node)
    idx.add(pod("a", node="n1"))
    idx.replace([pod("b", node="n2"), pod("c", "other", node="n2")])
    assert idx.keys() == ["default/b", "other/c"]
    assert idx.index_keys("node", "n1") == []
    assert idx.index_keys("node", "n2") == ["default/b", "other/c"]
    assert idx.index_keys(NAMESPACE_INDEX, "other") == ["other/c"]


def test_lister_namespace_and_selectors() -> None:
    idx = Indexer()
    idx.add(pod("web-1", "prod", {"app": "web", "tier": "front"}))
    idx.add(pod("web-2", "dev", {"app": "web"}))
    idx.add(pod("db-1", "prod", {"app": "db"}))
    lister = Lister(idx)

    def names(objs: list[dict]) -> list[str]:
        return [o["metadata"]["name"] for o in objs]

    assert names(lister.list()) == ["web-2", "db-1", "web-1"]  # key order: dev/..., prod/...
    assert names(lister.list("prod")) == ["db-1", "web-1"]
    assert names(lister.list(selector="app=web")) == ["web-2", "web-1"]
    assert names(lister.list("prod", "app in (web,db),!tier")) == ["db-1"]
    assert names(lister.list(selector={"matchLabels": {"app": "web"},
                                       "matchExpressions": [{"key": "tier", "operator": "Exists"}]})) == ["web-1"]
    assert names(lister.list(selector={})) == names(lister.list())  # {} selects everything
    assert lister.list("nowhere") == []
    assert lister.get("db-1", "prod")["metadata"]["name"] == "db-1"
    assert lister.get("db-1", "dev") is None
    prod = lister.namespaced("prod")
    assert names(prod.list("app=web")) == ["web-1"]
    assert prod.get("web-1") is idx.get("prod/web-1")
