"""Charts as inline SVG, drawn on the server: no script, nothing fetched from elsewhere."""

from __future__ import annotations

import math
from datetime import datetime

from markupsafe import Markup, escape

PALETTE = (
    "#2563eb",
    "#16a34a",
    "#dc2626",
    "#9333ea",
    "#ea580c",
    "#0891b2",
    "#ca8a04",
    "#db2777",
    "#4b5563",
    "#65a30d",
    "#7c3aed",
)


def colors(names: list[str]) -> dict[str, str]:
    """A stable colour per series name, in the order given."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _nice_max(value: float) -> float:
    """The smallest 1/2/5 x 10^k at or above `value` (at least 1)."""
    if value <= 1:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return float(step * magnitude)
    return float(10 * magnitude)


def line_chart(
    buckets: list[str],
    series: dict[str, list[int]],
    palette: dict[str, str],
    *,
    width: int = 1300,
    height: int = 240,
    label: str = "events per hour",
) -> Markup:
    """One polyline per series over hourly buckets, with a y grid and hour labels."""
    left, right, top, bottom = 52, 12, 10, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    # Four grid steps of a round size: 0, 10, 20, 30, 40 rather than 0, 12.5, 25...
    step = _nice_max(max((max(v) for v in series.values() if v), default=0) / 4)
    peak = 4 * step
    n = max(1, len(buckets) - 1)

    def x(i: int) -> float:
        return left + plot_w * i / n

    def y(v: float) -> float:
        return top + plot_h * (1 - v / peak)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>'
    ]
    for k in range(5):
        value = peak * k / 4
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            'stroke="#e5e7eb"/>'
            f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#6b7280">{value:,.0f}</text>'
        )
    every = max(1, len(buckets) // 8)
    for i in range(0, len(buckets), every):
        hour = datetime.fromisoformat(buckets[i]).strftime("%H:00")
        parts.append(
            f'<text x="{x(i):.1f}" y="{height - 8}" text-anchor="middle" font-size="11" '
            f'fill="#6b7280">{hour}</text>'
        )
    for name, values in series.items():
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        parts.append(
            f'<polyline fill="none" stroke="{palette[name]}" stroke-width="2" '
            f'points="{points}"><title>{escape(name)}</title></polyline>'
        )
    if not series:
        parts.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#6b7280">'
            "no events in this window</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def bar(fraction: float | None, *, width: int = 120, color: str = "#2563eb") -> Markup:
    """A horizontal bar for a share between 0 and 1 (empty when unknown)."""
    filled = 0.0 if fraction is None else max(0.0, min(1.0, float(fraction))) * width
    return Markup(
        f'<svg class="bar" viewBox="0 0 {width} 10" width="{width}" height="10" aria-hidden="true">'
        f'<rect width="{width}" height="10" rx="2" fill="#f3f4f6"/>'
        f'<rect width="{filled:.1f}" height="10" rx="2" fill="{color}"/></svg>'
    )


def split_bar(parts: list[tuple[str, float, str]], *, width: int = 320) -> Markup:
    """A stacked bar of (label, count, colour) parts."""
    total = sum(count for _, count, _ in parts)
    out = [
        f'<svg class="bar" viewBox="0 0 {width} 14" width="{width}" height="14" role="img" '
        'aria-label="share of lookups">'
        f'<rect width="{width}" height="14" rx="3" fill="#f3f4f6"/>'
    ]
    offset = 0.0
    for label, count, color in parts:
        if not total or not count:
            continue
        w = width * count / total
        out.append(
            f'<rect x="{offset:.1f}" width="{w:.1f}" height="14" fill="{color}">'
            f"<title>{escape(label)}</title></rect>"
        )
        offset += w
    out.append("</svg>")
    return Markup("".join(out))
