"""The node's image service: references, a content-addressed OCI store, registry pulls,
archive imports and rootfs unpacking (see ARCHITECTURE.md §7)."""

from .credentials import BasicAuth, DockerKeyring, keyring_from_pull_secrets
from .errors import (
    DigestMismatchError,
    ImageError,
    ImageNeverPullError,
    ImageNotFoundError,
    ImportArchiveError,
    InvalidReferenceError,
    RegistryUnavailableError,
    UnauthorizedError,
    UnpackError,
    UnsupportedImageError,
)
from .reference import Reference, familiar, normalize, parse_reference
from .service import ImageService, default_pull_policy
from .store import ImageStore, LocalImage

__all__ = [
    "BasicAuth",
    "DigestMismatchError",
    "DockerKeyring",
    "ImageError",
    "ImageNeverPullError",
    "ImageNotFoundError",
    "ImageService",
    "ImageStore",
    "ImportArchiveError",
    "InvalidReferenceError",
    "LocalImage",
    "Reference",
    "RegistryUnavailableError",
    "UnauthorizedError",
    "UnpackError",
    "UnsupportedImageError",
    "default_pull_policy",
    "familiar",
    "keyring_from_pull_secrets",
    "normalize",
    "parse_reference",
]
