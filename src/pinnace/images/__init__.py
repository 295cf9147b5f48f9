"""The node's image service: references, a content-addressed OCI store, registry pulls,
archive imports and rootfs unpacking (see ARCHITECTURE.md §7)."""

# Names resolve on first use (PEP 562): a node agent that only reads its store should not load
# the registry client, the archive importer or tarfile.
_WHERE = {
    "BasicAuth": "credentials", "DockerKeyring": "credentials", "keyring_from_pull_secrets": "credentials",
    "Reference": "reference", "familiar": "reference", "normalize": "reference", "parse_reference": "reference",
    "ImageService": "service", "default_pull_policy": "service",
    "ImageStore": "store", "LocalImage": "store",
    **dict.fromkeys(("DigestMismatchError", "ImageError", "ImageNeverPullError", "ImageNotFoundError",
                     "ImportArchiveError", "InvalidReferenceError", "RegistryUnavailableError", "UnauthorizedError",
                     "UnpackError", "UnsupportedImageError"), "errors"),
}


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


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
