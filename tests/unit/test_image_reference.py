"""Image reference normalisation (docker/containerd rules), pull policy defaults, pull-secret keyrings."""

from __future__ import annotations

import base64
import json

import pytest

from pinnace.images import (
    DockerKeyring,
    ImageError,
    InvalidReferenceError,
    default_pull_policy,
    familiar,
    keyring_from_pull_secrets,
    normalize,
    parse_reference,
)
from pinnace.images.registry import parse_challenge

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize("text,expected", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("user/img", "docker.io/user/img:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
    ("docker.io/user/img:v2", "docker.io/user/img:v2"),
    ("localhost:5000/x:1", "localhost:5000/x:1"),
    ("localhost/x", "localhost/x:latest"),
    ("127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b:latest"),
    ("quay.io/org/sub/img:tag", "quay.io/org/sub/img:tag"),
    ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
    (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"),
    (f"ghcr.io/o/i:1.0@{DIGEST}", f"ghcr.io/o/i:1.0@{DIGEST}"),
    ("my-org/my_img__x:tag-1.0_b", "docker.io/my-org/my_img__x:tag-1.0_b"),
    ("bars", "docker.io/library/bars:latest"),
])
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected
    assert normalize(expected) == expected  # idempotent


def test_reference_parts() -> None:
    r = parse_reference("busybox")
    assert (r.registry, r.repository, r.tag, r.digest) == ("docker.io", "library/busybox", "latest", None)
    assert r.api_host == "registry-1.docker.io"
    assert r.object == "latest"
    r = parse_reference(f"localhost:5000/x:1@{DIGEST}")
    assert (r.registry, r.repository, r.tag, r.digest) == ("localhost:5000", "x", "1", DIGEST)
    assert r.api_host == "localhost:5000"
    assert r.object == DIGEST  # pinned: ask for the digest, not the tag
    assert parse_reference("x", default_tag=False).tag is None


@pytest.mark.parametrize("text", [
    "", "UPPER", "docker.io/Library/busybox", "a//b", "busybox:", "busybox:bad/tag", "busybox@sha256:abc",
    "a" * 64, "-leading/x", "busybox:" + "t" * 129, "x" * 260,
])
def test_invalid_references(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        parse_reference(text)


def test_familiar() -> None:
    assert familiar("docker.io/library/busybox:latest") == "busybox:latest"
    assert familiar("docker.io/user/img:1") == "user/img:1"
    assert familiar("localhost:5000/x:1") == "localhost:5000/x:1"


@pytest.mark.parametrize("image,policy", [
    ("busybox", "Always"), ("busybox:latest", "Always"), ("busybox:1.36", "IfNotPresent"),
    (f"busybox@{DIGEST}", "IfNotPresent"), (f"busybox:latest@{DIGEST}", "IfNotPresent"),
])
def test_default_pull_policy(image: str, policy: str) -> None:
    assert default_pull_policy(image) == policy


def _auth(user: str, pw: str) -> str:
    return base64.b64encode(f"{user}:{pw}".encode()).decode()


def test_keyring_matches_hosts_paths_and_globs() -> None:
    ring = DockerKeyring().add({"auths": {
        "https://index.docker.io/v1/": {"auth": _auth("hub", "p1")},
        "registry.example.com:5000": {"username": "u", "password": "p:with:colons"},
        "registry.example.com:5000/team": {"auth": _auth("team", "p3")},
        "*.corp.io": {"auth": _auth("glob", "p4")},
    }})
    assert [c.username for c in ring.lookup(parse_reference("busybox"))] == ["hub"]
    assert [c.username for c in ring.lookup(parse_reference("registry.example.com:5000/other/x"))] == ["u"]
    got = ring.lookup(parse_reference("registry.example.com:5000/team/x:1"))
    assert [(c.username, c.password) for c in got] == [("team", "p3"), ("u", "p:with:colons")]
    assert [c.username for c in ring.lookup(parse_reference("reg.corp.io/a"))] == ["glob"]
    assert ring.lookup(parse_reference("a.b.corp.io/a")) == []  # a glob part matches one label
    assert ring.lookup(parse_reference("quay.io/a")) == []
    assert "p1" not in repr(ring.lookup(parse_reference("busybox")))


def test_keyring_from_pull_secrets() -> None:
    cfg = {"auths": {"localhost:5000": {"auth": _auth("alice", "s3cret")}}}
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
              "data": {".dockerconfigjson": base64.b64encode(json.dumps(cfg).encode()).decode()}}
    legacy = {"type": "kubernetes.io/dockercfg",
              "data": {".dockercfg": base64.b64encode(json.dumps({"quay.io": {"auth": _auth("b", "c")}}).encode())}}
    ring = keyring_from_pull_secrets([secret, legacy, json.dumps(cfg)])
    assert [(c.username, c.password) for c in ring.lookup(parse_reference("localhost:5000/x"))] == [("alice", "s3cret")]
    assert [c.username for c in ring.lookup(parse_reference("quay.io/x/y"))] == ["b"]
    with pytest.raises(ImageError):
        DockerKeyring().add({"auths": {"h": {"auth": "bm90LWEtcGFpcg=="}}})  # "not-a-pair"


def test_parse_challenge() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/x:pull"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                      "scope": "repository:library/x:pull"}
    assert parse_challenge('Basic realm="basic-realm"') == ("basic", {"realm": "basic-realm"})
