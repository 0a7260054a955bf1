"""The overview's chart of runs over time: runs that ended per bucket, stacked by status, and
the runs started as a line, from the per-minute counts of `flowhost.run_activity`.

Pure geometry (no I/O): `activity_chart` takes the buckets the query found (empty ones are
absent) and returns what the template draws.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

ENDED = ("completed", "failed", "canceled", "stalled")
WIDTH = 1200
HEIGHT = 200
LEFT = 40  # room for the y axis labels
BOTTOM = 20  # room for the time labels
TOP = 8


@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    """A chart's span and the width of its bars."""

    name: str
    label: str
    span: timedelta
    bucket: timedelta

    @property
    def buckets(self) -> int:
        return int(self.span / self.bucket)


WINDOWS = {
    w.name: w
    for w in (
        Window("1h", "last hour", timedelta(hours=1), timedelta(minutes=1)),
        Window("24h", "last 24 hours", timedelta(hours=24), timedelta(hours=1)),
        Window("7d", "last 7 days", timedelta(days=7), timedelta(hours=6)),
    )
}
DEFAULT_WINDOW = "24h"
EPOCH = datetime.fromisoformat("2000-01-01T00:00:00+00:00")


def window_start(window: Window, now: datetime) -> datetime:
    """The start of the chart's first bucket: buckets are aligned on EPOCH (as the query's
    date_bin), the last one holds `now`."""
    last = EPOCH + ((now - EPOCH) // window.bucket) * window.bucket
    return last - window.bucket * (window.buckets - 1)


@dataclasses.dataclass(frozen=True, slots=True)
class Bar:
    status: str
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclasses.dataclass(frozen=True, slots=True)
class Tick:
    x: float
    y: float
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    started: str  # polyline points of the runs started per bucket
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    totals: Mapping[str, int]
    empty: bool


def activity_chart(window: Window, start: datetime, rows: Sequence[Mapping[str, Any]]) -> Chart:
    """`rows`: {"at" (a bucket's start), "started", "completed", ...} for buckets with runs."""
    by_start = {row["at"]: row for row in rows}
    buckets = [start + window.bucket * i for i in range(window.buckets)]
    counts = [
        {k: int(by_start.get(at, {}).get(k) or 0) for k in ("started", *ENDED)} for at in buckets
    ]
    peak = max([max(sum(c[s] for s in ENDED), c["started"]) for c in counts] + [1])
    plot_w, plot_h = WIDTH - LEFT, HEIGHT - TOP - BOTTOM
    step = plot_w / len(buckets)
    bars: list[Bar] = []
    points: list[str] = []
    for i, (at, count) in enumerate(zip(buckets, counts, strict=True)):
        x = LEFT + i * step
        base = float(TOP + plot_h)
        for status in ENDED:
            if count[status]:
                height = plot_h * count[status] / peak
                base -= height
                title = f"{_label(at, window)}: {count[status]} {status}"
                bars.append(Bar(status, x + 1, base, max(step - 2, 1), height, title))
        y = TOP + plot_h - plot_h * count["started"] / peak
        points.append(f"{x + step / 2:.1f},{y:.1f}")
    totals = {k: sum(c[k] for c in counts) for k in ("started", *ENDED)}
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        bars=tuple(bars),
        started=" ".join(points),
        x_ticks=_x_ticks(buckets, window, step),
        y_ticks=(Tick(LEFT - 4, TOP + 4, str(peak)), Tick(LEFT - 4, TOP + plot_h, "0")),
        totals=totals,
        empty=not any(totals.values()),
    )


def _label(at: datetime, window: Window) -> str:
    return at.strftime("%H:%M" if window.span <= timedelta(days=1) else "%a %H:%M")


def _x_ticks(buckets: list[datetime], window: Window, step: float) -> tuple[Tick, ...]:
    every = max(len(buckets) // 6, 1)
    return tuple(
        Tick(LEFT + i * step, HEIGHT - 4, _label(at, window))
        for i, at in enumerate(buckets)
        if i % every == 0
    )
