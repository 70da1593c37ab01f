"""Charts as inline SVG, drawn on the server: stacked bars, plain bars and lines. Pure; no Flask.

Each chart is a ``<figure>``-ready ``<svg role="img">`` with a ``<title>``
(its name for screen readers), axes with ticks, a legend, and a ``<title>``
on every bar and point saying what it counts, so a pointer or a screen
reader gets the value. The page puts the same numbers in a table beside it
(the text alternative). Colours are the Okabe-Ito palette, told apart with
any colour vision. Everything is escaped: labels come from scanners.
Nothing is inline style or script, so the pages' strict CSP holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

__all__ = ["Series", "bar_chart", "line_chart", "nice_max"]

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
WIDTH, HEIGHT = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 16, 72
LEGEND_ROW = 18


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]


def nice_max(value: float) -> float:
    """A top for an axis at or above ``value``: four ticks of a round step (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 4:
        return 4.0
    quarter = value / 4
    power = 10.0 ** math.floor(math.log10(quarter))
    for step in (1, 2, 2.5, 5, 10):
        if quarter <= step * power and (step * power).is_integer():
            return 4 * step * power
    return 40 * power


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _frame(title: str, top: float, unit: str, legend: Sequence[str], chart_id: str) -> tuple[list[str], float]:
    """The svg's opening, its title, the y axis with ticks and grid; and the plot height."""
    legend_height = LEGEND_ROW * math.ceil(len(legend) / 4) if legend else 0
    height = HEIGHT + legend_height
    plot = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id={quoteattr(chart_id)} role="img" '
        f'viewBox="0 0 {WIDTH} {height}" aria-labelledby={quoteattr(chart_id + "-title")}>',
        f"<title id={quoteattr(chart_id + '-title')}>{escape(title)}</title>",
        f'<g class="axis y-axis"><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot}" stroke="#555"/>',
    ]
    for tick in range(5):
        value = top * tick / 4
        y = TOP + plot - plot * tick / 4
        parts.append(
            f'<line x1="{LEFT - 4}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{escape(_number(value))}</text>'
        )
    if unit:
        parts.append(
            f'<text x="12" y="{TOP + plot / 2:.1f}" font-size="11" text-anchor="middle" '
            f'transform="rotate(-90 12 {TOP + plot / 2:.1f})">{escape(unit)}</text>'
        )
    parts.append("</g>")
    if legend:
        parts.append('<g class="legend">')
        for index, name in enumerate(legend):
            x = LEFT + (index % 4) * 165
            y = HEIGHT + LEGEND_ROW * (index // 4) - 4
            parts.append(
                f'<g class="legend-entry"><rect x="{x}" y="{y - 10}" width="12" height="12" '
                f'fill="{PALETTE[index % len(PALETTE)]}"/>'
                f'<text x="{x + 16}" y="{y}" font-size="12">{escape(name[:24])}</text></g>'
            )
        parts.append("</g>")
    return parts, plot


def _x_labels(labels: Sequence[str], step: float, plot: float) -> list[str]:
    parts = [f'<g class="axis x-axis"><line x1="{LEFT}" y1="{TOP + plot}" x2="{WIDTH - RIGHT}" y2="{TOP + plot}" '
             'stroke="#555"/>']
    every = max(1, math.ceil(len(labels) / 24))
    for index, label in enumerate(labels):
        if index % every:
            continue
        x = LEFT + step * (index + 0.5)
        y = TOP + plot + 14
        text = escape(label[:14])
        if len(labels) > 12 and max(len(item) for item in labels) > 2:
            parts.append(
                f'<text x="{x:.1f}" y="{y}" font-size="11" text-anchor="end" '
                f'transform="rotate(-40 {x:.1f} {y})">{text}</text>'
            )
        else:
            parts.append(f'<text x="{x:.1f}" y="{y}" font-size="11" text-anchor="middle">{text}</text>')
    parts.append("</g>")
    return parts


def bar_chart(
    title: str, labels: Sequence[str], series: Sequence[Series], *, unit: str = "", chart_id: str = "chart"
) -> str:
    """Bars per label, the series stacked (one series: plain bars). Each bar segment is a ``rect.bar``."""
    totals = [sum(s.values[index] for s in series) for index in range(len(labels))]
    top = nice_max(max(totals, default=0))
    legend = [s.name for s in series] if len(series) > 1 else []
    parts, plot = _frame(title, top, unit, legend, chart_id)
    step = (WIDTH - LEFT - RIGHT) / max(1, len(labels))
    width = min(64.0, max(2.0, step * 0.7))
    parts.append('<g class="bars">')
    for index, label in enumerate(labels):
        base = 0.0
        x = LEFT + step * index + (step - width) / 2
        for number, one in enumerate(series):
            value = one.values[index]
            if value <= 0:
                continue
            height = plot * value / top
            y = TOP + plot - plot * (base + value) / top
            name = f"{label}, {one.name}: {_number(value)}" if len(series) > 1 else f"{label}: {_number(value)}"
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" '
                f'fill="{PALETTE[number % len(PALETTE)]}"><title>{escape(name)}</title></rect>'
            )
            base += value
    parts.append("</g>")
    parts += _x_labels(labels, step, plot)
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    title: str, labels: Sequence[str], series: Sequence[Series], *, unit: str = "", chart_id: str = "chart",
    top: float | None = None,
) -> str:
    """A line per series over the labels, a ``circle.point`` with its ``<title>`` at each value."""
    highest = max((value for s in series for value in s.values), default=0)
    top = top if top is not None and top >= highest else nice_max(highest)
    parts, plot = _frame(title, top, unit, [s.name for s in series], chart_id)
    step = (WIDTH - LEFT - RIGHT) / max(1, len(labels))
    parts.append('<g class="lines">')
    for number, one in enumerate(series):
        colour = PALETTE[number % len(PALETTE)]
        points = [
            (LEFT + step * (index + 0.5), TOP + plot - plot * value / top) for index, value in enumerate(one.values)
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline class="line" points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for (x, y), label, value in zip(points, labels, one.values, strict=True):
            parts.append(
                f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">'
                f"<title>{escape(f'{one.name}, {label}: {_number(value)}')}</title></circle>"
            )
    parts.append("</g>")
    parts += _x_labels(labels, step, plot)
    parts.append("</svg>")
    return "".join(parts)
