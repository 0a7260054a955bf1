"""Scenario registry, per-repetition context and the maths that turns repetitions into rows.

A scenario is a module in `bench/scenarios/` with `NAME`, `DESCRIPTION` and
`async def run(ctx: Context) -> Sequence[Measurement]`, which measures ONE repetition. The harness
calls `run` `--repeat` times; a scenario that measures a system and its anchor inside one call
therefore interleaves them (value, anchor, value, anchor, ...). See bench/README.md.
"""

from __future__ import annotations

import importlib
import math
import os
import pkgutil
import platform
import statistics
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

SCENARIO_PACKAGE = "bench.scenarios"


class BenchError(Exception):
    """A scenario or the harness was used wrongly (bad scenario module, inconsistent metrics)."""


@dataclass(frozen=True)
class Measurement:
    """One metric of one repetition, with the anchor measured in the same repetition if any."""

    metric: str
    value: float
    unit: str
    higher_is_better: bool = True
    anchor: str | None = None
    anchor_value: float | None = None

    def __post_init__(self) -> None:
        numbers = [self.value] if self.anchor_value is None else [self.value, self.anchor_value]
        if not all(math.isfinite(number) for number in numbers):
            raise BenchError(f"{self.metric}: not a finite number: {numbers}")
        if (self.anchor is None) != (self.anchor_value is None):
            raise BenchError(f"{self.metric}: give both anchor and anchor_value, or neither")


@dataclass(frozen=True)
class Row:
    """One line of latest.json: the medians over repetitions of one metric of one scenario."""

    scenario: str
    metric: str
    value: float
    unit: str
    anchor: str | None
    anchor_value: float | None
    ratio: float | None
    higher_is_better: bool
    runs: list[float]
    anchor_runs: list[float] | None
    machine: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "metric": self.metric,
            "value": self.value,
            "unit": self.unit,
            "anchor": self.anchor,
            "anchor_value": self.anchor_value,
            "ratio": self.ratio,
            "higher_is_better": self.higher_is_better,
            "runs": self.runs,
            "anchor_runs": self.anchor_runs,
            "machine": self.machine,
        }


class DatabaseProvider(Protocol):
    """What a context needs from the server: a fresh database per use (bench/database.py)."""

    def fresh_database(self, label: str) -> AbstractAsyncContextManager[str]: ...


@dataclass
class Context:
    """Handed to a scenario's `run` for one repetition."""

    scenario: str
    repetition: int  # 0-based
    repeat: int
    quick: bool
    database: DatabaseProvider = field(repr=False)

    def size(self, full: int, quick: int) -> int:
        """The problem size: `quick` under `--quick`, else `full`."""
        return quick if self.quick else full

    def fresh_database(self, label: str = "") -> AbstractAsyncContextManager[str]:
        """`async with ctx.fresh_database("engine") as url:` an empty database, dropped on exit."""
        return self.database.fresh_database(f"{self.scenario}_{label}" if label else self.scenario)

    def log(self, message: str) -> None:
        print(f"  [{self.scenario} {self.repetition + 1}/{self.repeat}] {message}", file=sys.stderr)


RunFunction = Callable[[Context], Awaitable[Sequence[Measurement]]]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    run: RunFunction


def load_scenarios(package: str = SCENARIO_PACKAGE) -> dict[str, Scenario]:
    """Import every module of the scenarios package; the registry is keyed by `NAME`."""
    pkg = importlib.import_module(package)
    scenarios: dict[str, Scenario] = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        scenario = _scenario_from_module(module)
        if scenario.name in scenarios:
            raise BenchError(f"two scenario modules are named {scenario.name!r}")
        scenarios[scenario.name] = scenario
    return scenarios


def _scenario_from_module(module: Any) -> Scenario:
    missing = [attr for attr in ("NAME", "DESCRIPTION", "run") if not hasattr(module, attr)]
    if missing:
        raise BenchError(f"scenario module {module.__name__} lacks {', '.join(missing)}")
    return Scenario(name=module.NAME, description=module.DESCRIPTION, run=module.run)


def aggregate(
    scenario: str, repetitions: Sequence[Sequence[Measurement]], machine: dict[str, Any]
) -> list[Row]:
    """Medians per metric over the repetitions, in the order the first repetition gave them."""
    if not repetitions:
        return []
    first = repetitions[0]
    names = [m.metric for m in first]
    if len(set(names)) != len(names):
        raise BenchError(f"{scenario}: a repetition returned a metric twice: {names}")
    for repetition in repetitions[1:]:
        if sorted(m.metric for m in repetition) != sorted(names):
            raise BenchError(
                f"{scenario}: repetitions returned different metrics: "
                f"{sorted(names)} then {sorted(m.metric for m in repetition)}"
            )
    rows = []
    for template in first:
        series = [_same_metric(scenario, template, rep) for rep in repetitions]
        values = [m.value for m in series]
        anchor_values = [m.anchor_value for m in series if m.anchor_value is not None]
        value = statistics.median(values)
        anchor_value = statistics.median(anchor_values) if template.anchor is not None else None
        rows.append(
            Row(
                scenario=scenario,
                metric=template.metric,
                value=value,
                unit=template.unit,
                anchor=template.anchor,
                anchor_value=anchor_value,
                ratio=ratio(value, anchor_value),
                higher_is_better=template.higher_is_better,
                runs=values,
                anchor_runs=anchor_values if template.anchor is not None else None,
                machine=machine,
            )
        )
    return rows


def _same_metric(
    scenario: str, template: Measurement, repetition: Sequence[Measurement]
) -> Measurement:
    matches = [m for m in repetition if m.metric == template.metric]
    if not matches:
        raise BenchError(f"{scenario}: a repetition lacks the metric {template.metric!r}")
    found = matches[0]
    for attr in ("unit", "higher_is_better", "anchor"):
        if getattr(found, attr) != getattr(template, attr):
            raise BenchError(
                f"{scenario}/{template.metric}: {attr} changed between repetitions "
                f"({getattr(template, attr)!r} then {getattr(found, attr)!r})"
            )
    return found


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of `values` (`fraction` in 0..1, 0.5 = the median)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def ratio(value: float, anchor_value: float | None) -> float | None:
    """value / anchor_value; None without an anchor or when it is zero or not finite."""
    if anchor_value is None or anchor_value == 0:
        return None
    result = value / anchor_value
    return result if math.isfinite(result) else None


def machine_info(postgres_version: str | None, **extra: str) -> dict[str, Any]:
    """The small description of where the numbers were taken, repeated in every row."""
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "postgres": postgres_version,
        **extra,
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


async def run_scenario(
    scenario: Scenario,
    *,
    repeat: int,
    quick: bool,
    database: DatabaseProvider,
    machine: dict[str, Any],
) -> list[Row]:
    """Run `repeat` repetitions of one scenario and aggregate them."""
    repetitions: list[Sequence[Measurement]] = []
    for repetition in range(repeat):
        ctx = Context(scenario.name, repetition, repeat, quick, database)
        measurements = list(await scenario.run(ctx))
        if not measurements:
            raise BenchError(f"{scenario.name}: run() returned no measurements")
        repetitions.append(measurements)
        ctx.log(", ".join(_describe(m) for m in measurements))
    return aggregate(scenario.name, repetitions, machine)


async def run_scenarios(
    scenarios: Sequence[Scenario],
    *,
    repeat: int,
    quick: bool,
    database: DatabaseProvider,
    machine: dict[str, Any],
) -> tuple[list[Row], list[str]]:
    """Run the scenarios one after the other; a failing scenario is reported and skipped."""
    rows: list[Row] = []
    failed: list[str] = []
    for scenario in scenarios:
        print(f"{scenario.name}: {scenario.description}", file=sys.stderr)
        try:
            rows += await run_scenario(
                scenario, repeat=repeat, quick=quick, database=database, machine=machine
            )
        except Exception:
            traceback.print_exc()
            print(f"{scenario.name}: FAILED, no rows", file=sys.stderr)
            failed.append(scenario.name)
    return rows, failed


def _describe(m: Measurement) -> str:
    text = f"{m.metric}={m.value:,.4g} {m.unit}"
    if m.anchor is not None and m.anchor_value is not None:
        text += f" (anchor {m.anchor}={m.anchor_value:,.4g})"
    return text
