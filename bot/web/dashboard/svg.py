"""Chart geometry computed on the server; templates draw it as inline SVG (no scripts, no CDN)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: date
    count: int


@dataclass(frozen=True)
class Tick:
    y: float
    value: int


@dataclass(frozen=True)
class DayLabel:
    x: float
    day: date


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    left: int
    top: int
    plot_height: float
    bars: list[Bar]
    ticks: list[Tick]
    labels: list[DayLabel]
    total: int


def nice_ceiling(value: int) -> int:
    """The axis maximum: 1, 2 or 5 times a power of ten, at least the highest bar."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def trend_chart(
    days: list[tuple[date, int]], *, width: int = 760, height: int = 220, max_labels: int = 10
) -> BarChart:
    """A bar per day; about `max_labels` dates under the axis so they never overlap."""
    left, right, top, bottom = 44, 8, 10, 28
    plot_w = width - left - right
    plot_h = height - top - bottom
    top_value = nice_ceiling(max((n for _, n in days), default=0))
    slot = plot_w / max(len(days), 1)
    gap = min(2.0, slot * 0.2)
    bars = []
    for i, (day, count) in enumerate(days):
        h = plot_h * count / top_value
        bars.append(
            Bar(
                x=round(left + i * slot + gap / 2, 2),
                y=round(top + plot_h - h, 2),
                width=round(max(slot - gap, 0.5), 2),
                height=round(h, 2),
                day=day,
                count=count,
            )
        )
    # Halfway tick only when it is a whole number of cases.
    steps = (0, 1, 2) if top_value % 2 == 0 else (0, 2)
    ticks = [
        Tick(y=round(top + plot_h - plot_h * k / 2, 2), value=top_value * k // 2) for k in steps
    ]
    every = max(1, math.ceil(len(days) / max_labels))
    labels = [
        DayLabel(x=round(left + (i + 0.5) * slot, 2), day=day)
        for i, (day, _) in enumerate(days)
        if i % every == 0
    ]
    return BarChart(
        width=width,
        height=height,
        left=left,
        top=top,
        plot_height=plot_h,
        bars=bars,
        ticks=ticks,
        labels=labels,
        total=sum(n for _, n in days),
    )


def share(count: int, largest: int, width: int = 160) -> float:
    """Length of a horizontal bar in a totals table, relative to the table's largest line."""
    return round(width * count / largest, 1) if largest > 0 else 0.0
