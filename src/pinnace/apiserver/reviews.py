"""Create-only review APIs: who am I, may I, and token reviews (every kind of bearer token
the API server accepts, service-account JWTs included).

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


async def review(rtype: ResourceType, namespace: str, body: Any, user: dict[str, Any],
                 authenticator: Authenticator) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be an object")
    spec = body.get("spec") or {}
    out = {"kind": rtype.kind, "apiVersion": rtype.api_version, "metadata": body.get("metadata") or {},
           "spec": spec}
    if rtype.plural == "selfsubjectreviews":
        out["status"] = {"userInfo": _user_info(user)}
    elif rtype.plural == "tokenreviews":
        out["status"] = await token_review(spec, authenticator)
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


def _user_info(user: dict[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = {"username": user.get("name", ""), "uid": user.get("uid", ""),
                            "groups": list(user.get("groups", ()))}
    if user.get("extra"):
        info["extra"] = {k: list(v) for k, v in user["extra"].items()}
    return info


async def token_review(spec: dict[str, Any], authenticator: Authenticator) -> dict[str, Any]:
    """TokenReview status: whether ``spec.token`` authenticates for ``spec.audiences``
    (default: the API audiences), as whom, for which of those audiences."""
    token = spec.get("token")
    if not isinstance(token, str) or not token:
        raise errors.invalid("TokenReview", "authentication.k8s.io", "", [
            {"reason": "FieldValueRequired", "field": "spec.token", "message": "Required value: token is required"}])
    audiences = spec.get("audiences") or []
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise errors.bad_request("spec.audiences must be a list of strings")
    result = await authenticator.authenticate_token(token, tuple(audiences))
    status: dict[str, Any] = {"authenticated": result.user is not None, "user": {}}
    if result.user is not None:
        status["user"] = _user_info(result.user.as_dict())
        status["audiences"] = list(result.audiences)
    elif result.error:
        status["error"] = result.error
    return status


def respond(obj: dict[str, Any]) -> web.Response:
    return web.json_response(obj, status=201)
