"""Authentication: x509 client certificates (CN = user, O = groups) and static
bearer tokens.  Health and version endpoints are open to anonymous callers,
as in Kubernetes; anything else without credentials gets 401."""

from __future__ import annotations

import csv
import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from . import errors

ANONYMOUS_PATHS = ("/healthz", "/livez", "/readyz", "/version")
USER = web.RequestKey("user", dict)


@dataclass(frozen=True)
class User:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "uid": self.uid, "groups": list(self.groups)}


def load_token_file(path: str | Path) -> dict[str, User]:
    """Kubernetes' static token file: ``token,user,uid[,"group1,group2"]`` per line."""
    tokens: dict[str, User] = {}
    with open(path, newline="") as f:
        for row in csv.reader(f):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 3:
                raise ValueError(f"{path}: each line needs token,user,uid[,groups]")
            groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
            tokens[row[0].strip()] = User(row[1].strip(), row[2].strip(), groups)
    return tokens


class Authenticator:
    def __init__(self, tokens: dict[str, User] | None = None):
        self.tokens = tokens or {}

    def user_for_token(self, token: str) -> User | None:
        for known, user in self.tokens.items():
            if hmac.compare_digest(known, token):
                return user
        return None

    def authenticate(self, request: web.Request) -> User | None:
        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            # A bad token is refused even if a certificate came too.
            return self.user_for_token(auth[7:].strip())
        transport = request.transport
        peercert = transport.get_extra_info("peercert") if transport else None
        if peercert:
            cn, orgs = "", []
            for rdn in peercert.get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        cn = value
                    elif key == "organizationName":
                        orgs.append(value)
            if cn:
                return User(cn, "", (*orgs, "system:authenticated"))
        return None

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        user = self.authenticate(request)
        if user is None:
            if request.path in ANONYMOUS_PATHS or request.path.startswith(("/readyz/", "/livez/", "/healthz/")):
                request[USER] = User("system:anonymous", "", ("system:unauthenticated",)).as_dict()
                return await handler(request)
            err = errors.unauthorized()
            return web.json_response(err.status(), status=401)
        request[USER] = user.as_dict()
        return await handler(request)
