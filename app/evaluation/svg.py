"""Small inline SVG charts for the evaluation report (no plotting library, no script)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563")
W, H = 600, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 190, 16, 44


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) inside [lo, hi]."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / (n - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


class _Frame:
    """Axes with linear scales; `x()` and `y()` map data to pixels."""

    def __init__(self, x_range: tuple[float, float], y_range: tuple[float, float]) -> None:
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range if y_range[1] > y_range[0] else (y_range[0], y_range[0] + 1)
        if self.x1 <= self.x0:
            self.x1 = self.x0 + 1
        self.parts: list[str] = []

    def x(self, v: float) -> float:
        return LEFT + (v - self.x0) / (self.x1 - self.x0) * (W - LEFT - RIGHT)

    def y(self, v: float) -> float:
        return H - BOTTOM - (v - self.y0) / (self.y1 - self.y0) * (H - TOP - BOTTOM)

    def axes(self, x_label: str, y_label: str, x_ticks: bool = True) -> None:
        p = self.parts
        p.append(
            f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" '
            'stroke="#374151"/>'
        )
        p.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" stroke="#374151"/>')
        for t in _ticks(self.y0, self.y1):
            yy = self.y(t)
            p.append(
                f'<line x1="{LEFT}" y1="{yy:.1f}" x2="{W - RIGHT}" y2="{yy:.1f}" stroke="#e5e7eb"/>'
            )
            p.append(f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
        if x_ticks:
            for t in _ticks(self.x0, self.x1):
                p.append(
                    f'<text x="{self.x(t):.1f}" y="{H - BOTTOM + 16}" '
                    f'text-anchor="middle">{_fmt(t)}</text>'
                )
        p.append(
            f'<text x="{(LEFT + W - RIGHT) / 2:.0f}" y="{H - 6}" text-anchor="middle">'
            f"{escape(x_label)}</text>"
        )
        p.append(
            f'<text x="14" y="{(TOP + H - BOTTOM) / 2:.0f}" text-anchor="middle" '
            f'transform="rotate(-90 14 {(TOP + H - BOTTOM) / 2:.0f})">{escape(y_label)}</text>'
        )

    def legend(self, names: Sequence[str]) -> None:
        for i, name in enumerate(names):
            yy = TOP + 8 + i * 18
            colour = PALETTE[i % len(PALETTE)]
            self.parts.append(
                f'<rect x="{W - RIGHT + 12}" y="{yy - 8}" width="10" height="10" '
                f'fill="{colour}"/><text x="{W - RIGHT + 28}" y="{yy + 1}">{escape(name)}</text>'
            )

    def svg(self, title: str) -> str:
        body = "".join(self.parts)
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" '
            f'height="{H}" role="img" aria-label="{escape(title)}" font-family="sans-serif" '
            f'font-size="11"><title>{escape(title)}</title>{body}</svg>'
        )


def line_chart(
    title: str,
    series: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    x_label: str,
    y_label: str,
    *,
    square: float | None = None,
    diagonal: bool = False,
    markers: bool = False,
) -> str:
    """One polyline per series (name, xs, ys); `square` fixes both axes to [0, square]."""
    xs = [x for _, sx, _ in series for x in sx] or [0.0, 1.0]
    ys = [y for _, _, sy in series for y in sy] or [0.0, 1.0]
    if square:
        frame = _Frame((0.0, square), (0.0, square))
    else:
        frame = _Frame((min(xs), max(xs)), (0.0, max(ys) * 1.1 or 1.0))
    frame.axes(x_label, y_label)
    if diagonal:
        frame.parts.append(
            f'<line x1="{frame.x(0):.1f}" y1="{frame.y(0):.1f}" x2="{frame.x(frame.x1):.1f}" '
            f'y2="{frame.y(frame.y1):.1f}" stroke="#9ca3af" stroke-dasharray="4 4"/>'
        )
    for i, (_, sx, sy) in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        points = " ".join(f"{frame.x(a):.1f},{frame.y(b):.1f}" for a, b in zip(sx, sy, strict=True))
        frame.parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
        if markers:
            frame.parts.extend(
                f'<circle cx="{frame.x(a):.1f}" cy="{frame.y(b):.1f}" r="3" fill="{colour}"/>'
                for a, b in zip(sx, sy, strict=True)
            )
    frame.legend([name for name, _, _ in series])
    return frame.svg(title)


def bar_chart(
    title: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    y_label: str,
) -> str:
    """Grouped bars: one group per category, one bar per series."""
    top = max((v for _, values in series for v in values), default=0.0) * 1.15 or 1.0
    frame = _Frame((0.0, float(max(1, len(categories)))), (0.0, top))
    frame.axes("", y_label, x_ticks=False)
    group_w = (W - LEFT - RIGHT) / max(1, len(categories))
    bar_w = group_w * 0.8 / max(1, len(series))
    for c, category in enumerate(categories):
        gx = LEFT + c * group_w + group_w * 0.1
        for s, (_, values) in enumerate(series):
            value = values[c]
            x0, y0 = gx + s * bar_w, frame.y(value)
            frame.parts.append(
                f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{bar_w - 2:.1f}" '
                f'height="{H - BOTTOM - y0:.1f}" fill="{PALETTE[s % len(PALETTE)]}">'
                f"<title>{escape(category)}: {_fmt(value)}</title></rect>"
            )
        frame.parts.append(
            f'<text x="{LEFT + (c + 0.5) * group_w:.1f}" y="{H - BOTTOM + 16}" '
            f'text-anchor="middle">{escape(category)}</text>'
        )
    frame.legend([name for name, _ in series])
    return frame.svg(title)


def scatter(
    title: str, xs: Sequence[float], ys: Sequence[float], x_label: str, y_label: str
) -> str:
    """Points with the y = x line (predicted against actual)."""
    top = max([*xs, *ys, 1.0]) * 1.05
    frame = _Frame((0.0, top), (0.0, top))
    frame.axes(x_label, y_label)
    frame.parts.append(
        f'<line x1="{frame.x(0):.1f}" y1="{frame.y(0):.1f}" x2="{frame.x(top):.1f}" '
        f'y2="{frame.y(top):.1f}" stroke="#9ca3af" stroke-dasharray="4 4"/>'
    )
    frame.parts.extend(
        f'<circle cx="{frame.x(a):.1f}" cy="{frame.y(b):.1f}" r="2" fill="{PALETTE[0]}" '
        'fill-opacity="0.5"/>'
        for a, b in zip(xs, ys, strict=True)
    )
    return frame.svg(title)
