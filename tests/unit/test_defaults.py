"""Defaulting matches what a Kubernetes 1.32 API server returns."""

from __future__ import annotations

import copy

import pytest

from pinnace.api.defaults import apply_defaults, image_pull_policy, pod_qos_class
from pinnace.api.validation import compile_schema, validate_kind


def defaulted(group: str, kind: str, obj: dict) -> dict:
    apply_defaults(group, kind, obj)
    return obj


def minimal_pod() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "nginx", "namespace": "default"},
        "spec": {"containers": [{"name": "nginx", "image": "nginx"}]},
    }


def minimal_deployment() -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]},
            },
        },
    }


# `kubectl get pod nginx -o json` after `kubectl run nginx --image=nginx`, minus what admission
# plugins add (service account token volume and mounts, serviceAccountName, default tolerations).
EXPECTED_POD_SPEC = {
    "containers": [
        {
            "image": "nginx",
            "imagePullPolicy": "Always",
            "name": "nginx",
            "resources": {},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
        }
    ],
    "dnsPolicy": "ClusterFirst",
    "enableServiceLinks": True,
    "preemptionPolicy": "PreemptLowerPriority",
    "priority": 0,
    "restartPolicy": "Always",
    "schedulerName": "default-scheduler",
    "securityContext": {},
    "terminationGracePeriodSeconds": 30,
}

# `kubectl get deploy web -o json` (spec only).
EXPECTED_DEPLOYMENT_SPEC = {
    "progressDeadlineSeconds": 600,
    "replicas": 1,
    "revisionHistoryLimit": 10,
    "selector": {"matchLabels": {"app": "web"}},
    "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}, "type": "RollingUpdate"},
    "template": {
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "containers": [
                {
                    "image": "nginx:1.25",
                    "imagePullPolicy": "IfNotPresent",
                    "name": "nginx",
                    "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                }
            ],
            "dnsPolicy": "ClusterFirst",
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "terminationGracePeriodSeconds": 30,
        },
    },
}


class TestPod:
    def test_minimal_pod_matches_kubernetes(self):
        pod = defaulted("", "Pod", minimal_pod())
        spec = pod["spec"]
        for key, value in EXPECTED_POD_SPEC.items():
            assert spec[key] == value, key
        assert set(spec) == set(EXPECTED_POD_SPEC)
        assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
        assert pod["metadata"] == {"name": "nginx", "namespace": "default"}

    def test_idempotent(self):
        once = defaulted("", "Pod", minimal_pod())
        twice = defaulted("", "Pod", copy.deepcopy(once))
        assert once == twice

    def test_explicit_values_kept(self):
        pod = minimal_pod()
        pod["spec"].update(
            restartPolicy="Never",
            dnsPolicy="Default",
            terminationGracePeriodSeconds=0,
            enableServiceLinks=False,
            priorityClassName="high",
        )
        pod["spec"]["containers"][0].update(
            imagePullPolicy="Never", terminationMessagePolicy="FallbackToLogsOnError"
        )
        spec = defaulted("", "Pod", pod)["spec"]
        assert spec["restartPolicy"] == "Never"
        assert spec["dnsPolicy"] == "Default"
        assert spec["terminationGracePeriodSeconds"] == 0
        assert spec["enableServiceLinks"] is False
        assert "priority" not in spec  # resolved from the named class by the server
        assert spec["containers"][0]["imagePullPolicy"] == "Never"
        assert spec["containers"][0]["terminationMessagePolicy"] == "FallbackToLogsOnError"

    def test_existing_status_kept(self):
        pod = minimal_pod()
        pod["status"] = {"phase": "Running", "qosClass": "Burstable"}
        assert defaulted("", "Pod", pod)["status"] == {"phase": "Running", "qosClass": "Burstable"}

    def test_container_details(self):
        pod = minimal_pod()
        pod["spec"]["initContainers"] = [{"name": "init", "image": "busybox:1.36"}]
        c = pod["spec"]["containers"][0]
        c["ports"] = [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}]
        c["livenessProbe"] = {"httpGet": {"port": 80}}
        c["readinessProbe"] = {"exec": {"command": ["true"]}, "periodSeconds": 5}
        c["lifecycle"] = {"preStop": {"httpGet": {"port": 8080, "path": "/stop"}}}
        c["env"] = [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
        spec = defaulted("", "Pod", pod)["spec"]
        c = spec["containers"][0]
        assert c["ports"] == [
            {"containerPort": 80, "protocol": "TCP"},
            {"containerPort": 53, "protocol": "UDP"},
        ]
        assert c["livenessProbe"] == {
            "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
            "timeoutSeconds": 1,
            "periodSeconds": 10,
            "successThreshold": 1,
            "failureThreshold": 3,
        }
        assert c["readinessProbe"]["periodSeconds"] == 5
        assert c["readinessProbe"]["timeoutSeconds"] == 1
        assert c["lifecycle"]["preStop"]["httpGet"] == {"port": 8080, "path": "/stop", "scheme": "HTTP"}
        assert c["env"][0]["valueFrom"]["fieldRef"] == {"fieldPath": "spec.nodeName", "apiVersion": "v1"}
        init = spec["initContainers"][0]
        assert init["imagePullPolicy"] == "IfNotPresent"
        assert init["terminationMessagePath"] == "/dev/termination-log"

    def test_host_network_ports(self):
        pod = minimal_pod()
        pod["spec"]["hostNetwork"] = True
        pod["spec"]["containers"][0]["ports"] = [{"containerPort": 9100}]
        assert defaulted("", "Pod", pod)["spec"]["containers"][0]["ports"] == [
            {"containerPort": 9100, "protocol": "TCP", "hostPort": 9100}
        ]

    def test_volumes(self):
        pod = minimal_pod()
        pod["spec"]["volumes"] = [
            {"name": "scratch"},
            {"name": "cfg", "configMap": {"name": "app"}},
            {"name": "creds", "secret": {"secretName": "app", "defaultMode": 256}},
            {"name": "host", "hostPath": {"path": "/var/log"}},
            {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
            {
                "name": "info",
                "downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]},
            },
        ]
        volumes = defaulted("", "Pod", pod)["spec"]["volumes"]
        assert volumes == [
            {"name": "scratch", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "app", "defaultMode": 420}},
            {"name": "creds", "secret": {"secretName": "app", "defaultMode": 256}},
            {"name": "host", "hostPath": {"path": "/var/log", "type": ""}},
            {
                "name": "token",
                "projected": {
                    "sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}],
                    "defaultMode": 420,
                },
            },
            {
                "name": "info",
                "downwardAPI": {
                    "items": [
                        {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace", "apiVersion": "v1"}}
                    ],
                    "defaultMode": 420,
                },
            },
        ]

    def test_requests_default_to_limits_and_quantities_are_canonical(self):
        pod = minimal_pod()
        pod["spec"]["containers"][0]["resources"] = {"limits": {"cpu": 0.5, "memory": "1.5Gi"}}
        pod = defaulted("", "Pod", pod)
        assert pod["spec"]["containers"][0]["resources"] == {
            "limits": {"cpu": "500m", "memory": "1536Mi"},
            "requests": {"cpu": "500m", "memory": "1536Mi"},
        }
        assert pod["status"]["qosClass"] == "Guaranteed"

    def test_tolerations_untouched(self):
        pod = minimal_pod()
        tolerations = [{"key": "k", "operator": "Exists"}]
        pod["spec"]["tolerations"] = copy.deepcopy(tolerations)
        assert defaulted("", "Pod", pod)["spec"]["tolerations"] == tolerations

    def test_garbage_does_not_crash(self):
        for obj in (
            {},
            {"spec": "x"},
            {"spec": {"containers": "x", "volumes": [1, None]}},
            {"spec": {"containers": [3], "template": {"metadata": "x"}}},
        ):
            for group, kind in (
                ("apps", "Deployment"),
                ("", "Service"),
                ("batch", "Job"),
                ("", "ReplicationController"),
                ("batch", "CronJob"),
                ("apps", "StatefulSet"),
            ):
                apply_defaults(group, kind, copy.deepcopy(obj))
            apply_defaults("", "Pod", obj)


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("docker.io/library/nginx", "Always"),
        ("registry.example.com:5000/team/app", "Always"),
        ("registry.example.com:5000/team/app:v2", "IfNotPresent"),
        ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
        ("nginx:latest@sha256:" + "a" * 64, "Always"),
        ("localhost/app:dev", "IfNotPresent"),
        ("Nginx", "IfNotPresent"),  # not a valid reference: Kubernetes falls back to IfNotPresent
        ("", "IfNotPresent"),
    ],
)
def test_image_pull_policy(image, policy):
    assert image_pull_policy(image) == policy


@pytest.mark.parametrize(
    ("resources", "qos"),
    [
        ([{}], "BestEffort"),
        ([{"requests": {"cpu": "0"}}], "BestEffort"),
        ([{"requests": {"cpu": "100m"}}], "Burstable"),
        (
            [{"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}],
            "Guaranteed",
        ),
        (
            [{"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1024Mi"}}],
            "Guaranteed",
        ),
        (
            [{"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}}],
            "Burstable",
        ),
        ([{"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}], "Burstable"),
        ([{"limits": {"cpu": "1", "memory": "1Gi"}}, {}], "Burstable"),
        (
            [
                {
                    "limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"},
                    "requests": {"cpu": "1", "memory": "1Gi"},
                }
            ],
            "Guaranteed",
        ),
    ],
)
def test_qos_class(resources, qos):
    pod = {"spec": {"containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(resources)]}}
    assert pod_qos_class(pod) == qos


class TestWorkloads:
    def test_minimal_deployment_matches_kubernetes(self):
        spec = defaulted("apps", "Deployment", minimal_deployment())["spec"]
        for key, value in EXPECTED_DEPLOYMENT_SPEC.items():
            assert spec[key] == value, key
        assert set(spec) == set(EXPECTED_DEPLOYMENT_SPEC)

    def test_deployment_template_gets_no_pod_only_defaults(self):
        d = minimal_deployment()
        d["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1"}}
        d["spec"]["template"]["spec"]["hostNetwork"] = True
        d["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 80}]
        tspec = defaulted("apps", "Deployment", d)["spec"]["template"]["spec"]
        assert tspec["containers"][0]["resources"] == {"limits": {"cpu": "1"}}
        assert tspec["containers"][0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
        for key in ("enableServiceLinks", "priority", "preemptionPolicy"):
            assert key not in tspec
        assert "status" not in d

    def test_deployment_keeps_explicit_strategy(self):
        d = minimal_deployment()
        d["spec"].update(replicas=0, strategy={"type": "Recreate"}, revisionHistoryLimit=0)
        spec = defaulted("apps", "Deployment", d)["spec"]
        assert spec["replicas"] == 0
        assert spec["strategy"] == {"type": "Recreate"}
        assert spec["revisionHistoryLimit"] == 0
        d = minimal_deployment()
        d["spec"]["strategy"] = {"rollingUpdate": {"maxSurge": 0}}
        assert defaulted("apps", "Deployment", d)["spec"]["strategy"] == {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "25%"},
        }

    def test_replicaset(self):
        rs = {
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i:1"}]},
                },
            }
        }
        spec = defaulted("apps", "ReplicaSet", rs)["spec"]
        assert spec["replicas"] == 1
        assert spec["template"]["spec"]["restartPolicy"] == "Always"

    def test_statefulset(self):
        sts = {
            "spec": {
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {
                    "metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "db", "image": "pg:16"}]},
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
            }
        }
        spec = defaulted("apps", "StatefulSet", sts)["spec"]
        assert spec["replicas"] == 1
        assert spec["podManagementPolicy"] == "OrderedReady"
        assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
        assert spec["revisionHistoryLimit"] == 10
        assert spec["persistentVolumeClaimRetentionPolicy"] == {
            "whenDeleted": "Retain",
            "whenScaled": "Retain",
        }
        assert "minReadySeconds" not in spec  # int32 zero with omitempty: never serialised
        assert spec["volumeClaimTemplates"][0]["spec"]["volumeMode"] == "Filesystem"
        assert spec["volumeClaimTemplates"][0]["status"] == {"phase": "Pending"}
        assert spec["template"]["spec"]["schedulerName"] == "default-scheduler"

    def test_statefulset_on_delete_has_no_rolling_update(self):
        sts = {"spec": {"updateStrategy": {"type": "OnDelete"}}}
        assert defaulted("apps", "StatefulSet", sts)["spec"]["updateStrategy"] == {"type": "OnDelete"}

    def test_daemonset(self):
        spec = defaulted("apps", "DaemonSet", {"spec": {"template": {"spec": {"containers": []}}}})["spec"]
        assert spec["updateStrategy"] == {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
        }
        assert spec["revisionHistoryLimit"] == 10

    def test_job(self):
        job = {
            "metadata": {"name": "pi"},
            "spec": {
                "template": {
                    "metadata": {"labels": {"app": "pi"}},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl"}]},
                }
            },
        }
        job = defaulted("batch", "Job", job)
        spec = job["spec"]
        assert spec["completions"] == 1
        assert spec["parallelism"] == 1
        assert spec["backoffLimit"] == 6
        assert spec["completionMode"] == "NonIndexed"
        assert spec["suspend"] is False
        assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
        assert "manualSelector" not in spec and "selector" not in spec
        assert job["metadata"]["labels"] == {"app": "pi"}  # copied from the template
        assert spec["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Always"

    def test_job_parallelism_only(self):
        spec = defaulted("batch", "Job", {"spec": {"parallelism": 5}})["spec"]
        assert spec["parallelism"] == 5
        assert "completions" not in spec  # a work queue: completions stay unset
        spec = defaulted("batch", "Job", {"spec": {"completions": 5, "backoffLimitPerIndex": 1}})["spec"]
        assert spec["parallelism"] == 1
        assert spec["backoffLimit"] == 2**31 - 1

    def test_cronjob(self):
        cj = {
            "spec": {
                "schedule": "* * * * *",
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
            }
        }
        spec = defaulted("batch", "CronJob", cj)["spec"]
        assert spec["concurrencyPolicy"] == "Allow"
        assert spec["suspend"] is False
        assert spec["successfulJobsHistoryLimit"] == 3
        assert spec["failedJobsHistoryLimit"] == 1
        job_spec = spec["jobTemplate"]["spec"]
        assert "backoffLimit" not in job_spec  # Job defaults apply to the Job, not its template
        assert job_spec["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


class TestServices:
    def test_cluster_ip(self):
        svc = {"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}
        svc = defaulted("", "Service", svc)
        assert svc["spec"] == {
            "selector": {"app": "web"},
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
        }
        assert "clusterIP" not in svc["spec"]  # allocated by the server
        assert svc["status"] == {"loadBalancer": {}}

    def test_node_port_and_load_balancer(self):
        svc = defaulted(
            "", "Service", {"spec": {"type": "NodePort", "ports": [{"port": 80, "targetPort": "http"}]}}
        )
        assert svc["spec"]["externalTrafficPolicy"] == "Cluster"
        assert svc["spec"]["ports"][0] == {"port": 80, "targetPort": "http", "protocol": "TCP"}
        assert "nodePort" not in svc["spec"]["ports"][0]
        lb = defaulted("", "Service", {"spec": {"type": "LoadBalancer", "ports": [{"port": 443}]}})
        assert lb["spec"]["allocateLoadBalancerNodePorts"] is True
        assert lb["spec"]["externalTrafficPolicy"] == "Cluster"

    def test_external_name(self):
        svc = defaulted("", "Service", {"spec": {"type": "ExternalName", "externalName": "db.example.com"}})
        for key in ("ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy", "externalTrafficPolicy"):
            assert key not in svc["spec"]

    def test_session_affinity_client_ip(self):
        svc = defaulted("", "Service", {"spec": {"sessionAffinity": "ClientIP", "ports": [{"port": 1}]}})
        assert svc["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}

    def test_headless_without_selector(self):
        svc = defaulted("", "Service", {"spec": {"clusterIP": "None", "ports": [{"port": 1}]}})
        assert svc["spec"]["ipFamilyPolicy"] == "RequireDualStack"


class TestClusterObjects:
    def test_namespace(self):
        ns = defaulted("", "Namespace", {"metadata": {"name": "team-a"}})
        assert ns == {
            "metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "team-a"}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }

    def test_secret_and_configmap(self):
        assert defaulted("", "Secret", {"data": {}})["type"] == "Opaque"
        assert defaulted("", "Secret", {"type": "kubernetes.io/tls"})["type"] == "kubernetes.io/tls"
        cm = {"data": {"a": "b"}}
        assert defaulted("", "ConfigMap", copy.deepcopy(cm)) == cm
        sa = {"metadata": {"name": "default"}}
        assert defaulted("", "ServiceAccount", copy.deepcopy(sa)) == sa

    def test_pvc(self):
        pvc = defaulted(
            "",
            "PersistentVolumeClaim",
            {"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1.5Gi"}}}},
        )
        assert pvc["spec"]["volumeMode"] == "Filesystem"
        assert pvc["spec"]["resources"]["requests"]["storage"] == "1536Mi"
        assert pvc["status"] == {"phase": "Pending"}

    def test_node_conditions_untouched(self):
        node = {
            "status": {
                "capacity": {"cpu": "4", "memory": "8Gi"},
                "conditions": [{"type": "Ready", "status": "True"}],
            }
        }
        node = defaulted("", "Node", node)
        assert node["status"]["conditions"] == [{"type": "Ready", "status": "True"}]
        assert node["status"]["allocatable"] == {"cpu": "4", "memory": "8Gi"}

    def test_hpa(self):
        hpa = defaulted(
            "autoscaling",
            "HorizontalPodAutoscaler",
            {
                "apiVersion": "autoscaling/v2",
                "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5},
            },
        )
        assert hpa["spec"]["minReplicas"] == 1
        assert hpa["spec"]["metrics"] == [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
            }
        ]
        v1 = defaulted("autoscaling", "HorizontalPodAutoscaler", {"apiVersion": "autoscaling/v1", "spec": {}})
        assert v1["spec"] == {"minReplicas": 1}

    def test_priority_class_rbac_pdb_ingress(self):
        pc = defaulted("scheduling.k8s.io", "PriorityClass", {"value": 1000})
        assert pc["preemptionPolicy"] == "PreemptLowerPriority"
        rb = defaulted(
            "rbac.authorization.k8s.io",
            "RoleBinding",
            {
                "roleRef": {"kind": "Role", "name": "r"},
                "subjects": [
                    {"kind": "User", "name": "alice"},
                    {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"},
                ],
            },
        )
        assert rb["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
        assert rb["subjects"][0]["apiGroup"] == "rbac.authorization.k8s.io"
        assert "apiGroup" not in rb["subjects"][1]
        pdb = {"spec": {"minAvailable": 1}}
        assert defaulted("policy", "PodDisruptionBudget", copy.deepcopy(pdb)) == pdb
        ing = {"spec": {"rules": [{"http": {"paths": [{"path": "/", "backend": {}}]}}]}}
        assert defaulted("networking.k8s.io", "Ingress", copy.deepcopy(ing)) == ing


@pytest.mark.parametrize(
    ("group", "kind", "definition", "obj"),
    [
        ("", "Pod", "io.k8s.api.core.v1.Pod", minimal_pod()),
        ("apps", "Deployment", "io.k8s.api.apps.v1.Deployment", minimal_deployment()),
        (
            "",
            "Service",
            "io.k8s.api.core.v1.Service",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "s"},
                "spec": {"ports": [{"port": 80}]},
            },
        ),
        ("", "Namespace", "io.k8s.api.core.v1.Namespace", {"metadata": {"name": "ns"}}),
        (
            "batch",
            "CronJob",
            "io.k8s.api.batch.v1.CronJob",
            {
                "metadata": {"name": "c"},
                "spec": {
                    "schedule": "@daily",
                    "jobTemplate": {
                        "spec": {
                            "template": {
                                "spec": {
                                    "restartPolicy": "Never",
                                    "containers": [{"name": "c", "image": "i"}],
                                }
                            }
                        }
                    },
                },
            },
        ),
    ],
)
def test_defaulted_objects_are_valid(group, kind, definition, obj):
    obj = defaulted(group, kind, obj)
    assert compile_schema(definition)(obj) == ([], [])
    assert validate_kind(group, kind, obj, None) == []
