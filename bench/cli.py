"""`python -m bench [SCENARIO...] [--repeat N] [--quick] [--list] [--json]` (also `flowhost
bench`, which runs this in a checkout)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from bench.database import DatabaseServer
from bench.harness import Row, Scenario, load_scenarios, machine_info, run_scenarios
from bench.report import draw_charts, format_table, write_json

RESULTS_DIR = Path(__file__).resolve().parent / "results"
T = TypeVar("T")


def parse_args(argv: Sequence[str] | None, available: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run flowhost benchmark scenarios side by side with their anchors.",
    )
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="default: all")
    parser.add_argument(
        "--repeat", type=int, default=3, metavar="N", help="repetitions per scenario (default 3)"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the rows (or with --list, the scenarios) as JSON on stdout, not a table",
    )
    parser.add_argument(
        "--results-dir", type=Path, default=RESULTS_DIR, help=f"default: {RESULTS_DIR}"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.scenarios if name not in available]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(available)}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    registry = load_scenarios()
    args = parse_args(argv, sorted(registry))
    if args.list:
        if args.json:
            listed = [{"name": s.name, "description": s.description} for s in registry.values()]
            print(json.dumps(listed, indent=2))
            return 0
        for scenario in registry.values():
            print(f"{scenario.name:24} {scenario.description}")
        return 0
    selected = [registry[name] for name in dict.fromkeys(args.scenarios or sorted(registry))]

    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        rows, failed = _run(selected, repeat=args.repeat, quick=args.quick)
    except KeyboardInterrupt:
        print("bench: interrupted, nothing written", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)

    if rows:
        output = args.results_dir / "latest.json"
        write_json(rows, output)
        charts = draw_charts(rows, args.results_dir)
        wrote = f"wrote {output}" + "".join(f"\n      {chart}" for chart in charts)
        if args.json:
            print(json.dumps([row.to_json() for row in rows], indent=2, allow_nan=False))
            print(wrote, file=sys.stderr)
        else:
            print(format_table(rows))
            print(f"\n{wrote}")
    if failed:
        print(f"bench: failed scenario(s): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _run(scenarios: Sequence[Scenario], *, repeat: int, quick: bool) -> tuple[list[Row], list[str]]:
    with DatabaseServer.open() as server:
        loop_name = _event_loop_name()
        machine = machine_info(server.version, event_loop=loop_name, database=server.source)
        return _run_async(
            run_scenarios(scenarios, repeat=repeat, quick=quick, database=server, machine=machine)
        )


def _run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def _event_loop_name() -> str:
    try:
        from importlib.metadata import version

        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return f"uvloop {version('uvloop')}"


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Same path as Ctrl-C: asyncio cancels the scenario (its databases get dropped), then the
    # `with DatabaseServer` block stops the embedded server.
    raise KeyboardInterrupt
