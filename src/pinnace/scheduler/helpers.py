"""Matching rules several plugins share: tolerations vs taints, node selectors and
node affinity, and the default score normalisation."""

from __future__ import annotations

from dataclasses import dataclass

from pinnace.scheduler.model import NodeInfo

MAX_NODE_SCORE = 100

DO_NOT_SCHEDULE_EFFECTS = ("NoSchedule", "NoExecute")


# -- taints and tolerations ------------------------------------------------------


def tolerates(toleration: dict, taint: dict) -> bool:
    """``Toleration.ToleratesTaint``: an empty effect matches every effect, an empty
    key (only valid with Exists) every key; the operator defaults to Equal."""
    effect = toleration.get("effect") or ""
    if effect and effect != (taint.get("effect") or ""):
        return False
    key = toleration.get("key") or ""
    if key and key != (taint.get("key") or ""):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def tolerations_tolerate_taint(tolerations: list[dict], taint: dict) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


def find_untolerated_taint(taints: list[dict], tolerations: list[dict]) -> dict | None:
    """The first taint in ``taints`` that no toleration tolerates, or None."""
    for taint in taints:
        if not tolerations_tolerate_taint(tolerations, taint):
            return taint
    return None


def untolerated_do_not_schedule_taint(node_info: NodeInfo, tolerations: list[dict]) -> dict | None:
    """The first NoSchedule/NoExecute taint of the node the tolerations miss."""
    if not node_info.no_schedule_taints:
        return None
    return find_untolerated_taint(node_info.no_schedule_taints, tolerations)


# -- node selectors ----------------------------------------------------------------


class _Invalid(ValueError):
    pass


def _int_value(values: list) -> int:
    if len(values) != 1:
        raise _Invalid("Gt/Lt take exactly one value")
    try:
        return int(values[0])
    except (TypeError, ValueError):
        raise _Invalid(f"{values[0]!r} is not an integer") from None


def _label_req(expr: dict):
    """A compiled ``NodeSelectorRequirement`` over labels: (key, op, values)."""
    key = expr.get("key") or ""
    op = expr.get("operator") or ""
    values = expr.get("values") or []
    if not key:
        raise _Invalid("empty key")
    if op in ("In", "NotIn"):
        if not values:
            raise _Invalid("In/NotIn need values")
        return key, op, frozenset(str(v) for v in values)
    if op in ("Exists", "DoesNotExist"):
        if values:
            raise _Invalid("Exists/DoesNotExist take no values")
        return key, op, None
    if op in ("Gt", "Lt"):
        return key, op, _int_value(values)
    raise _Invalid(f"unknown operator {op!r}")


def _label_req_matches(req, labels: dict[str, str]) -> bool:
    key, op, arg = req
    if op == "In":
        return key in labels and labels[key] in arg
    if op == "NotIn":
        return key not in labels or labels[key] not in arg
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if key not in labels:
        return False
    try:
        have = int(labels[key])
    except ValueError:
        return False
    return have > arg if op == "Gt" else have < arg


def _field_req(expr: dict):
    """matchFields support only metadata.name with In/NotIn and one value."""
    values = expr.get("values") or []
    if len(values) != 1:
        raise _Invalid("matchFields take exactly one value")
    op = expr.get("operator")
    if op not in ("In", "NotIn"):
        raise _Invalid(f"unsupported field operator {op!r}")
    return expr.get("key") or "", op, str(values[0])


@dataclass(slots=True)
class NodeSelectorTerm:
    label_reqs: tuple
    field_reqs: tuple
    valid: bool = True

    @classmethod
    def parse(cls, term: dict) -> NodeSelectorTerm:
        try:
            labels = tuple(_label_req(e) for e in term.get("matchExpressions") or ())
            fields = tuple(_field_req(e) for e in term.get("matchFields") or ())
        except _Invalid:
            # A term that fails to parse matches nothing; other terms still count.
            return cls((), (), False)
        return cls(labels, fields)

    def matches(self, labels: dict[str, str], node_name: str) -> bool:
        if not self.valid:
            return False
        for req in self.label_reqs:
            if not _label_req_matches(req, labels):
                return False
        for key, op, value in self.field_reqs:
            have = node_name if key == "metadata.name" else ""
            if (have == value) != (op == "In"):
                return False
        return True


def _is_empty_term(term: dict | None) -> bool:
    return not term or (not term.get("matchExpressions") and not term.get("matchFields"))


class NodeSelector:
    """``v1.NodeSelector``: ORed terms; an empty term selects nothing."""

    __slots__ = ("terms",)

    def __init__(self, terms: list[dict]):
        self.terms = [NodeSelectorTerm.parse(t) for t in terms if not _is_empty_term(t)]

    def matches(self, labels: dict[str, str], node_name: str) -> bool:
        return any(t.matches(labels, node_name) for t in self.terms)


class RequiredNodeAffinity:
    """``nodeaffinity.RequiredNodeAffinity``: spec.nodeSelector AND the required
    node affinity terms."""

    __slots__ = ("node_selector", "selector")

    def __init__(self, pod: dict):
        spec = pod.get("spec") or {}
        self.selector: dict[str, str] = {k: str(v) for k, v in (spec.get("nodeSelector") or {}).items()}
        required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                    .get("requiredDuringSchedulingIgnoredDuringExecution"))
        self.node_selector = NodeSelector(required.get("nodeSelectorTerms") or []) if required is not None else None

    @property
    def empty(self) -> bool:
        return not self.selector and self.node_selector is None

    def matches(self, node_info: NodeInfo) -> bool:
        labels = node_info.labels
        for k, v in self.selector.items():
            if labels.get(k) != v:
                return False
        return self.node_selector is None or self.node_selector.matches(labels, node_info.name)


class PreferredSchedulingTerms:
    """Weighted preferred node affinity terms; weight 0 or empty terms are dropped."""

    __slots__ = ("terms",)

    def __init__(self, terms: list[dict]):
        self.terms: list[tuple[int, NodeSelectorTerm]] = []
        for t in terms:
            weight = int(t.get("weight") or 0)
            pref = t.get("preference")
            if weight == 0 or _is_empty_term(pref):
                continue
            self.terms.append((weight, NodeSelectorTerm.parse(pref)))

    def score(self, node_info: NodeInfo) -> int:
        return sum(w for w, t in self.terms if t.matches(node_info.labels, node_info.name))


# -- scores -------------------------------------------------------------------------


def default_normalize_score(scores: dict[str, int], reverse: bool = False, max_priority: int = MAX_NODE_SCORE) -> None:
    """``helper.DefaultNormalizeScore``: scale to 0..max by the highest score (integer
    division); ``reverse`` flips so that the lowest raw score wins."""
    max_count = max(scores.values(), default=0)
    if max_count <= 0:
        if reverse:
            for k in scores:
                scores[k] = max_priority
        return
    for k, s in scores.items():
        s = max_priority * s // max_count
        scores[k] = max_priority - s if reverse else s


def go_div(a: int, b: int) -> int:
    """Integer division truncating toward zero, as Go's ``/`` does."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q
