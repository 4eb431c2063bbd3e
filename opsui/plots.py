"""Plots as inline SVG, drawn on the server: values over time as step lines with points.

Each plot is an ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` saying what it shows
and the latest values, and a ``<title>`` on every point (its time and value) so a pointer or a
screen reader can read it. ``data-points`` on the ``<svg>`` counts the points drawn.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple

#: Line colours: distinct, dark enough on white (WCAG 3:1 for graphics).
PALETTE = ("#1f5fa8", "#b23b00", "#2e7d32", "#6a3d9a", "#8a6d00", "#00707a")

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 110, 16, 12, 36
_ids = itertools.count(1)


class Line(NamedTuple):
    """One line of a plot: its legend label and its (Unix time, value) points."""

    label: str
    points: Sequence[tuple[float, float]]


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.3g}"


def plot(
    title: str,
    lines: Sequence[Line],
    *,
    y_names: Sequence[str] | None = None,
    unit: str = "",
    height: int = HEIGHT,
    until: float | None = None,
) -> str:
    """An SVG plot of ``lines`` over time. With ``y_names`` the values are indices into them
    (a categorical axis, e.g. condition types); else numbers, with ``unit`` in the desc. With
    ``until`` each line holds its last value up to that time (a state that still lasts)."""
    uid = f"plot{next(_ids)}"
    esc = html.escape
    drawn = [line for line in lines if line.points]
    count = sum(len(line.points) for line in drawn)
    head = (
        f'<svg class="plot" role="img" viewBox="0 0 {WIDTH} {height}" '
        f'aria-labelledby="{uid}-t {uid}-d" data-points="{count}">'
        f'<title id="{uid}-t">{esc(title)}</title>'
    )
    if not drawn:
        return (
            f'{head}<desc id="{uid}-d">No samples yet.</desc>'
            f'<text x="{WIDTH / 2}" y="{height / 2}" text-anchor="middle" class="empty">'
            "No samples yet</text></svg>"
        )
    times = [t for line in drawn for t, _ in line.points] + ([until] if until else [])
    values = [v for line in drawn for _, v in line.points]
    t0, t1 = min(times), max(times)
    if t1 - t0 < 1:
        t0, t1 = t0 - 30, t1 + 30
    if y_names:
        v0, v1 = -0.5, len(y_names) - 0.5
    else:
        v0, v1 = min(0.0, min(values)), max(values)
        if v1 - v0 < 1:
            v1 = v0 + 1
    inner_w, inner_h = WIDTH - LEFT - RIGHT, height - TOP - BOTTOM

    def x(t: float) -> float:
        return round(LEFT + (t - t0) / (t1 - t0) * inner_w, 1)

    def y(v: float) -> float:
        return round(TOP + inner_h - (v - v0) / (v1 - v0) * inner_h, 1)

    parts = [head]
    latest = "; ".join(
        f"{line.label}: {_y_text(line.points[-1][1], y_names)}{unit} at "
        f"{_clock(line.points[-1][0])}"
        for line in drawn
    )
    parts.append(
        f'<desc id="{uid}-d">{esc(title)} from {_clock(t0)} to {_clock(t1)} UTC, {count} points. '
        f"Latest: {esc(latest)}.</desc>"
    )
    parts.append(
        f'<g class="axis"><line x1="{LEFT}" y1="{TOP + inner_h}" x2="{WIDTH - RIGHT}" '
        f'y2="{TOP + inner_h}"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + inner_h}"/>'
    )
    for tick in _y_ticks(v0, v1, y_names):
        label = _y_text(tick, y_names)
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{y(tick)}" x2="{WIDTH - RIGHT}" y2="{y(tick)}"/>'
            f'<text x="{LEFT - 6}" y="{y(tick) + 4}" text-anchor="end">{esc(label)}</text>'
        )
    for i, anchor in enumerate(("start", "middle", "middle", "middle", "end")):
        t = t0 + (t1 - t0) * i / 4
        parts.append(
            f'<text x="{x(t)}" y="{height - 12}" text-anchor="{anchor}">{_clock(t)}</text>'
        )
    parts.append("</g>")
    radius = 3 if count <= 80 else 1.5
    for colour, line in zip(itertools.cycle(PALETTE), drawn, strict=False):
        path = []
        for i, (t, v) in enumerate(line.points):
            if i:
                path.append(f"H{x(t)}V{y(v)}")
            else:
                path.append(f"M{x(t)} {y(v)}")
        if until is not None and until > line.points[-1][0]:
            path.append(f"H{x(until)}")
        parts.append(
            f'<g class="line" data-label="{esc(line.label)}"><path d="{"".join(path)}" '
            f'stroke="{colour}" fill="none" stroke-width="2"/>'
        )
        for t, v in line.points:
            parts.append(
                f'<circle cx="{x(t)}" cy="{y(v)}" r="{radius}" fill="{colour}">'
                f"<title>{esc(line.label)} {_clock(t)}: {esc(_y_text(v, y_names))}</title></circle>"
            )
        parts.append("</g>")
    parts.append("</svg>")
    legend = "".join(
        f'<li><svg class="swatch" viewBox="0 0 10 10" aria-hidden="true">'
        f'<rect width="10" height="10" fill="{colour}"/></svg>{esc(line.label)}</li>'
        for colour, line in zip(itertools.cycle(PALETTE), drawn, strict=False)
    )
    return "".join(parts) + (f'<ul class="legend">{legend}</ul>' if len(drawn) > 1 else "")


def _y_text(v: float, names: Sequence[str] | None) -> str:
    if names:
        return names[round(v)]
    return _number(v)


def _y_ticks(v0: float, v1: float, names: Sequence[str] | None) -> list[float]:
    if names:
        return [float(i) for i in range(len(names))]
    span = v1 - v0
    step = next(s for s in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if span / s <= 5)
    if span > 5000:
        step = span / 5
    first = int(v0 // step) * step
    ticks, tick = [], float(first)
    while tick <= v1 + 1e-9:
        ticks.append(tick)
        tick += step
    return ticks
