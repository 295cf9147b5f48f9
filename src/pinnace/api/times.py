"""Kubernetes' two timestamp forms, in one place: ``metav1.Time`` (RFC 3339,
whole seconds, UTC, ``Z``) and ``metav1.MicroTime`` (six fraction digits)."""

from __future__ import annotations

import datetime as dt


def format_time(t: dt.datetime) -> str:
    """metav1.Time's JSON form."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(t: dt.datetime) -> str:
    """metav1.MicroTime's JSON form."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_time() -> str:
    return format_time(dt.datetime.now(dt.UTC))


def now_micro_time() -> str:
    return format_micro_time(dt.datetime.now(dt.UTC))


def parse_time(text: str | None) -> dt.datetime | None:
    """Either form (fractions and offsets allowed) as an aware datetime; None when empty
    or garbled.  A timestamp without a zone is taken as UTC."""
    if not text:
        return None
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
