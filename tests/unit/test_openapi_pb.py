"""The protobuf ``/openapi/v2`` (gnostic ``openapi.v2.Document``) that kubectl <= 1.27 reads.

The encoded bytes are parsed with the real message classes, built from the
descriptor compiled into kubectl 1.27 (skipped where that binary is absent),
then checked field by field, converted back to JSON and compared with the
JSON document, and run through the rules kubectl's own schema reader
(k8s.io/kube-openapi/pkg/util/proto) applies, any of which would make it
reject the whole document.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

pytest.importorskip("google.protobuf")
yaml = pytest.importorskip("yaml")

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory  # noqa: E402

from pinnace.api.resources import BUILTIN, ResourceRegistry  # noqa: E402
from pinnace.apiserver import openapi, openapi_pb  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"
DEPLOYMENT_PATH = "/apis/apps/v1/namespaces/{namespace}/deployments/{name}"


def _generator() -> Any:
    script = ROOT / "scripts" / "gen_openapi_pb_schema.py"
    spec = importlib.util.spec_from_file_location("gen_openapi_pb_schema", script)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen() -> Any:
    return _generator()


@pytest.fixture(scope="module")
def file_descriptor(gen) -> Any:
    binary = gen.find_kubectl()
    if binary is None:
        pytest.skip("kubectl.1.27 is not installed (its descriptor is the reference schema)")
    return gen.extract_file_descriptor(binary)


@pytest.fixture(scope="module")
def document_class(file_descriptor) -> Any:
    pool = descriptor_pool.DescriptorPool()
    any_fd = descriptor_pb2.FileDescriptorProto()
    any_pb2.DESCRIPTOR.CopyToProto(any_fd)
    pool.Add(any_fd)
    pool.Add(file_descriptor)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("openapi.v2.Document"))


@pytest.fixture(scope="module")
def resources() -> ResourceRegistry:
    return ResourceRegistry(list(BUILTIN))


@pytest.fixture(scope="module")
def json_doc(resources) -> dict[str, Any]:
    return orjson.loads(openapi.openapi_v2(resources))


@pytest.fixture(scope="module")
def document(document_class, resources) -> Any:
    doc = document_class()
    doc.ParseFromString(openapi_pb.openapi_v2_protobuf(resources))
    return doc


def _named(entries: Any, name: str) -> Any:
    found = [e.value for e in entries if e.name == name]
    assert found, f"{name} not found"
    return found[0]


def _extension(msg: Any, name: str) -> Any:
    return yaml.safe_load(_named(msg.vendor_extension, name).yaml)


# -- the generated table ----------------------------------------------------------------


def test_table_is_current(gen, file_descriptor) -> None:
    table = json.loads(openapi_pb.SCHEMA_PATH.read_text())
    assert "kubectl" in table["_generated"] and table["source"]["package"] == "openapi.v2"
    assert table["messages"] == gen.build_table(file_descriptor), \
        "regenerate with: python scripts/gen_openapi_pb_schema.py"


# -- what kubectl reads -----------------------------------------------------------------


def test_document_basics(document, json_doc) -> None:
    assert document.swagger == "2.0"
    assert document.info.title == "Kubernetes"
    assert [d.name for d in document.definitions.additional_properties] == list(json_doc["definitions"])
    assert [p.name for p in document.paths.path] == list(json_doc["paths"])
    bearer = _named(document.security_definitions.additional_properties, "BearerToken")
    assert bearer.WhichOneof("oneof") == "api_key_security"
    assert bearer.api_key_security.name == "authorization"
    assert getattr(bearer.api_key_security, "in") == "header"  # a keyword in Python
    assert [n.name for n in document.security[0].additional_properties] == ["BearerToken"]


def test_deployment_definition(document) -> None:
    deployment = _named(document.definitions.additional_properties, DEPLOYMENT)
    assert list(deployment.type.value) == ["object"]
    assert _extension(deployment, "x-kubernetes-group-version-kind") == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}]
    props = deployment.properties.additional_properties
    assert _named(props, "spec")._ref == "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    assert [yaml.safe_load(e.yaml) for e in _named(props, "kind").enum] == ["Deployment"]

    spec = _named(document.definitions.additional_properties, "io.k8s.api.apps.v1.DeploymentSpec")
    replicas = _named(spec.properties.additional_properties, "replicas")
    assert list(replicas.type.value) == ["integer"] and replicas.format == "int32"
    assert "desired pods" in replicas.description
    assert "selector" in spec.required


def test_list_extensions_and_items(document) -> None:
    pod_spec = _named(document.definitions.additional_properties, "io.k8s.api.core.v1.PodSpec")
    containers = _named(pod_spec.properties.additional_properties, "containers")
    assert list(containers.type.value) == ["array"]
    assert [s._ref for s in containers.items.schema] == ["#/definitions/io.k8s.api.core.v1.Container"]
    assert _extension(containers, "x-kubernetes-patch-strategy") == "merge"
    assert _extension(containers, "x-kubernetes-patch-merge-key") == "name"
    assert _extension(containers, "x-kubernetes-list-type") == "map"
    assert _extension(containers, "x-kubernetes-list-map-keys") == ["name"]
    node_selector = _named(pod_spec.properties.additional_properties, "nodeSelector")
    assert list(node_selector.additional_properties.schema.type.value) == ["string"]


def test_patch_operation_supports_field_validation(document) -> None:
    """What cli-runtime's QueryParamVerifier looks for before sending ?fieldValidation=."""
    item = _named(document.paths.path, DEPLOYMENT_PATH)
    patch = item.patch
    assert yaml.safe_load(_named(patch.vendor_extension, "x-kubernetes-group-version-kind").yaml) == {
        "group": "apps", "version": "v1", "kind": "Deployment"}
    query = [p.parameter.non_body_parameter.query_parameter_sub_schema.name for p in patch.parameters
             if p.parameter.non_body_parameter.WhichOneof("oneof") == "query_parameter_sub_schema"]
    assert "fieldValidation" in query
    body = [p.parameter.body_parameter for p in patch.parameters if p.parameter.WhichOneof("oneof") == "body_parameter"]
    assert body[0].required and body[0].schema._ref == "#/definitions/" + DEPLOYMENT
    ok = _named(patch.responses.response_code, "200")
    assert ok.response.schema.schema._ref == "#/definitions/" + DEPLOYMENT
    assert [p.parameter.non_body_parameter.path_parameter_sub_schema.name for p in item.parameters] == [
        "name", "namespace"]
    assert all(p.parameter.non_body_parameter.path_parameter_sub_schema.required for p in item.parameters)
    core = _named(document.paths.path, "/api/v1/namespaces/{namespace}/pods/{name}")
    assert yaml.safe_load(_named(core.patch.vendor_extension, "x-kubernetes-group-version-kind").yaml)["group"] == ""


# -- whole-document checks ----------------------------------------------------------------


def _camel(snake: str) -> str:
    if snake == "_ref":
        return "$ref"
    head, *rest = snake.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _to_json(msg: Any) -> Any:
    """A decoded gnostic message back to swagger JSON (the inverse of gnostic's compiler)."""
    name = msg.DESCRIPTOR.name
    if name == "Any":
        return yaml.safe_load(msg.yaml)
    if name == "TypeItem":
        return msg.value[0] if len(msg.value) == 1 else list(msg.value)
    if name == "ItemsItem":
        return _to_json(msg.schema[0]) if len(msg.schema) == 1 else [_to_json(s) for s in msg.schema]
    if name == "StringArray":
        return list(msg.value)
    oneof = msg.DESCRIPTOR.oneofs_by_name.get("oneof")
    if oneof is not None:  # gnostic's wrappers: the member that is set is the value
        return _to_json_value(getattr(msg, msg.WhichOneof("oneof")))
    out: dict[str, Any] = {}
    for field, value in msg.ListFields():
        if field.name == "vendor_extension":
            out.update({e.name: _to_json(e.value) for e in value})
        elif field.name in ("additional_properties", "path", "response_code") and \
                field.message_type is not None and field.message_type.name.startswith("Named"):
            out.update({e.name: _to_json_value(e.value) for e in value})
        elif field.is_repeated:
            out[_camel(field.name)] = [_to_json_value(v) for v in value]
        else:
            out[_camel(field.name)] = _to_json_value(value)
    return out


def _to_json_value(value: Any) -> Any:
    return _to_json(value) if hasattr(value, "DESCRIPTOR") else value


def _without_defaults(node: Any) -> Any:
    """JSON as proto3 keeps it: scalar fields at their zero value and empty lists are
    not on the wire (values of default/enum/example/x-… are Any and keep everything)."""
    if isinstance(node, list):
        return [_without_defaults(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k in ("default", "enum", "example") or k.startswith("x-"):
            out[k] = v
        elif k == "additionalProperties" and isinstance(v, bool):
            out[k] = v  # a oneof member: false is kept
        elif k == "security":
            out[k] = v  # scheme → scopes maps: an empty scope list is still a StringArray message
        elif not (isinstance(v, bool | int | float | str | list) and not v):
            out[k] = _without_defaults(v)
    return out


def test_round_trip_is_lossless(document, json_doc) -> None:
    assert _to_json(document) == _without_defaults(json_doc)


_PRIMITIVES = {"string", "number", "integer", "boolean", ""}


def _check_schema(schema: Any, names: set[str], path: str, errors: list[str]) -> None:
    """k8s.io/kube-openapi/pkg/util/proto's ParseSchema: kubectl drops the whole
    document (explain, validation, patches) on the first of these errors."""
    types = list(schema.type.value)
    if schema._ref:
        if schema.properties.additional_properties:
            errors.append(f"{path}: unallowed embedded type definition")
        if types:
            errors.append(f"{path}: definition reference can't have a type")
        if not schema._ref.startswith("#/definitions/") or schema._ref.removeprefix("#/definitions/") not in names:
            errors.append(f"{path}: bad reference {schema._ref}")
        return
    if len(types) > 1:
        errors.append(f"{path}: multiple types")
    t = types[0] if types else ""
    if t == "array":
        if len(schema.items.schema) != 1:
            errors.append(f"{path}: array should have exactly one sub-item")
        else:
            _check_schema(schema.items.schema[0], names, path + "[]", errors)
    elif t == "object" or (not t and schema.HasField("properties")):
        if schema.HasField("properties"):
            for p in schema.properties.additional_properties:
                _check_schema(p.value, names, f"{path}.{p.name}", errors)
        elif schema.additional_properties.HasField("schema"):
            _check_schema(schema.additional_properties.schema, names, path + "{}", errors)
    elif t not in _PRIMITIVES:
        errors.append(f"{path}: unknown primitive type {t!r}")


def test_definitions_parse_like_kubectl(document) -> None:
    defs = document.definitions.additional_properties
    names = {d.name for d in defs}
    errors: list[str] = []
    for d in defs:
        _check_schema(d.value, names, d.name, errors)
    assert errors == []
    # kubectl explain finds a kind through the x-kubernetes-group-version-kind list of its definition.
    gvks = set()
    for d in defs:
        for e in d.value.vendor_extension:
            if e.name == "x-kubernetes-group-version-kind":
                gvks.update((g["group"], g["version"], g["kind"]) for g in yaml.safe_load(e.value.yaml))
    assert ("apps", "v1", "Deployment") in gvks and ("", "v1", "Pod") in gvks


# -- encoder details ------------------------------------------------------------------------


def test_oneofs_and_edge_values(document_class) -> None:
    doc = {
        "swagger": "2.0",
        "info": {"title": "t", "version": "v", "x-note": {"a": [1, None]}},
        "paths": {
            "/a/{id}": {
                "get": {
                    "parameters": [
                        {"$ref": "#/parameters/p"},
                        {"name": "h", "in": "header", "type": "string", "required": False},
                        {"name": "f", "in": "formData", "type": "file"},
                        {"name": "id", "in": "path", "type": "integer", "required": True, "minimum": -5,
                         "default": 0, "enum": [0, 1]},
                    ],
                    "responses": {"default": {"$ref": "#/responses/r"},
                                  "200": {"description": "file", "schema": {"type": "file"}},
                                  "x-resp": True},
                },
            },
            "x-paths": "ext",
        },
        "definitions": {
            "Free": {"type": "object", "additionalProperties": False, "maxProperties": 2**40},
            "Num": {"type": "number", "maximum": 1.5, "exclusiveMaximum": True, "multipleOf": 0.5,
                    "default": "\u2028é", "example": {"k": "v"}},
        },
        "securityDefinitions": {
            "basic": {"type": "basic"},
            "oauth": {"type": "oauth2", "flow": "accessCode", "authorizationUrl": "https://a",
                      "tokenUrl": "https://t", "scopes": {"read": "r"}},
        },
        "security": [{"oauth": ["read"]}],
        "tags": [{"name": "t1", "externalDocs": {"url": "https://d"}}],
    }
    msg = document_class()
    msg.ParseFromString(openapi_pb.encode_openapi_v2(doc))
    get = _named(msg.paths.path, "/a/{id}").get
    assert get.parameters[0].json_reference._ref == "#/parameters/p"
    kinds = [p.parameter.non_body_parameter.WhichOneof("oneof") for p in get.parameters[1:]]
    assert kinds == ["header_parameter_sub_schema", "form_data_parameter_sub_schema", "path_parameter_sub_schema"]
    path_param = get.parameters[3].parameter.non_body_parameter.path_parameter_sub_schema
    assert path_param.minimum == -5 and yaml.safe_load(path_param.default.yaml) == 0
    assert _named(get.responses.response_code, "default").json_reference._ref == "#/responses/r"
    assert _named(get.responses.response_code, "200").response.schema.WhichOneof("oneof") == "file_schema"
    assert [e.name for e in get.responses.vendor_extension] == ["x-resp"]
    assert [e.name for e in msg.paths.vendor_extension] == ["x-paths"]
    free = _named(msg.definitions.additional_properties, "Free")
    assert free.additional_properties.WhichOneof("oneof") == "boolean"
    assert free.additional_properties.boolean is False and free.max_properties == 2**40
    num = _named(msg.definitions.additional_properties, "Num")
    assert (num.maximum, num.exclusive_maximum, num.multiple_of) == (1.5, True, 0.5)
    assert yaml.safe_load(num.default.yaml) == "\u2028é"
    assert yaml.safe_load(num.example.yaml) == {"k": "v"}
    assert _extension(msg.info, "x-note") == {"a": [1, None]}
    sec = {s.name: s.value.WhichOneof("oneof") for s in msg.security_definitions.additional_properties}
    assert sec == {"basic": "basic_authentication_security", "oauth": "oauth2_access_code_security"}
    oauth = _named(msg.security_definitions.additional_properties, "oauth").oauth2_access_code_security
    assert oauth.token_url == "https://t" and _named(oauth.scopes.additional_properties, "read") == "r"
    assert list(_named(msg.security[0].additional_properties, "oauth").value) == ["read"]
    assert msg.tags[0].external_docs.url == "https://d"


@pytest.mark.parametrize("value", [
    "atomic", "", "x\u2028y\x85\x7f\ufeff", "é😀", 'q"\\\t\n', 0, -1, 1.5, True, None, [], {},
    [{"group": "", "version": "v1", "kind": "Pod"}],
])
def test_yaml_text_reads_back(value: Any) -> None:
    assert yaml.safe_load(openapi_pb.yaml_text(value)) == value


def test_cached_per_generation(resources) -> None:
    first = openapi_pb.openapi_v2_protobuf(resources)
    assert openapi_pb.openapi_v2_protobuf(resources) is first


@pytest.mark.parametrize(("accept", "expected"), [
    ("application/com.github.proto-openapi.spec.v2@v1.0+protobuf", True),  # kubectl <= 1.27
    ("application/com.github.proto-openapi.spec.v2.v1.0+protobuf", True),
    ("application/json", False),
    ("", False),
    ("*/*", False),
    ("application/json, application/com.github.proto-openapi.spec.v2@v1.0+protobuf", False),
    ("application/com.github.proto-openapi.spec.v2@v1.0+protobuf, application/json", True),
    ("application/json;q=0.5, application/com.github.proto-openapi.spec.v2@v1.0+protobuf", True),
    ("application/com.github.proto-openapi.spec.v2@v1.0+protobuf;q=0, application/json", False),
    ("application/vnd.kubernetes.protobuf", False),
])
def test_wants_protobuf(accept: str, expected: bool) -> None:
    assert openapi_pb.wants_protobuf(accept) is expected
