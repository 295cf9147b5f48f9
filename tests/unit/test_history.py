"""history.py: ControllerRevision hashing, naming, ordering, ownership, creation with
collision handling and history truncation (upstream ``pkg/controller/history``).

Conformance: "ControllerRevision, resource lifecycle" ('[sig-apps] ControllerRevision
[Serial] should manage the lifecycle of a ControllerRevision') — revisions are listed by
label selector and owned by their parent; the revision number of a re-used revision is
bumped; plus the revision side of "StatefulSet, Rolling Update" (a template changed back
to a prior revision is a rollback, not a new revision).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pinnace.client.rest import ApiException
from pinnace.controllers import history as h

SET = {"apiVersion": "apps/v1", "kind": "StatefulSet",
       "metadata": {"name": "web", "namespace": "ns", "uid": "set-uid"},
       "spec": {"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}}


def with_image(image: str) -> dict:
    s = copy.deepcopy(SET)
    s["spec"]["template"]["spec"]["containers"][0]["image"] = image
    return s


def rev(name: str, number: int, data: Any = None, owner: str | None = "set-uid", labels: dict | None = None,
        created: str = "2026-01-01T00:00:00Z") -> dict:
    meta: dict = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "creationTimestamp": created,
                  "labels": labels if labels is not None else {"app": "web"}}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": owner,
                                    "controller": True}]
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": meta,
            "data": data if data is not None else {"n": number}, "revision": number}


def test_fnv1_matches_go_hash_fnv_new32() -> None:
    # Reference values of Go's hash/fnv New32 (FNV-1, not FNV-1a).
    assert h._fnv32(b"") == 0x811C9DC5
    assert h._fnv32(b"a") == 0x050C5D7E
    assert h._fnv32(b"foobar") == 0x31F0B262


def test_template_patch_and_apply_round_trip() -> None:
    data = h.template_patch(SET)
    assert data == {"spec": {"template": {**SET["spec"]["template"], "$patch": "replace"}}}
    assert "$patch" not in SET["spec"]["template"]  # the argument is not touched
    newer = with_image("nginx:2")
    restored = h.apply_template_patch(newer, {"data": data})
    assert restored["spec"]["template"] == SET["spec"]["template"]
    assert restored["spec"]["selector"] == SET["spec"]["selector"]
    assert newer["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"
    # Raw JSON data (a RawExtension as bytes) works the same.
    import orjson
    assert h.apply_template_patch(newer, {"data": orjson.dumps(data)})["spec"]["template"] == SET["spec"]["template"]


def test_hash_is_stable_order_independent_and_perturbed_by_collision_count() -> None:
    a = {"spec": {"template": {"x": 1, "y": [1, 2]}}}
    b = {"spec": {"template": {"y": [1, 2], "x": 1}}}
    assert h.hash_revision(a) == h.hash_revision(b)
    assert h.hash_revision(a, 0) != h.hash_revision(a)  # a probe of 0 is still hashed, as upstream
    assert h.hash_revision(a, 0) != h.hash_revision(a, 1)
    assert h.hash_revision(a, 1) == h.hash_revision(b, 1)
    assert set(h.hash_revision(a, 7)) <= set(h._SAFE_ALPHABET)
    # Go's json escapes <, > and &: data equal for Go hashes equal here.
    assert h._raw({"k": "<&>"}) == b'{"k":"\\u003c\\u0026\\u003e"}'


def test_revision_name_truncates_long_prefixes() -> None:
    assert h.revision_name("web", "abc") == "web-abc"
    assert h.revision_name("x" * 300, "abc") == "x" * 223 + "-abc"


def test_new_revision_is_owned_labelled_and_named_by_hash() -> None:
    data = h.template_patch(SET)
    r = h.new_revision(SET, data, 3, 0, labels={"app": "web"}, annotations={"note": "x"})
    hash_ = h.hash_revision(data, 0)
    assert r["metadata"]["name"] == f"web-{hash_}"
    assert r["metadata"]["labels"] == {"app": "web", h.HASH_LABEL: hash_}
    assert r["metadata"]["annotations"] == {"note": "x"}
    assert r["metadata"]["namespace"] == "ns"
    assert r["revision"] == 3 and r["data"] == data and r["kind"] == "ControllerRevision"
    [ref] = r["metadata"]["ownerReferences"]
    assert ref == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "set-uid",
                   "controller": True, "blockOwnerDeletion": True}


def test_sort_equal_find_and_next() -> None:
    r1 = rev("a", 1, created="2026-01-01T00:00:02Z")
    r2 = rev("b", 2)
    r2b = rev("c", 2, created="2026-01-01T00:00:01Z")
    assert [r["metadata"]["name"] for r in h.sort_revisions([r2b, r2, r1])] == ["a", "b", "c"]
    assert h.next_revision([]) == 1 and h.next_revision([r1, r2]) == 3
    x = rev("x", 5, data={"spec": {"a": 1}}, labels={h.HASH_LABEL: "zzz"})
    y = rev("y", 6, data=b'{"spec": {"a": 1}}', labels={h.HASH_LABEL: "qqq"})
    assert h.equal_revision(x, y)  # same data, whatever the labels and formatting
    assert not h.equal_revision(x, r1)
    assert h.equal_revision(None, None) and not h.equal_revision(x, None)
    assert h.find_equal_revisions([r1, x, r2, y], x) == [x, y]


def test_owned_revisions_keeps_ours_and_orphans_that_match() -> None:
    ours, orphan = rev("ours", 1), rev("orphan", 2, owner=None)
    foreign, unmatched = rev("foreign", 3, owner="other-uid"), rev("unmatched", 4, labels={"app": "db"})
    elsewhere = rev("elsewhere", 5)
    elsewhere["metadata"]["namespace"] = "other"
    got = h.owned_revisions(SET, SET["spec"]["selector"], [ours, orphan, foreign, unmatched, elsewhere])
    assert [r["metadata"]["name"] for r in got] == ["ours", "orphan"]
    assert h.owned_revisions(SET, None, [ours]) == []  # a nil selector selects nothing


def test_truncation_keeps_live_and_newest() -> None:
    revs = [rev(f"r{i}", i) for i in range(1, 7)]
    # Live: r1 (a pod still runs it) and r6 (update revision); limit 2 of the rest.
    victims = h.revisions_to_truncate(reversed(revs), ["r1", "r6"], 2)
    assert [r["metadata"]["name"] for r in victims] == ["r2", "r3"]
    assert h.revisions_to_truncate(revs, ["r6"], 10) == []
    assert len(h.revisions_to_truncate(revs, [], 0)) == 6


class FakeClient:
    """Just enough of RestClient for create/update/delete of ControllerRevisions."""

    def __init__(self, existing: list[dict] | None = None):
        self.store = {r["metadata"]["name"]: r for r in existing or ()}
        self.calls: list[tuple[str, str]] = []
        self.conflicts = 0

    async def create(self, api_version: str, plural: str, obj: dict, namespace: str = "") -> dict:
        assert (api_version, plural, namespace) == ("apps/v1", "controllerrevisions", "ns")
        name = obj["metadata"]["name"]
        self.calls.append(("create", name))
        if name in self.store:
            raise ApiException(409, "AlreadyExists", f'controllerrevisions.apps "{name}" already exists')
        stored = copy.deepcopy(obj)
        stored["metadata"]["uid"] = f"uid-{name}"
        self.store[name] = stored
        return stored

    async def get(self, api_version: str, plural: str, name: str, namespace: str = "") -> dict:
        self.calls.append(("get", name))
        if name not in self.store:
            raise ApiException(404, "NotFound", "not found")
        return copy.deepcopy(self.store[name])

    async def update(self, api_version: str, plural: str, obj: dict, namespace: str = "", sub: str = "") -> dict:
        name = obj["metadata"]["name"]
        self.calls.append(("update", name))
        if self.conflicts:
            self.conflicts -= 1
            raise ApiException(409, "Conflict", "the object has been modified")
        self.store[name] = copy.deepcopy(obj)
        return obj

    async def delete(self, api_version: str, plural: str, name: str, namespace: str = "", **options: Any) -> dict:
        self.calls.append(("delete", name))
        if name not in self.store:
            raise ApiException(404, "NotFound", "not found")
        assert options["preconditions"]["uid"] == self.store[name]["metadata"]["uid"]
        del self.store[name]
        return {}


async def test_create_revision_plain_and_idempotent() -> None:
    client = FakeClient()
    data = h.template_patch(SET)
    r = h.new_revision(SET, data, 1, 0, labels={"app": "web"})
    created, count = await h.create_revision(client, SET, r, 0)  # type: ignore[arg-type]
    assert count == 0 and created["metadata"]["name"] == f"web-{h.hash_revision(data, 0)}"
    # Creating the same data again (e.g. after a lost response) returns the existing one.
    again, count = await h.create_revision(client, SET, r, 0)  # type: ignore[arg-type]
    assert count == 0 and again["metadata"]["uid"] == created["metadata"]["uid"]
    assert len(client.store) == 1


async def test_create_revision_escapes_a_name_collision() -> None:
    data = h.template_patch(SET)
    squatter = rev(f"web-{h.hash_revision(data, 0)}", 9, data={"something": "else"}, owner="other")
    client = FakeClient([squatter])
    r = h.new_revision(SET, data, 1, 0, labels={"app": "web"})
    created, count = await h.create_revision(client, SET, r, 0)  # type: ignore[arg-type]
    assert count == 1
    assert created["metadata"]["name"] == f"web-{h.hash_revision(data, 1)}"
    # The hash label follows the name actually used.
    assert created["metadata"]["labels"][h.HASH_LABEL] == h.hash_revision(data, 1)
    assert created["data"] == data and len(client.store) == 2


async def test_create_revision_propagates_other_errors() -> None:
    class Failing(FakeClient):
        async def create(self, *a: Any, **kw: Any) -> dict:
            raise ApiException(403, "Forbidden", "no")
    with pytest.raises(ApiException):
        await h.create_revision(Failing(), SET, h.new_revision(SET, {"a": 1}, 1), 0)  # type: ignore[arg-type]


async def test_update_revision_number_retries_conflicts_and_truncate_deletes() -> None:
    r = rev("r1", 1)
    client = FakeClient([r])
    client.conflicts = 1
    updated = await h.update_revision_number(client, r, 4)  # type: ignore[arg-type]
    assert updated["revision"] == 4 and client.store["r1"]["revision"] == 4
    assert [c[0] for c in client.calls] == ["update", "get", "update"]
    assert await h.update_revision_number(client, updated, 4) is updated  # already there: no write

    revs = [rev(f"r{i}", i) for i in range(2, 6)]
    client = FakeClient(revs)
    deleted = await h.truncate_history(client, revs, ["r5"], 1)  # type: ignore[arg-type]
    assert [d["metadata"]["name"] for d in deleted] == ["r2", "r3"]
    assert sorted(client.store) == ["r4", "r5"]
    await h.delete_revision(client, revs[0])  # type: ignore[arg-type]  # already gone: fine
