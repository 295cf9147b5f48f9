"""Image references, parsed and normalised the way docker/containerd do (distribution/reference).

``busybox`` -> ``docker.io/library/busybox:latest``; ``user/img`` -> ``docker.io/user/img:latest``;
the first path component is a registry host when it contains ``.`` or ``:`` or is ``localhost``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidReferenceError

DEFAULT_REGISTRY = "docker.io"
LEGACY_DEFAULT_REGISTRY = "index.docker.io"
# Pulls from Docker Hub go to this host, not to docker.io itself.
DOCKER_HUB_API_HOST = "registry-1.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$")
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")
_NAME_TOTAL_MAX = 255


@dataclass(frozen=True)
class Reference:
    """A fully normalised reference: ``registry/repository[:tag][@digest]``."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """The host to talk the Distribution API to."""
        return DOCKER_HUB_API_HOST if self.registry == DEFAULT_REGISTRY else self.registry

    @property
    def object(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.registry, self.repository, tag, None)

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, None, digest)

    def __str__(self) -> str:
        s = self.name
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s


def split_domain(name: str) -> tuple[str, str]:
    """Split a (possibly familiar) name into (registry, repository) with Docker Hub defaults."""
    first, sep, rest = name.partition("/")
    # The first component is a registry host when it looks like one (docker's rule; uppercase is
    # not valid in a repository, so it must be a host too).
    if sep and (("." in first or ":" in first) or first == "localhost" or first.lower() != first):
        domain, remainder = first, rest
    else:
        domain, remainder = DEFAULT_REGISTRY, name
    if domain == LEGACY_DEFAULT_REGISTRY:
        domain = DEFAULT_REGISTRY
    if domain == DEFAULT_REGISTRY and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def parse_reference(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise ``text``; adds ``:latest`` when neither tag nor digest is given."""
    s = text.strip()
    if not s:
        raise InvalidReferenceError("image reference is empty")
    if _HEX64.match(s):
        raise InvalidReferenceError(f"invalid reference {text!r}: cannot be a 64-character hexadecimal string")
    digest = None
    if "@" in s:
        s, digest = s.split("@", 1)
        if not _DIGEST.match(digest):
            raise InvalidReferenceError(f"invalid reference {text!r}: bad digest {digest!r}")
    tag = None
    # A ':' after the last '/' starts the tag; one before it is a registry port.
    colon = s.rfind(":")
    if colon > s.rfind("/"):
        s, tag = s[:colon], s[colon + 1:]
        if not _TAG.match(tag):
            raise InvalidReferenceError(f"invalid reference {text!r}: bad tag {tag!r}")
    domain, repository = split_domain(s)
    if not _DOMAIN.match(domain):
        raise InvalidReferenceError(f"invalid reference {text!r}: bad registry host {domain!r}")
    if repository.lower() != repository:
        raise InvalidReferenceError(f"invalid reference {text!r}: repository name must be lowercase")
    if not repository or not all(_PATH_COMPONENT.match(c) for c in repository.split("/")):
        raise InvalidReferenceError(f"invalid reference format: {text!r}")
    if len(domain) + 1 + len(repository) > _NAME_TOTAL_MAX:
        raise InvalidReferenceError(f"invalid reference {text!r}: name longer than {_NAME_TOTAL_MAX} characters")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, repository, tag, digest)


def normalize(text: str) -> str:
    """The canonical string for ``text``: ``busybox`` -> ``docker.io/library/busybox:latest``."""
    return str(parse_reference(text))


def familiar(ref: str | Reference) -> str:
    """The short form users type (``busybox:latest``), for messages."""
    r = parse_reference(ref) if isinstance(ref, str) else ref
    s = r.name
    if r.registry == DEFAULT_REGISTRY:
        s = r.repository.removeprefix(OFFICIAL_REPO_PREFIX)
    if r.tag:
        s += f":{r.tag}"
    if r.digest:
        s += f"@{r.digest}"
    return s


def is_valid_tag(text: str) -> bool:
    return bool(_TAG.match(text))
