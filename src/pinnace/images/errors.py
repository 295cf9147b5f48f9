"""Typed image errors, so the kubelet can tell ErrImagePull causes apart and report a useful message."""

from __future__ import annotations


class ImageError(Exception):
    """Base class of every image-service error."""


class InvalidReferenceError(ImageError, ValueError):
    """The image string is not a valid reference (kubelet: InvalidImageName)."""


class ImageNotFoundError(ImageError):
    """The registry (or local store) has no such repository, tag or digest."""


class UnauthorizedError(ImageError):
    """The registry refused our credentials, or wants some and we had none."""


class RegistryUnavailableError(ImageError):
    """Network trouble: DNS, connection refused, TLS, timeouts, 5xx answers."""


class DigestMismatchError(ImageError):
    """Content did not hash to the digest it was announced with."""


class UnsupportedImageError(ImageError):
    """A manifest/layer format we do not handle (schema1, no manifest for this platform...)."""


class ImageNeverPullError(ImageError):
    """imagePullPolicy is Never and the image is not present (kubelet: ErrImageNeverPull)."""


class ImportArchiveError(ImageError):
    """An archive passed to import is not an OCI layout/archive or a docker-archive."""


class UnpackError(ImageError):
    """A layer could not be applied to a rootfs (path escaping the root, corrupt tar...)."""
