"""Container runtimes for the kubelet: ``ocispec`` (pod container -> OCI config.json) and ``runc``.

Kept import-free: the runc shim runs as ``python -m pinnace.kubelet.runtime.runc`` and
should start fast.
"""
