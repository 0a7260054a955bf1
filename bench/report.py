"""Writing rows out: latest.json, a plain-text table, a PNG chart per scenario."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.harness import Row

COLUMNS = ("scenario", "metric", "value", "unit", "anchor", "anchor_value", "ratio", "runs")


def write_json(rows: Sequence[Row], path: Path) -> None:
    """Write the rows as a JSON list, atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps([row.to_json() for row in rows], indent=2, allow_nan=False)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text + "\n", encoding="utf-8")
    os.replace(temporary, path)


def format_number(value: float | None) -> str:
    if value is None:
        return "-"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def format_table(rows: Sequence[Row]) -> str:
    """The rows as an aligned text table; ratios get a trailing `x`, runs are listed."""
    cells = [list(COLUMNS)]
    for row in rows:
        cells.append(
            [
                row.scenario,
                row.metric + ("" if row.higher_is_better else " (lower=better)"),
                format_number(row.value),
                row.unit,
                row.anchor or "-",
                format_number(row.anchor_value),
                f"{row.ratio:.2f}x" if row.ratio is not None else "-",
                " ".join(format_number(v) for v in row.runs),
            ]
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    numeric = {2, 5, 6}
    lines = []
    for line in cells:
        parts = [
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def draw_charts(rows: Sequence[Row], directory: Path) -> list[Path]:
    """One PNG per scenario, one panel per metric: median bars, per-run dots, anchor beside."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: matplotlib is not installed, no charts drawn", file=sys.stderr)
        return []

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for scenario in dict.fromkeys(row.scenario for row in rows):
        metrics = [row for row in rows if row.scenario == scenario]
        figure, axes = plt.subplots(
            1, len(metrics), figsize=(max(4.8, 3.2 * len(metrics) + 0.6), 4.0), squeeze=False
        )
        for axis, row in zip(axes[0], metrics, strict=True):
            _draw_metric(axis, row)
        machine = metrics[0].machine
        figure.suptitle(
            f"{scenario}: median of {len(metrics[0].runs)} runs (dots)\n"
            f"{machine.get('cpu_count')} CPU {machine.get('cpu_model')}, "
            f"PostgreSQL {machine.get('postgres')}",
            fontsize=9,
        )
        figure.tight_layout()
        path = directory / f"{scenario}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written


def _draw_metric(axis: object, row: Row) -> None:
    bars = [(row.scenario, row.value, row.runs, "tab:blue")]
    if row.anchor is not None and row.anchor_value is not None:
        bars.append((row.anchor, row.anchor_value, row.anchor_runs or [], "tab:gray"))
    for position, (_label, median, runs, colour) in enumerate(bars):
        axis.bar(position, median, width=0.6, color=colour, alpha=0.75)  # type: ignore[attr-defined]
        spread = [position + (i - (len(runs) - 1) / 2) * 0.08 for i in range(len(runs))]
        axis.scatter(spread, runs, color="black", s=14, zorder=3)  # type: ignore[attr-defined]
        axis.annotate(  # type: ignore[attr-defined]
            format_number(median),
            (position, median),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 2),
            textcoords="offset points",
        )
    axis.set_xlim(-0.7, len(bars) - 0.3)  # type: ignore[attr-defined]
    axis.set_xticks(  # type: ignore[attr-defined]
        range(len(bars)), [label for label, *_ in bars], fontsize=7, rotation=10
    )
    better = "higher" if row.higher_is_better else "lower"
    title = row.metric if row.ratio is None else f"{row.metric}\nratio {row.ratio:.2f}x"
    axis.set_title(title, fontsize=9)  # type: ignore[attr-defined]
    axis.set_ylabel(f"{row.unit} ({better} is better)", fontsize=8)  # type: ignore[attr-defined]
    axis.set_ylim(bottom=0)  # type: ignore[attr-defined]
