"""The real kubectl against a real ``pinnace`` server process.

Runs for the default kubectl and kubectl 1.27 on SQLite (``pinnace server``),
and for the default kubectl on etcd (``pinnace apiserver --storage etcd://``).

Conformance: "Kubectl, patch to annotate", "Kubectl, replace", "Kubectl,
label resource", "Kubectl, cluster info", "Kubectl, check version v1",
"Discovery, confirm the groupVersion and a resource from each apiGroup".
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time

import pytest

from tests.support.kubectl import Kubectl, kubectl_versions
from tests.support.server import run_controller_manager, run_server

pytestmark = pytest.mark.slow

VERSIONS = kubectl_versions()

APP_YAML = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: frontend}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 80
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  labels: {app: web, tier: config}
data:
  greeting: hello
  color: blue
"""


@pytest.fixture(scope="module", params=[
    ("default", "sqlite"),
    ("1.27", "sqlite"),
    ("default", "etcd"),
])
def kubectl(request, tmp_path_factory) -> Kubectl:
    version, backend = request.param
    if version not in VERSIONS:
        pytest.skip(f"kubectl {version} is not installed")
    data_dir = tmp_path_factory.mktemp(f"server-{version}-{backend}")
    with contextlib.ExitStack() as stack:
        if backend == "etcd":
            # The API server alone on etcd, with the controllers as their own process.
            endpoint = request.getfixturevalue("etcd_endpoint")
            server = stack.enter_context(run_server(data_dir, "--storage", f"etcd://{endpoint}/kubectl-e2e",
                                                    command="apiserver"))
            stack.enter_context(run_controller_manager(server.kubeconfig))
        else:
            server = stack.enter_context(run_server(data_dir))
        yield Kubectl(VERSIONS[version], server.kubeconfig)


def test_cluster_info_version_and_api_resources(kubectl: Kubectl):
    info = re.sub(r"\x1b\[[0-9;]*m", "", kubectl("cluster-info"))  # strip colours
    assert "Kubernetes control plane is running at https://127.0.0.1:" in info
    version = json.loads(kubectl("version", "-o", "json"))
    assert version["serverVersion"]["major"] == "1"
    resources = kubectl("api-resources", "-o", "name")
    for name in ("pods", "deployments.apps", "cronjobs.batch", "leases.coordination.k8s.io",
                 "endpointslices.discovery.k8s.io", "roles.rbac.authorization.k8s.io",
                 "poddisruptionbudgets.policy", "priorityclasses.scheduling.k8s.io",
                 "horizontalpodautoscalers.autoscaling", "ingresses.networking.k8s.io",
                 "storageclasses.storage.k8s.io", "events.events.k8s.io"):
        assert name in resources.split(), name
    wide = kubectl("api-resources", "--namespaced=false", "-o", "name").split()
    assert "nodes" in wide and "namespaces" in wide and "pods" not in wide


def test_explain(kubectl: Kubectl):
    out = kubectl("explain", "deployment.spec.replicas")
    assert "replicas" in out and "integer" in out
    out = kubectl("explain", "pods.spec.containers")
    assert "image" in out


def test_apply_get_edit_and_delete_namespace(kubectl: Kubectl):
    ns = "shop"
    kubectl("create", "namespace", ns)
    out = kubectl("apply", "-n", ns, "-f", "-", input=APP_YAML)
    assert "deployment.apps/web created" in out
    assert "service/web created" in out
    assert "configmap/web-config created" in out

    dep = kubectl.json("get", "deployment", "web", "-n", ns)
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == "25%"  # defaulted
    assert "kubectl.kubernetes.io/last-applied-configuration" in dep["metadata"]["annotations"]
    svc = kubectl.json("get", "service", "web", "-n", ns)
    assert svc["spec"]["clusterIP"].startswith("10.43.")

    # Someone else labels the ConfigMap; the file changes color and drops "greeting".
    kubectl("label", "configmap", "web-config", "-n", ns, "owner=ops")
    edited = APP_YAML.replace("color: blue", "color: green").replace("  greeting: hello\n", "") \
        .replace("replicas: 2", "replicas: 3")
    out = kubectl("apply", "-n", ns, "-f", "-", input=edited)
    assert "configmap/web-config configured" in out and "deployment.apps/web configured" in out
    cm = kubectl.json("get", "configmap", "web-config", "-n", ns)
    assert cm["data"] == {"color": "green"}  # three-way merge removed what the file dropped
    assert cm["metadata"]["labels"]["owner"] == "ops"  # and kept what others added
    assert kubectl.json("get", "deployment", "web", "-n", ns)["spec"]["replicas"] == 3

    # Output formats and selectors.
    assert "web-config" in kubectl("get", "cm", "-n", ns, "-o", "yaml")
    wide = kubectl("get", "deployment", "-n", ns, "-o", "wide")
    assert "nginx:1.25" in wide and "app=web" in wide
    assert kubectl("get", "svc", "web", "-n", ns, "-o", "jsonpath={.spec.ports[0].port}") == "80"
    names = kubectl("get", "all,cm", "-n", ns, "-l", "app=web", "-o", "name").split()
    assert "deployment.apps/web" in names and "service/web" in names and "configmap/web-config" in names
    names = kubectl("get", "cm", "-n", ns, "-l", "tier in (config,other),owner", "-o", "name").split()
    assert names == ["configmap/web-config"]
    assert "configmap/web-config" not in kubectl("get", "cm", "-n", ns, "-l", "tier notin (config)", "-o", "name")

    # Delete with --wait, then the namespace and everything in it.
    kubectl("delete", "service", "web", "-n", ns, "--wait")
    assert kubectl.run("get", "service", "web", "-n", ns, check=False).returncode != 0
    kubectl("delete", "namespace", ns, "--wait", "--timeout=60s")
    gone = kubectl.run("get", "namespace", ns, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_server_side_apply_and_diff(kubectl: Kubectl):
    ns = "ssa"
    kubectl("create", "namespace", ns)
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: '1'\n  b: '2'\n"
    out = kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=cm)
    assert "serverside-applied" in out
    live = kubectl.json("get", "cm", "settings", "-n", ns, "--show-managed-fields")
    managers = {m["manager"]: m for m in live["metadata"]["managedFields"]}
    assert managers["kubectl"]["operation"] == "Apply"

    # diff: nothing to show, then a change (exit code 1 means "differences found").
    same = kubectl.run("diff", "--server-side", "-n", ns, "-f", "-", input=cm, check=False)
    assert same.returncode == 0, same.stderr
    changed = kubectl.run("diff", "--server-side", "-n", ns, "-f", "-", input=cm.replace("'2'", "'3'"),
                          check=False)
    assert changed.returncode == 1, changed.stderr
    assert "-  b: \"2\"" in changed.stdout and "+  b: \"3\"" in changed.stdout
    # A dry run changed nothing.
    assert kubectl.json("get", "cm", "settings", "-n", ns)["data"] == {"a": "1", "b": "2"}

    # Applying without a field removes it; a conflicting manager is refused without --force-conflicts.
    kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=cm.replace("  b: '2'\n", ""))
    assert kubectl.json("get", "cm", "settings", "-n", ns)["data"] == {"a": "1"}
    kubectl("patch", "cm", "settings", "-n", ns, "--type", "merge", "-p", '{"data":{"a":"changed"}}')
    refused = kubectl.run("apply", "--server-side", "-n", ns, "-f", "-", input=cm, check=False)
    assert refused.returncode != 0 and "conflict" in refused.stderr.lower()
    kubectl("apply", "--server-side", "--force-conflicts", "-n", ns, "-f", "-", input=cm)
    assert kubectl.json("get", "cm", "settings", "-n", ns)["data"] == {"a": "1", "b": "2"}


def test_label_annotate_patch_replace_scale(kubectl: Kubectl):
    ns = "edits"
    kubectl("create", "namespace", ns)
    kubectl("apply", "-n", ns, "-f", "-", input=APP_YAML)
    kubectl("label", "deployment", "web", "-n", ns, "release=stable")
    kubectl("annotate", "deployment", "web", "-n", ns, "note=hello world")
    dep = kubectl.json("get", "deployment", "web", "-n", ns)
    assert dep["metadata"]["labels"]["release"] == "stable"
    assert dep["metadata"]["annotations"]["note"] == "hello world"
    gen = dep["metadata"]["generation"]

    kubectl("label", "deployment", "web", "-n", ns, "release-")
    assert "release" not in kubectl.json("get", "deployment", "web", "-n", ns)["metadata"]["labels"]
    # Metadata-only changes leave generation alone; spec changes bump it.
    assert kubectl.json("get", "deployment", "web", "-n", ns)["metadata"]["generation"] == gen

    kubectl("patch", "deployment", "web", "-n", ns, "--type", "strategic", "-p",
            '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox"}]}}}}')
    containers = kubectl.json("get", "deployment", "web", "-n", ns)["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["sidecar", "nginx"]  # merged by name, not replaced
    kubectl("patch", "deployment", "web", "-n", ns, "--type", "merge", "-p", '{"spec":{"replicas":4}}')
    kubectl("patch", "deployment", "web", "-n", ns, "--type", "json", "-p",
            '[{"op":"replace","path":"/spec/template/spec/containers/1/image","value":"nginx:1.26"}]')
    dep = kubectl.json("get", "deployment", "web", "-n", ns)
    assert dep["spec"]["replicas"] == 4
    assert dep["spec"]["template"]["spec"]["containers"][1]["image"] == "nginx:1.26"
    assert dep["metadata"]["generation"] > gen

    kubectl("scale", "deployment", "web", "-n", ns, "--replicas=5")
    assert kubectl.json("get", "deployment", "web", "-n", ns)["spec"]["replicas"] == 5

    cm = kubectl.json("get", "configmap", "web-config", "-n", ns)
    cm["data"]["color"] = "red"
    kubectl("replace", "-f", "-", input=json.dumps(cm))
    assert kubectl.json("get", "configmap", "web-config", "-n", ns)["data"]["color"] == "red"
    # Replacing with a stale resourceVersion is a conflict.
    stale = kubectl.run("replace", "-f", "-", input=json.dumps(cm), check=False)
    assert stale.returncode != 0 and "the object has been modified" in stale.stderr


def test_get_watch_sees_update(kubectl: Kubectl):
    ns = "watching"
    kubectl("create", "namespace", ns)
    kubectl("create", "configmap", "live", "-n", ns, "--from-literal=k=v1")
    watch = subprocess.Popen(
        [kubectl.binary, "get", "configmap", "live", "-n", ns, "-w", "--output-watch-events", "-o",
         "jsonpath={.type} {.object.data.k}{\"\\n\"}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"KUBECONFIG": str(kubectl.kubeconfig), "PATH": "/usr/bin:/bin"},
    )
    try:
        time.sleep(1.5)
        kubectl("patch", "configmap", "live", "-n", ns, "-p", '{"data":{"k":"v2"}}')
        deadline = time.monotonic() + 20
        seen = []
        assert watch.stdout is not None
        while time.monotonic() < deadline:
            line = watch.stdout.readline().strip()
            if line:
                seen.append(line)
            if "MODIFIED v2" in seen:
                break
        assert seen[0] == "ADDED v1"
        assert "MODIFIED v2" in seen
    finally:
        watch.terminate()
        watch.wait(10)


def test_errors_reported_by_kubectl(kubectl: Kubectl):
    missing = kubectl.run("get", "pod", "nope", "-n", "default", check=False)
    assert missing.returncode != 0 and 'pods "nope" not found' in missing.stderr
    bad = kubectl.run("create", "-f", "-", check=False, input=(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n"))
    assert bad.returncode != 0 and "Invalid value" in bad.stderr
    no_ns = kubectl.run("create", "configmap", "x", "-n", "does-not-exist", check=False)
    assert no_ns.returncode != 0 and 'namespaces "does-not-exist" not found' in no_ns.stderr
