"""Charts drawn on the server: the geometry of an SVG step chart, for `templates/chart.html`.

No script library and no inline styles (the CSP forbids them): the template draws the
paths, axes and legend with classes that `static/style.css` colours. A step chart suits
slot energies: a value holds for its whole slot. Values are Wh, shown in kWh.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ledger_node.interfaces.web.templating import jst

WIDTH, HEIGHT = 960, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 28, 40, 44
"""The plot area's margins (px): y labels on the left, legend above, x labels below."""
MAX_X_LABELS = 12
LEGEND_SAMPLE, LEGEND_GAP = 28, 24
"""A legend entry's line sample and the gap after its text (px)."""


@dataclass(frozen=True)
class Series:
    label: str
    """A gettext message id."""
    css: str
    values: Sequence[int | None]
    """Wh per slot; None where there is no value (the line breaks)."""


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class Line:
    label: str
    """In the reader's language."""
    css: str
    d: str
    """SVG path data."""
    legend_x: float
    """Where its legend entry starts, above the plot."""


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    lines: list[Line]


def _step(top_kwh: float) -> float:
    """A round tick step (1, 2, 2.5 or 5 × 10^k kWh) giving at most 6 intervals."""
    raw = top_kwh / 6 if top_kwh > 0 else 1.0
    base = 10 ** math.floor(math.log10(raw))
    return float(next(m * base for m in (1, 2, 2.5, 5, 10) if m * base >= raw))


def _kwh_label(value: float, step: float) -> str:
    digits = 0 if step >= 1 else 1 if step >= 0.1 else 2 if step >= 0.01 else 3
    return f"{value:,.{digits}f}"


def text_width(text: str, px: float = 12) -> float:
    """About how wide `text` is in a `px` font (a CJK character is about a square)."""
    return sum(px if ord(ch) >= 0x2E80 else px * 0.58 for ch in text)


def step_chart(
    slots: Sequence[int], slot_s: int, series: Sequence[Series], gettext: Callable[[str], str]
) -> Chart:
    """A step chart of `series` over `slots` (UTC seconds, each `slot_s` long), y from 0,
    its legend in the language of `gettext`."""
    n = max(len(slots), 1)
    right, bottom = WIDTH - RIGHT, HEIGHT - BOTTOM
    top_wh = max((v for s in series for v in s.values if v is not None), default=0)
    step = _step(top_wh / 1000)
    top_kwh = max(step, math.ceil(top_wh / 1000 / step) * step)

    def x(i: int) -> float:
        return LEFT + (right - LEFT) * i / n

    def y(wh: int) -> float:
        return bottom - (bottom - TOP) * (wh / 1000) / top_kwh

    lines = []
    legend_x = float(LEFT)
    for s in series:
        parts: list[str] = []
        last: int | None = None
        for i, v in enumerate(s.values):
            if v is None:
                last = None
                continue
            if last is None:
                parts.append(f"M{x(i):.1f},{y(v):.1f}")
            else:
                parts.append(f"V{y(v):.1f}")
            parts.append(f"H{x(i + 1):.1f}")
            last = v
        label = gettext(s.label)
        lines.append(Line(label, s.css, "".join(parts), legend_x))
        legend_x += LEGEND_SAMPLE + text_width(label) + LEGEND_GAP
    every = max(1, math.ceil((n + 1) / MAX_X_LABELS))
    bounds = [*slots, (slots[-1] + slot_s) if slots else 0]
    x_ticks = [Tick(x(i), jst(t, "%H:%M")) for i, t in enumerate(bounds) if i % every == 0]
    count = round(top_kwh / step)
    y_ticks = [
        Tick(y(round(k * step * 1000)), _kwh_label(k * step, step)) for k in range(count + 1)
    ]
    return Chart(WIDTH, HEIGHT, LEFT, TOP, right, bottom, x_ticks, y_ticks, lines)
