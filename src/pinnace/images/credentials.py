"""Registry credentials from ``kubernetes.io/dockerconfigjson`` (and legacy ``dockercfg``) content.

The kubelet decodes a pod's imagePullSecrets and hands them here; lookups follow the kubelet's
credential-provider rules: keys may be URLs (``https://index.docker.io/v1/``), ``host[:port]``,
``host/path`` prefixes or ``*.example.com`` globs; more specific keys are tried first.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import ImageError
from .reference import DEFAULT_REGISTRY, Reference

_DOCKER_HUB_ALIASES = {"index.docker.io", "registry-1.docker.io", "registry.hub.docker.com", DEFAULT_REGISTRY}


@dataclass(frozen=True)
class BasicAuth:
    username: str
    password: str

    def __repr__(self) -> str:  # never log the password
        return f"BasicAuth(username={self.username!r}, password=***)"


def _split_key(key: str) -> tuple[str, str]:
    k = key.strip()
    for scheme in ("https://", "http://"):
        k = k.removeprefix(scheme)
    host, _, path = k.partition("/")
    path = path.strip("/")
    if path in ("v1", "v2") or path.startswith(("v1/", "v2/")):
        path = path[3:]
    host = host.lower()
    if host in _DOCKER_HUB_ALIASES:
        host = DEFAULT_REGISTRY
    return host, path


def _host_matches(pattern: str, host: str) -> bool:
    if "*" not in pattern:
        return pattern == host
    p_parts, h_parts = pattern.split("."), host.split(".")
    if len(p_parts) != len(h_parts):
        return False
    return all(fnmatch.fnmatchcase(h, p) for p, h in zip(p_parts, h_parts, strict=True))


def _decode_entry(key: str, entry: Any) -> BasicAuth | None:
    if not isinstance(entry, dict):
        return None
    if entry.get("username") or entry.get("password"):
        return BasicAuth(str(entry.get("username", "")), str(entry.get("password", "")))
    auth = entry.get("auth")
    if auth:
        try:
            user, sep, password = base64.b64decode(auth).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise ImageError(f"credentials for {key!r}: 'auth' is not base64(user:password)") from None
        if not sep:
            raise ImageError(f"credentials for {key!r}: 'auth' is not base64(user:password)")
        return BasicAuth(user, password)
    return None


class DockerKeyring:
    def __init__(self) -> None:
        self._entries: list[tuple[str, str, BasicAuth]] = []

    def __bool__(self) -> bool:
        return bool(self._entries)

    def add(self, config: dict[str, Any] | str | bytes) -> DockerKeyring:
        """Add a decoded ``.dockerconfigjson`` (``{"auths": {...}}``) or legacy ``.dockercfg`` document."""
        if isinstance(config, bytes | str):
            try:
                config = json.loads(config)
            except ValueError as e:
                raise ImageError(f"docker config is not valid JSON: {e}") from None
        if not isinstance(config, dict):
            raise ImageError("docker config must be a JSON object")
        auths = config["auths"] if "auths" in config else config  # legacy .dockercfg: no wrapper
        for key, entry in (auths or {}).items():
            cred = _decode_entry(key, entry)
            if cred is not None:
                host, path = _split_key(key)
                self._entries.append((host, path, cred))
        # Specific before general: exact hosts before globs, longer paths first (stable otherwise).
        self._entries.sort(key=lambda e: ("*" in e[0], -len(e[1])))
        return self

    def lookup(self, ref: Reference) -> list[BasicAuth]:
        """Credentials to try for ``ref``, best match first (duplicates removed)."""
        found: list[BasicAuth] = []
        for host, path, cred in self._entries:
            if not _host_matches(host, ref.registry.lower()):
                continue
            if path and not (ref.repository == path or ref.repository.startswith(path + "/")):
                continue
            if cred not in found:
                found.append(cred)
        return found


def keyring_from_pull_secrets(secrets: Iterable[dict[str, Any] | str | bytes]) -> DockerKeyring:
    """Build a keyring from imagePullSecrets: Secret objects (base64 ``data``) or decoded configs."""
    ring = DockerKeyring()
    for secret in secrets:
        if isinstance(secret, dict) and isinstance(secret.get("data"), dict):
            data = secret["data"]
            raw = data.get(".dockerconfigjson") or data.get(".dockercfg")
            if raw is None:
                continue
            try:
                ring.add(base64.b64decode(raw))
            except binascii.Error:
                raise ImageError("image pull secret data is not base64") from None
        else:
            ring.add(secret)
    return ring
