"""Kubernetes-style validation: schema decoding, metadata, per-kind rules, quantities."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest

from pinnace.api.defaults import apply_defaults
from pinnace.api.validation import (
    FieldError,
    canonical_quantity,
    compile_schema,
    dedupe,
    name_rule_for,
    parse_quantity,
    validate_cron_schedule,
    validate_kind,
    validate_labels,
    validate_object_meta,
    validate_object_meta_update,
)

DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"
POD = "io.k8s.api.core.v1.Pod"

DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def deployment() -> dict:
    """What `kubectl apply` sends for a typical Deployment."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app.kubernetes.io/name": "web", "tier": "frontend"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"},
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web", "version": "v1"}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": "nginx:1.25.3",
                            "ports": [{"name": "http", "containerPort": 80}],
                            "env": [{"name": "MODE", "value": "prod"}],
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"cpu": 1, "memory": "256Mi"},
                            },
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
                            "livenessProbe": {"tcpSocket": {"port": 80}, "initialDelaySeconds": 5},
                            "volumeMounts": [{"name": "config", "mountPath": "/etc/nginx/conf.d"}],
                        }
                    ],
                    "volumes": [{"name": "config", "configMap": {"name": "web-config"}}],
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": [
                        {"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}
                    ],
                },
            },
        },
    }


def served_deployment() -> dict:
    """The same Deployment as the API server returns it: defaulted, with status and managedFields."""
    d = deployment()
    apply_defaults("apps", "Deployment", d)
    d["metadata"].update(
        {
            "uid": "6b8f1c3e-0d2a-4a8e-9d52-3f7c9e1b2a40",
            "resourceVersion": "4711",
            "generation": 2,
            "creationTimestamp": "2024-05-01T10:00:00Z",
            "managedFields": [
                {
                    "apiVersion": "apps/v1",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {}}}},
                    "manager": "kubectl-client-side-apply",
                    "operation": "Update",
                    "time": "2024-05-01T10:00:00Z",
                }
            ],
        }
    )
    d["spec"]["template"]["metadata"]["creationTimestamp"] = None
    d["status"] = {
        "availableReplicas": 3,
        "conditions": [
            {
                "lastTransitionTime": "2024-05-01T10:00:10Z",
                "lastUpdateTime": "2024-05-01T10:00:10Z",
                "message": "Deployment has minimum availability.",
                "reason": "MinimumReplicasAvailable",
                "status": "True",
                "type": "Available",
            }
        ],
        "observedGeneration": 2,
        "readyReplicas": 3,
        "replicas": 3,
        "updatedReplicas": 3,
    }
    return d


def pod() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "containers": [
                {"name": "app", "image": "registry.example.com/app:2.1", "ports": [{"containerPort": 8080}]}
            ],
            "initContainers": [
                {"name": "migrate", "image": "registry.example.com/app:2.1", "command": ["migrate"]}
            ],
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }
            ],
        },
    }


def defaulted(group: str, kind: str, obj: dict) -> dict:
    apply_defaults(group, kind, obj)
    return obj


def fields(errors: list[FieldError]) -> list[str]:
    return [e.field for e in errors]


def messages(errors: list[FieldError]) -> list[str]:
    return [str(e) for e in errors]


# ---------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------


class TestSchema:
    def test_valid_deployment_passes(self):
        errors, unknown = compile_schema(DEPLOYMENT)(deployment())
        assert errors == []
        assert unknown == []

    def test_served_deployment_passes(self):
        obj = served_deployment()
        assert compile_schema(DEPLOYMENT)(obj) == ([], [])
        assert validate_kind("apps", "Deployment", obj, None) == []
        assert validate_object_meta(obj["metadata"], True, name_rule_for("apps", "Deployment")) == []

    def test_compiled_once(self):
        assert compile_schema(DEPLOYMENT) is compile_schema(DEPLOYMENT)

    @pytest.mark.parametrize(
        ("mutate", "field", "message"),
        [
            (
                lambda d: d["spec"].__setitem__("replicas", "string"),
                "spec.replicas",
                'Invalid value: "string": spec.replicas in body must be of type integer: "string"',
            ),
            (
                lambda d: d["spec"].__setitem__("replicas", "3"),
                "spec.replicas",
                'Invalid value: "string": spec.replicas in body must be of type integer: "string"',
            ),
            (
                lambda d: d["spec"].__setitem__("paused", "yes"),
                "spec.paused",
                'Invalid value: "string": spec.paused in body must be of type boolean: "string"',
            ),
            (
                lambda d: d["spec"]["template"]["spec"].__setitem__("containers", {"name": "x"}),
                "spec.template.spec.containers",
                'Invalid value: "object": spec.template.spec.containers in body must be of type '
                'array: "object"',
            ),
            (
                lambda d: d["spec"]["template"]["spec"]["containers"][0]["ports"][0].__setitem__(
                    "containerPort", "80"
                ),
                "spec.template.spec.containers[0].ports[0].containerPort",
                'Invalid value: "string": spec.template.spec.containers[0].ports[0].containerPort '
                'in body must be of type integer: "string"',
            ),
            (
                lambda d: d["spec"]["template"]["spec"]["containers"][0].__setitem__("image", 7),
                "spec.template.spec.containers[0].image",
                'Invalid value: "integer": spec.template.spec.containers[0].image in body must be of '
                "type string: "
                '"integer"',
            ),
            (
                lambda d: d["metadata"]["labels"].__setitem__("tier", True),
                "metadata.labels[tier]",
                'Invalid value: "boolean": metadata.labels[tier] in body must be of type string: "boolean"',
            ),
            (
                lambda d: d["spec"].__setitem__("replicas", 2**31),
                "spec.replicas",
                "Invalid value: 2147483648: spec.replicas in body should be less than or equal to 2147483647",
            ),
            (
                lambda d: d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].__setitem__(
                    "memory", "lots"
                ),
                "spec.template.spec.containers[0].resources.limits[memory]",
                'Invalid value: "lots": quantities must match the regular expression '
                "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            ),
            (
                lambda d: d["spec"]["strategy"]["rollingUpdate"].__setitem__("maxSurge", True),
                "spec.strategy.rollingUpdate.maxSurge",
                'Invalid value: "boolean": spec.strategy.rollingUpdate.maxSurge in body must be of type '
                'string,integer: "boolean"',
            ),
            (
                lambda d: d["metadata"].__setitem__("creationTimestamp", "yesterday"),
                "metadata.creationTimestamp",
                'Invalid value: "yesterday": metadata.creationTimestamp in body must be of type date-time: '
                '"yesterday"',
            ),
            (
                lambda d: d.__setitem__("apiVersion", "apps/v2"),
                "apiVersion",
                'Unsupported value: "apps/v2": supported values: "apps/v1"',
            ),
        ],
    )
    def test_type_errors(self, mutate, field, message):
        obj = deployment()
        mutate(obj)
        errors, unknown = compile_schema(DEPLOYMENT)(obj)
        assert [(e.field, e.message) for e in errors] == [(field, message)]
        assert unknown == []

    def test_type_errors_use_kubernetes_cause_types(self):
        obj = deployment()
        obj["spec"]["replicas"] = "x"
        obj["apiVersion"] = "apps/v9"
        errors, _ = compile_schema(DEPLOYMENT)(obj)
        assert {e.field: e.type for e in errors} == {
            "spec.replicas": "FieldValueTypeInvalid",
            "apiVersion": "FieldValueNotSupported",
        }

    def test_required_fields(self):
        obj = deployment()
        del obj["spec"]["selector"]
        del obj["spec"]["template"]["spec"]["containers"][0]["name"]
        del obj["spec"]["template"]["spec"]["volumes"][0]["name"]
        errors, _ = compile_schema(DEPLOYMENT)(obj)
        assert sorted((e.field, e.type, e.message) for e in errors) == [
            ("spec.selector", "FieldValueRequired", "Required value"),
            ("spec.template.spec.containers[0].name", "FieldValueRequired", "Required value"),
            ("spec.template.spec.volumes[0].name", "FieldValueRequired", "Required value"),
        ]

    def test_required_not_enforced_in_status_or_where_kubernetes_defaults(self):
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "rs"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}},
            "status": {"conditions": [{"message": "no type or status"}]},  # required type/status
        }
        assert compile_schema("io.k8s.api.apps.v1.ReplicaSet")(rs) == ([], [])
        binding = {
            "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "u"}],
        }
        assert compile_schema("io.k8s.api.rbac.v1.RoleBinding")(binding) == ([], [])

    def test_unknown_fields_reported_separately(self):
        obj = deployment()
        obj["spec"]["foo"] = 1
        obj["metadata"]["labelz"] = {"a": "b"}
        obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
        obj["spec"]["template"]["spec"]["containers"][0]["ports"][0]["bogus"] = True
        obj["extra"] = {}
        errors, unknown = compile_schema(DEPLOYMENT)(obj)
        assert errors == []
        assert sorted(unknown) == [
            ".extra",
            ".metadata.labelz",
            ".spec.foo",
            ".spec.template.spec.containers[0].imagePullPolicyy",
            ".spec.template.spec.containers[0].ports[0].bogus",
        ]

    def test_free_form_and_map_fields_have_no_unknowns(self):
        obj = served_deployment()
        obj["metadata"]["annotations"]["anything/goes"] = "x"
        obj["metadata"]["managedFields"][0]["fieldsV1"] = {"f:whatever": {'k:{"a":1}': {}}}
        assert compile_schema(DEPLOYMENT)(obj) == ([], [])

    def test_nulls_decode_as_unset(self):
        obj = deployment()
        obj["spec"]["replicas"] = None
        obj["spec"]["template"]["spec"]["containers"][0]["env"] = None
        obj["spec"]["template"]["spec"]["containers"].append(None)
        assert compile_schema(DEPLOYMENT)(obj) == ([], [])

    def test_integral_floats_are_integers(self):
        obj = deployment()
        obj["spec"]["replicas"] = 3.0
        assert compile_schema(DEPLOYMENT)(obj) == ([], [])
        obj["spec"]["replicas"] = 2.5
        errors, _ = compile_schema(DEPLOYMENT)(obj)
        assert fields(errors) == ["spec.replicas"]

    def test_quantities_accept_numbers_and_strings(self):
        obj = deployment()
        limits = obj["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        limits.update({"cpu": 0.5, "memory": "1e9", "ephemeral-storage": "2Gi", "nvidia.com/gpu": 1})
        assert compile_schema(DEPLOYMENT)(obj) == ([], [])

    def test_secret_data_must_be_base64(self):
        validate = compile_schema("io.k8s.api.core.v1.Secret")
        ok = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s"},
            "data": {"password": "aHVudGVyMg=="},
        }
        assert validate(ok) == ([], [])
        bad = copy.deepcopy(ok)
        bad["data"]["password"] = "hunter2!"
        errors, _ = validate(bad)
        assert fields(errors) == ["data[password]"]
        assert "hunter2" not in errors[0].message  # secret data is never echoed
        assert "illegal base64 data at input byte 7" in errors[0].message

    def test_recursive_schema_compiles(self):
        crd = {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "names": {"kind": "Widget", "plural": "widgets"},
                "scope": "Namespaced",
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "properties": {
                                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}
                                },
                            }
                        },
                    }
                ],
            },
        }
        validate = compile_schema(
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition"
        )
        assert validate(crd) == ([], [])

    def test_non_object_body(self):
        errors, _ = compile_schema(POD)(["not", "an", "object"])
        assert errors[0].type == "FieldValueTypeInvalid"

    def test_full_pod_from_a_cluster(self):
        obj = defaulted("", "Pod", pod())
        obj["metadata"]["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "name": "web",
                "uid": "u-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        obj["status"] = {
            "phase": "Running",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": "2024-05-01T10:00:05Z",
                }
            ],
            "containerStatuses": [
                {
                    "name": "app",
                    "ready": True,
                    "restartCount": 0,
                    "image": "registry.example.com/app:2.1",
                    "imageID": "registry.example.com/app@sha256:00",
                    "started": True,
                    "state": {"running": {"startedAt": "2024-05-01T10:00:04.123456Z"}},
                    "lastState": {},
                }
            ],
            "podIP": "10.244.0.5",
            "podIPs": [{"ip": "10.244.0.5"}],
            "qosClass": "BestEffort",
            "startTime": "2024-05-01T10:00:00+02:00",
        }
        assert compile_schema(POD)(obj) == ([], [])
        assert validate_kind("", "Pod", obj, None) == []


# ---------------------------------------------------------------------------
# Metadata
# ---------------------------------------------------------------------------


class TestObjectMeta:
    def test_valid(self):
        assert validate_object_meta({"name": "web", "namespace": "default"}, True, "dns1123_subdomain") == []

    def test_name_or_generate_name_required(self):
        assert messages(validate_object_meta({"namespace": "default"}, True, "dns1123_subdomain")) == [
            "metadata.name: Required value: name or generateName is required"
        ]
        assert (
            validate_object_meta({"generateName": "web-", "namespace": "ns"}, True, "dns1123_subdomain") == []
        )

    def test_invalid_subdomain_name(self):
        errors = validate_object_meta({"name": "Foo_Bar", "namespace": "default"}, True, "dns1123_subdomain")
        assert errors == [
            FieldError(
                "FieldValueInvalid", "metadata.name", f'Invalid value: "Foo_Bar": {DNS1123_SUBDOMAIN_MSG}'
            )
        ]

    @pytest.mark.parametrize(
        ("rule", "name", "ok"),
        [
            ("dns1123_subdomain", "a.b-c.d", True),
            ("dns1123_subdomain", "a" * 254, False),
            ("dns1123_label", "kube-system", True),
            ("dns1123_label", "a.b", False),
            ("dns1123_label", "a" * 64, False),
            ("dns1035_label", "my-svc", True),
            ("dns1035_label", "1svc", False),
            ("path_segment", "system:controller:foo", True),
            ("path_segment", "a/b", False),
            ("path_segment", "..", False),
            ("none", "Anything Goes", True),
        ],
    )
    def test_name_rules(self, rule, name, ok):
        errors = validate_object_meta({"name": name}, False, rule)
        assert (errors == []) is ok, errors

    def test_name_rule_per_kind(self):
        assert name_rule_for("", "Namespace") == "dns1123_label"
        assert name_rule_for("", "Service") == "dns1035_label"
        assert name_rule_for("rbac.authorization.k8s.io", "ClusterRole") == "path_segment"
        assert name_rule_for("apps", "Deployment") == "dns1123_subdomain"

    def test_namespace_rules(self):
        assert messages(
            validate_object_meta({"name": "n1", "namespace": "default"}, False, "dns1123_label")
        ) == ["metadata.namespace: Forbidden: not allowed on this type"]
        assert messages(validate_object_meta({"name": "p"}, True, "dns1123_subdomain")) == [
            "metadata.namespace: Required value"
        ]
        assert fields(
            validate_object_meta({"name": "p", "namespace": "Bad_NS"}, True, "dns1123_subdomain")
        ) == ["metadata.namespace"]

    @pytest.mark.parametrize(
        "labels",
        [
            {"app": "web"},
            {"app.kubernetes.io/name": "web"},
            {"example.com/Some_Key.1": "Value-1.2_3"},
            {"empty": ""},
            {"k" * 63: "v" * 63},
            {"a" * 253 + "/b": "x"},
        ],
    )
    def test_valid_labels(self, labels):
        assert validate_labels(labels, "metadata.labels") == []

    @pytest.mark.parametrize(
        ("labels", "bad_value", "fragment"),
        [
            ({"-app": "x"}, "-app", "name part must consist of alphanumeric characters"),
            ({"a/b/c": "x"}, "a/b/c", "a qualified name must consist of alphanumeric characters"),
            ({"/app": "x"}, "/app", "prefix part must be non-empty"),
            ({"Example.com/app": "x"}, "Example.com/app", "prefix part a lowercase RFC 1123 subdomain"),
            ({"k" * 64: "x"}, "k" * 64, "name part must be no more than 63 characters"),
            ({"app": "v" * 64}, "v" * 64, "must be no more than 63 characters"),
            ({"app": "bad value"}, "bad value", "a valid label must be an empty string or consist of"),
            (
                {"app": "-x"},
                "-x",
                "(e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is",
            ),
        ],
    )
    def test_invalid_labels(self, labels, bad_value, fragment):
        errors = validate_object_meta({"name": "x", "labels": labels}, False, "none")
        assert errors, labels
        assert all(e.field == "metadata.labels" and e.type == "FieldValueInvalid" for e in errors)
        assert any(
            e.message.startswith(f'Invalid value: "{bad_value}": ') and fragment in e.message for e in errors
        )

    def test_annotations(self):
        ok = {"name": "x", "annotations": {"Example.com/Note": "free text with spaces"}}
        assert validate_object_meta(ok, False, "none") == []
        too_big = {"name": "x", "annotations": {"a": "x" * (256 * 1024)}}
        assert messages(validate_object_meta(too_big, False, "none")) == [
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        ]
        bad_key = {"name": "x", "annotations": {"not a key": "v"}}
        assert fields(validate_object_meta(bad_key, False, "none")) == ["metadata.annotations"]

    def test_finalizers_and_owner_references(self):
        meta = {
            "name": "x",
            "finalizers": [
                "kubernetes.io/pvc-protection",
                "no spaces allowed",
                "orphan",
                "foregroundDeletion",
            ],
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": True},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "b", "uid": "2", "controller": True},
                {"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "3"},
                {"kind": "ConfigMap", "name": "", "uid": "4"},
            ],
        }
        got = messages(validate_object_meta(meta, False, "none"))
        assert any(m.startswith('metadata.finalizers: Invalid value: "no spaces allowed"') for m in got)
        assert any("finalizer orphan and foregroundDeletion cannot be both set" in m for m in got)
        assert any(
            'Only one reference can have Controller set to true. Found "true" in references for '
            "ReplicaSet/a and ReplicaSet/b" in m
            for m in got
        )
        assert any("/v1, Kind=Event is disallowed from being an owner" in m for m in got)
        assert 'metadata.ownerReferences.apiVersion: Invalid value: "": version must not be empty' in got
        assert 'metadata.ownerReferences.name: Invalid value: "": name must not be empty' in got

    def test_update(self):
        old = {
            "name": "a",
            "namespace": "ns",
            "uid": "u1",
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "generation": 3,
        }
        assert validate_object_meta_update(dict(old, labels={"x": "y"}), old) == []
        errors = validate_object_meta_update(dict(old, uid="u2", generation=2), old)
        assert messages(errors) == [
            'metadata.uid: Invalid value: "u2": field is immutable',
            "metadata.generation: Invalid value: 2: must not be decremented",
        ]


# ---------------------------------------------------------------------------
# Quantities
# ---------------------------------------------------------------------------


class TestQuantity:
    @pytest.mark.parametrize(
        ("text", "value"),
        [
            ("100m", "0.1"),
            ("1", "1"),
            ("1Gi", str(2**30)),
            ("1.5Gi", str(3 * 2**29)),
            ("512Ki", str(512 * 1024)),
            ("1e3", "1000"),
            ("1E3", "1000"),
            ("12e-1", "1.2"),
            ("2k", "2000"),
            ("3M", "3000000"),
            ("250u", "0.00025"),
            ("5n", "0.000000005"),
            ("0.5", "0.5"),
            (".5", "0.5"),
            ("-1", "-1"),
            ("+2", "2"),
            ("0.0000000001", "0.000000001"),  # rounded up to nano precision
        ],
    )
    def test_parse(self, text, value):
        assert parse_quantity(text) == Decimal(value)

    def test_parse_numbers(self):
        assert parse_quantity(2) == 2
        assert parse_quantity(0.25) == Decimal("0.25")

    @pytest.mark.parametrize("text", ["", "abc", "1.2.3", "1Ki3", "1ki", "1K", "1e", "1 Gi", "1e1.5", True])
    def test_invalid(self, text):
        with pytest.raises(ValueError):
            parse_quantity(text)

    @pytest.mark.parametrize(
        ("text", "canonical"),
        [
            ("0.5", "500m"),
            ("1.5", "1500m"),
            ("1000m", "1"),
            ("2000", "2k"),
            ("1500", "1500"),
            ("1.5Gi", "1536Mi"),
            ("1024Mi", "1Gi"),
            ("0.5Ki", "512"),
            ("128974848", "128974848"),
            ("129e6", "129e6"),
            ("100M", "100M"),
            ("1.0", "1"),
            (1, "1"),
            (0.25, "250m"),
            ("0", "0"),
            ("123456789012345678901234567890", "123456789012345678901234567890"),  # beyond 28 digits
            ("1e100", "10e99"),
        ],
    )
    def test_canonical(self, text, canonical):
        assert canonical_quantity(text) == canonical

    def test_round_to_milli(self):
        assert canonical_quantity("1n", round_to_milli=True) == "1m"
        assert canonical_quantity("1.0001", round_to_milli=True) == "1001m"


# ---------------------------------------------------------------------------
# Pods
# ---------------------------------------------------------------------------


class TestPod:
    def test_valid(self):
        assert validate_kind("", "Pod", defaulted("", "Pod", pod()), None) == []
        assert validate_kind("", "Pod", pod(), None) == []  # absent defaultable fields are fine

    def test_zero_values_that_defaulting_fills_are_not_errors(self):
        p = pod()
        p["spec"].update(restartPolicy="", dnsPolicy="", volumes=[{"name": "scratch"}])
        p["spec"]["containers"][0].update(
            imagePullPolicy="", volumeMounts=[{"name": "scratch", "mountPath": "/s"}]
        )
        p["spec"]["containers"][0]["ports"][0]["protocol"] = ""
        assert validate_kind("", "Pod", p, None) == []
        assert (
            validate_kind("", "Service", service(type="", ports=[{"port": 80, "targetPort": 0}]), None) == []
        )

    def test_containers_required(self):
        p = pod()
        p["spec"]["containers"] = []
        assert messages(validate_kind("", "Pod", p, None)) == ["spec.containers: Required value"]

    def test_container_names(self):
        p = pod()
        p["spec"]["containers"].append({"name": "migrate", "image": "x"})  # clashes with the init container
        p["spec"]["containers"].append({"name": "Bad_Name", "image": "x"})
        p["spec"]["containers"].append({"name": "", "image": "x"})
        got = messages(validate_kind("", "Pod", p, None))
        assert 'spec.containers[1].name: Duplicate value: "migrate"' in got
        assert any(
            m.startswith('spec.containers[2].name: Invalid value: "Bad_Name": a lowercase RFC 1123 label')
            for m in got
        )
        assert "spec.containers[3].name: Required value" in got

    def test_image_required(self):
        p = pod()
        p["spec"]["containers"][0]["image"] = ""
        assert messages(validate_kind("", "Pod", p, None)) == ["spec.containers[0].image: Required value"]

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            (
                "restartPolicy",
                "Sometimes",
                'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", '
                '"OnFailure", "Never"',
            ),
            (
                "dnsPolicy",
                "Google",
                'spec.dnsPolicy: Unsupported value: "Google": supported values: "ClusterFirstWithHostNet", '
                '"ClusterFirst", "Default", "None"',
            ),
            (
                "activeDeadlineSeconds",
                0,
                "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
            ),
        ],
    )
    def test_spec_enums(self, field, value, message):
        p = pod()
        p["spec"][field] = value
        assert messages(validate_kind("", "Pod", p, None)) == [message]

    def test_container_details(self):
        p = pod()
        c = p["spec"]["containers"][0]
        c["imagePullPolicy"] = "Sometimes"
        c["ports"] = [{"containerPort": 70000, "protocol": "HTTP", "name": "web--port"}]
        c["volumeMounts"] = [{"name": "missing", "mountPath": "/data"}]
        c["resources"] = {"requests": {"cpu": "2"}, "limits": {"cpu": "1", "gpu": "1"}}
        c["livenessProbe"] = {"exec": {"command": ["true"]}, "successThreshold": 2}
        got = messages(validate_kind("", "Pod", p, None))
        assert got == [
            'spec.containers[0].imagePullPolicy: Unsupported value: "Sometimes": supported values: '
            '"Always", "IfNotPresent", "Never"',
            'spec.containers[0].ports[0].name: Invalid value: "web--port": must not contain '
            "consecutive hyphens",
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and "
            "65535, inclusive",
            'spec.containers[0].ports[0].protocol: Unsupported value: "HTTP": supported values: '
            '"SCTP", "TCP", "UDP"',
            'spec.containers[0].volumeMounts[0].name: Not found: "missing"',
            'spec.containers[0].resources.limits[gpu]: Invalid value: "gpu": must be a standard '
            "resource for containers",
            'spec.containers[0].resources.requests[cpu]: Invalid value: "2": must be less than or '
            "equal to cpu limit of 1",
            "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
        ]

    def test_tolerations(self):
        p = pod()
        p["spec"]["tolerations"] = [
            {"operator": "Equal", "value": "x"},
            {"key": "k", "operator": "Exists", "value": "v"},
            {"key": "k", "operator": "Equal", "effect": "NoSchedule", "tolerationSeconds": 5},
            {"key": "k", "operator": "Maybe", "effect": "Sometimes"},
        ]
        got = messages(validate_kind("", "Pod", p, None))
        assert got[0] == (
            'spec.tolerations[0].operator: Invalid value: "Equal": operator must be Exists when '
            "`key` is empty, "
            'which means "match all values and all keys"'
        )
        assert "value must be empty when `operator` is 'Exists'" in got[1]
        assert got[2] == (
            "spec.tolerations[2].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when "
            "`tolerationSeconds` is set"
        )
        assert (
            got[3]
            == 'spec.tolerations[3].operator: Unsupported value: "Maybe": supported values: "Equal", "Exists"'
        )
        assert got[4].startswith('spec.tolerations[3].effect: Unsupported value: "Sometimes"')

    def test_update_allows_image_deadline_and_new_tolerations(self):
        old = defaulted("", "Pod", pod())
        new = copy.deepcopy(old)
        new["spec"]["containers"][0]["image"] = "registry.example.com/app:2.2"
        new["spec"]["initContainers"][0]["image"] = "registry.example.com/app:2.2"
        new["spec"]["activeDeadlineSeconds"] = 600
        new["spec"]["tolerations"].append({"key": "gpu", "operator": "Exists", "effect": "NoSchedule"})
        new["spec"]["tolerations"][0]["tolerationSeconds"] = 60
        new["metadata"]["labels"]["extra"] = "yes"
        assert validate_kind("", "Pod", new, old) == []

    def test_update_rejects_other_spec_changes(self):
        old = defaulted("", "Pod", pod())
        new = copy.deepcopy(old)
        new["spec"]["containers"][0]["env"] = [{"name": "X", "value": "1"}]
        new["spec"]["nodeName"] = "node-2"
        errors = validate_kind("", "Pod", new, old)
        assert len(errors) == 1
        assert errors[0].type == "FieldValueForbidden"
        assert errors[0].field == "spec"
        assert errors[0].message.startswith(
            "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
            "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
            "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
            "(allow it to be set to 1 if it was previously negative)\n"
        )
        assert '+ \tnodeName: "node-2",' in errors[0].message

    def test_update_rejects_container_count_and_toleration_changes(self):
        old = defaulted("", "Pod", pod())
        new = copy.deepcopy(old)
        new["spec"]["containers"].append({"name": "side", "image": "x"})
        assert messages(validate_kind("", "Pod", new, old)) == [
            "spec.containers: Forbidden: pod updates may not add or remove containers"
        ]
        new = copy.deepcopy(old)
        new["spec"]["tolerations"][0]["effect"] = "NoSchedule"
        assert (
            "spec.tolerations: Forbidden: existing toleration can not be modified except its "
            "tolerationSeconds" in (messages(validate_kind("", "Pod", new, old)))
        )

    def test_update_active_deadline_may_only_shrink(self):
        old = defaulted("", "Pod", pod())
        old["spec"]["activeDeadlineSeconds"] = 100
        new = copy.deepcopy(old)
        new["spec"]["activeDeadlineSeconds"] = 200
        assert messages(validate_kind("", "Pod", new, old)) == [
            "spec.activeDeadlineSeconds: Invalid value: 200: must be less than or equal to previous value"
        ]
        del new["spec"]["activeDeadlineSeconds"]
        assert messages(validate_kind("", "Pod", new, old)) == [
            "spec.activeDeadlineSeconds: Invalid value: null: must not update from a positive "
            "integer to nil value"
        ]

    def test_update_grace_period_negative_to_one(self):
        old = defaulted("", "Pod", pod())
        old["spec"]["terminationGracePeriodSeconds"] = -1
        new = copy.deepcopy(old)
        new["spec"]["terminationGracePeriodSeconds"] = 1
        assert validate_kind("", "Pod", new, old) == []
        new["spec"]["terminationGracePeriodSeconds"] = 5
        assert fields(validate_kind("", "Pod", new, old)) == ["spec"]


# ---------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------


class TestDeployment:
    def test_valid(self):
        assert validate_kind("apps", "Deployment", deployment(), None) == []
        assert validate_kind("apps", "Deployment", defaulted("apps", "Deployment", deployment()), None) == []

    def test_selector_must_match_template(self):
        d = deployment()
        d["spec"]["selector"] = {"matchLabels": {"app": "api"}}
        assert messages(validate_kind("apps", "Deployment", d, None)) == [
            'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web", "version":"v1"}: '
            "`selector` does not match template `labels`"
        ]

    def test_selector_expressions(self):
        d = deployment()
        d["spec"]["selector"] = {
            "matchExpressions": [
                {"key": "app", "operator": "In", "values": ["web", "api"]},
                {"key": "canary", "operator": "DoesNotExist"},
            ]
        }
        assert validate_kind("apps", "Deployment", d, None) == []
        d["spec"]["selector"]["matchExpressions"].append(
            {"key": "version", "operator": "NotIn", "values": ["v1"]}
        )
        assert fields(validate_kind("apps", "Deployment", d, None)) == ["spec.template.metadata.labels"]
        d["spec"]["selector"] = {"matchExpressions": [{"key": "app", "operator": "In"}]}
        assert (
            "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is "
            "'In' or 'NotIn'" in messages(validate_kind("apps", "Deployment", d, None))
        )

    def test_empty_selector(self):
        d = deployment()
        d["spec"]["selector"] = {}
        assert messages(validate_kind("apps", "Deployment", d, None)) == [
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
            "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"
        ]

    @pytest.mark.parametrize(
        ("mutate", "message"),
        [
            (
                lambda s: s.__setitem__("replicas", -1),
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                lambda s: s["strategy"]["rollingUpdate"].update(maxSurge=0, maxUnavailable="0%"),
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0%: may not be 0 when "
                "`maxSurge` is 0",
            ),
            (
                lambda s: s["strategy"]["rollingUpdate"].update(maxUnavailable="110%"),
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 110%: must not be "
                "greater than 100%",
            ),
            (
                lambda s: s["strategy"]["rollingUpdate"].update(maxSurge="lots"),
                "spec.strategy.rollingUpdate.maxSurge: Invalid value: lots: a valid percent string "
                "must be a numeric "
                "string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation "
                "is '[0-9]+%')",
            ),
            (
                lambda s: s.__setitem__("strategy", {"type": "Recreate", "rollingUpdate": {}}),
                "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` "
                "is 'Recreate'",
            ),
            (
                lambda s: s["template"]["spec"].__setitem__("restartPolicy", "Never"),
                'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"',
            ),
            (
                lambda s: s.update(progressDeadlineSeconds=10, minReadySeconds=10),
                "spec.progressDeadlineSeconds: Invalid value: 10: must be greater than minReadySeconds",
            ),
            (
                lambda s: s["template"]["metadata"]["labels"].__setitem__("bad key!", "x"),
                'spec.template.metadata.labels: Invalid value: "bad key!": name part must consist of '
                "alphanumeric "
                "characters, '-', '_' or '.', and must start and end with an alphanumeric character "
                "(e.g. 'MyName', "
                " or 'my.name',  or '123-abc', regex used for validation is "
                "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
            ),
        ],
    )
    def test_spec_rules(self, mutate, message):
        d = deployment()
        mutate(d["spec"])
        assert messages(validate_kind("apps", "Deployment", d, None)) == [message]

    def test_selector_immutable(self):
        old = served_deployment()
        new = copy.deepcopy(old)
        new["spec"]["replicas"] = 10
        new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
        assert validate_kind("apps", "Deployment", new, old) == []
        new["spec"]["selector"] = {"matchLabels": {"app": "web", "version": "v1"}}
        errors = validate_kind("apps", "Deployment", new, old)
        assert messages(errors) == [
            'spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web", '
            '"version":"v1"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable'
        ]
        assert errors[0].type == "FieldValueInvalid"


class TestOtherWorkloads:
    def sts(self) -> dict:
        return {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {
                "serviceName": "",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {
                    "metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "pg", "image": "postgres:16"}]},
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "1Gi"}},
                        },
                    }
                ],
            },
        }

    def test_statefulset(self):
        sts = defaulted("apps", "StatefulSet", self.sts())
        assert validate_kind("apps", "StatefulSet", sts, None) == []  # empty serviceName is fine
        new = copy.deepcopy(sts)
        new["spec"]["replicas"] = 5
        new["spec"]["template"]["spec"]["containers"][0]["image"] = "postgres:17"
        new["spec"]["updateStrategy"] = {"type": "OnDelete"}
        assert validate_kind("apps", "StatefulSet", new, sts) == []
        for key, value in (
            ("volumeClaimTemplates", []),
            ("podManagementPolicy", "Parallel"),
            ("selector", {"matchLabels": {"app": "db", "x": "y"}}),
        ):
            new = copy.deepcopy(sts)
            new["spec"][key] = value
            got = validate_kind("apps", "StatefulSet", new, sts)
            assert any(
                e.field == "spec"
                and e.message.startswith("Forbidden: updates to statefulset spec for fields other than")
                for e in got
            ), key

    def test_statefulset_policy(self):
        sts = self.sts()
        sts["spec"]["podManagementPolicy"] = "Random"
        assert messages(validate_kind("apps", "StatefulSet", sts, None)) == [
            "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'"
        ]

    def test_daemonset(self):
        ds = {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "kube-system"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {
                    "metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "a", "image": "agent:1"}]},
                },
            },
        }
        ds = defaulted("apps", "DaemonSet", ds)
        assert validate_kind("apps", "DaemonSet", ds, None) == []
        bad = copy.deepcopy(ds)
        bad["spec"]["updateStrategy"]["rollingUpdate"] = {"maxUnavailable": 0, "maxSurge": 0}
        assert messages(validate_kind("apps", "DaemonSet", bad, None)) == [
            "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"
        ]
        new = copy.deepcopy(ds)
        new["spec"]["selector"] = {"matchLabels": {"app": "other"}}
        new["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
        assert [
            e.message.endswith("field is immutable") for e in validate_kind("apps", "DaemonSet", new, ds)
        ] == [True]

    def test_replicaset(self):
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "rs", "namespace": "default"},
            "spec": {
                "replicas": -2,
                "selector": {"matchLabels": {"app": "a"}},
                "template": {
                    "metadata": {"labels": {"app": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                },
            },
        }
        assert fields(validate_kind("apps", "ReplicaSet", rs, None)) == [
            "spec.replicas",
            "spec.template.metadata.labels",
        ]

    def job(self) -> dict:
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default"},
            "spec": {
                "template": {
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl:5.34"}]}
                }
            },
        }

    def test_job(self):
        job = defaulted("batch", "Job", self.job())
        assert validate_kind("batch", "Job", job, None) == []
        bad = self.job()
        del bad["spec"]["template"]["spec"]["restartPolicy"]
        bad = defaulted("batch", "Job", bad)  # the pod template defaults to Always
        bad["spec"]["completions"] = -1
        assert messages(validate_kind("batch", "Job", bad, None)) == [
            "spec.completions: Invalid value: -1: must be greater than or equal to 0",
            'spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: '
            '"OnFailure", "Never"',
        ]

    def test_job_update(self):
        job = defaulted("batch", "Job", self.job())
        job["spec"]["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}
        job["spec"]["template"]["metadata"] = {"labels": {"batch.kubernetes.io/controller-uid": "u1"}}
        new = copy.deepcopy(job)
        new["spec"]["parallelism"] = 3
        new["spec"]["suspend"] = True
        assert validate_kind("batch", "Job", new, job) == []
        new["spec"]["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": "u2"}}
        new["spec"]["template"]["spec"]["containers"][0]["image"] = "perl:5.36"
        assert fields(validate_kind("batch", "Job", new, job)) == [
            "spec.template.metadata.labels",
            "spec.selector",
            "spec.template",
        ]

    def cronjob(self) -> dict:
        return {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "nightly", "namespace": "default"},
            "spec": {
                "schedule": "0 3 * * *",
                "jobTemplate": {
                    "spec": {
                        "template": {
                            "spec": {
                                "restartPolicy": "OnFailure",
                                "containers": [{"name": "c", "image": "busybox"}],
                            }
                        }
                    }
                },
            },
        }

    def test_cronjob(self):
        cj = defaulted("batch", "CronJob", self.cronjob())
        assert validate_kind("batch", "CronJob", cj, None) == []
        cj["spec"]["schedule"] = "61 * * * *"
        cj["spec"]["concurrencyPolicy"] = "Sometimes"
        cj["metadata"]["name"] = "x" * 53
        assert messages(validate_kind("batch", "CronJob", cj, None)) == [
            'metadata.name: Invalid value: "' + "x" * 53 + '": must be no more than 52 characters',
            'spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61',
            'spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", '
            '"Forbid", "Replace"',
        ]
        cj = self.cronjob()
        cj["spec"]["schedule"] = ""
        assert messages(validate_kind("batch", "CronJob", cj, None)) == ["spec.schedule: Required value"]
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = "Always"
        assert "spec.jobTemplate.spec.template.spec.restartPolicy" in fields(
            validate_kind("batch", "CronJob", cj, None)
        )

    @pytest.mark.parametrize(
        ("schedule", "error"),
        [
            ("*/5 * * * *", None),
            ("0 0 1,15 * mon-fri", None),
            ("0 0 * JAN,jul SUN", None),
            ("@daily", None),
            ("@every 1h30m", None),
            ("5 4 * * ?", None),
            ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
            ("0 24 * * *", "end of range (24) above maximum (23): 24"),
            ("0 0 0 * *", "beginning of range (0) below minimum (1): 0"),
            ("x * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
            ("*/0 * * * *", "step of range should be a positive number: */0"),
            ("@fortnightly", "unrecognized descriptor: @fortnightly"),
            ("CRON_TZ=UTC 0 0 * * *", "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
        ],
    )
    def test_cron_schedules(self, schedule, error):
        assert validate_cron_schedule(schedule) == ([error] if error else [])


# ---------------------------------------------------------------------------
# Services
# ---------------------------------------------------------------------------


def service(**spec) -> dict:
    base = {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    base.update(spec)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": base,
    }


class TestService:
    def test_valid(self):
        assert validate_kind("", "Service", service(), None) == []
        assert validate_kind("", "Service", defaulted("", "Service", service()), None) == []
        assert validate_kind("", "Service", service(clusterIP="None", ports=[]), None) == []  # headless
        ext = service(type="ExternalName", externalName="db.example.com.", ports=[])
        assert validate_kind("", "Service", defaulted("", "Service", ext), None) == []

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ({"ports": []}, "spec.ports: Required value"),
            (
                {"type": "Magic"},
                'spec.type: Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", '
                '"LoadBalancer", "NodePort"',
            ),
            (
                {"ports": [{"port": 0}]},
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            ),
            (
                {"ports": [{"port": 80, "protocol": "HTTP"}]},
                'spec.ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"',
            ),
            ({"ports": [{"name": "a", "port": 80}, {"port": 81}]}, "spec.ports[1].name: Required value"),
            (
                {"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]},
                'spec.ports[1].name: Duplicate value: "a"',
            ),
            (
                {"ports": [{"port": 80, "nodePort": 30080}]},
                "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
            ),
            (
                {"type": "NodePort", "ports": [{"port": 80, "nodePort": 8080}]},
                "spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. "
                "The range of valid ports is 30000-32767",
            ),
            ({"type": "ExternalName", "ports": []}, "spec.externalName: Required value"),
            (
                {"ports": [{"port": 80, "targetPort": 70000}]},
                "spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            ),
            (
                {"clusterIP": "10.0.0.300"},
                'spec.clusterIP: Invalid value: "10.0.0.300": must be a valid IP address, (e.g. '
                "10.9.8.7 or 2001:db8::ffff)",
            ),
        ],
    )
    def test_rules(self, spec, message):
        assert messages(validate_kind("", "Service", service(**spec), None)) == [message]

    def test_duplicate_port(self):
        svc = service(ports=[{"name": "a", "port": 80}, {"name": "b", "port": 80}])
        (err,) = validate_kind("", "Service", svc, None)
        assert (err.field, err.type) == ("spec.ports[1]", "FieldValueDuplicate")

    def test_cluster_ip_immutable(self):
        old = defaulted("", "Service", service(clusterIP="10.96.0.10", clusterIPs=["10.96.0.10"]))
        new = copy.deepcopy(old)
        new["spec"]["ports"][0]["port"] = 8080
        assert validate_kind("", "Service", new, old) == []
        new["spec"]["clusterIP"] = "10.96.0.11"
        assert messages(validate_kind("", "Service", new, old)) == [
            'spec.clusterIP: Invalid value: "10.96.0.11": field is immutable'
        ]
        new["spec"]["clusterIPs"] = ["10.96.0.11"]
        assert messages(validate_kind("", "Service", new, old)) == [
            'spec.clusterIPs[0]: Invalid value: []string{"10.96.0.11"}: may not change once set'
        ]

    def test_cluster_ip_may_change_to_and_from_external_name(self):
        old = defaulted("", "Service", service(clusterIP="10.96.0.10", clusterIPs=["10.96.0.10"]))
        new = service(type="ExternalName", externalName="example.com", ports=[])
        assert validate_kind("", "Service", new, old) == []
        back = defaulted("", "Service", service(clusterIP="10.96.0.99"))
        assert validate_kind("", "Service", back, new) == []


# ---------------------------------------------------------------------------
# Config and cluster objects
# ---------------------------------------------------------------------------


class TestConfig:
    def test_configmap_keys_and_size(self):
        cm = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c"},
            "data": {"app.properties": "x=1", "KEY_1": "", "bad/key": "v", "..hidden": "v"},
        }
        got = messages(validate_kind("", "ConfigMap", cm, None))
        assert got == [
            'data[bad/key]: Invalid value: "bad/key": a valid config key must consist of '
            "alphanumeric characters, "
            "'-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
            "'[-._a-zA-Z0-9]+')",
            "data[..hidden]: Invalid value: \"..hidden\": must not start with '..'",
        ]
        big = {"data": {"a": "x" * (1024 * 1024), "b": "y"}}
        assert messages(validate_kind("", "ConfigMap", big, None)) == [
            "Too long: may not be more than 1048576 bytes"
        ]

    def test_immutable_configmap(self):
        old = {"data": {"a": "1"}, "immutable": True}
        assert validate_kind("", "ConfigMap", copy.deepcopy(old), old) == []
        assert messages(validate_kind("", "ConfigMap", {"data": {"a": "2"}, "immutable": True}, old)) == [
            "data: Forbidden: field is immutable when `immutable` is set"
        ]
        assert messages(validate_kind("", "ConfigMap", {"data": {"a": "1"}}, old)) == [
            "immutable: Forbidden: field is immutable when `immutable` is set"
        ]

    def test_secret(self):
        old = defaulted("", "Secret", {"metadata": {"name": "s"}, "data": {"token": "dG9rZW4="}})
        assert validate_kind("", "Secret", old, None) == []
        new = copy.deepcopy(old)
        new["type"] = "kubernetes.io/tls"
        assert messages(validate_kind("", "Secret", new, old)) == [
            "data[tls.crt]: Required value",
            "data[tls.key]: Required value",
            'type: Invalid value: "kubernetes.io/tls": field is immutable',
        ]
        frozen = dict(old, immutable=True)
        changed = dict(frozen, data={"token": "b3RoZXI="})
        assert messages(validate_kind("", "Secret", changed, frozen)) == [
            "data: Forbidden: field is immutable when `immutable` is set"
        ]

    def test_namespace(self):
        ns = defaulted("", "Namespace", {"metadata": {"name": "team-a"}})
        assert validate_kind("", "Namespace", ns, None) == []
        assert validate_object_meta(ns["metadata"], False, name_rule_for("", "Namespace")) == []
        assert fields(validate_object_meta({"name": "team.a"}, False, name_rule_for("", "Namespace"))) == [
            "metadata.name"
        ]
        assert messages(validate_kind("", "Namespace", {"metadata": {"name": "team.a"}}, None)) == [
            'metadata.name: Invalid value: "team.a": a lowercase RFC 1123 label must consist of lower case '
            "alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. "
            "'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        ]
        ns["spec"]["finalizers"].append("custom")
        assert fields(validate_kind("", "Namespace", ns, None)) == ["spec.finalizers"]

    def test_node(self):
        node = {
            "metadata": {"name": "n1"},
            "spec": {
                "podCIDRs": ["10.244.1.0/24"],
                "providerID": "kind://n1",
                "taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}],
            },
        }
        assert validate_kind("", "Node", node, None) == []
        bad = copy.deepcopy(node)
        bad["spec"]["taints"] += [
            {"key": "dedicated", "effect": "NoSchedule"},
            {"key": "x", "effect": "Never"},
        ]
        bad["spec"]["podCIDRs"] = ["10.244.2.0/24"]
        got = messages(validate_kind("", "Node", bad, node))
        assert got[0].startswith("spec.taints[1]: Duplicate value:")
        assert got[1] == (
            'spec.taints[2].effect: Unsupported value: "Never": supported values: "NoSchedule", '
            '"PreferNoSchedule", "NoExecute"'
        )
        assert (
            got[2] == 'spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid'
        )

    def test_lease(self):
        lease = {"spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "leaseTransitions": 0}}
        assert validate_kind("coordination.k8s.io", "Lease", lease, None) == []
        lease["spec"]["leaseDurationSeconds"] = 0
        assert messages(validate_kind("coordination.k8s.io", "Lease", lease, None)) == [
            "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"
        ]

    def test_priority_class(self):
        group = "scheduling.k8s.io"
        pc = defaulted(group, "PriorityClass", {"metadata": {"name": "high"}, "value": 1_000_000})
        assert validate_kind(group, "PriorityClass", pc, None) == []
        assert messages(validate_kind(group, "PriorityClass", dict(pc, value=2_000_000_000), None)) == [
            "value: Forbidden: maximum allowed value of a user defined priority is 1000000000"
        ]
        system = {"metadata": {"name": "system-node-critical"}, "value": 2_000_001_000}
        assert validate_kind(group, "PriorityClass", system, None) == []
        assert fields(
            validate_kind(group, "PriorityClass", {"metadata": {"name": "system-mine"}, "value": 1}, None)
        ) == ["metadata.name"]
        assert messages(validate_kind(group, "PriorityClass", dict(pc, value=5), pc)) == [
            "value: Forbidden: may not be changed in an update."
        ]

    def test_rbac(self):
        group = "rbac.authorization.k8s.io"
        role = {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}
        assert validate_kind(group, "Role", role, None) == []
        bad = {
            "rules": [
                {"apiGroups": [""], "resources": ["pods"]},
                {"nonResourceURLs": ["/healthz"], "verbs": ["get"]},
            ]
        }
        assert messages(validate_kind(group, "Role", bad, None)) == [
            "rules[0].verbs: Required value: verbs must contain at least one value",
            'rules[1].nonResourceURLs: Invalid value: []string{"/healthz"}: namespaced rules cannot apply to '
            "non-resource URLs",
        ]
        assert (
            validate_kind(group, "ClusterRole", bad["rules"][1:] and {"rules": bad["rules"][1:]}, None) == []
        )
        binding = defaulted(
            group,
            "RoleBinding",
            {
                "roleRef": {"kind": "ClusterRole", "name": "view"},
                "subjects": [
                    {"kind": "ServiceAccount", "name": "default", "namespace": "default"},
                    {"kind": "User", "name": "alice"},
                ],
            },
        )
        assert validate_kind(group, "RoleBinding", binding, None) == []
        changed = copy.deepcopy(binding)
        changed["subjects"].append({"kind": "Group", "name": "devs", "apiGroup": group})
        assert validate_kind(group, "RoleBinding", changed, binding) == []
        changed["roleRef"]["name"] = "edit"
        assert messages(validate_kind(group, "RoleBinding", changed, binding)) == [
            'roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", '
            'Name:"edit"}: cannot change roleRef'
        ]
        crb = {
            "roleRef": {"apiGroup": group, "kind": "Role", "name": "x"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa"}],
        }
        assert messages(validate_kind(group, "ClusterRoleBinding", crb, None)) == [
            'roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"',
            "subjects[0].namespace: Required value",
        ]

    def test_pdb(self):
        pdb = {"spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}}
        assert validate_kind("policy", "PodDisruptionBudget", pdb, None) == []
        pdb["spec"]["maxUnavailable"] = "10%"
        (err,) = validate_kind("policy", "PodDisruptionBudget", pdb, None)
        assert err.field == "spec"
        assert err.message.endswith(": minAvailable and maxUnavailable cannot be both set")

    def test_unknown_kinds_have_no_rules(self):
        assert validate_kind("example.com", "Widget", {"spec": {"anything": True}}, None) == []


def test_dedupe_and_str():
    a = FieldError("FieldValueRequired", "spec.x", "Required value")
    assert dedupe([a, FieldError("FieldValueRequired", "spec.x", "Required value"), a]) == [a]
    assert str(a) == "spec.x: Required value"
    assert a.as_cause() == {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.x"}


def test_validate_kind_tolerates_garbage():
    # validate_kind may see objects the schema already rejected; it must not crash.
    for group, kind in [
        ("", "Pod"),
        ("apps", "Deployment"),
        ("", "Service"),
        ("batch", "CronJob"),
        ("", "Secret"),
        ("rbac.authorization.k8s.io", "RoleBinding"),
        ("", "Node"),
    ]:
        for obj in (
            {},
            {"spec": "x"},
            {"spec": {"containers": "x", "template": [], "ports": {}, "selector": 3}},
        ):
            validate_kind(group, kind, obj, copy.deepcopy(obj))
