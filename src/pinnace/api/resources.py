"""The resource table: every kind the API server serves.

One line per (group/version, kind).  Everything that routes, discovers,
stores or describes a resource reads it from here; adding a built-in kind
means adding a line (and, if it needs one, a strategy in
``pinnace.apiserver.strategies``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import schema

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

# group/version  Kind  plural  scope  shortNames  subresources  [categories]
# scope: N = namespaced, C = cluster.  "-" means none.
_TABLE = """
v1 Binding bindings N - - create
v1 ComponentStatus componentstatuses C cs - get,list
v1 ConfigMap configmaps N cm -
v1 Endpoints endpoints N ep -
v1 Event events N ev -
v1 LimitRange limitranges N limits -
v1 Namespace namespaces C ns status,finalize
v1 Node nodes C no status,proxy
v1 PersistentVolume persistentvolumes C pv status
v1 PersistentVolumeClaim persistentvolumeclaims N pvc status
v1 Pod pods N po status,binding,eviction,log,exec,attach,portforward,proxy,ephemeralcontainers,resize
v1 PodTemplate podtemplates N - -
v1 ReplicationController replicationcontrollers N rc status,scale
v1 ResourceQuota resourcequotas N quota status
v1 Secret secrets N - -
v1 Service services N svc status,proxy
v1 ServiceAccount serviceaccounts N sa token
apps/v1 ControllerRevision controllerrevisions N - -
apps/v1 DaemonSet daemonsets N ds status
apps/v1 Deployment deployments N deploy status,scale
apps/v1 ReplicaSet replicasets N rs status,scale
apps/v1 StatefulSet statefulsets N sts status,scale
batch/v1 CronJob cronjobs N cj status
batch/v1 Job jobs N - status
networking.k8s.io/v1 IngressClass ingressclasses C - -
networking.k8s.io/v1 Ingress ingresses N ing status
networking.k8s.io/v1 NetworkPolicy networkpolicies N netpol -
coordination.k8s.io/v1 Lease leases N - -
discovery.k8s.io/v1 EndpointSlice endpointslices N - -
events.k8s.io/v1 Event events N ev -
rbac.authorization.k8s.io/v1 ClusterRoleBinding clusterrolebindings C - -
rbac.authorization.k8s.io/v1 ClusterRole clusterroles C - -
rbac.authorization.k8s.io/v1 RoleBinding rolebindings N - -
rbac.authorization.k8s.io/v1 Role roles N - -
storage.k8s.io/v1 CSIDriver csidrivers C - -
storage.k8s.io/v1 CSINode csinodes C - -
storage.k8s.io/v1 CSIStorageCapacity csistoragecapacities N - -
storage.k8s.io/v1 StorageClass storageclasses C sc -
storage.k8s.io/v1 VolumeAttachment volumeattachments C - status
policy/v1 PodDisruptionBudget poddisruptionbudgets N pdb status
autoscaling/v2 HorizontalPodAutoscaler horizontalpodautoscalers N hpa status
autoscaling/v1 HorizontalPodAutoscaler horizontalpodautoscalers N hpa status
scheduling.k8s.io/v1 PriorityClass priorityclasses C pc -
certificates.k8s.io/v1 CertificateSigningRequest certificatesigningrequests C csr status,approval
authentication.k8s.io/v1 SelfSubjectReview selfsubjectreviews C - - create
authentication.k8s.io/v1 TokenReview tokenreviews C - - create
authorization.k8s.io/v1 SelfSubjectAccessReview selfsubjectaccessreviews C - - create
authorization.k8s.io/v1 SubjectAccessReview subjectaccessreviews C - - create
authorization.k8s.io/v1 LocalSubjectAccessReview localsubjectaccessreviews N - - create
authorization.k8s.io/v1 SelfSubjectRulesReview selfsubjectrulesreviews C - - create
"""

# Kinds whose strategy makes `kubectl get all` include them.
_CATEGORY_ALL = {
    "pods", "replicationcontrollers", "services", "daemonsets", "deployments",
    "replicasets", "statefulsets", "horizontalpodautoscalers", "cronjobs", "jobs",
}  # fmt: skip

# Kinds that only answer some verbs.
_VERBS_OVERRIDE = {"bindings": ("create",), "componentstatuses": ("get", "list")}


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    categories: tuple[str, ...] = ()
    # Where objects of this resource live, shared by every version of it.
    storage_prefix: str = ""
    # The schema definition name (None for CRDs without one).
    definition: str | None = None
    # For custom resources: the compiled OpenAPI schema and printer columns.
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def gvk(self) -> tuple[str, str, str]:
        return (self.group, self.version, self.kind)

    def key(self, namespace: str, name: str) -> str:
        if self.namespaced:
            return f"{self.storage_prefix}{namespace}/{name}"
        return f"{self.storage_prefix}{name}"

    def namespace_prefix(self, namespace: str) -> str:
        return f"{self.storage_prefix}{namespace}/" if self.namespaced and namespace else self.storage_prefix


def storage_prefix(group: str, plural: str) -> str:
    return f"/registry/{group or 'core'}/{plural}/"


def _parse_table() -> list[ResourceType]:
    out = []
    for line in _TABLE.strip().splitlines():
        gv, kind, plural, scope, shorts, subs, *rest = line.split()
        group, _, version = gv.rpartition("/")
        verbs = tuple(rest[0].split(",")) if rest else _VERBS_OVERRIDE.get(plural, ALL_VERBS)
        out.append(
            ResourceType(
                group=group,
                version=version,
                kind=kind,
                plural=plural,
                namespaced=scope == "N",
                short_names=() if shorts == "-" else tuple(shorts.split(",")),
                subresources=() if subs == "-" else tuple(subs.split(",")),
                verbs=verbs,
                categories=("all",) if plural in _CATEGORY_ALL else (),
                storage_prefix=storage_prefix(group, plural),
                definition=schema.definition_for(group, version, kind),
            )
        )
    return out


BUILTIN: list[ResourceType] = _parse_table()

# core/v1 Events and events.k8s.io/v1 Events are one resource in Kubernetes;
# both versions share storage (see strategies for the conversion).
EVENTS_PREFIX = storage_prefix("", "events")
BUILTIN = [
    ResourceType(**{**r.__dict__, "storage_prefix": EVENTS_PREFIX}) if r.plural == "events" else r
    for r in BUILTIN
]


class ResourceRegistry:
    """Lookup of resource types by group/version and plural, kind or short name.

    Mutable so that CustomResourceDefinitions can add and remove kinds at run time.
    """

    def __init__(self, types: list[ResourceType]) -> None:
        self._by_gvr: dict[tuple[str, str, str], ResourceType] = {}
        self.generation = 0
        for t in types:
            self.add(t)

    def add(self, t: ResourceType) -> None:
        self._by_gvr[(t.group, t.version, t.plural)] = t
        self.generation += 1

    def remove(self, group: str, version: str, plural: str) -> None:
        self._by_gvr.pop((group, version, plural), None)
        self.generation += 1

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_gvr.get((group, version, plural))

    def all(self) -> list[ResourceType]:
        return list(self._by_gvr.values())

    def by_kind(self, group: str, version: str, kind: str) -> ResourceType | None:
        for t in self._by_gvr.values():
            if t.group == group and t.version == version and t.kind == kind:
                return t
        return None

    def group_versions(self) -> dict[str, list[str]]:
        """group → versions, preferred first, in a stable order."""
        out: dict[str, list[str]] = {}
        for t in self._by_gvr.values():
            versions = out.setdefault(t.group, [])
            if t.version not in versions:
                versions.append(t.version)
        for versions in out.values():
            versions.sort(key=version_priority)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self._by_gvr.values() if t.group == group and t.version == version]


def version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes' version ordering: GA before beta before alpha, higher first."""
    import re

    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (3, 0, 0)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -major, -minor)
