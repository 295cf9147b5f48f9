"""OCI / Docker v2 media types, descriptors and platform matching."""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass
from typing import Any

from .errors import UnsupportedImageError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")

INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
# What we ask registries for, preferred first.
MANIFEST_ACCEPT = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
         "armv6l": "arm", "i386": "386", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x",
         "riscv64": "riscv64"}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")


def host_platform() -> Platform:
    machine = _platform.machine().lower()
    arch = _ARCH.get(machine, machine)
    variant = {"armv7l": "v7", "armv6l": "v6"}.get(machine, "")
    return Platform("linux", arch, variant)


def platform_matches(wanted: Platform, entry: dict[str, Any] | None) -> bool:
    if not entry:
        return False
    if entry.get("os") != wanted.os or entry.get("architecture") != wanted.architecture:
        return False
    variant = entry.get("variant", "")
    if wanted.architecture == "arm64":  # arm64 images are v8 whether or not they say so
        return variant in ("", "v8")
    return not wanted.variant or not variant or variant == wanted.variant


def media_type_of(doc: dict[str, Any], header: str | None = None) -> str:
    """The manifest kind, from the Content-Type when useful, else from the document itself."""
    header = (header or "").split(";")[0].strip()
    if header in INDEX_TYPES or header in MANIFEST_TYPES:
        return header
    mt = doc.get("mediaType")
    if isinstance(mt, str) and mt:
        return mt
    if doc.get("schemaVersion") == 1:
        return DOCKER_SCHEMA1[0]
    if "manifests" in doc:
        return OCI_INDEX
    if "layers" in doc and "config" in doc:
        return OCI_MANIFEST
    raise UnsupportedImageError("document is neither an image index nor an image manifest")


def check_supported(media_type: str) -> None:
    if media_type in DOCKER_SCHEMA1:
        raise UnsupportedImageError("Docker schema 1 manifests are not supported (deprecated); "
                                    "re-push the image with a current client")
    if media_type not in INDEX_TYPES and media_type not in MANIFEST_TYPES:
        raise UnsupportedImageError(f"unsupported manifest media type {media_type!r}")


def select_manifest(index: dict[str, Any], wanted: Platform) -> dict[str, Any]:
    """The descriptor in ``index`` for ``wanted`` (attestation entries have platform unknown/unknown)."""
    for desc in index.get("manifests", []):
        if desc.get("mediaType", OCI_MANIFEST) in INDEX_TYPES:
            continue
        if platform_matches(wanted, desc.get("platform")):
            return desc
    # Single-manifest indexes without platform info (e.g. some OCI layouts) are meant for everyone.
    candidates = [d for d in index.get("manifests", []) if not d.get("platform")
                  and d.get("mediaType", OCI_MANIFEST) in MANIFEST_TYPES]
    if len(candidates) == 1:
        return candidates[0]
    available = sorted({str(Platform(p.get("os", "?"), p.get("architecture", "?"), p.get("variant", "")))
                        for d in index.get("manifests", []) if (p := d.get("platform"))})
    raise UnsupportedImageError(f"no image for platform {wanted} (image has: {', '.join(available) or 'none'})")


def descriptor(media_type: str, digest: str, size: int, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": size, **extra}
