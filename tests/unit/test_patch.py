"""Unit tests for pinnace.api.patch: JSON patch, JSON merge patch, strategic merge patch."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pinnace.api.patch import PatchError, json_patch, merge_patch, strategic_merge_patch

DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"
POD = "io.k8s.api.core.v1.Pod"
SERVICE = "io.k8s.api.core.v1.Service"
PDB = "io.k8s.api.policy.v1.PodDisruptionBudget"


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app": "web", "tier": "frontend"},
            "finalizers": ["example.com/a", "example.com/b"],
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.25",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "env": [
                                {"name": "MODE", "value": "prod"},
                                {"name": "LOG_LEVEL", "value": "info"},
                            ],
                            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
                        },
                        {"name": "sidecar", "image": "busybox:1.36", "args": ["sleep", "3600"]},
                    ],
                    "volumes": [
                        {"name": "cache", "emptyDir": {}},
                        {"name": "config", "configMap": {"name": "web-config"}},
                    ],
                    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web"}],
                    "nodeSelector": {"disktype": "ssd", "zone": "a"},
                    "securityContext": {"runAsNonRoot": True},
                },
            },
        },
    }


def smp(obj: dict[str, Any], patch: dict[str, Any], definition: str | None = DEPLOYMENT) -> dict[str, Any]:
    """Apply a strategic merge patch, checking that neither input is mutated."""
    obj_before, patch_before = copy.deepcopy(obj), copy.deepcopy(patch)
    result = strategic_merge_patch(obj, patch, definition)
    assert obj == obj_before
    assert patch == patch_before
    assert not _has_directive(result), result
    return result


def _has_directive(value: Any) -> bool:
    if isinstance(value, dict):
        return any(
            k in ("$patch", "$retainKeys") or k.startswith(("$setElementOrder/", "$deleteFromPrimitiveList/"))
            for k in value
        ) or any(_has_directive(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_directive(v) for v in value)
    return False


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return pod_spec(obj)["containers"]


def names(items: list[dict[str, Any]]) -> list[str]:
    return [i["name"] for i in items]


def template_patch(spec: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"template": {"spec": spec}}}


# --------------------------------------------------------------------------- JSON patch


class TestJsonPatch:
    def test_add_remove_replace(self) -> None:
        obj = deployment()
        before = copy.deepcopy(obj)
        result = json_patch(
            obj,
            [
                {"op": "add", "path": "/metadata/labels/team", "value": "blue"},
                {"op": "remove", "path": "/metadata/labels/tier"},
                {"op": "replace", "path": "/spec/replicas", "value": 5},
                {
                    "op": "add",
                    "path": "/spec/template/spec/containers/-",
                    "value": {"name": "c3", "image": "x"},
                },
                {"op": "remove", "path": "/spec/template/spec/containers/1"},
            ],
        )
        assert obj == before
        assert result["metadata"]["labels"] == {"app": "web", "team": "blue"}
        assert result["spec"]["replicas"] == 5
        assert names(containers(result)) == ["web", "c3"]

    def test_test_op_passes_then_applies(self) -> None:
        result = json_patch(
            deployment(),
            [
                {"op": "test", "path": "/spec/replicas", "value": 2},
                {"op": "replace", "path": "/spec/replicas", "value": 3},
            ],
        )
        assert result["spec"]["replicas"] == 3

    def test_test_failure(self) -> None:
        with pytest.raises(PatchError, match=r"operation 0 .*test.*failed"):
            json_patch(deployment(), [{"op": "test", "path": "/spec/replicas", "value": 7}])

    def test_test_failure_is_not_partially_applied_to_input(self) -> None:
        obj = deployment()
        before = copy.deepcopy(obj)
        with pytest.raises(PatchError, match="operation 1"):
            json_patch(
                obj,
                [
                    {"op": "replace", "path": "/spec/replicas", "value": 9},
                    {"op": "test", "path": "/metadata/name", "value": "other"},
                ],
            )
        assert obj == before

    def test_move_and_copy(self) -> None:
        result = json_patch(
            {"metadata": {"labels": {"a": "1"}, "annotations": {}}},
            [
                {"op": "copy", "from": "/metadata/labels/a", "path": "/metadata/annotations/a"},
                {"op": "move", "from": "/metadata/labels/a", "path": "/metadata/labels/b"},
            ],
        )
        assert result == {"metadata": {"labels": {"b": "1"}, "annotations": {"a": "1"}}}

    @pytest.mark.parametrize(
        "ops",
        [
            {"op": "add", "path": "/a", "value": 1},  # not a list
            ["add"],
            [{"path": "/a", "value": 1}],
            [{"op": "frobnicate", "path": "/a"}],
            [{"op": "add", "path": "a", "value": 1}],
            [{"op": "add", "path": "/a"}],
            [{"op": "add", "path": 5, "value": 1}],
            [{"op": "move", "path": "/a"}],
        ],
    )
    def test_malformed(self, ops: Any) -> None:
        with pytest.raises(PatchError):
            json_patch({"a": 0}, ops)

    @pytest.mark.parametrize(
        "op",
        [
            {"op": "remove", "path": "/metadata/annotations"},
            {"op": "replace", "path": "/spec/paused", "value": True},
            {"op": "add", "path": "/nope/deeper", "value": 1},
            {"op": "remove", "path": "/spec/template/spec/containers/9"},
        ],
    )
    def test_does_not_apply(self, op: dict[str, Any]) -> None:
        with pytest.raises(PatchError, match="does not apply"):
            json_patch(deployment(), [op])

    def test_result_must_be_object(self) -> None:
        with pytest.raises(PatchError, match="object"):
            json_patch({"a": 1}, [{"op": "replace", "path": "", "value": [1]}])

    def test_result_does_not_share_values_with_ops(self) -> None:
        value = {"k": "v"}
        ops = [{"op": "add", "path": "/metadata/annotations", "value": value}]
        result = json_patch({"metadata": {}}, ops)
        result["metadata"]["annotations"]["k"] = "changed"
        assert value == {"k": "v"}

    def test_error_is_value_error(self) -> None:
        assert issubclass(PatchError, ValueError)


# --------------------------------------------------------------------------- merge patch


class TestMergePatch:
    @pytest.mark.parametrize(
        ("target", "patch", "expected"),
        [
            # Examples from RFC 7386 appendix A (object-rooted ones).
            ({"a": "b"}, {"a": "c"}, {"a": "c"}),
            ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
            ({"a": "b"}, {"a": None}, {}),
            ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
            ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
            ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
            ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
            ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
            ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
            ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
        ],
    )
    def test_rfc7386_examples(self, target: dict[str, Any], patch: dict[str, Any], expected: Any) -> None:
        target_before, patch_before = copy.deepcopy(target), copy.deepcopy(patch)
        assert merge_patch(target, patch) == expected
        assert target == target_before
        assert patch == patch_before

    def test_labels_and_replicas(self) -> None:
        result = merge_patch(
            deployment(), {"metadata": {"labels": {"tier": None, "v": "2"}}, "spec": {"replicas": 4}}
        )
        assert result["metadata"]["labels"] == {"app": "web", "v": "2"}
        assert result["spec"]["replicas"] == 4
        assert result["spec"]["selector"] == {"matchLabels": {"app": "web"}}

    def test_lists_are_replaced(self) -> None:
        result = merge_patch(
            deployment(), template_patch({"containers": [{"name": "web", "image": "nginx:2"}]})
        )
        assert containers(result) == [{"name": "web", "image": "nginx:2"}]

    def test_result_is_independent(self) -> None:
        obj = deployment()
        result = merge_patch(obj, {"spec": {"replicas": 1}})
        result["metadata"]["labels"]["x"] = "y"
        containers(result)[0]["image"] = "changed"
        assert obj == deployment()

    def test_patch_must_be_object(self) -> None:
        with pytest.raises(PatchError):
            merge_patch({"a": 1}, [1])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- strategic merge patch: maps


class TestStrategicMaps:
    def test_maps_merge_recursively(self) -> None:
        result = smp(deployment(), {"metadata": {"labels": {"version": "v2"}}, "spec": {"replicas": 3}})
        assert result["metadata"]["labels"] == {"app": "web", "tier": "frontend", "version": "v2"}
        assert result["spec"]["replicas"] == 3
        assert result["spec"]["template"] == deployment()["spec"]["template"]

    def test_null_deletes_label(self) -> None:
        result = smp(deployment(), {"metadata": {"labels": {"tier": None}}})
        assert result["metadata"]["labels"] == {"app": "web"}

    def test_null_for_missing_key_is_ignored(self) -> None:
        result = smp(deployment(), {"metadata": {"annotations": None, "labels": {"nope": None}}})
        assert "annotations" not in result["metadata"]
        assert result["metadata"]["labels"] == {"app": "web", "tier": "frontend"}

    def test_nulls_inside_new_map_are_dropped(self) -> None:
        result = smp(deployment(), {"metadata": {"annotations": {"a": "1", "b": None}}})
        assert result["metadata"]["annotations"] == {"a": "1"}

    def test_typed_map_values_merge(self) -> None:
        # resources.limits is a map of Quantity (additionalProperties).
        patch = template_patch(
            {"containers": [{"name": "web", "resources": {"limits": {"cpu": 1, "memory": None}}}]}
        )
        result = smp(deployment(), patch)
        assert containers(result)[0]["resources"] == {"limits": {"cpu": 1}}

    def test_int_or_string_leaves_replace(self) -> None:
        result = smp(deployment(), {"spec": {"strategy": {"rollingUpdate": {"maxSurge": 1}}}})
        assert result["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": "25%"}

    def test_replace_directive_on_map(self) -> None:
        patch = template_patch({"nodeSelector": {"$patch": "replace", "gpu": "true"}})
        result = smp(deployment(), patch)
        assert pod_spec(result)["nodeSelector"] == {"gpu": "true"}

    def test_replace_directive_on_labels_when_absent(self) -> None:
        obj = deployment()
        del obj["metadata"]["labels"]
        result = smp(obj, {"metadata": {"labels": {"$patch": "replace", "a": "b"}}})
        assert result["metadata"]["labels"] == {"a": "b"}

    def test_delete_directive_on_map(self) -> None:
        result = smp(deployment(), template_patch({"securityContext": {"$patch": "delete"}}))
        assert "securityContext" not in pod_spec(result)
        assert pod_spec(result)["nodeSelector"] == {"disktype": "ssd", "zone": "a"}

    def test_delete_directive_on_root(self) -> None:
        assert smp(deployment(), {"$patch": "delete"}) == {}

    def test_replace_directive_on_root(self) -> None:
        assert smp(deployment(), {"$patch": "replace", "kind": "Deployment"}) == {"kind": "Deployment"}

    def test_merge_directive_on_map_is_default(self) -> None:
        result = smp(deployment(), {"metadata": {"labels": {"$patch": "merge", "x": "y"}}})
        assert result["metadata"]["labels"] == {"app": "web", "tier": "frontend", "x": "y"}

    def test_unknown_directive_on_map(self) -> None:
        with pytest.raises(PatchError, match="unknown"):
            smp(deployment(), {"metadata": {"labels": {"$patch": "explode"}}})

    def test_replace_strategy_on_map_field(self) -> None:
        # PodDisruptionBudgetSpec.selector has x-kubernetes-patch-strategy: replace.
        pdb = {"spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web", "tier": "fe"}}}}
        result = smp(pdb, {"spec": {"selector": {"matchLabels": {"app": "api"}}}}, PDB)
        assert result["spec"] == {"minAvailable": 1, "selector": {"matchLabels": {"app": "api"}}}
        # The same patch on a Deployment selector (no strategy) merges.
        merged = smp(deployment(), {"spec": {"selector": {"matchLabels": {"tier": "fe"}}}})
        assert merged["spec"]["selector"] == {"matchLabels": {"app": "web", "tier": "fe"}}

    def test_type_change_replaces(self) -> None:
        result = smp({"metadata": {"annotations": "oops"}}, {"metadata": {"annotations": {"a": "b"}}})
        assert result["metadata"]["annotations"] == {"a": "b"}

    def test_result_is_independent(self) -> None:
        obj = deployment()
        patch = template_patch(
            {"containers": [{"name": "new", "image": "x", "env": [{"name": "A", "value": "1"}]}]}
        )
        result = smp(obj, patch)
        for c in containers(result):
            c["image"] = "changed"
            c.setdefault("env", []).append({"name": "Z"})
        result["metadata"]["labels"].clear()
        assert obj == deployment()
        assert patch == template_patch(
            {"containers": [{"name": "new", "image": "x", "env": [{"name": "A", "value": "1"}]}]}
        )


# --------------------------------------------------------------------------- strategic merge patch: lists


class TestStrategicLists:
    def test_containers_merge_by_name(self) -> None:
        result = smp(
            deployment(), template_patch({"containers": [{"name": "sidecar", "image": "busybox:1.37"}]})
        )
        assert names(containers(result)) == ["web", "sidecar"]
        assert containers(result)[1] == {
            "name": "sidecar",
            "image": "busybox:1.37",
            "args": ["sleep", "3600"],
        }
        assert containers(result)[0] == deployment()["spec"]["template"]["spec"]["containers"][0]

    def test_new_container_goes_first(self) -> None:
        # As in the "kubectl patch" docs: the added container comes before the existing ones.
        result = smp(deployment(), template_patch({"containers": [{"name": "log", "image": "fluentbit"}]}))
        assert names(containers(result)) == ["log", "web", "sidecar"]

    def test_patch_order_wins_and_untouched_keep_place(self) -> None:
        obj = deployment()
        pod_spec(obj)["containers"].append({"name": "third", "image": "t"})
        result = smp(obj, template_patch({"containers": [{"name": "third", "image": "t2"}]}))
        assert names(containers(result)) == ["web", "sidecar", "third"]
        result = smp(obj, template_patch({"containers": [{"name": "third"}, {"name": "web"}]}))
        assert names(containers(result)) == ["sidecar", "third", "web"]

    def test_env_merged_by_name(self) -> None:
        patch = template_patch(
            {
                "containers": [
                    {
                        "name": "web",
                        "env": [
                            {"name": "LOG_LEVEL", "value": "debug"},
                            {
                                "name": "MODE",
                                "value": None,
                                "valueFrom": {"configMapKeyRef": {"name": "c", "key": "m"}},
                            },
                        ],
                    }
                ]
            }
        )
        env = containers(smp(deployment(), patch))[0]["env"]
        assert env == [
            {"name": "LOG_LEVEL", "value": "debug"},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "m"}}},
        ]

    def test_env_added(self) -> None:
        patch = template_patch({"containers": [{"name": "web", "env": [{"name": "NEW", "value": "1"}]}]})
        env = containers(smp(deployment(), patch))[0]["env"]
        assert names(env) == ["NEW", "MODE", "LOG_LEVEL"]

    def test_ports_merge_key_container_port(self) -> None:
        patch = template_patch(
            {
                "containers": [
                    {
                        "name": "web",
                        "ports": [
                            {"containerPort": 443, "protocol": "TCP"},
                            {"containerPort": 80, "name": "http"},
                        ],
                    }
                ]
            }
        )
        ports = containers(smp(deployment(), patch))[0]["ports"]
        assert ports == [
            {"containerPort": 443, "protocol": "TCP"},
            {"containerPort": 80, "protocol": "TCP", "name": "http"},
        ]

    def test_service_ports_merge_key_port(self) -> None:
        svc = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}]}}
        result = smp(svc, {"spec": {"ports": [{"port": 80, "targetPort": "http"}]}}, SERVICE)
        assert result["spec"]["ports"] == [
            {"port": 80, "targetPort": "http"},
            {"port": 443, "targetPort": 8443},
        ]

    def test_delete_container(self) -> None:
        result = smp(deployment(), template_patch({"containers": [{"$patch": "delete", "name": "sidecar"}]}))
        assert names(containers(result)) == ["web"]

    def test_delete_add_and_modify_in_one_list(self) -> None:
        patch = template_patch(
            {
                "containers": [
                    {"name": "web", "image": "nginx:1.26"},
                    {"$patch": "delete", "name": "sidecar"},
                    {"name": "proxy", "image": "envoy"},
                ]
            }
        )
        result = containers(smp(deployment(), patch))
        assert names(result) == ["web", "proxy"]
        assert result[0]["image"] == "nginx:1.26"
        assert result[0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]

    def test_delete_missing_element_is_noop(self) -> None:
        result = smp(deployment(), template_patch({"containers": [{"$patch": "delete", "name": "ghost"}]}))
        assert names(containers(result)) == ["web", "sidecar"]

    def test_delete_without_merge_key(self) -> None:
        with pytest.raises(PatchError, match="merge key 'name'"):
            smp(deployment(), template_patch({"containers": [{"$patch": "delete", "image": "busybox:1.36"}]}))

    def test_element_without_merge_key(self) -> None:
        with pytest.raises(PatchError, match="merge key 'name'"):
            smp(deployment(), template_patch({"containers": [{"image": "nginx"}]}))

    def test_replace_directive_in_list(self) -> None:
        patch = template_patch({"containers": [{"name": "only", "image": "x"}, {"$patch": "replace"}]})
        assert containers(smp(deployment(), patch)) == [{"name": "only", "image": "x"}]

    def test_unknown_directive_in_list(self) -> None:
        with pytest.raises(PatchError, match="unknown"):
            smp(deployment(), template_patch({"containers": [{"$patch": "bogus", "name": "web"}]}))

    def test_merge_directive_in_list_is_default(self) -> None:
        patch = template_patch({"containers": [{"$patch": "merge"}, {"name": "web", "image": "n"}]})
        assert names(containers(smp(deployment(), patch))) == ["web", "sidecar"]

    def test_atomic_list_is_replaced(self) -> None:
        # tolerations has no patch strategy: the list is replaced (kubectl patch docs example).
        patch = template_patch({"tolerations": [{"key": "disktype", "value": "ssd", "effect": "NoSchedule"}]})
        result = smp(deployment(), patch)
        assert pod_spec(result)["tolerations"] == [
            {"key": "disktype", "value": "ssd", "effect": "NoSchedule"}
        ]

    def test_atomic_primitive_list_is_replaced(self) -> None:
        result = smp(
            deployment(), template_patch({"containers": [{"name": "sidecar", "args": ["sleep", "1"]}]})
        )
        assert containers(result)[1]["args"] == ["sleep", "1"]

    def test_empty_merge_list_keeps_original(self) -> None:
        result = smp(deployment(), template_patch({"containers": []}))
        assert names(containers(result)) == ["web", "sidecar"]

    def test_null_deletes_list(self) -> None:
        result = smp(deployment(), template_patch({"volumes": None}))
        assert "volumes" not in pod_spec(result)

    def test_merge_vs_strategic_on_containers(self) -> None:
        patch = template_patch({"containers": [{"name": "web", "image": "nginx:1.26"}]})
        merged = merge_patch(deployment(), patch)
        strategic = smp(deployment(), patch)
        assert containers(merged) == [{"name": "web", "image": "nginx:1.26"}]
        assert names(containers(strategic)) == ["web", "sidecar"]
        assert (
            containers(strategic)[0]["env"]
            == deployment()["spec"]["template"]["spec"]["containers"][0]["env"]
        )
        assert containers(strategic)[0]["image"] == "nginx:1.26"

    def test_new_list_elements_are_cleaned(self) -> None:
        patch = template_patch(
            {
                "containers": [
                    {
                        "name": "new",
                        "image": "x",
                        "env": [{"name": "A", "value": "1"}, {"$patch": "delete", "name": "B"}],
                        "resources": {"limits": {"cpu": "1", "memory": None}},
                    }
                ]
            }
        )
        new = containers(smp(deployment(), patch))[0]
        assert new == {
            "name": "new",
            "image": "x",
            "env": [{"name": "A", "value": "1"}],
            "resources": {"limits": {"cpu": "1"}},
        }

    def test_list_absent_in_original(self) -> None:
        obj = deployment()
        del pod_spec(obj)["volumes"]
        patch = template_patch(
            {"volumes": [{"name": "v", "emptyDir": {}}, {"$patch": "delete", "name": "w"}]}
        )
        assert pod_spec(smp(obj, patch))["volumes"] == [{"name": "v", "emptyDir": {}}]


class TestPrimitiveLists:
    def test_finalizers_union(self) -> None:
        result = smp(deployment(), {"metadata": {"finalizers": ["example.com/b", "example.com/c"]}})
        assert result["metadata"]["finalizers"] == ["example.com/a", "example.com/b", "example.com/c"]

    def test_finalizers_new_first(self) -> None:
        # Go orders patch items ahead of server-only items they were not after in the live list.
        result = smp(deployment(), {"metadata": {"finalizers": ["example.com/c"]}})
        assert result["metadata"]["finalizers"] == ["example.com/c", "example.com/a", "example.com/b"]

    def test_delete_from_primitive_list(self) -> None:
        result = smp(deployment(), {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"]}})
        assert result["metadata"]["finalizers"] == ["example.com/b"]

    def test_delete_from_primitive_list_with_addition(self) -> None:
        patch = {
            "metadata": {
                "$deleteFromPrimitiveList/finalizers": ["example.com/a"],
                "finalizers": ["example.com/c"],
            }
        }
        assert smp(deployment(), patch)["metadata"]["finalizers"] == ["example.com/c", "example.com/b"]

    def test_delete_from_missing_list(self) -> None:
        obj = deployment()
        del obj["metadata"]["finalizers"]
        result = smp(obj, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}})
        assert "finalizers" not in result["metadata"]

    def test_delete_from_primitive_list_malformed(self) -> None:
        with pytest.raises(PatchError):
            smp(deployment(), {"metadata": {"$deleteFromPrimitiveList/finalizers": "example.com/a"}})
        with pytest.raises(PatchError):
            smp(deployment(), {"metadata": {"$deleteFromPrimitiveList/": ["x"]}})

    def test_delete_directive_in_primitive_list(self) -> None:
        with pytest.raises(PatchError, match="deleteFromPrimitiveList"):
            smp(deployment(), {"metadata": {"finalizers": [{"$patch": "delete", "name": "x"}]}})

    def test_replace_directive_in_primitive_list(self) -> None:
        result = smp(deployment(), {"metadata": {"finalizers": ["example.com/z", {"$patch": "replace"}]}})
        assert result["metadata"]["finalizers"] == ["example.com/z"]

    def test_booleans_are_not_numbers(self) -> None:
        # NodeSpec.podCIDRs is another merge list of primitives; use it with odd values.
        node = {"spec": {"podCIDRs": [1, True]}}
        result = smp(node, {"spec": {"podCIDRs": [True, 1.0, 0]}}, "io.k8s.api.core.v1.Node")
        # True and 1 stay distinct (Python's True == 1 would merge them); patch order wins.
        typed = [(type(v), v) for v in result["spec"]["podCIDRs"]]
        assert typed == [(bool, True), (int, 1), (int, 0)]

    def test_patch_order_then_live_order(self) -> None:
        node = {"spec": {"podCIDRs": ["a", "b", "c"]}}
        result = smp(node, {"spec": {"podCIDRs": ["c", "a"]}}, "io.k8s.api.core.v1.Node")
        assert result["spec"]["podCIDRs"] == ["b", "c", "a"]

    def test_mixed_list_rejected(self) -> None:
        with pytest.raises(PatchError, match="mixes"):
            smp(deployment(), {"metadata": {"finalizers": ["x", {"name": "y"}]}})


class TestRetainKeys:
    def test_volume_switch_emptydir_to_configmap(self) -> None:
        # What kubectl apply sends for a volume source change (volumes: merge,retainKeys).
        patch = template_patch(
            {
                "volumes": [
                    {
                        "$retainKeys": ["configMap", "name"],
                        "name": "cache",
                        "configMap": {"name": "cache-cm"},
                    },
                ]
            }
        )
        volumes = pod_spec(smp(deployment(), patch))["volumes"]
        assert volumes == [
            {"name": "cache", "configMap": {"name": "cache-cm"}},
            {"name": "config", "configMap": {"name": "web-config"}},
        ]

    def test_without_retain_keys_sources_pile_up(self) -> None:
        patch = template_patch({"volumes": [{"name": "cache", "configMap": {"name": "cache-cm"}}]})
        volumes = pod_spec(smp(deployment(), patch))["volumes"]
        assert volumes[0] == {"name": "cache", "emptyDir": {}, "configMap": {"name": "cache-cm"}}

    def test_deployment_strategy_to_recreate(self) -> None:
        patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}}}
        assert smp(deployment(), patch)["spec"]["strategy"] == {"type": "Recreate"}

    def test_retain_keys_keeps_unpatched_listed_fields(self) -> None:
        patch = {
            "spec": {"strategy": {"$retainKeys": ["type", "rollingUpdate"], "rollingUpdate": {"maxSurge": 2}}}
        }
        assert smp(deployment(), patch)["spec"]["strategy"] == {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 2, "maxUnavailable": "25%"},
        }

    def test_patch_field_missing_from_retain_keys(self) -> None:
        patch = {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}}
        with pytest.raises(PatchError, match="rollingUpdate"):
            smp(deployment(), patch)

    def test_retain_keys_not_a_list(self) -> None:
        with pytest.raises(PatchError, match=r"\$retainKeys"):
            smp(deployment(), {"spec": {"strategy": {"$retainKeys": "type"}}})


class TestSetElementOrder:
    def test_reorder_containers(self) -> None:
        patch = template_patch({"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}]})
        result = smp(deployment(), patch)
        assert names(containers(result)) == ["sidecar", "web"]
        assert (
            containers(result)[1]["env"] == deployment()["spec"]["template"]["spec"]["containers"][0]["env"]
        )

    def test_reorder_with_change(self) -> None:
        patch = template_patch(
            {
                "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}],
                "containers": [{"name": "web", "image": "nginx:1.26"}],
            }
        )
        result = containers(smp(deployment(), patch))
        assert names(result) == ["sidecar", "web"]
        assert result[1]["image"] == "nginx:1.26"

    def test_insert_in_middle(self) -> None:
        # kubectl apply after adding "proxy" between the two containers in the manifest.
        patch = template_patch(
            {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "proxy"}, {"name": "sidecar"}],
                "containers": [{"name": "proxy", "image": "envoy"}],
            }
        )
        assert names(containers(smp(deployment(), patch))) == ["web", "proxy", "sidecar"]

    def test_server_only_elements_stay_after(self) -> None:
        obj = deployment()
        pod_spec(obj)["containers"].append({"name": "injected", "image": "mesh"})
        patch = template_patch({"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}]})
        assert names(containers(smp(obj, patch))) == ["sidecar", "web", "injected"]

    def test_with_deletion(self) -> None:
        patch = template_patch(
            {
                "$setElementOrder/containers": [{"name": "web"}],
                "containers": [{"$patch": "delete", "name": "sidecar"}],
            }
        )
        assert names(containers(smp(deployment(), patch))) == ["web"]

    def test_primitive_order_with_deletion(self) -> None:
        # What kubectl apply sends when the finalizer list changes from [a, b] to [c, a].
        patch = {
            "metadata": {
                "$setElementOrder/finalizers": ["example.com/c", "example.com/a"],
                "$deleteFromPrimitiveList/finalizers": ["example.com/b"],
                "finalizers": ["example.com/c"],
            }
        }
        assert smp(deployment(), patch)["metadata"]["finalizers"] == ["example.com/c", "example.com/a"]

    def test_env_order(self) -> None:
        patch = template_patch(
            {
                "containers": [
                    {"name": "web", "$setElementOrder/env": [{"name": "LOG_LEVEL"}, {"name": "MODE"}]},
                ]
            }
        )
        assert names(containers(smp(deployment(), patch))[0]["env"]) == ["LOG_LEVEL", "MODE"]

    def test_order_for_absent_list_is_ignored(self) -> None:
        patch = template_patch({"$setElementOrder/initContainers": [{"name": "x"}]})
        assert "initContainers" not in pod_spec(smp(deployment(), patch))

    def test_patch_list_order_must_match(self) -> None:
        patch = template_patch(
            {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                "containers": [{"name": "sidecar", "image": "a"}, {"name": "web", "image": "b"}],
            }
        )
        with pytest.raises(PatchError, match="order"):
            smp(deployment(), patch)

    @pytest.mark.parametrize(
        "spec",
        [
            {"$setElementOrder/containers": "web"},
            {"$setElementOrder/containers": [{"image": "x"}]},
            {"$setElementOrder/": []},
            {"$setElementOrder/containers": [{"name": "web"}], "containers": {"name": "web"}},
        ],
    )
    def test_malformed(self, spec: dict[str, Any]) -> None:
        with pytest.raises(PatchError):
            smp(deployment(), template_patch(spec))


class TestSchemaless:
    def test_none_definition_is_merge_patch(self) -> None:
        obj = {"spec": {"items": [{"name": "a", "v": 1}, {"name": "b"}], "m": {"x": 1, "y": 2}}}
        patch = {"spec": {"items": [{"name": "a", "v": 2}], "m": {"y": None, "z": 3}}}
        assert smp(obj, patch, None) == merge_patch(obj, patch)
        assert smp(obj, patch, None) == {"spec": {"items": [{"name": "a", "v": 2}], "m": {"x": 1, "z": 3}}}

    def test_unknown_definition_is_merge_patch(self) -> None:
        patch = template_patch({"containers": [{"name": "web"}]})
        assert smp(deployment(), patch, "io.example.v1.Nope") == merge_patch(deployment(), patch)

    def test_directives_still_stripped_without_schema(self) -> None:
        patch = {"spec": {"m": {"$patch": "replace", "a": 1}, "list": [{"$patch": "replace"}, {"k": 1}]}}
        result = smp({"spec": {"m": {"b": 2}, "list": [{"k": 0}]}}, patch, None)
        assert result == {"spec": {"m": {"a": 1}, "list": [{"k": 1}]}}

    def test_dollar_fields_that_are_not_directives_are_data(self) -> None:
        # JSONSchemaProps has real "$ref" / "$schema" properties.
        crd = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition"
        obj = {"spec": {"group": "example.com", "versions": [{"name": "v0"}]}}
        schema = {"$schema": "x", "type": "object", "properties": {"$ref": {"type": "string"}}}
        patch = {"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": schema}}]}}
        result = smp(obj, patch, crd)
        # versions has no patch strategy (replaced); "$"-fields inside survive as data.
        assert result["spec"] == {"group": "example.com", "versions": patch["spec"]["versions"]}
        # Also on the merge path, where the map is merged key by key.
        again = smp(result, {"metadata": {"labels": {"$x": "y"}}}, crd)
        assert again["metadata"] == {"labels": {"$x": "y"}}


class TestInputs:
    def test_non_object_arguments(self) -> None:
        with pytest.raises(PatchError):
            strategic_merge_patch({}, [], DEPLOYMENT)  # type: ignore[arg-type]
        with pytest.raises(PatchError):
            strategic_merge_patch([], {}, DEPLOYMENT)  # type: ignore[arg-type]

    def test_pod_definition(self) -> None:
        pod = {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}}
        result = smp(pod, {"spec": {"containers": [{"name": "b", "image": "z"}]}}, POD)
        assert result["spec"]["containers"] == [{"name": "a", "image": "x"}, {"name": "b", "image": "z"}]

    def test_repeat_calls_are_stable(self) -> None:
        patch = template_patch({"containers": [{"name": "web", "image": "nginx:1.26"}]})
        assert smp(deployment(), patch) == smp(deployment(), patch)
