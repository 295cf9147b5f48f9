"""Root CA certificate publisher (kube-controller-manager's ``root-ca-cert-publisher``):
every active namespace holds the ConfigMap ``kube-root-ca.crt`` whose ``ca.crt`` is the
cluster CA, so pods can verify the API server (the ``kube-api-access-*`` volume
projects it).  A deleted ConfigMap is recreated and an edited one restored.

Keys are namespace names: a namespace is synced when it appears or changes and when
its ``kube-root-ca.crt`` is changed or deleted.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import yaml

from ..client.events import EventRecorder
from ..client.informer import Informer, SharedInformerFactory
from ..client.rest import ApiException, RestClient
from .base import QueueController

log = logging.getLogger(__name__)

CONFIGMAP_NAME = "kube-root-ca.crt"
DATA_KEY = "ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
               "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
               "distributions of Kubernetes clusters.")


def read_root_ca(root_ca_file: Path | None, kubeconfig: Path | None = None) -> bytes | None:
    """``--root-ca-file``, else the CA the controller manager's kubeconfig trusts (upstream's
    fallback); None when neither names one."""
    if root_ca_file is not None:
        return Path(root_ca_file).read_bytes()
    if kubeconfig is None:
        return None
    config = yaml.safe_load(Path(kubeconfig).read_text()) or {}
    current = next((c.get("context") or {} for c in config.get("contexts") or []
                    if c.get("name") == config.get("current-context")), {})
    cluster = next((c.get("cluster") or {} for c in config.get("clusters") or []
                    if c.get("name") == current.get("cluster")), {})
    if cluster.get("certificate-authority-data"):
        return base64.b64decode(cluster["certificate-authority-data"])
    if cluster.get("certificate-authority"):
        return Path(cluster["certificate-authority"]).read_bytes()
    return None


class RootCACertPublisher(QueueController):
    WORKERS = 2

    def __init__(self, client: RestClient, factory: SharedInformerFactory, recorder: EventRecorder | None,
                 root_ca: bytes):
        super().__init__(client, factory, recorder, component="root-ca-cert-publisher",
                         queue="root-ca-cert-publisher", workers=self.WORKERS)
        self.root_ca = root_ca.decode()
        self.namespaces = self.informer("v1", "namespaces")
        # Only the one ConfigMap per namespace: no cache of every ConfigMap in the cluster.
        self.configmaps: Informer = factory.informer("v1", "configmaps",
                                                     field_selector=f"metadata.name={CONFIGMAP_NAME}")
        self._informers.append(self.configmaps)
        self.namespaces.add_event_handler(on_add=self._namespace, on_update=lambda _old, new: self._namespace(new))
        self.configmaps.add_event_handler(on_update=lambda _old, new: self._configmap(new), on_delete=self._configmap)

    def _namespace(self, ns: dict) -> None:
        self.queue.add(ns["metadata"]["name"])

    def _configmap(self, cm: dict) -> None:
        meta = cm.get("metadata") or {}
        if meta.get("name") == CONFIGMAP_NAME and meta.get("namespace"):
            self.queue.add(meta["namespace"])

    def _retry_quietly(self, e: Exception) -> bool:
        return isinstance(e, ApiException) and e.status == 409

    async def sync(self, key: str) -> None:
        ns = self.namespaces.lister.get(key)
        if ns is None or not _active(ns):
            return
        want = {DATA_KEY: self.root_ca}
        cm = self.configmaps.lister.get(CONFIGMAP_NAME, key)
        if cm is None:
            body = {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": CONFIGMAP_NAME, "namespace": key,
                                 "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
                    "data": want}
            try:
                await self.client.create("v1", "configmaps", body, namespace=key)
            except ApiException as e:
                if e.status == 409:
                    return  # our cache lags; the update event brings it back if it differs
                if e.status in (403, 404):
                    return  # the namespace is going away: NamespaceLifecycle refuses content
                raise
            return
        annotations = (cm.get("metadata") or {}).get("annotations") or {}
        if cm.get("data") == want and not cm.get("binaryData") and annotations.get(DESCRIPTION_ANNOTATION):
            return
        meta = dict(cm["metadata"])
        meta["annotations"] = {**annotations, DESCRIPTION_ANNOTATION: DESCRIPTION}
        updated = {**cm, "metadata": meta, "data": want}
        updated.pop("binaryData", None)
        await self.client.update("v1", "configmaps", updated, namespace=key)  # resourceVersion-guarded


def _active(ns: dict) -> bool:
    return not ns["metadata"].get("deletionTimestamp") and (ns.get("status") or {}).get("phase") != "Terminating"


__all__ = ["CONFIGMAP_NAME", "RootCACertPublisher", "read_root_ca"]
