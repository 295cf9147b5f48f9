"""kubectl 1.27 against a real ``pinnace server``: it reads ``/openapi/v2`` only as
gnostic protobuf (``Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf``)
and gives up on ``explain``, ``apply`` and ``create -f`` when that fails.

``--output=plaintext-openapiv2`` makes ``explain`` print from the v2 document
itself (kubectl's own parser of every definition), not from OpenAPI v3.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest

from tests.support.kubectl import Kubectl, kubectl_versions
from tests.support.server import RunningServer, run_server

pytestmark = pytest.mark.slow

PB_ACCEPT = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: pb-web
spec:
  replicas: 2
  selector:
    matchLabels: {app: pb-web}
  template:
    metadata:
      labels: {app: pb-web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports:
        - containerPort: 80
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[RunningServer]:
    with run_server(tmp_path_factory.mktemp("openapi-pb")) as s:
        yield s


@pytest.fixture(scope="module")
def kubectl(server) -> Kubectl:
    binary = kubectl_versions().get("1.27")
    if binary is None:
        pytest.skip("kubectl 1.27 is not installed")
    return Kubectl(binary, server.kubeconfig)


def test_openapi_v2_protobuf_response(server) -> None:
    req = urllib.request.Request(server.url + "/openapi/v2", headers={"Accept": PB_ACCEPT})
    with urllib.request.urlopen(req, context=server.ssl_context(), timeout=30) as r:
        # The dotted form: Go's mime parser (in kubectl) rejects the '@' one.
        assert r.headers["Content-Type"] == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
        body = r.read()
    assert body.startswith(b"\n\x032.0")  # Document.swagger (field 1) = "2.0"
    req = urllib.request.Request(server.url + "/openapi/v2", headers={"Accept": "application/json"})
    with urllib.request.urlopen(req, context=server.ssl_context(), timeout=30) as r:
        assert r.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("output", ["plaintext", "plaintext-openapiv2"])
def test_explain(kubectl: Kubectl, output: str) -> None:
    out = kubectl("explain", "deployment.spec.replicas", f"--output={output}")
    assert "Number of desired pods" in out
    assert "replicas <integer>" in " ".join(out.split())
    out = kubectl("explain", "pods.spec.containers", f"--output={output}")
    assert "image\t<string>" in out and "Container image name" in out


def test_explain_recursive_from_v2(kubectl: Kubectl) -> None:
    out = kubectl("explain", "deployment", "--recursive", "--output=plaintext-openapiv2")
    assert "labels\t<map[string]string>" in out  # additionalProperties schemas
    assert "containers\t<[]Object>" in out  # arrays of $refs


def test_apply_and_create_validate(kubectl: Kubectl) -> None:
    run = kubectl.run("apply", "-f", "-", "-v=6", input=DEPLOYMENT)
    assert "deployment.apps/pb-web created" in run.stdout
    assert "/openapi/v2?timeout=32s 200 OK" in run.stderr
    assert "fieldValidation=Strict" in run.stderr

    # A client-side apply patch: strategic merge by the containers' merge key.
    out = kubectl("apply", "-f", "-", input=DEPLOYMENT.replace("replicas: 2", "replicas: 3")
                  .replace("nginx:1.25", "nginx:1.26"))
    assert "deployment.apps/pb-web configured" in out
    dep = kubectl.json("get", "deployment", "pb-web")
    assert dep["spec"]["replicas"] == 3
    assert [c["image"] for c in dep["spec"]["template"]["spec"]["containers"]] == ["nginx:1.26"]

    bad = DEPLOYMENT.replace("name: pb-web\n", "name: pb-bad\n", 1).replace("replicas: 2", "replicas: 2\n  bogus: 1")
    run = kubectl.run("create", "-f", "-", "--validate=strict", input=bad, check=False)
    assert run.returncode != 0 and 'unknown field "spec.bogus"' in run.stderr
