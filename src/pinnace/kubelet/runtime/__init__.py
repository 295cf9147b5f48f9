"""Container runtimes for the kubelet: ``ocispec`` (pod container -> OCI config.json) and ``runc``.

Kept import-free: :mod:`.shim` (the runc shim, stdlib only) is also imported by the kubelet's
CRI log code through this package.
"""
