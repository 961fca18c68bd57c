"""How the dashboard writes numbers and times (one place, so the page stays consistent)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jinja2 import Undefined
from markupsafe import Markup

DASH = "\u2013"  # an en dash: "no figure"


def fmt_int(value: Any) -> str:
    return DASH if value is None else f"{int(value):,}"


def fmt_pct(value: Any) -> str:
    return DASH if value is None else f"{float(value) * 100:.1f}%"


def fmt_float(value: Any) -> str:
    return DASH if value is None else f"{float(value):.4f}"


def fmt_time(value: Any) -> str:
    """ISO timestamps as 'YYYY-MM-DD HH:MM:SS UTC'."""
    if not value:
        return DASH
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_age(value: Any) -> str:
    """Seconds as the largest sensible unit: '42 s', '3.5 min', '2.1 h', '1.5 d'."""
    if value is None:
        return DASH
    seconds = float(value)
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def fmt_text(value: Any) -> str:
    return DASH if value is None else str(value)


FORMATS = {
    "int": fmt_int,
    "pct": fmt_pct,
    "float": fmt_float,
    "time": fmt_time,
    "age": fmt_age,
    "text": fmt_text,
}


def fact(path: str, value: Any, kind: str = "text") -> Markup:
    """A figure tagged with its /v1/ops/status path, so tests can compare page and JSON."""
    if isinstance(value, Undefined):
        value = None
    shown = FORMATS[kind](value)
    raw = "" if value is None else str(value)
    return Markup(
        '<span class="fact" data-fact="{}" data-format="{}" data-value="{}">{}</span>'
    ).format(path, kind, raw, shown)


def status_class(status: Any) -> str:
    """CSS class for a component status."""
    return {"ok": "ok", "ready": "ok", "live": "ok", "degraded": "warn", "busy": "warn"}.get(
        str(status), "bad" if status in ("down", "failed", "stale", "absent") else "muted"
    )
