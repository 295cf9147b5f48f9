"""statefulset_util: identity, ordinals, claims and their retention owner refs, versioned
pods, replica status and rolling-update completion.

Conformance: supports "StatefulSet, Scaling", "StatefulSet, Rolling Update with
Partition" and "StatefulSet, Rolling Update" (status.currentRevision/updateRevision)
from /work/shared/reference/conformance.yaml.
"""

from __future__ import annotations

import copy

import pytest

from pinnace.controllers import history
from pinnace.controllers import statefulset_util as su


def sset(replicas: int = 3, **spec: object) -> dict:
    base = {"replicas": replicas, "serviceName": "svc", "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "nginx:1"}],
                                  "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "emptyDir": {}}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": {"tier": "db"}},
                                      "spec": {"accessModes": ["ReadWriteOnce"]}}]}
    base.update(spec)
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "ns", "uid": "set-uid"}, "spec": base}


def pod(name: str, phase: str = "Running", ready: bool = True, rev: str = "r1", deleting: bool = False,
        uid: str | None = None) -> dict:
    meta: dict = {"name": name, "namespace": "ns", "uid": uid or f"uid-{name}",
                  "labels": {"app": "web", su.REVISION_LABEL: rev}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": "2020-01-01T00:00:00Z"}]}}


def test_ordinals_and_ranges() -> None:
    assert su.parent_and_ordinal({"metadata": {"name": "my-web-12"}}) == ("my-web", 12)
    assert su.parent_and_ordinal({"metadata": {"name": "web"}}) == ("", -1)
    assert su.parent_and_ordinal({"metadata": {"name": "web-x"}}) == ("", -1)
    s = sset(3, ordinals={"start": 5})
    assert (su.start_ordinal(s), su.end_ordinal(s)) == (5, 7)
    assert [su.in_ordinal_range(pod(f"web-{i}"), s) for i in (4, 5, 7, 8)] == [False, True, True, False]
    assert su.is_member_of(s, pod("web-3")) and not su.is_member_of(s, pod("webx-3"))
    assert su.end_ordinal(sset(0)) == -1


def test_new_pod_identity_storage_and_revision() -> None:
    s = sset()
    p = su.new_pod(s, 2, "web-abc")
    meta = p["metadata"]
    assert meta["name"] == "web-2" and meta["namespace"] == "ns"
    assert meta["labels"] == {"app": "web", su.POD_NAME_LABEL: "web-2", su.POD_INDEX_LABEL: "2",
                              su.REVISION_LABEL: "web-abc"}
    assert meta["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                                        "uid": "set-uid", "controller": True, "blockOwnerDeletion": True}]
    assert p["spec"]["hostname"] == "web-2" and p["spec"]["subdomain"] == "svc"
    # The claim replaces the template's same-named volume; other volumes stay.
    assert p["spec"]["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-2"}},
                                    {"name": "cfg", "emptyDir": {}}]
    assert su.identity_matches(s, p) and su.storage_matches(s, p)
    assert s["spec"]["template"]["spec"]["volumes"][0] == {"name": "data", "emptyDir": {}}  # untouched
    bad = copy.deepcopy(p)
    bad["metadata"]["labels"][su.POD_NAME_LABEL] = "other"
    assert not su.identity_matches(s, bad)
    bad = copy.deepcopy(p)
    bad["spec"]["volumes"] = []
    assert not su.storage_matches(s, bad)


def test_claims_for_names_and_labels() -> None:
    [(tname, claim)] = su.claims_for(sset(), 1).items()
    assert tname == "data"
    assert claim["metadata"] == {"name": "data-web-1", "namespace": "ns", "labels": {"tier": "db", "app": "web"}}
    assert claim["kind"] == "PersistentVolumeClaim" and claim["spec"] == {"accessModes": ["ReadWriteOnce"]}


@pytest.mark.parametrize(("strategy", "ordinal", "current_replicas", "want"), [
    ({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}, 1, 0, "cur"),
    ({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}, 2, 0, "upd"),
    ({"type": "RollingUpdate"}, 1, 2, "cur"),  # no parameters: below status.currentReplicas
    ({"type": "RollingUpdate"}, 2, 2, "upd"),
    ({"type": "OnDelete"}, 0, 3, "upd"),  # OnDelete: recreated pods take the new template
])
def test_new_versioned_pod(strategy: dict, ordinal: int, current_replicas: int, want: str) -> None:
    cur, upd = sset(updateStrategy=strategy), sset(updateStrategy=strategy)
    upd["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    p = su.new_versioned_pod(cur, upd, "cur", "upd", ordinal, current_replicas)
    assert su.pod_revision(p) == want
    assert p["spec"]["containers"][0]["image"] == ("nginx:1" if want == "cur" else "nginx:2")


def test_strategy_helpers() -> None:
    assert su.partition(sset()) == 0 and su.strategy_type(sset()) == "RollingUpdate"
    assert su.max_unavailable(sset()) is None
    s = sset(10, updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%"}})
    assert su.max_unavailable(s) == 3  # percentages round up
    s["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = 0
    assert su.max_unavailable(s) == 1
    assert su.retention_policy(sset()) == ("Retain", "Retain")
    assert su.revision_history_limit(sset()) == 10 and su.revision_history_limit(sset(revisionHistoryLimit=0)) == 0
    assert su.allows_burst(sset(podManagementPolicy="Parallel")) and not su.allows_burst(sset())


def _claim(*owner_uids: str) -> dict:
    return {"metadata": {"name": "data-web-1", "ownerReferences": [
        {"apiVersion": "v1", "kind": "Other", "name": "x", "uid": u} for u in owner_uids]}}


@pytest.mark.parametrize(("deleted", "scaled", "in_range", "want"), [
    ("Retain", "Retain", True, []),
    ("Retain", "Retain", False, []),
    ("Delete", "Retain", True, ["set-uid"]),
    ("Delete", "Retain", False, ["set-uid"]),
    ("Retain", "Delete", True, []),
    ("Retain", "Delete", False, ["uid-web-1"]),
    ("Delete", "Delete", True, ["set-uid"]),
    ("Delete", "Delete", False, ["uid-web-1"]),
])
def test_claim_owner_refs_follow_the_retention_policy(deleted: str, scaled: str, in_range: bool,
                                                      want: list[str]) -> None:
    s = sset(2 if in_range else 1,
             persistentVolumeClaimRetentionPolicy={"whenDeleted": deleted, "whenScaled": scaled})
    p = pod("web-1")
    got = su.wanted_claim_owner_refs(_claim(), s, p)
    assert sorted(r["uid"] for r in got or []) == want
    for r in got or []:
        assert not r.get("controller") and r["kind"] == ("StatefulSet" if r["uid"] == "set-uid" else "Pod")
    # Already conforming (with an unrelated owner kept): nothing to do.
    conforming = _claim("foreign", *want)
    assert su.wanted_claim_owner_refs(conforming, s, p) is None
    # Wrong owners get dropped, the foreign one stays.
    fixed = su.wanted_claim_owner_refs(_claim("foreign", "set-uid", "uid-web-1"), s, p)
    assert sorted(r["uid"] for r in fixed or []) == sorted(["foreign", *want])


def test_stale_claim_owner() -> None:
    claim = {"metadata": {"ownerReferences": [{"kind": "Pod", "name": "web-1", "uid": "old"}]}}
    assert su.has_stale_owner_ref(claim, pod("web-1", uid="new"))
    assert not su.has_stale_owner_ref(claim, pod("web-1", uid="old"))
    assert not su.has_stale_owner_ref(claim, pod("web-2"))


def test_replica_status_and_completion() -> None:
    placeholder = su.new_pod(sset(), 3, "r2")
    pods = [pod("web-0", rev="r1"), pod("web-1", rev="r2"), pod("web-2", ready=False, phase="Pending", rev="r2"),
            pod("web-4", rev="r2", deleting=True), placeholder]
    st = su.replica_status(pods, 0, "r1", "r2")
    assert st == {"replicas": 4, "readyReplicas": 3, "availableReplicas": 3, "currentReplicas": 1,
                  "updatedReplicas": 2}
    # minReadySeconds: ready since 2020, so available; a huge window makes them not.
    assert su.replica_status(pods, 10**10, "r1", "r2")["availableReplicas"] == 0

    status = {"replicas": 3, "readyReplicas": 3, "updatedReplicas": 3, "currentReplicas": 0,
              "currentRevision": "r1", "updateRevision": "r2"}
    su.complete_rolling_update(sset(), status)
    assert status["currentRevision"] == "r2" and status["currentReplicas"] == 3
    on_delete = dict(status, currentRevision="r1", currentReplicas=0)
    su.complete_rolling_update(sset(updateStrategy={"type": "OnDelete"}), on_delete)
    assert on_delete["currentRevision"] == "r1"
    not_ready = dict(status, currentRevision="r1", readyReplicas=2)
    su.complete_rolling_update(sset(), not_ready)
    assert not_ready["currentRevision"] == "r1"
    assert su.inconsistent_status({"status": {}}, {"replicas": 1})
    assert not su.inconsistent_status({"status": {"replicas": 1, "collisionCount": 0}}, {"replicas": 1})


def test_revision_of_a_set() -> None:
    s = sset()
    s["metadata"]["annotations"] = {"kubernetes.io/change-cause": "v1"}
    r = su.new_revision(s, 4, 0)
    assert r["revision"] == 4 and r["data"]["spec"]["template"]["$patch"] == "replace"
    assert r["metadata"]["labels"]["app"] == "web" and history.HASH_LABEL in r["metadata"]["labels"]
    assert r["metadata"]["annotations"] == {"kubernetes.io/change-cause": "v1"}
    assert history.apply_template_patch(sset(), r)["spec"]["template"] == s["spec"]["template"]
