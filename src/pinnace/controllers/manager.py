"""The controller manager: runs every built-in controller against an API server."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from pathlib import Path

from ..client.events import EventRecorder
from ..client.informer import SharedInformerFactory
from ..client.leaderelection import LeaderElector
from ..client.rest import RestClient
from .certificates import CSRApprovingController, CSRSigningController
from .cronjob import CronJobController
from .daemonset import DaemonSetController
from .deployment import DeploymentController
from .disruption import DisruptionController
from .endpoints import EndpointsController
from .endpointslice import EndpointSliceController, EndpointSliceMirroringController
from .garbagecollector import GarbageCollector
from .job import JobController
from .namespace import NamespaceController
from .nodeipam import DEFAULT_CLUSTER_CIDR, DEFAULT_NODE_CIDR_MASK_SIZE, CidrSet, NodeIpamController
from .nodelifecycle import NodeLifecycleController
from .podgc import PodGCController
from .replicaset import ReplicaSetController
from .rootcacertpublisher import RootCACertPublisher, read_root_ca
from .serviceaccount import ServiceAccountController
from .serviceaccount_tokens import TokensController
from .statefulset import StatefulSetController
from .ttlafterfinished import TTLAfterFinishedController

log = logging.getLogger(__name__)


class RunningControllers:
    def __init__(self, client: RestClient, factory: SharedInformerFactory, controllers: list,
                 recorders: list[EventRecorder]):
        self.client, self.factory, self.controllers, self.recorders = client, factory, controllers, recorders

    async def stop(self) -> None:
        for c in self.controllers:
            await c.stop()
        for r in self.recorders:
            await r.stop()
        await self.factory.stop()
        await self.client.close()


async def run_builtin_controllers(kubeconfig: Path, node_monitor_grace_period: float = 40.0,
                                  cluster_signing_cert_file: Path | None = None,
                                  cluster_signing_key_file: Path | None = None,
                                  cluster_cidr: str = DEFAULT_CLUSTER_CIDR,
                                  node_cidr_mask_size: int = DEFAULT_NODE_CIDR_MASK_SIZE,
                                  allocate_node_cidrs: bool = True, root_ca_file: Path | None = None,
                                  service_account_private_key_file: Path | None = None) -> RunningControllers:
    """Start every controller on one shared set of informers (one connection pool).  The CSR
    signer runs only with the cluster CA's files, as upstream; node IPAM only with
    ``allocate_node_cidrs`` (it gives nodes podCIDRs from ``cluster_cidr``)."""
    if allocate_node_cidrs:
        CidrSet(cluster_cidr, node_cidr_mask_size)  # a bad range fails here, not in a background task
    client = RestClient.from_kubeconfig(kubeconfig, user_agent="pinnace-controller-manager")
    factory = SharedInformerFactory(client)
    recorder = EventRecorder(client, "controller-manager")
    node_recorder = EventRecorder(client, "node-controller")
    controllers = [
        NamespaceController(client, factory),
        ReplicaSetController(client, factory, None),  # records its own events as replicaset-controller
        DeploymentController(client, factory, None),  # records as deployment-controller
        DisruptionController(client, factory, recorder),
        DaemonSetController(client, factory, None),  # records as daemonset-controller
        StatefulSetController(client, factory, None),  # records as statefulset-controller
        JobController(client, factory, None),  # records as job-controller
        CronJobController(client, factory, None),  # records as cronjob-controller
        TTLAfterFinishedController(client, factory, None),
        GarbageCollector(client, factory),
        NodeLifecycleController(client, factory, node_recorder,
                                node_monitor_grace_period=node_monitor_grace_period),
        PodGCController(client, factory, recorder),
        ServiceAccountController(client, factory, recorder),
        CSRApprovingController(client, factory, recorder),
        EndpointsController(client, factory, None),  # records as endpoint-controller
        EndpointSliceController(client, factory, None),  # records as endpointslice-controller
        EndpointSliceMirroringController(client, factory, None),
    ]
    if allocate_node_cidrs:
        controllers.append(NodeIpamController(client, factory, node_recorder, cluster_cidr=cluster_cidr,
                                              node_cidr_mask_size=node_cidr_mask_size))
    # kube-root-ca.crt from --root-ca-file or the kubeconfig's CA; legacy token Secrets only
    # with a signing key (--service-account-private-key-file), as upstream.
    root_ca = read_root_ca(root_ca_file, kubeconfig)
    if root_ca is not None:
        controllers.append(RootCACertPublisher(client, factory, recorder, root_ca))
    if service_account_private_key_file is not None:
        controllers.append(TokensController(client, factory, recorder,
                                            private_key_file=service_account_private_key_file, root_ca=root_ca))
    if cluster_signing_cert_file and cluster_signing_key_file:
        controllers.append(CSRSigningController(client, factory, recorder, cert_file=cluster_signing_cert_file,
                                                key_file=cluster_signing_key_file))
    recorders = [recorder, node_recorder]
    for r in recorders:
        r.start()
    factory.start()
    for c in controllers:
        c.start()
    return RunningControllers(client, factory, controllers, recorders)


async def run_leader_elected(kubeconfig: Path, identity: str | None = None, lease_duration: float = 15.0,
                             renew_deadline: float = 10.0, retry_period: float = 2.0,
                             node_monitor_grace_period: float = 40.0, cluster_signing_cert_file: Path | None = None,
                             cluster_signing_key_file: Path | None = None, cluster_cidr: str = DEFAULT_CLUSTER_CIDR,
                             node_cidr_mask_size: int = DEFAULT_NODE_CIDR_MASK_SIZE,
                             allocate_node_cidrs: bool = True, root_ca_file: Path | None = None,
                             service_account_private_key_file: Path | None = None) -> None:
    """Run the controllers only while holding the kube-system/kube-controller-manager Lease;
    stand again after losing it.  Runs until cancelled."""
    identity = identity or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    client = RestClient.from_kubeconfig(kubeconfig, user_agent="pinnace-controller-manager-election")

    async def lead() -> None:
        controllers = await run_builtin_controllers(kubeconfig, node_monitor_grace_period, cluster_signing_cert_file,
                                                    cluster_signing_key_file, cluster_cidr=cluster_cidr,
                                                    node_cidr_mask_size=node_cidr_mask_size,
                                                    allocate_node_cidrs=allocate_node_cidrs, root_ca_file=root_ca_file,
                                                    service_account_private_key_file=service_account_private_key_file)
        try:
            await asyncio.Event().wait()  # until leadership ends (this task is cancelled)
        finally:
            await controllers.stop()

    try:
        while True:
            elector = LeaderElector(client, "kube-system", "kube-controller-manager", identity,
                                    lease_duration=lease_duration, renew_deadline=renew_deadline,
                                    retry_period=retry_period, on_started_leading=lead)
            await elector.run()
            log.warning("controller manager %s lost leadership; standing again", identity)
    finally:
        await client.close()
