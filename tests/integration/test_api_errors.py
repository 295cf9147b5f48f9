"""Bad input gets the right Status code and reason, and never changes stored data.

Conformance: "Server side field validation, typed object", "Server side field
validation, typed unknown metadata", "API metadata HTTP return".
"""

from __future__ import annotations

import aiohttp
import pytest

CM_PATH = "/api/v1/namespaces/default/configmaps"


async def make_cm(api, name="keep", data=None) -> dict:
    status, obj = await api.call("POST", CM_PATH, {"metadata": {"name": name}, "data": data or {"k": "v"}})
    assert status == 201, obj
    return obj


async def stored(api, name="keep") -> dict:
    status, obj = await api.call("GET", f"{CM_PATH}/{name}")
    assert status == 200
    return obj


def assert_status(obj: dict, code: int, reason: str) -> None:
    assert obj["kind"] == "Status" and obj["status"] == "Failure", obj
    assert obj["code"] == code and obj["reason"] == reason, obj


async def test_malformed_json_and_yaml_are_400_and_change_nothing(api):
    before = await make_cm(api)
    status, obj = await api.call("PUT", f"{CM_PATH}/keep", raw=b'{"metadata": {"name": "keep"', )
    assert status == 400
    assert_status(obj, 400, "BadRequest")
    status, obj = await api.call("POST", CM_PATH, raw=b"metadata: [unclosed", content_type="application/yaml")
    assert status == 400
    status, obj = await api.call("PATCH", f"{CM_PATH}/keep", raw=b"{not json",
                                 content_type="application/merge-patch+json")
    assert status == 400
    assert await stored(api) == before


async def test_yaml_body_is_accepted(api):
    status, obj = await api.call("POST", CM_PATH, raw=b"metadata:\n  name: from-yaml\ndata:\n  a: b\n",
                                 content_type="application/yaml")
    assert status == 201 and obj["data"] == {"a": "b"}


async def test_unknown_resource_and_group_are_404(api):
    for path in ("/api/v1/foos", "/apis/nope.example.com/v1/things", "/api/v2/pods", "/apis/apps/v1/widgets"):
        status, obj = await api.call("GET", path)
        assert status == 404, path
        assert_status(obj, 404, "NotFound")


async def test_invalid_objects_are_422_with_causes_and_change_nothing(api):
    status, obj = await api.call("POST", CM_PATH, {"metadata": {"name": "Bad_Name"}})
    assert status == 422
    assert_status(obj, 422, "Invalid")
    assert obj["details"]["causes"][0]["field"] == "metadata.name"

    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "a"}},
                    "template": {"metadata": {"labels": {"app": "a"}},
                                 "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    path = "/apis/apps/v1/namespaces/default/deployments"
    status, created = await api.call("POST", path, dep)
    assert status == 201, created
    bad = {**created, "spec": {**created["spec"], "replicas": -1}}
    status, obj = await api.call("PUT", f"{path}/d", bad)
    assert status == 422
    assert any(c["field"] == "spec.replicas" for c in obj["details"]["causes"])
    mismatch = {**created, "spec": {**created["spec"], "selector": {"matchLabels": {"app": "other"}}}}
    status, obj = await api.call("PUT", f"{path}/d", mismatch)
    assert status == 422
    wrong_type = {**created, "spec": {**created["spec"], "replicas": "three"}}
    status, obj = await api.call("PUT", f"{path}/d", wrong_type)
    assert status == 422
    status, now = await api.call("GET", f"{path}/d")
    assert now == created


async def test_conflicts_are_409(api):
    before = await make_cm(api)
    status, obj = await api.call("POST", CM_PATH, {"metadata": {"name": "keep"}})
    assert status == 409
    assert_status(obj, 409, "AlreadyExists")
    stale = {**before, "data": {"k": "first"}}
    status, _ = await api.call("PUT", f"{CM_PATH}/keep", stale)
    assert status == 200
    after_first = await stored(api)
    status, obj = await api.call("PUT", f"{CM_PATH}/keep", {**before, "data": {"k": "second"}})
    assert status == 409
    assert_status(obj, 409, "Conflict")
    assert "the object has been modified" in obj["message"]
    assert await stored(api) == after_first


async def test_body_over_3mib_is_413_and_changes_nothing(api):
    before = await make_cm(api)
    huge = {**before, "data": {"k": "x" * (3 * 1024 * 1024 + 10)}}
    status, obj = await api.call("PUT", f"{CM_PATH}/keep", huge)
    assert status == 413
    assert_status(obj, 413, "RequestEntityTooLarge")
    assert await stored(api) == before


async def test_missing_namespace_is_404(api):
    status, obj = await api.call("POST", "/api/v1/namespaces/nowhere/configmaps", {"metadata": {"name": "x"}})
    assert status == 404
    assert 'namespaces "nowhere" not found' in obj["message"]


async def test_identity_mismatches_are_400(api):
    status, obj = await api.call("POST", CM_PATH, {"kind": "Secret", "metadata": {"name": "x"}})
    assert status == 400
    status, obj = await api.call("POST", CM_PATH, {"metadata": {"name": "x", "namespace": "kube-system"}})
    assert status == 400 and "namespace" in obj["message"]
    await make_cm(api)
    status, obj = await api.call("PUT", f"{CM_PATH}/keep", {"metadata": {"name": "other"}})
    assert status == 400


async def test_strict_field_validation_rejects_unknown_fields(api):
    body = {"metadata": {"name": "strict"}, "data": {"a": "b"}, "bogus": 1}
    status, obj = await api.call("POST", CM_PATH + "?fieldValidation=Strict", body)
    assert status == 400 and 'unknown field "bogus"' in obj["message"]
    status, _ = await api.call("GET", f"{CM_PATH}/strict")
    assert status == 404
    async with api.session.post(api.base + CM_PATH + "?fieldValidation=Warn", json=body) as resp:
        assert resp.status == 201
        assert 'unknown field \\"bogus\\"' in resp.headers.get("Warning", "")
        assert "bogus" not in await resp.json()


async def test_unsupported_patch_media_type_is_415(api):
    await make_cm(api)
    status, obj = await api.call("PATCH", f"{CM_PATH}/keep", {"data": {}}, content_type="text/plain")
    assert status == 415


async def test_authentication(api):
    anonymous = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False))
    try:
        for path in ("/healthz", "/livez", "/readyz", "/version"):
            async with anonymous.get(api.base + path) as resp:
                assert resp.status == 200, path
        async with anonymous.get(api.base + "/api/v1/namespaces") as resp:
            assert resp.status == 401
            assert (await resp.json())["reason"] == "Unauthorized"
        bad = {"Authorization": "Bearer wrong"}
        async with anonymous.get(api.base + "/api/v1/namespaces", headers=bad) as resp:
            assert resp.status == 401
        good = {"Authorization": "Bearer secret-token"}
        async with anonymous.get(api.base + "/api/v1/namespaces", headers=good) as resp:
            assert resp.status == 200
    finally:
        await anonymous.close()


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_writes_to_missing_objects_are_404(api, method):
    ctype = "application/merge-patch+json" if method == "PATCH" else "application/json"
    status, obj = await api.call(method, f"{CM_PATH}/ghost", {"metadata": {"name": "ghost"}}, content_type=ctype)
    assert status == 404
    assert_status(obj, 404, "NotFound")
