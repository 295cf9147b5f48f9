"""Server-side apply and managedFields tracking (pinnace.api.apply)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from pinnace.api.apply import (
    LAST_APPLIED_ANNOTATION,
    ApplyConflict,
    ApplyInvalid,
    apply,
    fieldset,
    path_string,
    track_update,
)

DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"
CONFIGMAP = "io.k8s.api.core.v1.ConfigMap"
T0, T1, T2, T3 = (f"2024-05-01T10:00:0{i}Z" for i in range(4))
NGINX = 'k:{"name":"nginx"}'


def deployment(
    *, replicas: int = 3, image: str = "nginx:1.25", labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """What `kubectl apply --server-side -f deploy.yaml` sends."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": labels or {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "nginx", "image": image, "ports": [{"containerPort": 80}]},
                    ]
                },
            },
        },
    }


def stored(obj: dict[str, Any]) -> dict[str, Any]:
    """Pretend the server persisted it: system metadata and a status appear."""
    obj = copy.deepcopy(obj)
    obj["metadata"].update(uid="0b9f4c9e", resourceVersion="7", creationTimestamp=T0, generation=1)
    return obj


def entry(obj: dict[str, Any], manager: str, operation: str | None = None) -> dict[str, Any]:
    found = [
        e
        for e in obj["metadata"].get("managedFields", [])
        if e["manager"] == manager and (operation is None or e["operation"] == operation)
    ]
    assert len(found) == 1, obj["metadata"].get("managedFields")
    return found[0]


def managers(obj: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["manager"], e["operation"]) for e in obj["metadata"].get("managedFields", [])]


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]


def updated(old: dict[str, Any], manager: str, now: str, change, subresource: str = "") -> dict[str, Any]:
    """A non-apply write (kubectl edit/scale/label, a controller...) through track_update."""
    new = copy.deepcopy(old)
    change(new)
    track_update(old, new, manager, DEPLOYMENT, now, subresource)
    return new


# --------------------------------------------------------------------------


def test_first_apply_creates_apply_entry_for_kubectl():
    obj = apply(None, deployment(), "kubectl", DEPLOYMENT, False, T0)
    assert obj["spec"]["replicas"] == 3
    assert obj["metadata"]["managedFields"] == [
        {
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},  # LabelSelector is an atomic map
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {
                            "f:containers": {
                                NGINX: {
                                    ".": {},
                                    "f:image": {},
                                    "f:name": {},
                                    "f:ports": {
                                        # protocol is a key with a default
                                        'k:{"containerPort":80,"protocol":"TCP"}': {
                                            ".": {},
                                            "f:containerPort": {},
                                        }
                                    },
                                }
                            }
                        },
                    },
                },
            },
        }
    ]


def test_inputs_are_not_mutated():
    cfg = deployment()
    live = stored(apply(None, cfg, "kubectl", DEPLOYMENT, False, T0))
    before = (copy.deepcopy(cfg), copy.deepcopy(live))
    apply(live, deployment(replicas=5), "kubectl", DEPLOYMENT, False, T1)
    assert (cfg, live) == before


def test_reapply_without_a_label_removes_it():
    live = stored(
        apply(None, deployment(labels={"app": "web", "tier": "frontend"}), "kubectl", DEPLOYMENT, False, T0)
    )
    obj = apply(live, deployment(labels={"app": "web"}), "kubectl", DEPLOYMENT, False, T1)
    assert obj["metadata"]["labels"] == {"app": "web"}
    assert entry(obj, "kubectl")["fieldsV1"]["f:metadata"] == {"f:labels": {"f:app": {}}}
    assert entry(obj, "kubectl")["time"] == T1
    # system metadata survives
    assert obj["metadata"]["uid"] == "0b9f4c9e" and obj["metadata"]["name"] == "web"


def test_omitted_field_owned_by_another_manager_stays():
    live = stored(apply(None, deployment(), "kubectl", DEPLOYMENT, False, T0))
    labelled = updated(live, "kubectl-label", T1, lambda o: o["metadata"]["labels"].update(team="a"))
    # kubectl never applied "team": re-applying doesn't touch it
    obj = apply(labelled, deployment(), "kubectl", DEPLOYMENT, False, T2)
    assert obj["metadata"]["labels"] == {"app": "web", "team": "a"}
    assert entry(obj, "kubectl-label")["fieldsV1"] == {"f:metadata": {"f:labels": {"f:team": {}}}}


def test_removed_container_and_fields_are_pruned():
    cfg = deployment()
    cfg["spec"]["template"]["spec"]["containers"].append(
        {"name": "log", "image": "busybox", "args": ["tail"]}
    )
    live = stored(apply(None, cfg, "kubectl", DEPLOYMENT, False, T0))
    obj = apply(live, deployment(), "kubectl", DEPLOYMENT, False, T1)
    assert [c["name"] for c in containers(obj)] == ["nginx"]
    # dropping a whole struct the applier owned removes it
    cfg = deployment()
    cfg["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}
    live = stored(apply(None, cfg, "kubectl", DEPLOYMENT, False, T0))
    obj = apply(live, deployment(), "kubectl", DEPLOYMENT, False, T1)
    assert "strategy" not in obj["spec"]


def test_empty_struct_is_owned_so_volume_source_can_switch():
    cfg = deployment()
    cfg["spec"]["template"]["spec"]["volumes"] = [{"name": "cache", "emptyDir": {}}]
    live = stored(apply(None, cfg, "kubectl", DEPLOYMENT, False, T0))
    volumes = entry(live, "kubectl")["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:volumes"]
    assert volumes == {'k:{"name":"cache"}': {".": {}, "f:emptyDir": {}, "f:name": {}}}
    cfg = copy.deepcopy(cfg)
    cfg["spec"]["template"]["spec"]["volumes"] = [{"name": "cache", "configMap": {"name": "cache-cm"}}]
    obj = apply(live, cfg, "kubectl", DEPLOYMENT, False, T1)
    assert obj["spec"]["template"]["spec"]["volumes"] == [
        {"name": "cache", "configMap": {"name": "cache-cm"}}
    ]


def test_conflict_with_field_set_by_an_update():
    live = stored(apply(None, deployment(), "kubectl", DEPLOYMENT, False, T0))
    scaled = updated(live, "kubectl-edit", T1, lambda o: o["spec"].update(replicas=5))
    assert entry(scaled, "kubectl-edit", "Update") == {
        "manager": "kubectl-edit",
        "operation": "Update",
        "apiVersion": "apps/v1",
        "time": T1,
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {"f:replicas": {}}},
    }
    assert "f:replicas" not in entry(scaled, "kubectl")["fieldsV1"]["f:spec"]

    with pytest.raises(ApplyConflict) as err:
        apply(scaled, deployment(replicas=3, image="nginx:1.26"), "kubectl", DEPLOYMENT, False, T2)
    assert err.value.conflicts == [("kubectl-edit", ".spec.replicas")]
    msg = 'Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas'
    assert err.value.message() == msg
    status = err.value.status()
    assert status["code"] == 409 and status["reason"] == "Conflict"
    assert status["details"]["causes"] == [
        {
            "type": "FieldManagerConflict",
            "message": 'conflict with "kubectl-edit" using apps/v1',
            "field": ".spec.replicas",
        }
    ]
    # applying the live value is no conflict: both then own it
    obj = apply(scaled, deployment(replicas=5), "kubectl", DEPLOYMENT, False, T2)
    assert "f:replicas" in entry(obj, "kubectl")["fieldsV1"]["f:spec"]
    assert entry(obj, "kubectl-edit")["fieldsV1"] == {"f:spec": {"f:replicas": {}}}


def test_force_takes_ownership():
    live = stored(apply(None, deployment(), "kubectl", DEPLOYMENT, False, T0))
    scaled = updated(live, "kubectl-edit", T1, lambda o: o["spec"].update(replicas=5))
    obj = apply(scaled, deployment(replicas=3), "kubectl", DEPLOYMENT, True, T2)
    assert obj["spec"]["replicas"] == 3
    assert "f:replicas" in entry(obj, "kubectl")["fieldsV1"]["f:spec"]
    # kubectl-edit owned nothing else: its entry is gone
    assert managers(obj) == [("kubectl", "Apply")]


def test_conflict_with_another_applier_and_multiple_conflicts():
    live = stored(apply(None, deployment(), "kubectl", DEPLOYMENT, False, T0))
    cfg = deployment(replicas=4, image="nginx:1.26")
    with pytest.raises(ApplyConflict) as err:
        apply(live, cfg, "argocd", DEPLOYMENT, False, T1)
    assert err.value.conflicts == [
        ("kubectl", ".spec.replicas"),
        ("kubectl", '.spec.template.spec.containers[name="nginx"].image'),
    ]
    assert err.value.message() == (
        'Apply failed with 2 conflicts: conflict with "kubectl":\n'
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="nginx"].image'
    )
    obj = apply(live, cfg, "argocd", DEPLOYMENT, True, T1)
    assert containers(obj)[0]["image"] == "nginx:1.26"
    kubectl = entry(obj, "kubectl")["fieldsV1"]["f:spec"]
    assert "f:replicas" not in kubectl
    assert "f:image" not in kubectl["f:template"]["f:spec"]["f:containers"][NGINX]


def test_appliers_sharing_equal_values_co_own():
    live = stored(apply(None, deployment(), "kubectl", DEPLOYMENT, False, T0))
    shared = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}},
    }
    obj = apply(live, shared, "ci-bot", DEPLOYMENT, False, T1)
    for m in ("kubectl", "ci-bot"):
        spec = entry(obj, m)["fieldsV1"]["f:spec"]["f:template"]["f:spec"]
        assert "f:image" in spec["f:containers"][NGINX]
    # nothing changed, so a new co-owner is the only difference
    assert {k: v for k, v in obj.items() if k != "metadata"} == {
        k: v for k, v in live.items() if k != "metadata"
    }
    # kubectl stops applying the image: ci-bot still owns it, so it stays
    no_image = deployment()
    del no_image["spec"]["template"]["spec"]["containers"][0]["image"]
    after = apply(stored(obj), no_image, "kubectl", DEPLOYMENT, False, T2)
    assert containers(after)[0]["image"] == "nginx:1.25"


def test_containers_merge_by_name_keeps_other_managers_container():
    live = stored(apply(None, deployment(), "kubectl", DEPLOYMENT, False, T0))
    injected = updated(
        live,
        "sidecar-injector",
        T1,
        lambda o: containers(o).append({"name": "proxy", "image": "envoy:1.30"}),
    )
    assert entry(injected, "sidecar-injector")["fieldsV1"] == {
        "f:spec": {
            "f:template": {
                "f:spec": {"f:containers": {'k:{"name":"proxy"}': {".": {}, "f:image": {}, "f:name": {}}}}
            }
        }
    }
    obj = apply(injected, deployment(image="nginx:1.26"), "kubectl", DEPLOYMENT, False, T2)
    assert [(c["name"], c["image"]) for c in containers(obj)] == [
        ("nginx", "nginx:1.26"),
        ("proxy", "envoy:1.30"),
    ]
    assert containers(obj)[0]["ports"] == [{"containerPort": 80}]


def test_list_map_order_follows_the_applied_config():
    cfg = deployment()
    cs = cfg["spec"]["template"]["spec"]["containers"]
    cs.append({"name": "b", "image": "b"})
    live = stored(apply(None, cfg, "kubectl", DEPLOYMENT, False, T0))
    live = updated(live, "other", T1, lambda o: containers(o).insert(1, {"name": "x", "image": "x"}))
    assert [c["name"] for c in containers(live)] == ["nginx", "x", "b"]
    cfg = copy.deepcopy(cfg)
    cs = cfg["spec"]["template"]["spec"]["containers"]
    cs.reverse()
    cs.append({"name": "c", "image": "c"})
    obj = apply(live, cfg, "kubectl", DEPLOYMENT, False, T2)
    assert [c["name"] for c in containers(obj)] == ["x", "b", "nginx", "c"]


def test_atomic_lists_are_replaced_and_sets_unioned():
    cfg = deployment()
    cfg["metadata"]["finalizers"] = ["example.com/a"]
    cfg["spec"]["template"]["spec"]["containers"][0]["args"] = ["--one", "--two"]
    live = stored(apply(None, cfg, "kubectl", DEPLOYMENT, False, T0))
    mf = entry(live, "kubectl")["fieldsV1"]
    assert mf["f:metadata"]["f:finalizers"] == {'v:"example.com/a"': {}}
    assert mf["f:spec"]["f:template"]["f:spec"]["f:containers"][NGINX]["f:args"] == {}
    live = updated(live, "controller", T1, lambda o: o["metadata"]["finalizers"].append("example.com/b"))
    cfg = copy.deepcopy(cfg)
    cfg["spec"]["template"]["spec"]["containers"][0]["args"] = ["--three"]
    obj = apply(live, cfg, "kubectl", DEPLOYMENT, False, T2)
    assert obj["metadata"]["finalizers"] == ["example.com/a", "example.com/b"]
    assert containers(obj)[0]["args"] == ["--three"]


def test_status_is_ignored_for_the_main_resource():
    cfg = deployment()
    cfg["status"] = {"replicas": 9}
    obj = apply(None, cfg, "kubectl", DEPLOYMENT, False, T0)
    assert "status" not in obj
    assert "f:status" not in entry(obj, "kubectl")["fieldsV1"]

    live = stored(obj)
    live = updated(
        live,
        "kube-controller-manager",
        T1,
        lambda o: o.update(status={"replicas": 3, "readyReplicas": 3}),
        subresource="status",
    )
    status_entry = entry(live, "kube-controller-manager")
    assert status_entry["subresource"] == "status"
    assert status_entry["fieldsV1"] == {"f:status": {"f:readyReplicas": {}, "f:replicas": {}}}
    # the main resource neither changes nor conflicts over status
    obj = apply(live, cfg, "kubectl", DEPLOYMENT, False, T2)
    assert obj["status"] == {"replicas": 3, "readyReplicas": 3}
    assert ("kube-controller-manager", "Update") in managers(obj)


def test_status_subresource_apply():
    live = stored(apply(None, deployment(), "kubectl", DEPLOYMENT, False, T0))
    cfg = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 100},
        "status": {"observedGeneration": 1, "replicas": 3},
    }
    obj = apply(live, cfg, "my-controller", DEPLOYMENT, False, T1, subresource="status")
    assert obj["spec"]["replicas"] == 3 and obj["status"] == {"observedGeneration": 1, "replicas": 3}
    e = entry(obj, "my-controller")
    assert e["subresource"] == "status"
    assert e["fieldsV1"] == {"f:status": {"f:observedGeneration": {}, "f:replicas": {}}}


def test_create_via_update_records_update_entry():
    obj = stored(deployment())
    track_update(None, obj, "kubectl-create", DEPLOYMENT, T0)
    assert obj["metadata"]["managedFields"] == [
        {
            "manager": "kubectl-create",
            "operation": "Update",
            "apiVersion": "apps/v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                        "f:spec": {
                            "f:containers": {
                                NGINX: {
                                    ".": {},
                                    "f:image": {},
                                    "f:name": {},
                                    "f:ports": {
                                        ".": {},
                                        'k:{"containerPort":80,"protocol":"TCP"}': {
                                            ".": {},
                                            "f:containerPort": {},
                                        },
                                    },
                                }
                            }
                        },
                    },
                },
            },
        }
    ]


def test_updates_merge_into_the_same_entry_and_remove_from_others():
    obj = stored(deployment())
    track_update(None, obj, "kubectl-create", DEPLOYMENT, T0)
    obj2 = updated(obj, "kubectl-edit", T1, lambda o: o["spec"].update(replicas=4))
    obj3 = updated(obj2, "kubectl-edit", T2, lambda o: o["metadata"]["labels"].update(env="prod"))
    edit = entry(obj3, "kubectl-edit")
    assert edit["time"] == T2
    assert edit["fieldsV1"] == {"f:metadata": {"f:labels": {"f:env": {}}}, "f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in entry(obj3, "kubectl-create")["fieldsV1"]["f:spec"]
    # removing a field takes it from its owner; an unchanged write touches nothing
    obj4 = updated(obj3, "kubectl-edit", T3, lambda o: o["metadata"]["labels"].pop("env"))
    assert entry(obj4, "kubectl-edit")["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    obj5 = updated(obj4, "kubectl-edit", "2024-05-01T11:00:00Z", lambda o: None)
    assert obj5["metadata"]["managedFields"] == obj4["metadata"]["managedFields"]


def test_managed_fields_reset_and_untracked_objects():
    obj = stored(deployment())
    track_update(None, obj, "kubectl-create", DEPLOYMENT, T0)
    new = copy.deepcopy(obj)
    new["metadata"]["managedFields"] = [{}]
    new["spec"]["replicas"] = 7
    track_update(obj, new, "kubectl-patch", DEPLOYMENT, T1)
    assert "managedFields" not in new["metadata"]
    # an existing object without managedFields stays untracked by updates...
    newer = copy.deepcopy(new)
    newer["spec"]["replicas"] = 8
    track_update(new, newer, "kubectl-edit", DEPLOYMENT, T2)
    assert "managedFields" not in newer["metadata"]
    # ...and its first apply conflicts with "before-first-apply"
    with pytest.raises(ApplyConflict) as err:
        apply(newer, deployment(replicas=2), "helm", DEPLOYMENT, False, T3)
    assert err.value.message() == (
        'Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: .spec.replicas'
    )
    obj = apply(newer, deployment(replicas=8), "helm", DEPLOYMENT, False, T3)
    assert managers(obj) == [("helm", "Apply"), ("before-first-apply", "Update")]


def test_client_side_apply_upgrade_for_kubectl():
    # `kubectl apply` (client-side) then `kubectl apply --server-side`
    cfg = deployment()
    csa = stored(cfg)
    csa["metadata"]["annotations"] = {LAST_APPLIED_ANNOTATION: json.dumps(cfg)}
    track_update(None, csa, "kubectl-client-side-apply", DEPLOYMENT, T0)
    changed = deployment(replicas=5)
    with pytest.raises(ApplyConflict):  # any other manager conflicts
        apply(csa, changed, "ci-bot", DEPLOYMENT, False, T1)
    obj = apply(csa, changed, "kubectl", DEPLOYMENT, False, T1)
    assert obj["spec"]["replicas"] == 5
    assert json.loads(obj["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]) == changed
    # a value changed since by someone else still conflicts
    scaled = updated(stored(obj), "kubectl-scale", T2, lambda o: o["spec"].update(replicas=9))
    with pytest.raises(ApplyConflict) as err:
        apply(scaled, deployment(replicas=5), "kubectl", DEPLOYMENT, False, T3)
    assert err.value.conflicts == [("kubectl-scale", ".spec.replicas")]


def test_noop_reapply_keeps_time():
    live = stored(apply(None, deployment(), "kubectl", DEPLOYMENT, False, T0))
    obj = apply(live, deployment(), "kubectl", DEPLOYMENT, False, T1)
    assert obj == live


def test_invalid_configurations():
    cfg = deployment()
    cfg["spec"]["template"]["spec"]["containers"].append({"image": "anonymous"})
    with pytest.raises(ApplyInvalid, match='omits key field "name"'):
        apply(None, cfg, "kubectl", DEPLOYMENT, False, T0)
    cfg = deployment()
    cfg["spec"]["template"]["spec"]["containers"].append({"name": "nginx", "image": "again"})
    with pytest.raises(ApplyInvalid, match=r'duplicate entries for key \[name="nginx"\]'):
        apply(None, cfg, "kubectl", DEPLOYMENT, False, T0)
    cfg = deployment()
    cfg["metadata"]["managedFields"] = [{"manager": "me"}]
    with pytest.raises(ApplyInvalid, match="managedFields must be nil"):
        apply(None, cfg, "kubectl", DEPLOYMENT, False, T0)


def test_null_unsets_and_server_metadata_is_not_applied():
    live = stored(apply(None, deployment(), "kubectl", DEPLOYMENT, False, T0))
    cfg = deployment()
    cfg["spec"]["replicas"] = None
    cfg["metadata"]["creationTimestamp"] = None  # as in `kubectl create --dry-run -o yaml`
    cfg["metadata"]["uid"] = "forged"
    obj = apply(live, cfg, "kubectl", DEPLOYMENT, False, T1)
    assert "replicas" not in obj["spec"]
    assert obj["metadata"]["creationTimestamp"] == T0 and obj["metadata"]["uid"] == "0b9f4c9e"


def test_update_managers_are_capped():
    live = stored(apply(None, deployment(), "kubectl", DEPLOYMENT, False, T0))
    for i in range(12):
        live = updated(
            live,
            f"writer-{i:02}",
            f"2024-05-01T10:01:{i:02}Z",
            lambda o, i=i: o["metadata"]["labels"].update({f"l{i}": "x"}),
        )
    names = [m for m, op in managers(live) if op == "Update"]
    assert len(names) == 10 and "ancient-changes" in names
    assert "writer-00" not in names and "writer-11" in names
    ancient = entry(live, "ancient-changes")["fieldsV1"]["f:metadata"]["f:labels"]
    assert set(ancient) == {"f:l0", "f:l1", "f:l2"}


def test_unknown_kinds_are_deduced():
    cr = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "labels": {"a": "b"}},
        "spec": {"size": 3, "ports": [1, 2], "tuning": {"speed": "fast"}},
    }
    obj = apply(None, cr, "kubectl", None, False, T0)
    assert entry(obj, "kubectl")["fieldsV1"] == {
        "f:metadata": {"f:labels": {"f:a": {}}},
        "f:spec": {
            "f:ports": {},  # lists are atomic
            "f:size": {},
            "f:tuning": {".": {}, "f:speed": {}},  # maps are granular
        },
    }
    live = stored(obj)
    cr2 = copy.deepcopy(cr)
    cr2["spec"] = {"size": 3, "ports": [3]}
    obj = apply(live, cr2, "kubectl", None, False, T1)
    assert obj["spec"] == {"size": 3, "ports": [3]}
    # without a status subresource, status is an ordinary field
    cr3 = copy.deepcopy(cr2)
    cr3["status"] = {"phase": "Ready"}
    obj = apply(live, cr3, "kubectl", None, False, T1, status_subresource=False)
    assert obj["status"] == {"phase": "Ready"}


def test_fieldset_and_configmap_data():
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}
    assert fieldset(cm, CONFIGMAP) == {"f:data": {"f:a": {}, "f:b": {}}}
    dep = deployment()
    dep["status"] = {"replicas": 1}
    assert "f:status" not in fieldset(dep, DEPLOYMENT)
    assert fieldset(dep, DEPLOYMENT, include_status=True)["f:status"] == {"f:replicas": {}}
    live = stored(apply(None, cm, "kubectl", CONFIGMAP, False, T0))
    obj = apply(live, {**cm, "data": {"b": "3"}}, "kubectl", CONFIGMAP, False, T1)
    assert obj["data"] == {"b": "3"}
    obj = apply(stored(obj), {k: v for k, v in cm.items() if k != "data"}, "kubectl", CONFIGMAP, False, T2)
    assert "data" not in obj and "managedFields" not in obj["metadata"]


def test_path_string():
    assert path_string(("f:spec", "f:template", "f:spec", "f:containers", NGINX, "f:image")) == (
        '.spec.template.spec.containers[name="nginx"].image'
    )
    assert path_string(("f:ports", 'k:{"containerPort":80,"protocol":"TCP"}')) == (
        '.ports[containerPort=80,protocol="TCP"]'
    )
    assert path_string(("f:metadata", "f:finalizers", 'v:"a/b"')) == '.metadata.finalizers[="a/b"]'
    assert path_string(("f:args", "i:2")) == ".args[2]"
