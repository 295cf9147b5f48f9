"""Kubernetes-style validation: field errors, object metadata, schemas, per-kind rules.

Everything here is pure (no I/O) and returns lists of :class:`FieldError`, whose
``type`` is a Kubernetes ``CauseType`` and whose ``message`` is what Kubernetes
puts in a Status cause (``field.Error.ErrorBody()``): ``Required value``,
``Invalid value: "Foo_Bar": a lowercase RFC 1123 subdomain ...``, ``field is
immutable`` and so on.  ``str(err)`` gives the ``field: message`` line used in a
Status message.

Three layers, run by the API server in this order:

1. :func:`compile_schema` -- the decode step: JSON types, ``int32`` ranges,
   quantities, base64, timestamps, keys the schema requires, and unknown
   fields (returned separately: warnings, or 400 under ``fieldValidation=Strict``).
   Run it on the object as received, before defaulting.
2. :func:`validate_object_meta` / :func:`validate_object_meta_update`.
3. :func:`validate_kind` -- the semantic rules of ``pkg/apis/*/validation``.
   It expects a defaulted object (run :func:`pinnace.api.defaults.apply_defaults`
   first) but tolerates absent defaultable fields.

Like Kubernetes' ``ErrorList.ToAggregate``, callers joining several lists
should drop duplicates (:func:`dedupe`): a missing container name is reported
both by the schema and by the Pod rules.
"""

from __future__ import annotations

import binascii
import functools
import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_UP, Context, Decimal, InvalidOperation
from typing import Any

from pinnace.api.schema import definitions

__all__ = [
    "FieldError",
    "canonical_quantity",
    "compile_schema",
    "dedupe",
    "format_quantity",
    "name_rule_for",
    "parse_quantity",
    "parse_quantity_format",
    "validate_cron_schedule",
    "validate_kind",
    "validate_label_selector",
    "validate_labels",
    "validate_object_meta",
    "validate_object_meta_update",
]

# ---------------------------------------------------------------------------
# Field errors
# ---------------------------------------------------------------------------

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
DUPLICATE = "FieldValueDuplicate"
FORBIDDEN = "FieldValueForbidden"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"
NOT_FOUND = "FieldValueNotFound"
TYPE_INVALID = "FieldValueTypeInvalid"

IMMUTABLE = "field is immutable"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One Kubernetes ``StatusCause``: ``type`` is the reason, ``message`` the body."""

    type: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message

    def as_cause(self) -> dict[str, str]:
        return {"reason": self.type, "message": self.message, "field": self.field}


class _Raw(str):
    """A bad value already rendered (Go's ``%#v`` of a struct, say): printed as is."""


def _go_quote(s: str) -> str:
    # Go's %q; JSON string escaping agrees for every printable string.
    return json.dumps(s, ensure_ascii=False)


def _go_value(v: Any) -> str:
    """Render a bad value the way ``field.Error.ErrorBody`` does."""
    if isinstance(v, _Raw):
        return str(v)
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return _go_quote(v)
    if isinstance(v, dict) and all(isinstance(x, str) for x in v.values()):
        body = ", ".join(f"{_go_quote(k)}:{_go_quote(x)}" for k, x in sorted(v.items()))
        return f"map[string]string{{{body}}}"
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return "[]string{" + ", ".join(_go_quote(x) for x in v) + "}"
    # No Go struct syntax for arbitrary JSON; compact JSON reads as well.
    return json.dumps(v, separators=(",", ":"), sort_keys=True, default=str)


def required(path: str, detail: str = "") -> FieldError:
    return FieldError(REQUIRED, path, f"Required value: {detail}" if detail else "Required value")


def invalid(path: str, value: Any, detail: str = "") -> FieldError:
    msg = f"Invalid value: {_go_value(value)}"
    return FieldError(INVALID, path, f"{msg}: {detail}" if detail else msg)


def type_invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(TYPE_INVALID, path, f"Invalid value: {_go_value(value)}: {detail}")


def not_supported(path: str, value: Any, valid: Iterable[str]) -> FieldError:
    values = ", ".join(_go_quote(v) for v in valid)
    msg = f"Unsupported value: {_go_value(value)}"
    return FieldError(NOT_SUPPORTED, path, f"{msg}: supported values: {values}" if values else msg)


def duplicate(path: str, value: Any) -> FieldError:
    return FieldError(DUPLICATE, path, f"Duplicate value: {_go_value(value)}")


def not_found(path: str, value: Any) -> FieldError:
    return FieldError(NOT_FOUND, path, f"Not found: {_go_value(value)}")


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(FORBIDDEN, path, f"Forbidden: {detail}" if detail else "Forbidden")


def too_long(path: str, max_bytes: int) -> FieldError:
    unit = "byte" if max_bytes == 1 else "bytes"
    return FieldError(TOO_LONG, path, f"Too long: may not be more than {max_bytes} {unit}")


def dedupe(errors: Iterable[FieldError]) -> list[FieldError]:
    """Drop repeated errors, keeping order (Kubernetes de-duplicates by message)."""
    return list(dict.fromkeys(errors))


# ---------------------------------------------------------------------------
# Names, labels, keys (k8s.io/apimachinery/pkg/util/validation)
# ---------------------------------------------------------------------------


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    # Mirrors RegexError, including its odd "'a',  or 'b'" punctuation.
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    out = msg + " (e.g. "
    for i, ex in enumerate(examples):
        if i:
            out += " or "
        out += f"'{ex}', "
    return out + f"regex used for validation is '{fmt}')"


def _max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT = "(" + _QUALIFIED_NAME_FMT + ")?"
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_PERCENT_FMT = "[0-9]+%"

_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL_RE = re.compile(_DNS1035_LABEL_FMT)
_QUALIFIED_NAME_RE = re.compile(_QUALIFIED_NAME_FMT)
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)
_CONFIG_KEY_RE = re.compile(_CONFIG_KEY_FMT)
_PERCENT_RE = re.compile(_PERCENT_FMT)
_PORT_NAME_CHARSET_RE = re.compile("[-a-z0-9]+")

_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)
_DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
    "start with an alphabetic character, and end with an alphanumeric character"
)
_QUALIFIED_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, "
    "'-', '_' or '.', and must start and end with an alphanumeric character"
)
_CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"


@functools.lru_cache(maxsize=4096)
def is_dns1123_label(value: str) -> tuple[str, ...]:
    errs = []
    if len(value) > 63:
        errs.append(_max_len_error(63))
    if not _DNS1123_LABEL_RE.fullmatch(value):
        errs.append(_regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return tuple(errs)


@functools.lru_cache(maxsize=4096)
def is_dns1123_subdomain(value: str) -> tuple[str, ...]:
    errs = []
    if len(value) > 253:
        errs.append(_max_len_error(253))
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errs.append(_regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return tuple(errs)


@functools.lru_cache(maxsize=4096)
def is_dns1035_label(value: str) -> tuple[str, ...]:
    errs = []
    if len(value) > 63:
        errs.append(_max_len_error(63))
    if not _DNS1035_LABEL_RE.fullmatch(value):
        errs.append(_regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return tuple(errs)


@functools.lru_cache(maxsize=8192)
def is_qualified_name(value: str) -> tuple[str, ...]:
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return (
            "a qualified name "
            + _regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
        )
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + _max_len_error(63))
    if not _QUALIFIED_NAME_RE.fullmatch(name):
        errs.append(
            "name part "
            + _regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
        )
    return tuple(errs)


@functools.lru_cache(maxsize=8192)
def is_valid_label_value(value: str) -> tuple[str, ...]:
    errs = []
    if len(value) > 63:
        errs.append(_max_len_error(63))
    if not _LABEL_VALUE_RE.fullmatch(value):
        errs.append(_regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return tuple(errs)


def is_config_map_key(value: str) -> list[str]:
    errs = []
    if len(value) > 253:
        errs.append(_max_len_error(253))
    if not _CONFIG_KEY_RE.fullmatch(value):
        errs.append(_regex_error(_CONFIG_KEY_MSG, _CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def is_path_segment_name(value: str, prefix: bool = False) -> list[str]:
    if not prefix and value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


def is_valid_port_name(port: str) -> list[str]:
    errs = []
    if len(port) > 15:
        errs.append(_max_len_error(15))
    if not _PORT_NAME_CHARSET_RE.fullmatch(port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def _inclusive_range_error(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


def is_valid_port_num(port: Any) -> list[str]:
    if _is_int(port) and 1 <= port <= 65535:
        return []
    return [_inclusive_range_error(1, 65535)]


# name rule -> (validator(name, is_prefix) -> messages)
def _name_dns1123_subdomain(name: str, prefix: bool) -> Iterable[str]:
    if prefix and name.endswith("-"):
        name = name[:-1]  # generateName may end with '-' (maskTrailingDash)
        if not name:
            return ()
    return is_dns1123_subdomain(name)


def _name_dns1123_label(name: str, prefix: bool) -> Iterable[str]:
    if prefix and name.endswith("-"):
        name = name[:-1]
        if not name:
            return ()
    return is_dns1123_label(name)


def _name_dns1035_label(name: str, prefix: bool) -> Iterable[str]:
    if prefix and name.endswith("-"):
        name = name[:-1]
        if not name:
            return ()
    return is_dns1035_label(name)


_NAME_RULES: dict[str, Callable[[str, bool], Iterable[str]]] = {
    "dns1123_subdomain": _name_dns1123_subdomain,
    "dns1123_label": _name_dns1123_label,
    "dns1035_label": _name_dns1035_label,
    "path_segment": is_path_segment_name,
    "none": lambda name, prefix: (),
}

_NAME_RULE_BY_KIND: dict[tuple[str, str], str] = {
    ("", "Namespace"): "dns1123_label",
    # Services are DNS-1035 labels (must start with a letter) in Kubernetes.
    ("", "Service"): "dns1035_label",
    ("rbac.authorization.k8s.io", "Role"): "path_segment",
    ("rbac.authorization.k8s.io", "ClusterRole"): "path_segment",
    ("rbac.authorization.k8s.io", "RoleBinding"): "path_segment",
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): "path_segment",
    ("", "ComponentStatus"): "none",
    ("apiextensions.k8s.io", "CustomResourceDefinition"): "dns1123_subdomain",
}


def name_rule_for(group: str, kind: str) -> str:
    """The metadata.name rule Kubernetes applies to a kind (for :func:`validate_object_meta`)."""
    return _NAME_RULE_BY_KIND.get((group, kind), "dns1123_subdomain")


# ---------------------------------------------------------------------------
# ObjectMeta (k8s.io/apimachinery/pkg/api/validation/objectmeta.go)
# ---------------------------------------------------------------------------

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
_BANNED_OWNERS = {("v1", "Event")}


def validate_labels(labels: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not isinstance(labels, dict):
        return errs
    for k, v in labels.items():
        for msg in is_qualified_name(k):
            errs.append(invalid(path, k, msg))
        if isinstance(v, str):
            for msg in is_valid_label_value(v):
                errs.append(invalid(path, v, msg))
    return errs


def validate_annotations(annotations: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not isinstance(annotations, dict):
        return errs
    total = 0
    for k, v in annotations.items():
        # Annotation keys are qualified names, case-insensitively.
        for msg in is_qualified_name(k.lower()):
            errs.append(invalid(path, k, msg))
        total += len(k.encode()) + (len(v.encode()) if isinstance(v, str) else 0)
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return errs


def _validate_owner_references(refs: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not isinstance(refs, list):
        return errs
    first_controller = ""
    for ref in refs:
        if not isinstance(ref, dict):
            continue
        api_version = ref.get("apiVersion") or ""
        kind = ref.get("kind") or ""
        version = api_version.rsplit("/", 1)[-1] if api_version else ""
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        # Kubernetes reports these on the list path itself, without an index.
        if not version:
            errs.append(invalid(path + ".apiVersion", api_version, "version must not be empty"))
        if not kind:
            errs.append(invalid(path + ".kind", kind, "kind must not be empty"))
        if not ref.get("name"):
            errs.append(invalid(path + ".name", ref.get("name") or "", "name must not be empty"))
        if not ref.get("uid"):
            errs.append(invalid(path + ".uid", ref.get("uid") or "", "uid must not be empty"))
        if group == "" and (version, kind) in _BANNED_OWNERS:
            errs.append(invalid(path, ref, f"/{version}, Kind={kind} is disallowed from being an owner"))
        if ref.get("controller") is True:
            current = f"{kind}/{ref.get('name') or ''}"
            if first_controller:
                errs.append(
                    invalid(
                        path,
                        refs,
                        "Only one reference can have Controller set to true. "
                        f'Found "true" in references for {first_controller} and {current}',
                    )
                )
            else:
                first_controller = current
    return errs


def _validate_finalizers(finalizers: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not isinstance(finalizers, list):
        return errs
    for f in finalizers:
        if isinstance(f, str):
            for msg in is_qualified_name(f):
                errs.append(invalid(path, f, msg))
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        errs.append(invalid(path, finalizers, "finalizer orphan and foregroundDeletion cannot be both set"))
    return errs


def validate_object_meta(
    meta: dict, namespaced: bool, name_rule: str = "dns1123_subdomain"
) -> list[FieldError]:
    """ObjectMeta rules for create and update.

    ``generateName`` alone satisfies the name requirement: the server derives
    the name from it after validation.
    """
    errs: list[FieldError] = []
    if not isinstance(meta, dict):
        return [required("metadata")]
    rule = _NAME_RULES[name_rule]
    name = meta.get("name") or ""
    generate_name = meta.get("generateName") or ""
    if generate_name:
        for msg in rule(generate_name, True):
            errs.append(invalid("metadata.generateName", generate_name, msg))
    if name:
        for msg in rule(name, False):
            errs.append(invalid("metadata.name", name, msg))
    elif not generate_name:
        errs.append(required("metadata.name", "name or generateName is required"))
    namespace = meta.get("namespace") or ""
    if namespaced:
        if not namespace:
            errs.append(required("metadata.namespace"))
        else:
            for msg in is_dns1123_label(namespace):
                errs.append(invalid("metadata.namespace", namespace, msg))
    elif namespace:
        errs.append(forbidden("metadata.namespace", "not allowed on this type"))
    generation = meta.get("generation")
    if _is_int(generation) and generation < 0:
        errs.append(invalid("metadata.generation", generation, "must be greater than or equal to 0"))
    errs += validate_labels(meta.get("labels"), "metadata.labels")
    errs += validate_annotations(meta.get("annotations"), "metadata.annotations")
    errs += _validate_owner_references(meta.get("ownerReferences"), "metadata.ownerReferences")
    errs += _validate_finalizers(meta.get("finalizers"), "metadata.finalizers")
    return errs


def validate_object_meta_update(new: dict, old: dict) -> list[FieldError]:
    """The update-only ObjectMeta rules (run together with :func:`validate_object_meta`)."""
    errs: list[FieldError] = []
    if not isinstance(new, dict) or not isinstance(old, dict):
        return errs
    for key in ("name", "namespace", "uid", "creationTimestamp"):
        if old.get(key) and (new.get(key) or None) != old.get(key):
            errs.append(invalid(f"metadata.{key}", new.get(key) or "", IMMUTABLE))
    old_gen, new_gen = old.get("generation"), new.get("generation")
    if _is_int(old_gen) and _is_int(new_gen) and new_gen < old_gen:
        errs.append(invalid("metadata.generation", new_gen, "must not be decremented"))
    return errs


# ---------------------------------------------------------------------------
# Quantities (k8s.io/apimachinery/pkg/api/resource)
# ---------------------------------------------------------------------------

QUANTITY_REGEX = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_QTY_FORMAT_MSG = f"quantities must match the regular expression '{QUANTITY_REGEX}'"
_QTY_SUFFIX_MSG = "unable to parse quantity's suffix"

_DEC_CTX = Context(prec=80)  # quantities reach 2^63 with nano precision: well past 28 digits
_NANO = Decimal("1e-9")
_MILLI = Decimal("1e-3")

_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_BY_EXP = {v: k for k, v in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_EXP = {v // 10: k for k, v in _BINARY_SUFFIXES.items()}
_QTY_NUMBER_RE = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?")
_QTY_SUFFIX_CHARS = frozenset("eEinumkKMGTP")
_INT_RE = re.compile(r"[+-]?[0-9]+")


@functools.lru_cache(maxsize=4096)
def parse_quantity_format(s: str) -> tuple[Decimal, str]:
    """Parse a quantity into (value, format); format is DecimalSI, BinarySI or DecimalExponent.

    Follows ``resource.ParseQuantity``: nonzero values are rounded up (away from
    zero) to nano precision.  Raises ``ValueError`` with Kubernetes' message.
    """
    if not isinstance(s, str) or not s:
        raise ValueError(_QTY_FORMAT_MSG)
    m = _QTY_NUMBER_RE.match(s)
    assert m is not None  # every group is optional
    sign, num, denom = m.group(1), m.group(2), m.group(3) or ""
    suffix = s[m.end() :]
    # The suffix is letters from the suffix alphabet, then an optional signed integer.
    i = 0
    while i < len(suffix) and suffix[i] in _QTY_SUFFIX_CHARS:
        i += 1
    rest = suffix[i:]
    if rest and not _INT_RE.fullmatch(rest):
        raise ValueError(_QTY_FORMAT_MSG)
    if suffix in _BINARY_SUFFIXES:
        base, exp, fmt = 2, _BINARY_SUFFIXES[suffix], "BinarySI"
    elif suffix in _DECIMAL_SUFFIXES:
        base, exp, fmt = 10, _DECIMAL_SUFFIXES[suffix], "DecimalSI"
    elif len(suffix) > 1 and suffix[0] in "eE" and _INT_RE.fullmatch(suffix[1:]):
        base, exp, fmt = 10, int(suffix[1:]), "DecimalExponent"
    else:
        raise ValueError(_QTY_SUFFIX_MSG)
    digits = f"{num or '0'}.{denom or '0'}"
    try:
        value = _DEC_CTX.create_decimal(digits)
    except InvalidOperation:  # pragma: no cover - the regex admits only digits
        raise ValueError(_QTY_FORMAT_MSG) from None
    value = value.scaleb(exp, _DEC_CTX) if base == 10 else _DEC_CTX.multiply(value, Decimal(2**exp))
    if value:
        if value.as_tuple().exponent < -9:  # only finer than nano needs rounding (and huge values can't)
            value = value.quantize(_NANO, rounding=ROUND_UP, context=_DEC_CTX)
        if fmt == "BinarySI" and value < 1:
            fmt = "DecimalSI"
    if sign == "-":
        value = value.copy_negate()
    return value, fmt


def parse_quantity(s: str | int | float) -> Decimal:
    """A Kubernetes quantity ("100m", "1Gi", "1e3", 2, 0.5) as a Decimal."""
    if isinstance(s, bool):
        raise ValueError(_QTY_FORMAT_MSG)
    if isinstance(s, int | float):
        s = repr(s) if isinstance(s, float) else str(s)
    return parse_quantity_format(s)[0]


def format_quantity(value: Decimal, fmt: str = "DecimalSI") -> str:
    """Kubernetes' canonical text for a quantity (``Quantity.String()``)."""
    if not value:
        return "0"
    sign = "-" if value < 0 else ""
    value = value.copy_abs()  # abs() would round to the default 28-digit context
    if fmt == "BinarySI" and (value < 1024 or value != value.to_integral_value()):
        fmt = "DecimalSI"  # small or fractional binary values print in decimal
    if fmt == "BinarySI":
        n, e = int(value), 0
        while n % 1024 == 0 and e < 6:
            n //= 1024
            e += 1
        return f"{sign}{n}{_BINARY_BY_EXP.get(e, '') if e else ''}"
    t = value.normalize(_DEC_CTX).as_tuple()
    mantissa = int("".join(map(str, t.digits)))
    exp = int(t.exponent)
    while exp % 3:
        mantissa *= 10
        exp -= 1
    if fmt == "DecimalSI" and exp in _DECIMAL_BY_EXP:
        return f"{sign}{mantissa}{_DECIMAL_BY_EXP[exp]}"
    return f"{sign}{mantissa}" + (f"e{exp}" if exp else "")


def canonical_quantity(q: str | int | float, round_to_milli: bool = False) -> str:
    """The text Kubernetes returns for a quantity ("0.5" -> "500m", 1 -> "1", "1.5Gi" -> "1536Mi")."""
    s = q if isinstance(q, str) else (repr(q) if isinstance(q, float) else str(q))
    value, fmt = parse_quantity_format(s)
    if round_to_milli and value and value.as_tuple().exponent < -3:
        value = value.quantize(_MILLI, rounding=ROUND_UP, context=_DEC_CTX)
    return format_quantity(value, fmt)


# ---------------------------------------------------------------------------
# Schema validation, compiled once per definition into closures
# ---------------------------------------------------------------------------

# A compiled node: (accepted Python types or None for "anything", JSON type name
# for messages, a checker run on well-typed values or None).
Checker = Callable[[Any, str, list, list], None]
_Entry = tuple[tuple[type, ...] | None, str, Checker | None]

_ANY: _Entry = (None, "", None)
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_JSON_TYPE = {str: "string", bool: "boolean", int: "integer", float: "number", dict: "object", list: "array"}

_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"

# Keys the OpenAPI marks required (non-omitempty Go fields) that Kubernetes does not
# reject when absent: defaulted, optional in practice, or checked with other wording.
_REQUIRED_EXEMPT = {
    ("io.k8s.api.apps.v1.StatefulSetSpec", "serviceName"),
    ("io.k8s.api.rbac.v1.RoleRef", "apiGroup"),
    ("io.k8s.api.core.v1.HTTPHeader", "value"),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference", "apiVersion"),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference", "kind"),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference", "name"),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference", "uid"),
}


def _type_detail(path: str, expected: str, actual: str) -> str:
    return f'{path} in body must be of type {expected}: "{actual}"'


def _mismatch(x: Any, path: str, tname: str, sub: Checker | None, errs: list, unknown: list) -> None:
    """Slow path for a value whose Python type is not the expected one."""
    if type(x) is float and "integer" in tname and x.is_integer():
        if sub is not None:  # 3.0 is an integer to JSON
            sub(int(x), path, errs, unknown)
        return
    actual = _JSON_TYPE.get(type(x), "null" if x is None else type(x).__name__)
    errs.append(type_invalid(path, actual, _type_detail(path, tname, actual)))


def _int_range(lo: int, hi: int) -> Checker:
    def check(v: int, path: str, errs: list, unknown: list) -> None:
        if v > hi:
            errs.append(invalid(path, v, f"{path} in body should be less than or equal to {hi}"))
        elif v < lo:
            errs.append(invalid(path, v, f"{path} in body should be greater than or equal to {lo}"))

    return check


def _check_time(v: str, path: str, errs: list, unknown: list) -> None:
    if not _TIME_RE.fullmatch(v):
        errs.append(type_invalid(path, v, f"{path} in body must be of type date-time: {_go_quote(v)}"))


def _check_bytes(v: str, path: str, errs: list, unknown: list) -> None:
    data = v.replace("\n", "").replace("\r", "") if ("\n" in v or "\r" in v) else v
    try:
        binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        # Like Go's decoder, point at the offending byte without echoing (secret) data.
        bad = next(
            (i for i, c in enumerate(data) if not (c.isalnum() and c.isascii()) and c not in "+/="), None
        )
        pos = bad if bad is not None else len(data)
        errs.append(
            type_invalid(
                path,
                "string",
                f"{path} in body must be of type byte: illegal base64 data at input byte {pos}",
            )
        )


def _check_quantity(v: Any, path: str, errs: list, unknown: list) -> None:
    if type(v) is str:
        try:
            parse_quantity_format(v)
        except ValueError as e:
            errs.append(invalid(path, v, str(e)))


def _enum_checker(values: list[str]) -> Checker:
    allowed = frozenset(values)

    def check(v: str, path: str, errs: list, unknown: list) -> None:
        # "" is Go's zero value: unset, not a choice.
        if v and v not in allowed:
            errs.append(not_supported(path, v, values))

    return check


def _object_checker(props: dict[str, _Entry], required_keys: tuple[str, ...]) -> Checker:
    get = props.get

    def check(v: dict, path: str, errs: list, unknown: list) -> None:
        pre = path + "." if path else ""
        for k, x in v.items():
            e = get(k)
            if e is None:
                unknown.append("." + pre + k)
                continue
            if x is None:  # null decodes to the zero value: always acceptable
                continue
            types, tname, sub = e
            if types is not None and type(x) not in types:
                _mismatch(x, pre + k, tname, sub, errs, unknown)
            elif sub is not None:
                sub(x, pre + k, errs, unknown)
        for r in required_keys:
            if r not in v:
                errs.append(FieldError(REQUIRED, pre + r, "Required value"))

    return check


def _array_checker(item: _Entry) -> Checker | None:
    types, tname, sub = item
    if types is None and sub is None:
        return None

    def check(v: list, path: str, errs: list, unknown: list) -> None:
        for i, x in enumerate(v):
            if x is None:
                continue
            if types is not None and type(x) not in types:
                _mismatch(x, f"{path}[{i}]", tname, sub, errs, unknown)
            elif sub is not None:
                sub(x, f"{path}[{i}]", errs, unknown)

    return check


def _map_checker(item: _Entry) -> Checker | None:
    types, tname, sub = item
    if types is None and sub is None:
        return None

    def check(v: dict, path: str, errs: list, unknown: list) -> None:
        for k, x in v.items():
            if x is None:
                continue
            if types is not None and type(x) not in types:
                _mismatch(x, f"{path}[{k}]", tname, sub, errs, unknown)
            elif sub is not None:
                sub(x, f"{path}[{k}]", errs, unknown)

    return check


class _Compiler:
    """Turns the JSON-schema ``$defs`` into nested closures, sharing one cache."""

    def __init__(self) -> None:
        self.defs = definitions()
        self.cache: dict[tuple[str, bool], _Entry] = {}

    def ref(self, name: str, req: bool) -> _Entry:
        key = (name, req)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        if name == _QUANTITY:
            entry: _Entry = ((str, int, float), "string,number", _check_quantity)
        elif name == _INT_OR_STRING:
            entry = ((str, int), "string,integer", None)
        else:
            schema = self.defs.get(name)
            entry = _ANY if schema is None else self.node(schema, req, name)
        self.cache[key] = entry
        return entry

    def node(self, schema: dict, req: bool, defname: str | None = None, top: bool = False) -> _Entry:
        ref = schema.get("$ref")
        if ref is None:
            all_of = schema.get("allOf")
            if all_of and len(all_of) == 1 and "$ref" in all_of[0]:
                ref = all_of[0]["$ref"]
        if ref is not None:
            return self.ref(ref.rsplit("/", 1)[-1], req)
        t = schema.get("type")
        kinds = {t} if isinstance(t, str) else {x for x in (t or ()) if x != "null"}
        if len(kinds) != 1:
            return _ANY  # untyped (apiextensions JSON, ...) or a union: anything goes
        kind = kinds.pop()
        if kind == "string":
            if "enum" in schema:
                return (str,), "string", _enum_checker(schema["enum"])
            fmt = schema.get("format")
            if fmt == "date-time":
                return (str,), "string", _check_time
            if fmt == "byte":
                return (str,), "string", _check_bytes
            return (str,), "string", None
        if kind == "integer":
            fmt = schema.get("format")
            bounds = _INT32 if fmt == "int32" else _INT64
            return (int,), "integer", _int_range(*bounds)
        if kind == "number":
            return (int, float), "number", None
        if kind == "boolean":
            return (bool,), "boolean", None
        if kind == "array":
            items = schema.get("items")
            item = self.node(items, req) if isinstance(items, dict) else _ANY
            return (list,), "array", _array_checker(item)
        if kind == "object":
            props_schema = schema.get("properties")
            if props_schema:
                props: dict[str, _Entry] = {}
                req_keys = tuple(
                    r
                    for r in (schema.get("required") or () if req else ())
                    if (defname, r) not in _REQUIRED_EXEMPT and self._is_required_kind(props_schema.get(r))
                )
                entry: _Entry = ((dict,), "object", _object_checker(props, req_keys))
                if defname is not None:
                    # Register before descending so recursive definitions terminate.
                    self.cache[(defname, req)] = entry
                for p, s in props_schema.items():
                    # Status is written by controllers; the schema's required keys are not enforced there.
                    props[p] = self.node(s, req and not (top and p == "status"))
                return entry
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict):
                return (dict,), "object", _map_checker(self.node(extra, req))
            return (dict,), "object", None  # free-form object
        return _ANY

    def _is_required_kind(self, schema: dict | None) -> bool:
        """Only absent strings and objects are errors: absent numbers, booleans and
        lists decode to zero values Kubernetes accepts or rejects in its own rules."""
        if not schema:
            return False
        while "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if name in (_QUANTITY, _INT_OR_STRING):
                return False
            schema = self.defs.get(name) or {}
        t = schema.get("type")
        kinds = {t} if isinstance(t, str) else set(t or ())
        return bool(kinds & {"string", "object"})


_compiler: _Compiler | None = None


@functools.cache
def compile_schema(definition: str) -> Callable[[Any], tuple[list[FieldError], list[str]]]:
    """A validator for one top-level definition (e.g. ``io.k8s.api.apps.v1.Deployment``).

    The returned callable maps an object to ``(errors, unknown_fields)``; unknown
    fields are paths such as ``.spec.foo`` or ``.spec.containers[0].bar``.
    """
    global _compiler
    if _compiler is None:
        _compiler = _Compiler()
    schema = _compiler.defs[definition]
    types, tname, check = _compiler.node(schema, True, None, top=True)

    def validate(obj: Any) -> tuple[list[FieldError], list[str]]:
        errs: list[FieldError] = []
        unknown: list[str] = []
        if types is not None and type(obj) not in types:
            actual = _JSON_TYPE.get(type(obj), "null")
            errs.append(type_invalid("", actual, f'body must be of type {tname}: "{actual}"'))
        elif check is not None:
            check(obj, "", errs, unknown)
        return errs, unknown

    return validate


# ---------------------------------------------------------------------------
# Small helpers for the per-kind rules
# ---------------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return type(v) is int


def _d(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def _l(v: Any) -> list:
    return v if isinstance(v, list) else []


def _s(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _nonneg(errs: list[FieldError], obj: dict, key: str, path: str) -> None:
    v = obj.get(key)
    if _is_int(v) and v < 0:
        errs.append(invalid(path, v, "must be greater than or equal to 0"))


def _enum(errs: list[FieldError], obj: dict, key: str, path: str, values: list[str]) -> None:
    """A defaulted enum: absent or "" (Go's zero value) is filled in by defaulting, else one of values."""
    v = obj.get(key)
    if v not in (None, "") and v not in values:
        errs.append(not_supported(path, v, values))


def _normalize(v: Any) -> Any:
    """Drop nulls and empty maps/lists so that semantically equal objects compare equal."""
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            n = _normalize(x)
            if n is None or n == {} or n == []:
                continue
            out[k] = n
        return out
    if isinstance(v, list):
        return [_normalize(x) for x in v]
    return v


def _same(a: Any, b: Any) -> bool:
    return _normalize(a) == _normalize(b)


def _label_selector_repr(sel: Any) -> _Raw:
    sel = _d(sel)
    labels = sel.get("matchLabels")
    ml = _go_value(labels) if isinstance(labels, dict) and labels else "map[string]string(nil)"
    exprs = sel.get("matchExpressions")
    if isinstance(exprs, list) and exprs:
        me = (
            "[]v1.LabelSelectorRequirement{"
            + ", ".join(
                "v1.LabelSelectorRequirement{"
                f"Key:{_go_quote(_s(_d(e).get('key')))}, Operator:{_go_quote(_s(_d(e).get('operator')))}, "
                f"Values:{_go_value(_d(e).get('values') or [])}}}"
                for e in exprs
            )
            + "}"
        )
    else:
        me = "[]v1.LabelSelectorRequirement(nil)"
    return _Raw(f"v1.LabelSelector{{MatchLabels:{ml}, MatchExpressions:{me}}}")


def _intstr_repr(v: Any) -> _Raw:
    # IntOrString prints through its String() method: bare, unquoted.
    return _Raw(str(v) if v is not None else "null")


# ---------------------------------------------------------------------------
# Label selectors
# ---------------------------------------------------------------------------

_SELECTOR_OPS = ("In", "NotIn", "Exists", "DoesNotExist")


def validate_label_selector(sel: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not isinstance(sel, dict):
        return errs
    errs += validate_labels(sel.get("matchLabels"), path + ".matchLabels")
    for i, req in enumerate(_l(sel.get("matchExpressions"))):
        req = _d(req)
        p = f"{path}.matchExpressions[{i}]"
        op = req.get("operator")
        values = _l(req.get("values"))
        if op in ("In", "NotIn"):
            if not values:
                errs.append(required(p + ".values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                errs.append(
                    forbidden(
                        p + ".values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                    )
                )
        else:
            errs.append(invalid(p + ".operator", op, "not a valid selector operator"))
        key = _s(req.get("key"))
        for msg in is_qualified_name(key):
            errs.append(invalid(p + ".key", key, msg))
        for j, val in enumerate(values):
            if isinstance(val, str):
                for msg in is_valid_label_value(val):
                    errs.append(invalid(f"{p}.values[{j}]", val, msg))
    return errs


def selector_matches(sel: Any, labels: Any) -> bool:
    """Does a LabelSelector (matchLabels / matchExpressions) select these labels?"""
    sel = _d(sel)
    labels = _d(labels)
    for k, v in _d(sel.get("matchLabels")).items():
        if labels.get(k) != v:
            return False
    for req in _l(sel.get("matchExpressions")):
        req = _d(req)
        key, op, values = req.get("key"), req.get("operator"), _l(req.get("values"))
        if op == "In" and (key not in labels or labels[key] not in values):
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _selector_empty(sel: Any) -> bool:
    sel = _d(sel)
    return not sel.get("matchLabels") and not sel.get("matchExpressions")


# ---------------------------------------------------------------------------
# Pod specs (pkg/apis/core/validation)
# ---------------------------------------------------------------------------

_RESTART_POLICIES = ["Always", "OnFailure", "Never"]
_DNS_POLICIES = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
_PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
_PROTOCOLS = ["SCTP", "TCP", "UDP"]
_TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
_STANDARD_CONTAINER_RESOURCES = {"cpu", "memory", "ephemeral-storage"}
_MAX_INT32 = 2**31 - 1


def _validate_resources(res: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    res = _d(res)
    parsed: dict[str, dict[str, Decimal]] = {}
    for part in ("limits", "requests"):
        parsed[part] = {}
        for name, q in _d(res.get(part)).items():
            p = f"{path}.{part}[{name}]"
            if (
                "/" not in name
                and name not in _STANDARD_CONTAINER_RESOURCES
                and not name.startswith("hugepages-")
            ):
                errs.append(invalid(p, name, "must be a standard resource for containers"))
            try:
                value = parse_quantity(q)
            except (ValueError, TypeError):
                continue  # the schema check reports unparsable quantities
            if value < 0:
                errs.append(invalid(p, _q_text(q), "must be greater than or equal to 0"))
            parsed[part][name] = value
    for name, req in parsed["requests"].items():
        lim = parsed["limits"].get(name)
        if lim is not None and req > lim:
            errs.append(
                invalid(
                    f"{path}.requests[{name}]",
                    _q_text(_d(res.get("requests"))[name]),
                    f"must be less than or equal to {name} limit of {_q_text(_d(res.get('limits'))[name])}",
                )
            )
    return errs


def _q_text(q: Any) -> str:
    try:
        return canonical_quantity(q)
    except (ValueError, TypeError):
        return str(q)


def _validate_probe(probe: Any, path: str, liveness_or_startup: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    if not isinstance(probe, dict):
        return errs
    handlers = [k for k in ("exec", "httpGet", "tcpSocket", "grpc") if probe.get(k) is not None]
    if not handlers:
        errs.append(required(path, "must specify a handler type"))
    elif len(handlers) > 1:
        errs.append(forbidden(f"{path}.{handlers[1]}", "may not specify more than 1 handler type"))
    for key in (
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ):
        _nonneg(errs, probe, key, f"{path}.{key}")
    st = probe.get("successThreshold")
    if liveness_or_startup and _is_int(st) and st != 1:
        errs.append(invalid(f"{path}.successThreshold", st, "must be 1"))
    for key in ("httpGet", "tcpSocket"):
        port = _d(probe.get(key)).get("port")
        if port is not None:
            errs += _validate_port_num_or_name(port, f"{path}.{key}.port")
    return errs


def _validate_port_num_or_name(port: Any, path: str) -> list[FieldError]:
    if isinstance(port, str):
        return [invalid(path, port, m) for m in is_valid_port_name(port)]
    if _is_int(port):
        return [invalid(path, port, m) for m in is_valid_port_num(port)]
    return []


def _validate_container(
    c: dict, path: str, names: set[str], volumes: set[str], init: bool, errs: list[FieldError]
) -> None:
    name = c.get("name")
    if not name:
        errs.append(required(path + ".name"))
    elif isinstance(name, str):
        for msg in is_dns1123_label(name):
            errs.append(invalid(path + ".name", name, msg))
        if name in names:
            errs.append(duplicate(path + ".name", name))
        names.add(name)
    image = c.get("image")
    if not image:
        errs.append(required(path + ".image"))
    elif isinstance(image, str) and image != image.strip():
        errs.append(invalid(path + ".image", image, "must not have leading or trailing whitespace"))
    _enum(errs, c, "imagePullPolicy", path + ".imagePullPolicy", _PULL_POLICIES)
    _enum(
        errs,
        c,
        "terminationMessagePolicy",
        path + ".terminationMessagePolicy",
        ["File", "FallbackToLogsOnError"],
    )
    port_names: set[str] = set()
    for i, port in enumerate(_l(c.get("ports"))):
        port = _d(port)
        p = f"{path}.ports[{i}]"
        pname = port.get("name")
        if isinstance(pname, str) and pname:
            for msg in is_valid_port_name(pname):
                errs.append(invalid(p + ".name", pname, msg))
            if pname in port_names:
                errs.append(duplicate(p + ".name", pname))
            port_names.add(pname)
        cport = port.get("containerPort")
        if not cport:
            errs.append(required(p + ".containerPort"))
        else:
            for msg in is_valid_port_num(cport):
                errs.append(invalid(p + ".containerPort", cport, msg))
        hport = port.get("hostPort")
        if hport:
            for msg in is_valid_port_num(hport):
                errs.append(invalid(p + ".hostPort", hport, msg))
        _enum(errs, port, "protocol", p + ".protocol", _PROTOCOLS)
    for i, env in enumerate(_l(c.get("env"))):
        if not _d(env).get("name"):
            errs.append(required(f"{path}.env[{i}].name"))
    mount_paths: set[str] = set()
    for i, mnt in enumerate(_l(c.get("volumeMounts"))):
        mnt = _d(mnt)
        p = f"{path}.volumeMounts[{i}]"
        mname = mnt.get("name")
        if not mname:
            errs.append(required(p + ".name"))
        elif mname not in volumes:
            errs.append(not_found(p + ".name", mname))
        mpath = mnt.get("mountPath")
        if not mpath:
            errs.append(required(p + ".mountPath"))
        elif mpath in mount_paths:
            errs.append(invalid(p + ".mountPath", mpath, "must be unique"))
        else:
            mount_paths.add(mpath)
    errs += _validate_resources(c.get("resources"), path + ".resources")
    sidecar = init and c.get("restartPolicy") == "Always"
    if init and not sidecar:
        for key in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
            if c.get(key) is not None:
                errs.append(
                    forbidden(
                        f"{path}.{key}", "may not be set for init containers without restartPolicy=Always"
                    )
                )
    else:
        errs += _validate_probe(c.get("livenessProbe"), path + ".livenessProbe", True)
        errs += _validate_probe(c.get("startupProbe"), path + ".startupProbe", True)
        errs += _validate_probe(c.get("readinessProbe"), path + ".readinessProbe", False)
    if init and c.get("restartPolicy") not in (None, "Always"):
        errs.append(not_supported(path + ".restartPolicy", c.get("restartPolicy"), ["Always"]))
    elif not init and c.get("restartPolicy") is not None:
        errs.append(forbidden(path + ".restartPolicy", "may not be set for non-init containers"))


def _validate_tolerations(tolerations: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, t in enumerate(_l(tolerations)):
        t = _d(t)
        p = f"{path}[{i}]"
        key = _s(t.get("key"))
        op = t.get("operator") or ""
        if key:
            for msg in is_qualified_name(key):
                errs.append(invalid(p + ".key", key, msg))
        if not key and op != "Exists":
            errs.append(
                invalid(
                    p + ".operator",
                    op,
                    "operator must be Exists when `key` is empty, "
                    'which means "match all values and all keys"',
                )
            )
        effect = t.get("effect") or ""
        if t.get("tolerationSeconds") is not None and effect != "NoExecute":
            errs.append(
                invalid(p + ".effect", effect, "effect must be 'NoExecute' when `tolerationSeconds` is set")
            )
        value = _s(t.get("value"))
        if op in ("Equal", ""):
            msgs = is_valid_label_value(value)
            if msgs:
                errs.append(invalid(p + ".operator", value, ";".join(msgs)))
        elif op == "Exists":
            if value:
                errs.append(invalid(p + ".operator", t, "value must be empty when `operator` is 'Exists'"))
        else:
            errs.append(not_supported(p + ".operator", op, ["Equal", "Exists"]))
        if effect and effect not in _TAINT_EFFECTS:
            errs.append(not_supported(p + ".effect", effect, _TAINT_EFFECTS))
    return errs


_VOLUME_SOURCES_IGNORED = {"name"}


def _validate_pod_spec(spec: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not isinstance(spec, dict):
        return errs
    volumes: set[str] = set()
    for i, vol in enumerate(_l(spec.get("volumes"))):
        vol = _d(vol)
        p = f"{path}.volumes[{i}]"
        vname = vol.get("name")
        if not vname:
            errs.append(required(p + ".name"))
        elif isinstance(vname, str):
            for msg in is_dns1123_label(vname):
                errs.append(invalid(p + ".name", vname, msg))
            if vname in volumes:
                errs.append(duplicate(p + ".name", vname))
            volumes.add(vname)
        # No source at all is defaulted to emptyDir, so only too many sources is an error.
        sources = [k for k, v in vol.items() if k not in _VOLUME_SOURCES_IGNORED and v is not None]
        if len(sources) > 1:
            errs.append(forbidden(f"{p}.{sources[1]}", "may not specify more than 1 volume type"))
    containers = _l(spec.get("containers"))
    if not containers:
        errs.append(required(path + ".containers"))
    names: set[str] = set()
    for i, c in enumerate(_l(spec.get("initContainers"))):
        if isinstance(c, dict):
            _validate_container(c, f"{path}.initContainers[{i}]", names, volumes, True, errs)
    for i, c in enumerate(containers):
        if isinstance(c, dict):
            _validate_container(c, f"{path}.containers[{i}]", names, volumes, False, errs)
    _enum(errs, spec, "restartPolicy", path + ".restartPolicy", _RESTART_POLICIES)
    _enum(errs, spec, "dnsPolicy", path + ".dnsPolicy", _DNS_POLICIES)
    ads = spec.get("activeDeadlineSeconds")
    if _is_int(ads) and not 1 <= ads <= _MAX_INT32:
        errs.append(invalid(path + ".activeDeadlineSeconds", ads, _inclusive_range_error(1, _MAX_INT32)))
    errs += validate_labels(spec.get("nodeSelector"), path + ".nodeSelector")
    sa = spec.get("serviceAccountName")
    if isinstance(sa, str) and sa:
        for msg in is_dns1123_subdomain(sa):
            errs.append(invalid(path + ".serviceAccountName", sa, msg))
    for key in ("hostname", "subdomain"):
        v = spec.get(key)
        if isinstance(v, str) and v:
            for msg in is_dns1123_label(v):
                errs.append(invalid(f"{path}.{key}", v, msg))
    errs += _validate_tolerations(spec.get("tolerations"), path + ".tolerations")
    _enum(errs, spec, "preemptionPolicy", path + ".preemptionPolicy", ["Never", "PreemptLowerPriority"])
    return errs


def _validate_pod_template(template: Any, path: str) -> list[FieldError]:
    template = _d(template)
    meta = _d(template.get("metadata"))
    errs = validate_labels(meta.get("labels"), path + ".metadata.labels")
    errs += validate_annotations(meta.get("annotations"), path + ".metadata.annotations")
    errs += _validate_pod_spec(template.get("spec") or {}, path + ".spec")
    return errs


_POD_UPDATE_MSG = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)


def _spec_diff(old: dict, new: dict, type_name: str) -> str:
    """A short cmp.Diff-like rendering of the top-level fields that changed."""
    old_n, new_n = _normalize(old), _normalize(new)
    lines = [f"  {type_name}{{"]
    for key in sorted(set(old_n) | set(new_n)):
        a, b = old_n.get(key), new_n.get(key)
        if a == b:
            continue
        if a is not None:
            lines.append(f"- \t{key}: {json.dumps(a, separators=(',', ':'), sort_keys=True)},")
        if b is not None:
            lines.append(f"+ \t{key}: {json.dumps(b, separators=(',', ':'), sort_keys=True)},")
    lines.append("  }")
    return "\n".join(lines)


def _validate_pod_update(new: dict, old: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    new_spec, old_spec = _d(new.get("spec")), _d(old.get("spec"))
    for key in ("containers", "initContainers"):
        nc, oc = _l(new_spec.get(key)), _l(old_spec.get(key))
        if len(nc) != len(oc):
            return [forbidden(f"spec.{key}", "pod updates may not add or remove containers")]
        for i, c in enumerate(nc):
            if not _d(c).get("image"):
                errs.append(required(f"spec.{key}[{i}].image"))
    new_ads, old_ads = new_spec.get("activeDeadlineSeconds"), old_spec.get("activeDeadlineSeconds")
    if _is_int(new_ads):
        if not 0 <= new_ads <= _MAX_INT32:
            errs.append(invalid("spec.activeDeadlineSeconds", new_ads, _inclusive_range_error(0, _MAX_INT32)))
            return errs
        if _is_int(old_ads) and old_ads < new_ads:
            errs.append(
                invalid("spec.activeDeadlineSeconds", new_ads, "must be less than or equal to previous value")
            )
            return errs
    elif old_ads is not None:
        errs.append(
            invalid(
                "spec.activeDeadlineSeconds", None, "must not update from a positive integer to nil value"
            )
        )
    # Munge the mutable fields to their old values, then demand equality.
    munged = dict(new_spec)
    for key in ("containers", "initContainers"):
        if key in munged:
            olds = _l(old_spec.get(key))
            munged[key] = [
                {**c, "image": _d(olds[i]).get("image")} if isinstance(c, dict) else c
                for i, c in enumerate(_l(munged[key]))
            ]
    for key in ("activeDeadlineSeconds", "tolerations", "schedulingGates"):
        munged.pop(key, None)
        if key in old_spec:
            munged[key] = old_spec[key]
    old_tgps, new_tgps = (
        old_spec.get("terminationGracePeriodSeconds"),
        new_spec.get("terminationGracePeriodSeconds"),
    )
    if _is_int(old_tgps) and old_tgps < 0 and new_tgps == 1:
        munged["terminationGracePeriodSeconds"] = old_tgps
    if not _same(munged, old_spec):
        errs.append(forbidden("spec", _POD_UPDATE_MSG + "\n" + _spec_diff(old_spec, munged, "core.PodSpec")))
    # Tolerations: existing ones may only change their tolerationSeconds.
    new_tols = [_d(t) for t in _l(new_spec.get("tolerations"))]
    for old_t in _l(old_spec.get("tolerations")):
        old_t = _d(old_t)
        if not any(_same({**old_t, "tolerationSeconds": t.get("tolerationSeconds")}, t) for t in new_tols):
            errs.append(
                forbidden(
                    "spec.tolerations", "existing toleration can not be modified except its tolerationSeconds"
                )
            )
            break
    return errs


def _validate_pod(obj: dict, old: dict | None) -> list[FieldError]:
    errs = _validate_pod_spec(obj.get("spec"), "spec")
    if old is not None:
        errs += _validate_pod_update(obj, old)
    return errs


# ---------------------------------------------------------------------------
# Services
# ---------------------------------------------------------------------------

_SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
NODE_PORT_RANGE = (30000, 32767)


def _service_port_repr(port: dict) -> _Raw:
    return _Raw(
        f'core.ServicePort{{Name:"", Protocol:{_go_quote(_s(port.get("protocol")))}, '
        "AppProtocol:(*string)(nil), "
        f'Port:{port.get("port")}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:""}}, NodePort:0}}'
    )


def _is_headless(spec: dict) -> bool:
    ips = _l(spec.get("clusterIPs"))
    return spec.get("clusterIP") == "None" or (len(ips) == 1 and ips[0] == "None")


def _validate_ip(errs: list[FieldError], value: Any, path: str) -> None:
    if not isinstance(value, str) or not value or value == "None":
        return
    try:
        ipaddress.ip_address(value)
    except ValueError:
        errs.append(invalid(path, value, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))


def _validate_service(obj: dict, old: dict | None) -> list[FieldError]:
    errs: list[FieldError] = _name_errors(obj, "dns1035_label")
    spec = _d(obj.get("spec"))
    stype = spec.get("type") or "ClusterIP"  # the default, should defaulting not have run
    ports = _l(spec.get("ports"))
    if stype not in _SERVICE_TYPES:
        errs.append(not_supported("spec.type", stype, _SERVICE_TYPES))
    if not ports and not _is_headless(spec) and stype != "ExternalName":
        errs.append(required("spec.ports"))
    if stype == "ExternalName":
        if spec.get("clusterIP") and spec.get("clusterIP") != "None":
            errs.append(forbidden("spec.clusterIP", "may not be set for ExternalName services"))
        cname = _s(spec.get("externalName")).removesuffix(".")
        if cname:
            for msg in is_dns1123_subdomain(cname):
                errs.append(invalid("spec.externalName", cname, msg))
        else:
            errs.append(required("spec.externalName"))
    _validate_ip(errs, spec.get("clusterIP"), "spec.clusterIP")
    for i, ip in enumerate(_l(spec.get("clusterIPs"))):
        _validate_ip(errs, ip, f"spec.clusterIPs[{i}]")
    names: set[str] = set()
    seen: set[tuple] = set()
    node_ports: set[tuple] = set()
    for i, port in enumerate(ports):
        port = _d(port)
        p = f"spec.ports[{i}]"
        pname = port.get("name")
        if len(ports) > 1 and not pname:
            errs.append(required(p + ".name"))
        elif isinstance(pname, str) and pname:
            for msg in is_dns1123_label(pname):
                errs.append(invalid(p + ".name", pname, msg))
            if pname in names:
                errs.append(duplicate(p + ".name", pname))
            names.add(pname)
        pnum = port.get("port")
        for msg in is_valid_port_num(pnum):
            errs.append(invalid(p + ".port", pnum if pnum is not None else 0, msg))
        _enum(errs, port, "protocol", p + ".protocol", _PROTOCOLS)
        if port.get("targetPort") not in (None, 0, ""):  # 0 and "" are defaulted to the port
            errs += _validate_port_num_or_name(port["targetPort"], p + ".targetPort")
        key = (port.get("protocol") or "TCP", pnum)
        if key in seen:
            errs.append(duplicate(p, _service_port_repr(port)))
        seen.add(key)
        node_port = port.get("nodePort")
        if node_port:
            if stype == "ClusterIP":
                errs.append(forbidden(p + ".nodePort", "may not be used when `type` is 'ClusterIP'"))
            elif _is_int(node_port) and not NODE_PORT_RANGE[0] <= node_port <= NODE_PORT_RANGE[1]:
                errs.append(
                    invalid(
                        p + ".nodePort",
                        node_port,
                        "provided port is not in the valid range. The range of valid ports is "
                        f"{NODE_PORT_RANGE[0]}-{NODE_PORT_RANGE[1]}",
                    )
                )
            nkey = (port.get("protocol") or "TCP", node_port)
            if nkey in node_ports:
                errs.append(duplicate(p + ".nodePort", node_port))
            node_ports.add(nkey)
    errs += validate_labels(spec.get("selector"), "spec.selector")
    _enum(errs, spec, "sessionAffinity", "spec.sessionAffinity", ["ClientIP", "None"])
    _enum(
        errs,
        spec,
        "ipFamilyPolicy",
        "spec.ipFamilyPolicy",
        ["SingleStack", "PreferDualStack", "RequireDualStack"],
    )
    _enum(errs, spec, "internalTrafficPolicy", "spec.internalTrafficPolicy", ["Cluster", "Local"])
    etp = spec.get("externalTrafficPolicy")
    if etp:
        external = stype in ("NodePort", "LoadBalancer") or (stype == "ClusterIP" and spec.get("externalIPs"))
        if not external:
            errs.append(
                invalid(
                    "spec.externalTrafficPolicy", etp, "may only be set for externally-accessible services"
                )
            )
        elif etp not in ("Cluster", "Local"):
            errs.append(not_supported("spec.externalTrafficPolicy", etp, ["Cluster", "Local"]))
    for i, fam in enumerate(_l(spec.get("ipFamilies"))):
        if fam not in ("IPv4", "IPv6"):
            errs.append(not_supported(f"spec.ipFamilies[{i}]", fam, ["IPv4", "IPv6"]))
    if old is not None:
        errs += _validate_service_update(spec, _d(old.get("spec")))
    return errs


def _validate_service_update(spec: dict, old_spec: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    if "ExternalName" in (spec.get("type"), old_spec.get("type")):
        return errs  # a ClusterIP may be dropped or assigned when switching to/from ExternalName
    if _is_headless(spec) and _is_headless(old_spec):
        return errs
    old_ips, new_ips = _l(old_spec.get("clusterIPs")), _l(spec.get("clusterIPs"))
    if old_ips and new_ips:
        for i in range(min(len(old_ips), len(new_ips))):
            if old_ips[i] != new_ips[i]:
                errs.append(invalid(f"spec.clusterIPs[{i}]", new_ips, "may not change once set"))
                return errs
    elif old_ips and "clusterIPs" in spec and not new_ips:
        errs.append(invalid("spec.clusterIPs[0]", new_ips, "primary clusterIP can not be unset"))
        return errs
    old_ip = old_spec.get("clusterIP")
    if old_ip and spec.get("clusterIP", old_ip) != old_ip:
        errs.append(invalid("spec.clusterIP", spec.get("clusterIP") or "", IMMUTABLE))
    return errs


# ---------------------------------------------------------------------------
# Workloads (pkg/apis/apps/validation, pkg/apis/batch/validation)
# ---------------------------------------------------------------------------


def _int_or_percent_value(v: Any) -> int | None:
    if _is_int(v):
        return v
    if isinstance(v, str) and _PERCENT_RE.fullmatch(v):
        return int(v[:-1])
    return None


def _validate_positive_int_or_percent(v: Any, path: str) -> list[FieldError]:
    if isinstance(v, str):
        if not _PERCENT_RE.fullmatch(v):
            return [
                invalid(
                    path,
                    _intstr_repr(v),
                    _regex_error(
                        "a valid percent string must be a numeric string followed by an ending '%'",
                        _PERCENT_FMT,
                        "1%",
                        "93%",
                    ),
                )
            ]
    elif _is_int(v) and v < 0:
        return [invalid(path, v, "must be greater than or equal to 0")]
    return []


def _not_more_than_100_percent(v: Any, path: str) -> list[FieldError]:
    if isinstance(v, str) and _PERCENT_RE.fullmatch(v) and int(v[:-1]) > 100:
        return [invalid(path, _intstr_repr(v), "must not be greater than 100%")]
    return []


def _validate_selector_template(
    spec: dict, errs: list[FieldError], kind_word: str, restart_always: bool, selector_required: bool = True
) -> None:
    """Selector present, non-empty and matching the template's labels; template valid."""
    sel = spec.get("selector")
    if sel is None:
        if selector_required:
            errs.append(required("spec.selector"))
    else:
        errs.extend(validate_label_selector(sel, "spec.selector"))
        if _selector_empty(sel):
            errs.append(
                invalid(
                    "spec.selector", _label_selector_repr(sel), f"empty selector is invalid for {kind_word}"
                )
            )
    template = _d(spec.get("template"))
    labels = _d(template.get("metadata")).get("labels")
    if sel is not None and not _selector_empty(sel) and not selector_matches(sel, labels):
        errs.append(
            invalid(
                "spec.template.metadata.labels", labels or {}, "`selector` does not match template `labels`"
            )
        )
    errs.extend(_validate_pod_template(template, "spec.template"))
    if restart_always:
        tspec = _d(template.get("spec"))
        rp = tspec.get("restartPolicy")
        if rp not in (None, "Always"):
            errs.append(not_supported("spec.template.spec.restartPolicy", rp, ["Always"]))
        if tspec.get("activeDeadlineSeconds") is not None:
            errs.append(
                forbidden(
                    "spec.template.spec.activeDeadlineSeconds",
                    "activeDeadlineSeconds in ReplicaSet is not Supported",
                )
            )


def _immutable(
    errs: list[FieldError], new: dict, old: dict, key: str, path: str, render: Callable = lambda v: v
) -> None:
    if not _same(new.get(key), old.get(key)):
        errs.append(invalid(path, render(new.get(key)), IMMUTABLE))


def _validate_deployment(obj: dict, old: dict | None) -> list[FieldError]:
    errs: list[FieldError] = []
    spec = _d(obj.get("spec"))
    _nonneg(errs, spec, "replicas", "spec.replicas")
    _validate_selector_template(spec, errs, "deployment", True)
    strategy = spec.get("strategy")
    if isinstance(strategy, dict):
        stype = strategy.get("type")
        ru = strategy.get("rollingUpdate")
        if stype == "Recreate":
            if ru is not None:
                errs.append(
                    forbidden(
                        "spec.strategy.rollingUpdate",
                        "may not be specified when strategy `type` is 'Recreate'",
                    )
                )
        elif stype in ("RollingUpdate", "", None):  # "" and absent are defaulted to RollingUpdate
            if isinstance(ru, dict):
                mu, ms = ru.get("maxUnavailable"), ru.get("maxSurge")
                p = "spec.strategy.rollingUpdate"
                errs += _validate_positive_int_or_percent(mu, p + ".maxUnavailable")
                errs += _validate_positive_int_or_percent(ms, p + ".maxSurge")
                if _int_or_percent_value(mu) == 0 and _int_or_percent_value(ms) == 0:
                    errs.append(
                        invalid(p + ".maxUnavailable", _intstr_repr(mu), "may not be 0 when `maxSurge` is 0")
                    )
                errs += _not_more_than_100_percent(mu, p + ".maxUnavailable")
        else:
            errs.append(not_supported("spec.strategy", strategy, ["Recreate", "RollingUpdate"]))
    _nonneg(errs, spec, "revisionHistoryLimit", "spec.revisionHistoryLimit")
    _nonneg(errs, spec, "minReadySeconds", "spec.minReadySeconds")
    pds = spec.get("progressDeadlineSeconds")
    if _is_int(pds):
        _nonneg(errs, spec, "progressDeadlineSeconds", "spec.progressDeadlineSeconds")
        if pds <= (spec.get("minReadySeconds") or 0):
            errs.append(invalid("spec.progressDeadlineSeconds", pds, "must be greater than minReadySeconds"))
    if old is not None:
        _immutable(errs, spec, _d(old.get("spec")), "selector", "spec.selector", _label_selector_repr)
    return errs


def _validate_replica_set(obj: dict, old: dict | None) -> list[FieldError]:
    errs: list[FieldError] = []
    spec = _d(obj.get("spec"))
    _nonneg(errs, spec, "replicas", "spec.replicas")
    _nonneg(errs, spec, "minReadySeconds", "spec.minReadySeconds")
    _validate_selector_template(spec, errs, "deployment", True)
    if old is not None:
        _immutable(errs, spec, _d(old.get("spec")), "selector", "spec.selector", _label_selector_repr)
    return errs


def _validate_replication_controller(obj: dict, old: dict | None) -> list[FieldError]:
    errs: list[FieldError] = []
    spec = _d(obj.get("spec"))
    _nonneg(errs, spec, "replicas", "spec.replicas")
    _nonneg(errs, spec, "minReadySeconds", "spec.minReadySeconds")
    selector = _d(spec.get("selector"))
    if not selector:
        errs.append(required("spec.selector"))
    else:
        errs += validate_labels(selector, "spec.selector")
    template = spec.get("template")
    if not isinstance(template, dict):
        errs.append(required("spec.template"))
        return errs
    labels = _d(_d(template.get("metadata")).get("labels"))
    if selector and any(labels.get(k) != v for k, v in selector.items()):
        errs.append(
            invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`")
        )
    errs += _validate_pod_template(template, "spec.template")
    rp = _d(template.get("spec")).get("restartPolicy")
    if rp not in (None, "Always"):
        errs.append(not_supported("spec.template.spec.restartPolicy", rp, ["Always"]))
    return errs


_STS_UPDATE_MUTABLE = (
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
)


def _validate_stateful_set(obj: dict, old: dict | None) -> list[FieldError]:
    errs: list[FieldError] = []
    spec = _d(obj.get("spec"))
    pmp = spec.get("podManagementPolicy")
    if pmp not in (None, "", "OrderedReady", "Parallel"):
        errs.append(invalid("spec.podManagementPolicy", pmp, "must be 'OrderedReady' or 'Parallel'"))
    strategy = spec.get("updateStrategy")
    if isinstance(strategy, dict):
        stype = strategy.get("type")
        ru = strategy.get("rollingUpdate")
        if stype == "OnDelete":
            if ru is not None:
                errs.append(
                    invalid(
                        "spec.updateStrategy.rollingUpdate",
                        ru,
                        "only allowed for updateStrategy 'RollingUpdate'",
                    )
                )
        elif stype == "RollingUpdate":
            if isinstance(ru, dict):
                _nonneg(errs, ru, "partition", "spec.updateStrategy.rollingUpdate.partition")
                mu = ru.get("maxUnavailable")
                if mu is not None:
                    p = "spec.updateStrategy.rollingUpdate.maxUnavailable"
                    errs += _validate_positive_int_or_percent(mu, p)
                    if _int_or_percent_value(mu) == 0:
                        errs.append(invalid(p, _intstr_repr(mu), "must be greater than 0"))
                    errs += _not_more_than_100_percent(mu, p)
        elif stype not in (None, ""):
            errs.append(invalid("spec.updateStrategy", strategy, "must be 'RollingUpdate' or 'OnDelete'"))
    policy = _d(spec.get("persistentVolumeClaimRetentionPolicy"))
    for key in ("whenDeleted", "whenScaled"):
        _enum(errs, policy, key, f"spec.persistentVolumeClaimRetentionPolicy.{key}", ["Retain", "Delete"])
    _nonneg(errs, spec, "replicas", "spec.replicas")
    _nonneg(errs, spec, "minReadySeconds", "spec.minReadySeconds")
    _nonneg(errs, _d(spec.get("ordinals")), "start", "spec.ordinals.start")
    service_name = spec.get("serviceName")
    if isinstance(service_name, str) and service_name:
        for msg in is_dns1123_label(service_name):
            errs.append(invalid("spec.serviceName", service_name, msg))
    _validate_selector_template(spec, errs, "statefulset", True)
    if old is not None:
        old_spec = _d(old.get("spec"))
        munged = {k: v for k, v in spec.items() if k not in _STS_UPDATE_MUTABLE}
        rest_old = {k: v for k, v in old_spec.items() if k not in _STS_UPDATE_MUTABLE}
        if not _same(munged, rest_old):
            errs.append(
                forbidden(
                    "spec",
                    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
                    "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and "
                    "'minReadySeconds' are forbidden",
                )
            )
    return errs


def _validate_daemon_set(obj: dict, old: dict | None) -> list[FieldError]:
    errs: list[FieldError] = []
    spec = _d(obj.get("spec"))
    _validate_selector_template(spec, errs, "daemonset", True)
    _nonneg(errs, spec, "minReadySeconds", "spec.minReadySeconds")
    _nonneg(errs, spec, "revisionHistoryLimit", "spec.revisionHistoryLimit")
    strategy = spec.get("updateStrategy")
    if isinstance(strategy, dict):
        stype = strategy.get("type")
        ru = strategy.get("rollingUpdate")
        if stype in ("RollingUpdate", "", None) and isinstance(ru, dict):
            p = "spec.updateStrategy.rollingUpdate"
            mu, ms = ru.get("maxUnavailable"), ru.get("maxSurge")
            errs += _validate_positive_int_or_percent(mu, p + ".maxUnavailable")
            errs += _validate_positive_int_or_percent(ms, p + ".maxSurge")
            errs += _not_more_than_100_percent(mu, p + ".maxUnavailable")
            errs += _not_more_than_100_percent(ms, p + ".maxSurge")
            has_unavailable = (_int_or_percent_value(mu) or 0) != 0
            has_surge = (_int_or_percent_value(ms) or 0) != 0
            if has_unavailable and has_surge:
                errs.append(
                    invalid(
                        p + ".maxSurge", _intstr_repr(ms), "may not be set when maxUnavailable is non-zero"
                    )
                )
            elif not has_unavailable and not has_surge:
                errs.append(required(p + ".maxUnavailable", "cannot be 0 when maxSurge is 0"))
        elif stype not in (None, "", "RollingUpdate", "OnDelete"):
            errs.append(not_supported("spec.updateStrategy.type", stype, ["OnDelete", "RollingUpdate"]))
    if old is not None:
        _immutable(errs, spec, _d(old.get("spec")), "selector", "spec.selector", _label_selector_repr)
    return errs


def _validate_job_spec(spec: dict, path: str, errs: list[FieldError], template_only: bool = False) -> None:
    for key in (
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ):
        _nonneg(errs, spec, key, f"{path}.{key}")
    mode = spec.get("completionMode")
    if mode is not None:
        if mode not in ("NonIndexed", "Indexed"):
            errs.append(not_supported(f"{path}.completionMode", mode, ["NonIndexed", "Indexed"]))
        elif mode == "Indexed" and spec.get("completions") is None:
            errs.append(required(f"{path}.completions", "when completion mode is Indexed"))
    template = _d(spec.get("template"))
    sel = spec.get("selector")
    if sel is not None:
        errs += validate_label_selector(sel, f"{path}.selector")
        labels = _d(template.get("metadata")).get("labels")
        if not selector_matches(sel, labels):
            errs.append(
                invalid(
                    f"{path}.template.metadata.labels",
                    labels or {},
                    "`selector` does not match template `labels`",
                )
            )
    errs += _validate_pod_template(template, f"{path}.template")
    rp = _d(template.get("spec")).get("restartPolicy")
    if rp not in ("OnFailure", "Never"):
        errs.append(not_supported(f"{path}.template.spec.restartPolicy", rp or "", ["OnFailure", "Never"]))


def _validate_job(obj: dict, old: dict | None) -> list[FieldError]:
    errs: list[FieldError] = []
    spec = _d(obj.get("spec"))
    _validate_job_spec(spec, "spec", errs)
    if old is not None:
        old_spec = _d(old.get("spec"))
        _immutable(errs, spec, old_spec, "selector", "spec.selector", _label_selector_repr)
        _immutable(errs, spec, old_spec, "completionMode", "spec.completionMode")
        if not (
            spec.get("completionMode") == "Indexed" and spec.get("completions") == spec.get("parallelism")
        ):
            _immutable(errs, spec, old_spec, "completions", "spec.completions")
        # A suspended Job's template may still be adjusted (scheduling directives, labels).
        if not old_spec.get("suspend"):
            _immutable(errs, spec, old_spec, "template", "spec.template")
    return errs


_CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_CRON_FIELDS = (
    (0, 59, None),
    (0, 23, None),
    (1, 31, None),
    (1, 12, {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}),
    (0, 6, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}),
)
_DURATION_RE = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")


def _cron_int(expr: str, names: dict[str, int] | None) -> int:
    if names and expr.lower() in names:
        return names[expr.lower()]
    if not re.fullmatch(r"[+-]?[0-9]+", expr):
        raise ValueError(f'failed to parse int from {expr}: strconv.Atoi: parsing "{expr}": invalid syntax')
    n = int(expr)
    if n < 0:
        raise ValueError(f"negative number ({n}) not allowed: {expr}")
    return n


def _cron_range(expr: str, lo: int, hi: int, names: dict[str, int] | None) -> None:
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    if low_high[0] in ("*", "?"):
        start, end = lo, hi
    else:
        start = _cron_int(low_high[0], names)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end = _cron_int(low_high[1], names)
        else:
            raise ValueError(f"too many hyphens: {expr}")
    step = 1
    if len(range_and_step) == 2:
        step = _cron_int(range_and_step[1], None)
        if len(low_high) == 1 and low_high[0] not in ("*", "?"):
            end = hi  # "N/step" means "N-max/step"
    elif len(range_and_step) > 2:
        raise ValueError(f"too many slashes: {expr}")
    if start < lo:
        raise ValueError(f"beginning of range ({start}) below minimum ({lo}): {expr}")
    if end > hi:
        raise ValueError(f"end of range ({end}) above maximum ({hi}): {expr}")
    if start > end:
        raise ValueError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise ValueError(f"step of range should be a positive number: {expr}")


def validate_cron_schedule(schedule: str) -> list[str]:
    """Error messages for a CronJob schedule (robfig/cron's standard parser + descriptors)."""
    spec = schedule.strip()
    if spec.startswith(("TZ=", "CRON_TZ=")):
        return ["cannot use TZ or CRON_TZ in schedule, use timeZone field instead"]
    if not spec:
        return ["empty spec string"]
    if spec.startswith("@"):
        if spec in _CRON_MACROS:
            return []
        if spec.startswith("@every "):
            dur = spec[len("@every ") :]
            if not re.fullmatch(f"(?:{_DURATION_RE.pattern})+", dur):
                return [f'failed to parse duration {spec}: time: invalid duration "{dur}"']
            return []
        return [f"unrecognized descriptor: {spec}"]
    fields = spec.split()
    if len(fields) != 5:
        return [f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]"]
    try:
        for text, (lo, hi, names) in zip(fields, _CRON_FIELDS, strict=True):
            for part in text.split(","):
                _cron_range(part, lo, hi, names)
    except ValueError as e:
        return [str(e)]
    return []


def _validate_cron_job(obj: dict, old: dict | None) -> list[FieldError]:
    errs: list[FieldError] = []
    name = _s(_d(obj.get("metadata")).get("name"))
    if len(name) > 52:  # Job names get an 11-character suffix and must stay DNS-1035 labels
        errs.append(invalid("metadata.name", name, "must be no more than 52 characters"))
    spec = _d(obj.get("spec"))
    schedule = spec.get("schedule")
    if not schedule:
        if "schedule" in spec:  # an absent key is reported by the schema
            errs.append(required("spec.schedule"))
    elif isinstance(schedule, str):
        old_schedule = _s(_d(_d(old).get("spec")).get("schedule")) if old else ""
        for msg in validate_cron_schedule(schedule):
            if "TZ" in msg and "TZ" in old_schedule:
                continue  # kept from before the timeZone field existed
            errs.append(invalid("spec.schedule", schedule, msg))
    _enum(errs, spec, "concurrencyPolicy", "spec.concurrencyPolicy", ["Allow", "Forbid", "Replace"])
    for key in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        _nonneg(errs, spec, key, f"spec.{key}")
    job_template = _d(spec.get("jobTemplate"))
    meta = _d(job_template.get("metadata"))
    errs += validate_labels(meta.get("labels"), "spec.jobTemplate.metadata.labels")
    errs += validate_annotations(meta.get("annotations"), "spec.jobTemplate.metadata.annotations")
    _validate_job_spec(_d(job_template.get("spec")), "spec.jobTemplate.spec", errs)
    return errs


# ---------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------

MAX_SECRET_SIZE = 1024 * 1024


def _b64_len(v: str) -> int:
    v = v.rstrip("\n")
    return len(v) * 3 // 4 - v[-2:].count("=") if v else 0


def _validate_data_keys(data: Any, path: str, errs: list[FieldError]) -> None:
    for key in _d(data):
        for msg in is_config_map_key(key):
            errs.append(invalid(f"{path}[{key}]", key, msg))


def _validate_immutable_data(obj: dict, old: dict, keys: tuple[str, ...], errs: list[FieldError]) -> None:
    if old.get("immutable") is not True:
        return
    if obj.get("immutable") is not True:
        errs.append(forbidden("immutable", "field is immutable when `immutable` is set"))
    for key in keys:
        if (obj.get(key) or {}) != (old.get(key) or {}):
            errs.append(forbidden(key, "field is immutable when `immutable` is set"))


def _validate_config_map(obj: dict, old: dict | None) -> list[FieldError]:
    errs: list[FieldError] = []
    data, binary = _d(obj.get("data")), _d(obj.get("binaryData"))
    _validate_data_keys(data, "data", errs)
    for key in data:
        if key in binary:
            errs.append(invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
    _validate_data_keys(binary, "binaryData", errs)
    total = sum(len(v.encode()) for v in data.values() if isinstance(v, str))
    total += sum(_b64_len(v) for v in binary.values() if isinstance(v, str))
    if total > MAX_SECRET_SIZE:
        errs.append(too_long("", MAX_SECRET_SIZE))
    if old is not None:
        _validate_immutable_data(obj, old, ("data", "binaryData"), errs)
    return errs


_SECRET_REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": ".dockercfg",
    "kubernetes.io/dockerconfigjson": ".dockerconfigjson",
    "kubernetes.io/ssh-auth": "ssh-privatekey",
}


def _validate_secret(obj: dict, old: dict | None) -> list[FieldError]:
    errs: list[FieldError] = []
    data = _d(obj.get("data"))
    string_data = _d(obj.get("stringData"))
    _validate_data_keys(data, "data", errs)
    _validate_data_keys(string_data, "stringData", errs)
    total = sum(_b64_len(v) for v in data.values() if isinstance(v, str))
    total += sum(len(v.encode()) for v in string_data.values() if isinstance(v, str))
    if total > MAX_SECRET_SIZE:
        errs.append(too_long("data", MAX_SECRET_SIZE))
    stype = obj.get("type") or "Opaque"
    keys = set(data) | set(string_data)
    if stype == "kubernetes.io/service-account-token":
        if not _d(_d(obj.get("metadata")).get("annotations")).get("kubernetes.io/service-account.name"):
            errs.append(required("metadata.annotations[kubernetes.io/service-account.name]"))
    elif stype in _SECRET_REQUIRED_KEYS:
        key = _SECRET_REQUIRED_KEYS[stype]
        if key not in keys:
            errs.append(required(f"data[{key}]"))
    elif stype == "kubernetes.io/basic-auth":
        if "username" not in keys and "password" not in keys:
            errs.append(required("data[username]"))
            errs.append(required("data[password]"))
    elif stype == "kubernetes.io/tls":
        for key in ("tls.crt", "tls.key"):
            if key not in keys:
                errs.append(required(f"data[{key}]"))
    if old is not None:
        if stype != (old.get("type") or "Opaque"):
            errs.append(invalid("type", stype, IMMUTABLE))
        _validate_immutable_data(obj, old, ("data",), errs)
    return errs


# ---------------------------------------------------------------------------
# Cluster objects
# ---------------------------------------------------------------------------


def _name_errors(obj: dict, rule: str) -> list[FieldError]:
    """The kind-specific name rule, repeated here so it holds whatever rule the caller gave
    validate_object_meta (identical errors collapse under :func:`dedupe`)."""
    name = _d(obj.get("metadata")).get("name")
    if not isinstance(name, str) or not name:
        return []
    return [invalid("metadata.name", name, msg) for msg in _NAME_RULES[rule](name, False)]


def _validate_namespace(obj: dict, old: dict | None) -> list[FieldError]:
    errs: list[FieldError] = _name_errors(obj, "dns1123_label")
    for f in _l(_d(obj.get("spec")).get("finalizers")):
        if not isinstance(f, str):
            continue
        for msg in is_qualified_name(f):
            errs.append(invalid("spec.finalizers", f, msg))
        if "/" not in f and f != "kubernetes":
            errs.append(
                invalid(
                    "spec.finalizers",
                    f,
                    "name is neither a standard finalizer name nor is it fully qualified",
                )
            )
    return errs


def _validate_node(obj: dict, old: dict | None) -> list[FieldError]:
    errs: list[FieldError] = []
    spec = _d(obj.get("spec"))
    seen: set[tuple] = set()
    for i, taint in enumerate(_l(spec.get("taints"))):
        taint = _d(taint)
        p = f"spec.taints[{i}]"
        key = _s(taint.get("key"))
        for msg in is_qualified_name(key):
            errs.append(invalid(p + ".key", key, msg))
        value = taint.get("value")
        if isinstance(value, str):
            for msg in is_valid_label_value(value):
                errs.append(invalid(p + ".value", value, msg))
        effect = taint.get("effect")
        if not effect:
            errs.append(required(p + ".effect"))
        elif effect not in _TAINT_EFFECTS:
            errs.append(not_supported(p + ".effect", effect, _TAINT_EFFECTS))
        if (key, effect) in seen:
            errs.append(duplicate(p, taint))
        seen.add((key, effect))
    for i, cidr in enumerate(_l(spec.get("podCIDRs"))):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except (ValueError, TypeError):
            errs.append(
                invalid(
                    f"spec.podCIDRs[{i}]",
                    cidr,
                    "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                )
            )
    if old is not None:
        old_spec = _d(old.get("spec"))
        if old_spec.get("podCIDRs") and not _same(spec.get("podCIDRs"), old_spec.get("podCIDRs")):
            errs.append(
                forbidden("spec.podCIDRs", 'node updates may not change podCIDR except from "" to valid')
            )
        if old_spec.get("providerID") and spec.get("providerID") != old_spec.get("providerID"):
            errs.append(
                forbidden("spec.providerID", 'node updates may not change providerID except from "" to valid')
            )
    return errs


def _validate_lease(obj: dict, old: dict | None) -> list[FieldError]:
    errs: list[FieldError] = []
    spec = _d(obj.get("spec"))
    lds = spec.get("leaseDurationSeconds")
    if _is_int(lds) and lds <= 0:
        errs.append(invalid("spec.leaseDurationSeconds", lds, "must be greater than 0"))
    _nonneg(errs, spec, "leaseTransitions", "spec.leaseTransitions")
    return errs


HIGHEST_USER_DEFINABLE_PRIORITY = 1_000_000_000
_SYSTEM_PRIORITY_CLASSES = {"system-cluster-critical": 2_000_000_000, "system-node-critical": 2_000_001_000}


def _validate_priority_class(obj: dict, old: dict | None) -> list[FieldError]:
    errs: list[FieldError] = []
    name = _s(_d(obj.get("metadata")).get("name"))
    value = obj.get("value")
    if name.startswith("system-"):
        known = _SYSTEM_PRIORITY_CLASSES.get(name)
        problem = (
            f"{name} is not a known system priority class"
            if known is None
            else (f"value of {name} PriorityClass must be {known}" if value != known else "")
        )
        if problem:
            errs.append(
                forbidden(
                    "metadata.name",
                    "priority class names with 'system-' prefix are reserved for system use only. "
                    f"error: {problem}",
                )
            )
    elif _is_int(value) and value > HIGHEST_USER_DEFINABLE_PRIORITY:
        errs.append(
            forbidden(
                "value",
                f"maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}",
            )
        )
    _enum(errs, obj, "preemptionPolicy", "preemptionPolicy", ["Never", "PreemptLowerPriority"])
    if old is not None:
        if value != old.get("value"):
            errs.append(forbidden("value", "may not be changed in an update."))
        if old.get("preemptionPolicy") is not None and obj.get("preemptionPolicy") != old.get(
            "preemptionPolicy"
        ):
            errs.append(invalid("preemptionPolicy", obj.get("preemptionPolicy"), IMMUTABLE))
    return errs


_RBAC_GROUP = "rbac.authorization.k8s.io"


def _validate_policy_rules(rules: Any, namespaced: bool, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, rule in enumerate(_l(rules)):
        rule = _d(rule)
        p = f"{path}[{i}]"
        if not rule.get("verbs"):
            errs.append(required(p + ".verbs", "verbs must contain at least one value"))
        urls = rule.get("nonResourceURLs")
        if urls:
            if namespaced:
                errs.append(
                    invalid(
                        p + ".nonResourceURLs", urls, "namespaced rules cannot apply to non-resource URLs"
                    )
                )
            if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                errs.append(
                    invalid(
                        p + ".nonResourceURLs",
                        urls,
                        "rules cannot apply to both regular resources and non-resource URLs",
                    )
                )
            continue
        if not rule.get("apiGroups"):
            errs.append(required(p + ".apiGroups", "resource rules must supply at least one api group"))
        if not rule.get("resources"):
            errs.append(required(p + ".resources", "resource rules must supply at least one resource"))
    return errs


def _role_ref_repr(ref: Any) -> _Raw:
    ref = _d(ref)
    return _Raw(
        f"rbac.RoleRef{{APIGroup:{_go_quote(_s(ref.get('apiGroup')))}, "
        f"Kind:{_go_quote(_s(ref.get('kind')))}, "
        f"Name:{_go_quote(_s(ref.get('name')))}}}"
    )


def _validate_role(obj: dict, old: dict | None) -> list[FieldError]:
    return _validate_policy_rules(obj.get("rules"), True, "rules")


def _validate_cluster_role(obj: dict, old: dict | None) -> list[FieldError]:
    errs = _validate_policy_rules(obj.get("rules"), False, "rules")
    agg = obj.get("aggregationRule")
    if isinstance(agg, dict):
        for i, sel in enumerate(_l(agg.get("clusterRoleSelectors"))):
            errs += validate_label_selector(sel, f"aggregationRule.clusterRoleSelectors[{i}]")
    return errs


def _validate_binding(obj: dict, old: dict | None, namespaced: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    ref = _d(obj.get("roleRef"))
    api_group = ref.get("apiGroup") or ""
    if api_group != _RBAC_GROUP and "apiGroup" in ref:
        errs.append(not_supported("roleRef.apiGroup", api_group, [_RBAC_GROUP]))
    kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
    if ref.get("kind") not in kinds:
        errs.append(not_supported("roleRef.kind", ref.get("kind") or "", kinds))
    rname = ref.get("name")
    if not rname:
        errs.append(required("roleRef.name"))
    elif isinstance(rname, str):
        for msg in is_path_segment_name(rname):
            errs.append(invalid("roleRef.name", rname, msg))
    for i, subj in enumerate(_l(obj.get("subjects"))):
        subj = _d(subj)
        p = f"subjects[{i}]"
        sname = _s(subj.get("name"))
        if not sname:
            errs.append(required(p + ".name"))
        kind = subj.get("kind")
        sgroup = subj.get("apiGroup") or ""
        if kind == "ServiceAccount":
            if sname:
                for msg in is_dns1123_subdomain(sname):
                    errs.append(invalid(p + ".name", sname, msg))
            if sgroup:
                errs.append(not_supported(p + ".apiGroup", sgroup, [""]))
            if not namespaced and not subj.get("namespace"):
                errs.append(required(p + ".namespace"))
        elif kind in ("User", "Group"):
            if sgroup != _RBAC_GROUP and "apiGroup" in subj:
                errs.append(not_supported(p + ".apiGroup", sgroup, [_RBAC_GROUP]))
        else:
            errs.append(not_supported(p + ".kind", kind or "", ["ServiceAccount", "User", "Group"]))
    if old is not None:
        old_ref = _d(old.get("roleRef"))

        # roleRef.apiGroup may be defaulted on one side only.
        def norm(r: dict) -> tuple:
            return (r.get("apiGroup") or _RBAC_GROUP, r.get("kind"), r.get("name"))

        if norm(ref) != norm(old_ref):
            errs.append(invalid("roleRef", _role_ref_repr(ref), "cannot change roleRef"))
    return errs


def _validate_pdb(obj: dict, old: dict | None) -> list[FieldError]:
    errs: list[FieldError] = []
    spec = _d(obj.get("spec"))
    min_available, max_unavailable = spec.get("minAvailable"), spec.get("maxUnavailable")
    if min_available is not None and max_unavailable is not None:
        errs.append(invalid("spec", spec, "minAvailable and maxUnavailable cannot be both set"))
    for key, v in (("minAvailable", min_available), ("maxUnavailable", max_unavailable)):
        if v is not None:
            errs += _validate_positive_int_or_percent(v, f"spec.{key}")
            errs += _not_more_than_100_percent(v, f"spec.{key}")
    errs += validate_label_selector(spec.get("selector"), "spec.selector")
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in ("AlwaysAllow", "IfHealthyBudget"):
        errs.append(
            not_supported("spec.unhealthyPodEvictionPolicy", policy, ["AlwaysAllow", "IfHealthyBudget"])
        )
    return errs


def _validate_hpa(obj: dict, old: dict | None) -> list[FieldError]:
    errs: list[FieldError] = []
    spec = _d(obj.get("spec"))
    min_r, max_r = spec.get("minReplicas"), spec.get("maxReplicas")
    if _is_int(min_r) and min_r < 1:
        errs.append(invalid("spec.minReplicas", min_r, "must be greater than or equal to 1"))
    if _is_int(max_r):
        if max_r < 1:
            errs.append(invalid("spec.maxReplicas", max_r, "must be greater than 0"))
        if _is_int(min_r) and max_r < min_r:
            errs.append(invalid("spec.maxReplicas", max_r, "must be greater than or equal to `minReplicas`"))
    ref = _d(spec.get("scaleTargetRef"))
    if "scaleTargetRef" in spec:
        if not ref.get("kind"):
            errs.append(required("spec.scaleTargetRef.kind"))
        if not ref.get("name"):
            errs.append(required("spec.scaleTargetRef.name"))
    return errs


_Validator = Callable[[dict, dict | None], list[FieldError]]

_KIND_VALIDATORS: dict[tuple[str, str], _Validator] = {
    ("", "Pod"): _validate_pod,
    ("", "Service"): _validate_service,
    ("", "ReplicationController"): _validate_replication_controller,
    ("", "ConfigMap"): _validate_config_map,
    ("", "Secret"): _validate_secret,
    ("", "Namespace"): _validate_namespace,
    ("", "Node"): _validate_node,
    ("", "PodTemplate"): lambda obj, old: _validate_pod_template(obj.get("template"), "template"),
    ("apps", "Deployment"): _validate_deployment,
    ("apps", "ReplicaSet"): _validate_replica_set,
    ("apps", "StatefulSet"): _validate_stateful_set,
    ("apps", "DaemonSet"): _validate_daemon_set,
    ("batch", "Job"): _validate_job,
    ("batch", "CronJob"): _validate_cron_job,
    ("coordination.k8s.io", "Lease"): _validate_lease,
    ("scheduling.k8s.io", "PriorityClass"): _validate_priority_class,
    (_RBAC_GROUP, "Role"): _validate_role,
    (_RBAC_GROUP, "ClusterRole"): _validate_cluster_role,
    (_RBAC_GROUP, "RoleBinding"): lambda obj, old: _validate_binding(obj, old, True),
    (_RBAC_GROUP, "ClusterRoleBinding"): lambda obj, old: _validate_binding(obj, old, False),
    ("policy", "PodDisruptionBudget"): _validate_pdb,
    ("autoscaling", "HorizontalPodAutoscaler"): _validate_hpa,
}


def validate_kind(group: str, kind: str, obj: dict, old: dict | None = None) -> list[FieldError]:
    """The semantic rules Kubernetes enforces for a kind; ``old`` is given on update.

    Metadata is not checked here (see :func:`validate_object_meta`).  Kinds
    without rules return no errors.
    """
    validator = _KIND_VALIDATORS.get((group, kind))
    if validator is None or not isinstance(obj, dict):
        return []
    return validator(obj, old if isinstance(old, dict) else None)
