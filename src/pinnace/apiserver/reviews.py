"""Create-only review APIs: who am I, may I, and token reviews.

Nothing is stored; the server answers in the object's status.  Until RBAC is
enforced every authenticated user may do everything, and access reviews say so.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..api.resources import ResourceType
from . import errors
from .authn import Authenticator

REVIEW_KINDS = {
    ("authentication.k8s.io", "selfsubjectreviews"),
    ("authentication.k8s.io", "tokenreviews"),
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "subjectaccessreviews"),
    ("authorization.k8s.io", "localsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"),
}
ALLOWED_REASON = "pinnace: authorization is not enforced yet; every authenticated user is allowed"


def is_review(rtype: ResourceType) -> bool:
    return (rtype.group, rtype.plural) in REVIEW_KINDS


def review(rtype: ResourceType, namespace: str, body: Any, user: dict[str, Any],
           authenticator: Authenticator) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be an object")
    spec = body.get("spec") or {}
    out = {"kind": rtype.kind, "apiVersion": rtype.api_version, "metadata": body.get("metadata") or {},
           "spec": spec}
    if rtype.plural == "selfsubjectreviews":
        out["status"] = {"userInfo": {"username": user.get("name", ""), "uid": user.get("uid", ""),
                                      "groups": list(user.get("groups", ()))}}
    elif rtype.plural == "tokenreviews":
        found = authenticator.user_for_token(spec.get("token", ""))
        status: dict[str, Any] = {"authenticated": found is not None}
        if found is not None:
            status["user"] = {"username": found.name, "uid": found.uid, "groups": list(found.groups)}
        out["status"] = status
    elif rtype.plural == "selfsubjectrulesreviews":
        out["status"] = {"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                         "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                         "incomplete": False}
    else:
        if rtype.plural == "localsubjectaccessreviews":
            attrs = spec.get("resourceAttributes") or {}
            if attrs.get("namespace", namespace) != namespace:
                raise errors.bad_request("spec.resourceAttributes.namespace must match the request namespace")
        out["status"] = {"allowed": True, "reason": ALLOWED_REASON}
    return out


def respond(obj: dict[str, Any]) -> web.Response:
    return web.json_response(obj, status=201)
