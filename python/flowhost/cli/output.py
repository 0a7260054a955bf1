"""How the CLI prints runs, steps and events, for a person or (with --json) for a program."""

from __future__ import annotations

import codecs
import json
import sys
from datetime import datetime
from typing import Any, TextIO

import click

from flowhost.store.events import Event

STATUS_COLOURS = {
    "completed": "green",
    "failed": "red",
    "running": "yellow",
    "canceled": "magenta",
    "skipped": "bright_black",
    "queued": "cyan",
    "awaiting": "blue",
    "waiting": "blue",
    "resolved": "green",
    "timed_out": "red",
    "stalled": "bright_red",
}


def colour_enabled() -> bool:
    """Whether what goes to stdout is styled: as `--color`/`--no-color`/NO_COLOR decided (the
    root command sets the context's `color`), else when stdout is a terminal. `click.echo`
    follows the same context, and strips styles when colour is off."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.color is not None:
        return ctx.color
    return sys.stdout.isatty()


def unicode_enabled(stream: TextIO | None = None) -> bool:
    """Whether `stream` (stdout) takes box-drawing characters: its encoding is UTF-8."""
    encoding = getattr(stream or sys.stdout, "encoding", None) or "ascii"
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


def status_text(status: str) -> str:
    return click.style(status, fg=STATUS_COLOURS.get(status)) if colour_enabled() else status


def compact(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def event_line(event: Event, started: datetime, *, with_id: bool = False) -> str:
    """One event; `with_id` leads with its id (what `runs state --at` takes)."""
    offset = (event.ts - started).total_seconds() * 1000
    where = f"{event.step} #{event.attempt}" if event.step and event.attempt else (event.step or "")
    detail = _event_detail(event)
    kind = click.style(f"{event.type:<15}", bold=True) if colour_enabled() else f"{event.type:<15}"
    ident = f"{event.id:>8}  " if with_id else ""
    return f"  {ident}{offset:9.1f} ms  {kind} {where}{'  ' + detail if detail else ''}".rstrip()


def _event_detail(event: Event) -> str:
    data = event.data
    match event.type:
        case "log":
            fields = " ".join(
                f"{k}={compact(v, 60)}" for k, v in (data.get("fields") or {}).items()
            )
            return f"[{data.get('level')}] {data.get('message')} {fields}".rstrip()
        case "emit":
            return f"{data.get('name')} {compact(data.get('payload'), 80)}"
        case "state.set":
            return f"{data.get('key')} = {compact(data.get('value'), 80)}"
        case "state.delete":
            return str(data.get("key"))
        case "step.completed":
            return f"({data.get('duration_ms')} ms) → {compact(data.get('result'), 80)}"
        case "step.retry":
            error = data.get("error") or {}
            return (
                f"{error.get('type')}: {error.get('message')} "
                f"(attempt {data.get('next_attempt')} in {data.get('delay')}s)"
            )
        case "step.failed" | "flow.failed":
            error = data.get("error") or {}
            return f"{error.get('type')}: {error.get('message')}"
        case "flow.started":
            return compact(data.get("input"), 80)
        case "flow.stalled" | "step.stalled":
            return str(data.get("reason"))
        case "flow.migrated":
            return f"definition {data.get('from')} -> {data.get('to')}"
        case _:
            return ""


def run_summary(run: dict[str, Any], steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The `--json` shape of a run."""
    return {
        "id": str(run["id"]),
        "flow": run["flow"],
        "status": run["status"],
        "result": run["result"],
        "error": run["error"],
        "steps": [
            {
                "name": s["name"],
                "status": s["status"],
                "attempts": s["attempt"],
                "result": s["result"],
            }
            for s in steps
        ],
    }


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [
        max(len(h), *(len(click.unstyle(r[i])) for r in rows)) if rows else len(h)
        for i, h in enumerate(headers)
    ]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c + " " * (w - len(click.unstyle(c))) for c, w in zip(cells, widths, strict=True)
        ).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])
