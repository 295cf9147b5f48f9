"""Service-account tokens controller (kube-controller-manager's ``serviceaccount-token``):
fills Secrets of type ``kubernetes.io/service-account-token`` with a legacy token
(``token``), the cluster CA (``ca.crt``) and their ``namespace``, and deletes them when
their service account is gone -- the long-lived tokens that predate TokenRequest.

* A token Secret names its account in the annotation ``kubernetes.io/service-account.name``;
  the controller records the account's uid in ``kubernetes.io/service-account.uid``.  A
  Secret whose account does not exist (or is another incarnation: uid differs) is deleted.
* Deleting a service account deletes its token Secrets.
* The token is signed with ``--service-account-private-key-file``; the API server
  accepts it while the Secret exists and holds that very token.

Keys: ``secret/<ns>/<name>`` and ``sa/<ns>/<name>/<uid>`` (a deleted account).
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path

from ..client.events import EventRecorder
from ..client.informer import Informer, SharedInformerFactory
from ..client.rest import ApiException, RestClient
from ..pki.serviceaccount import Signer, legacy_claims
from .base import QueueController

log = logging.getLogger(__name__)

TOKEN_SECRET_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


class TokensController(QueueController):
    WORKERS = 2

    def __init__(self, client: RestClient, factory: SharedInformerFactory, recorder: EventRecorder | None, *,
                 private_key_file: Path, root_ca: bytes | None = None):
        super().__init__(client, factory, recorder, component="serviceaccount-token-controller",
                         queue="serviceaccount-token", workers=self.WORKERS)
        self.signer = Signer.from_file(private_key_file)
        self.root_ca = root_ca
        self.accounts = self.informer("v1", "serviceaccounts")
        self.secrets: Informer = factory.informer("v1", "secrets", field_selector=f"type={TOKEN_SECRET_TYPE}")
        self._informers.append(self.secrets)
        self.accounts.add_event_handler(on_delete=self._account_deleted)
        self.secrets.add_event_handler(on_add=self._secret, on_update=lambda _old, new: self._secret(new))

    def _secret(self, secret: dict) -> None:
        meta = secret.get("metadata") or {}
        self.queue.add(f"secret/{meta.get('namespace', '')}/{meta.get('name', '')}")

    def _account_deleted(self, sa: dict) -> None:
        meta = sa.get("metadata") or {}
        self.queue.add(f"sa/{meta.get('namespace', '')}/{meta.get('name', '')}/{meta.get('uid', '')}")

    def _retry_quietly(self, e: Exception) -> bool:
        return isinstance(e, ApiException) and e.status == 409

    async def sync(self, key: str) -> None:
        kind, _, rest = key.partition("/")
        if kind == "secret":
            namespace, _, name = rest.partition("/")
            await self.sync_secret(namespace, name)
        elif kind == "sa":
            namespace, name, uid = rest.split("/", 2)
            await self.delete_tokens_of(namespace, name, uid)

    # -- a token Secret ----------------------------------------------------------------------

    async def sync_secret(self, namespace: str, name: str) -> None:
        secret = self.secrets.lister.get(name, namespace)
        if secret is None or secret.get("type") != TOKEN_SECRET_TYPE:
            return
        meta = secret.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            return
        annotations = meta.get("annotations") or {}
        sa = await self._account(namespace, annotations.get(SA_NAME_ANNOTATION, ""),
                                 annotations.get(SA_UID_ANNOTATION, ""))
        if sa is None:
            log.info("deleting token secret %s/%s: its service account %r does not exist", namespace, name,
                     annotations.get(SA_NAME_ANNOTATION))
            await self._delete_secret(secret)
            return
        if not self._needs_update(secret, sa):
            return
        try:  # from the server: the token is written once, never over a newer copy
            live = await self.client.get("v1", "secrets", name, namespace)
        except ApiException as e:
            if e.status == 404:
                return
            raise
        live_meta = live.get("metadata") or {}
        if live.get("type") != TOKEN_SECRET_TYPE or live_meta.get("uid") != meta.get("uid") or (
                (live_meta.get("annotations") or {}).get(SA_NAME_ANNOTATION) != annotations.get(SA_NAME_ANNOTATION)):
            return  # changed under us; its own event brings it back
        if not self._needs_update(live, sa):
            return
        sa_meta = sa["metadata"]
        data = dict(live.get("data") or {})
        if not data.get("token"):
            data["token"] = _b64(self.signer.sign(legacy_claims(sa, name)))
        if self.root_ca:
            data["ca.crt"] = _b64(self.root_ca)
        data["namespace"] = _b64(namespace)
        live_meta["annotations"] = {**(live_meta.get("annotations") or {}), SA_NAME_ANNOTATION: sa_meta["name"],
                                    SA_UID_ANNOTATION: sa_meta["uid"]}
        live["metadata"], live["data"] = live_meta, data
        await self.client.update("v1", "secrets", live, namespace=namespace)  # resourceVersion-guarded
        log.info("filled token secret %s/%s for service account %s", namespace, name, sa_meta["name"])

    def _needs_update(self, secret: dict, sa: dict) -> bool:
        data = secret.get("data") or {}
        annotations = (secret.get("metadata") or {}).get("annotations") or {}
        return (not data.get("token")
                or (self.root_ca is not None and data.get("ca.crt") != _b64(self.root_ca))
                or data.get("namespace") != _b64((secret.get("metadata") or {}).get("namespace", ""))
                or annotations.get(SA_UID_ANNOTATION) != sa["metadata"].get("uid"))

    async def _account(self, namespace: str, name: str, uid: str) -> dict | None:
        """The service account a token Secret names (with that uid, when it records one): from
        the cache, else from the server (a Secret made right after its account)."""
        if not name:
            return None
        sa = self.accounts.lister.get(name, namespace)
        if sa is None or (uid and sa["metadata"].get("uid") != uid):
            try:
                sa = await self.client.get("v1", "serviceaccounts", name, namespace)
            except ApiException as e:
                if e.status == 404:
                    return None
                raise
        if uid and sa["metadata"].get("uid") != uid:
            return None
        return sa

    async def _delete_secret(self, secret: dict) -> None:
        meta = secret["metadata"]
        try:
            await self.client.delete("v1", "secrets", meta["name"], meta["namespace"],
                                     preconditions={"uid": meta["uid"]})
        except ApiException as e:
            if e.status not in (404, 409):  # gone already, or another Secret by that name now
                raise

    # -- a deleted service account -----------------------------------------------------------

    async def delete_tokens_of(self, namespace: str, name: str, uid: str) -> None:
        current = self.accounts.lister.get(name, namespace)
        if current is not None and current["metadata"].get("uid") == uid:
            return  # not deleted after all (a stale event)
        for secret in self.secrets.lister.list(namespace):
            annotations = (secret.get("metadata") or {}).get("annotations") or {}
            if annotations.get(SA_NAME_ANNOTATION) != name:
                continue
            if annotations.get(SA_UID_ANNOTATION) not in (None, "", uid):
                continue  # belongs to another incarnation of the account
            await self._delete_secret(secret)


__all__ = ["TokensController"]
