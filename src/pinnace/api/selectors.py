"""Label and field selectors, as the API's ``labelSelector``/``fieldSelector``
query parameters and ``metav1.LabelSelector`` objects express them."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class SelectorError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str]) -> bool:
        op = self.op
        if op == "exists":
            return self.key in labels
        if op == "!":
            return self.key not in labels
        if op in ("=", "in"):
            return self.key in labels and labels[self.key] in self.values
        if op in ("!=", "notin"):
            return self.key not in labels or labels[self.key] not in self.values
        if op in ("gt", "lt"):
            if self.key not in labels:
                return False
            try:
                have, want = int(labels[self.key]), int(next(iter(self.values)))
            except ValueError:
                return False
            return have > want if op == "gt" else have < want
        raise AssertionError(op)


LabelSelector = tuple[Requirement, ...]

_TOKEN = re.compile(r"\s*(!=|==|=|,|\(|\)|!|[^\s!=,()]+)")


def parse_label_selector(text: str) -> LabelSelector:
    """Parse ``app=web,tier in (a, b),!canary,env,version notin (1)``."""
    tokens = [m.group(1) for m in _TOKEN.finditer(text or "")]
    out: list[Requirement] = []
    i = 0

    def take() -> str:
        nonlocal i
        if i >= len(tokens):
            raise SelectorError(f"unable to parse requirement: unexpected end of selector {text!r}")
        i += 1
        return tokens[i - 1]

    while i < len(tokens):
        tok = take()
        if tok == "!":
            out.append(Requirement(_label_key(take()), "!"))
        else:
            key = _label_key(tok)
            nxt = tokens[i] if i < len(tokens) else ","
            if nxt == ",":
                out.append(Requirement(key, "exists"))
            elif nxt in ("=", "==", "!="):
                i += 1
                value = "" if i >= len(tokens) or tokens[i] == "," else take()
                out.append(Requirement(key, "!=" if nxt == "!=" else "=", frozenset([value])))
            elif nxt in ("in", "notin"):
                i += 1
                if take() != "(":
                    raise SelectorError(f"unable to parse requirement: expected '(' after {nxt!r}")
                values: set[str] = set()
                while True:
                    v = take()
                    if v == ")":
                        break
                    if v == ",":
                        continue
                    values.add(v)
                out.append(Requirement(key, nxt, frozenset(values)))
            elif nxt in ("gt", "lt"):
                i += 1
                out.append(Requirement(key, nxt, frozenset([take()])))
            else:
                raise SelectorError(
                    f"unable to parse requirement: found {nxt!r}, expected: in, notin, =, ==, !=, gt, lt")
        if i < len(tokens):
            if tokens[i] != ",":
                raise SelectorError(f"unable to parse requirement: found {tokens[i]!r}, expected ','")
            i += 1
    return tuple(out)


_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def _label_key(key: str) -> str:
    if not _KEY.match(key) or len(key.rsplit("/", 1)[-1]) > 63:
        raise SelectorError(f"invalid label key {key!r}: name part must consist of alphanumeric characters, "
                            "'-', '_' or '.', and must start and end with an alphanumeric character")
    return key


def matches_labels(selector: LabelSelector, labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    return all(r.matches(labels) for r in selector)


def from_label_selector_object(sel: dict | None) -> LabelSelector | None:
    """Convert a ``metav1.LabelSelector`` object.  None selects nothing; {} selects everything."""
    if sel is None:
        return None
    reqs = [Requirement(k, "=", frozenset([str(v)])) for k, v in (sel.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in sel.get("matchExpressions") or ():
        op = ops.get(expr.get("operator", ""))
        if op is None:
            raise SelectorError(f"{expr.get('operator')!r} is not a valid label selector operator")
        reqs.append(Requirement(expr["key"], op, frozenset(expr.get("values") or ())))
    return tuple(reqs)


def label_selector_string(sel: dict | None) -> str:
    """Render a ``metav1.LabelSelector`` as kubectl does (``a=b,c in (d,e)``)."""
    if not sel:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for expr in sel.get("matchExpressions") or ():
        op = expr.get("operator")
        if op == "Exists":
            parts.append(expr["key"])
        elif op == "DoesNotExist":
            parts.append("!" + expr["key"])
        else:
            parts.append(f"{expr['key']} {op.lower()} ({','.join(sorted(expr.get('values') or ()))})")
    return ",".join(parts)


# -- field selectors ---------------------------------------------------------

FieldSelector = tuple[tuple[str, str, str], ...]  # (field, op "=" or "!=", value)


def parse_field_selector(text: str) -> FieldSelector:
    out = []
    for part in _split_unescaped(text or ""):
        part = part.strip()
        if not part:
            continue
        for op in ("!=", "==", "="):
            if op in part:
                field, value = part.split(op, 1)
                out.append((field.strip(), "!=" if op == "!=" else "=", _unescape(value.strip())))
                break
        else:
            raise SelectorError(f"invalid selector: '{part}'; can't understand '{part}'")
    return tuple(out)


def _split_unescaped(text: str) -> list[str]:
    parts, cur, escaped = [], [], False
    for ch in text:
        if escaped:
            cur.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def field_value(obj: dict[str, Any], path: str) -> str:
    """The string form of a dotted field, as field selectors compare it."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def field_matcher(selector: FieldSelector, getters: dict[str, Callable[[dict], str]]) -> Callable[[dict], bool]:
    """Compile a field selector against the fields a kind supports."""
    checks = []
    for field, op, value in selector:
        getter = getters.get(field)
        if getter is None:
            raise SelectorError(f'field label not supported: {field}')
        checks.append((getter, op == "=", value))

    def match(obj: dict) -> bool:
        return all((g(obj) == v) == eq for g, eq, v in checks)

    return match
