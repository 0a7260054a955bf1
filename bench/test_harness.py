"""The harness without a database: medians and ratios, JSON rows, table, charts, CLI parsing."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.cli import parse_args
from bench.database import MAX_IDENTIFIER, database_name, database_url
from bench.harness import (
    BenchError,
    Context,
    Measurement,
    Scenario,
    aggregate,
    load_scenarios,
    machine_info,
    percentile,
    ratio,
    run_scenario,
)
from bench.report import draw_charts, format_table, write_json

MACHINE = {"cpu_count": 2, "postgres": "18.6"}
ROW_KEYS = {
    "scenario", "metric", "value", "unit", "anchor", "anchor_value", "ratio",
    "higher_is_better", "runs", "anchor_runs", "machine",
}  # fmt: skip


def anchored(value: float, anchor_value: float) -> list[Measurement]:
    return [
        Measurement(
            "jobs_per_s", value, "jobs/s", anchor="pgqueuer_drain", anchor_value=anchor_value
        ),
        Measurement("p50_ms", value / 1000, "ms", higher_is_better=False),
    ]


def test_medians_and_ratio_of_the_medians() -> None:
    reps = [anchored(100, 200), anchored(300, 100), anchored(200, 400)]
    throughput, latency = aggregate("engine_noop", reps, MACHINE)
    assert throughput.value == 200
    assert throughput.anchor_value == 200
    assert throughput.ratio == 1.0
    assert throughput.runs == [100, 300, 200]
    assert throughput.anchor_runs == [200, 100, 400]
    assert latency.anchor is None and latency.anchor_value is None and latency.ratio is None
    assert latency.anchor_runs is None
    assert latency.higher_is_better is False


def test_even_repetitions_take_the_mean_of_the_middle_pair() -> None:
    (row, _) = aggregate("s", [anchored(1, 10), anchored(3, 30)], MACHINE)
    assert (row.value, row.anchor_value, row.ratio) == (2, 20, 0.1)


def test_ratio_without_a_usable_anchor() -> None:
    assert ratio(5, None) is None
    assert ratio(5, 0) is None
    assert ratio(5, 2) == 2.5


def test_inconsistent_repetitions_are_rejected() -> None:
    with pytest.raises(BenchError, match="different metrics"):
        aggregate("s", [anchored(1, 1), anchored(1, 1)[:1]], MACHINE)
    changed = [Measurement("jobs_per_s", 1, "ops/s", anchor="pgqueuer_drain", anchor_value=1)]
    with pytest.raises(BenchError, match="unit changed"):
        aggregate("s", [anchored(1, 1)[:1], changed], MACHINE)
    twice = [Measurement("m", 1, "s"), Measurement("m", 2, "s")]
    with pytest.raises(BenchError, match="twice"):
        aggregate("s", [twice], MACHINE)


def test_a_measurement_needs_a_finite_value_and_a_named_anchor() -> None:
    with pytest.raises(BenchError, match="finite"):
        Measurement("m", float("nan"), "s")
    with pytest.raises(BenchError, match="both"):
        Measurement("m", 1, "s", anchor_value=2)


def test_json_rows_follow_the_contract(tmp_path: Path) -> None:
    rows = aggregate("engine_noop", [anchored(100, 200), anchored(300, 100)], MACHINE)
    path = tmp_path / "results" / "latest.json"
    write_json(rows, path)
    loaded = json.loads(path.read_text())
    assert isinstance(loaded, list) and len(loaded) == 2
    assert all(set(row) == ROW_KEYS for row in loaded)
    assert loaded[0]["ratio"] == loaded[0]["value"] / loaded[0]["anchor_value"]
    assert loaded[1]["anchor"] is None and loaded[1]["ratio"] is None
    assert loaded[0]["machine"] == MACHINE
    assert not list(path.parent.glob("*.tmp"))


def test_table_has_a_line_per_row() -> None:
    rows = aggregate("engine_noop", [anchored(12_345, 6_000)], MACHINE)
    lines = format_table(rows).splitlines()
    assert lines[0].split()[:3] == ["scenario", "metric", "value"]
    assert len(lines) == 2 + len(rows)
    assert "12,345" in lines[2] and "2.06x" in lines[2] and "pgqueuer_drain" in lines[2]
    assert "(lower=better)" in lines[3]


def test_a_chart_per_scenario(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    rows = aggregate("a", [anchored(1, 2)], MACHINE) + aggregate("b", [anchored(3, 4)], MACHINE)
    charts = draw_charts(rows, tmp_path)
    assert [chart.name for chart in charts] == ["a.png", "b.png"]
    assert all(chart.read_bytes().startswith(b"\x89PNG") for chart in charts)


def test_machine_info_names_the_machine() -> None:
    info = machine_info("18.6", event_loop="uvloop")
    assert {"cpu_count", "cpu_model", "kernel", "python", "postgres"} <= set(info)
    assert info["postgres"] == "18.6" and info["event_loop"] == "uvloop"


def test_database_names_are_valid_identifiers() -> None:
    name = database_name("Engine-NoOp/" + "x" * 100, 4242, "deadbeef")
    assert name.startswith("bench_4242_engine_noop_x")
    assert name.endswith("_deadbeef") and len(name) <= MAX_IDENTIFIER
    assert database_name("", 1, "ab") == "bench_1_ab"


def test_database_url_swaps_only_the_database() -> None:
    url = "postgresql://postgres:@/flowhost_bench?host=/work/bench/.flowhost/pg"
    assert (
        database_url(url, "bench_1_x")
        == "postgresql://postgres:@/bench_1_x?host=/work/bench/.flowhost/pg"
    )
    assert database_url("postgresql://u:p@db:5433/app", "b") == "postgresql://u:p@db:5433/b"
    assert "dbname=b" in database_url("host=/tmp dbname=app", "b")


def test_the_pgqueuer_drain_scenario_is_registered() -> None:
    registry = load_scenarios()
    assert "pgqueuer_drain" in registry
    assert registry["pgqueuer_drain"].description


def test_the_engine_scenarios_of_issue_6_are_registered() -> None:
    registry = load_scenarios()
    assert {"emit_latency", "awaiting_load"} <= set(registry)


def test_the_webhook_verify_scenario_is_registered() -> None:
    assert "webhook_verify" in load_scenarios()


def test_the_schedule_lag_scenario_of_issue_7_is_registered() -> None:
    assert "schedule_lag" in load_scenarios()


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 100 .. 1, unsorted on purpose
    assert percentile(values, 0.5) == 51.0  # rank round(0.5 * 99) = 50 of 1..100
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([3.0], 0.99) == 3.0


def test_cli_rejects_unknown_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["nope"], ["pgqueuer_drain"])
    assert "known: pgqueuer_drain" in capsys.readouterr().err
    args = parse_args(["pgqueuer_drain", "--repeat", "5", "--quick"], ["pgqueuer_drain"])
    assert (args.scenarios, args.repeat, args.quick) == (["pgqueuer_drain"], 5, True)


class FakeDatabase:
    """Hands out names instead of databases; records the order of use."""

    def __init__(self) -> None:
        self.used: list[str] = []

    @contextlib.asynccontextmanager
    async def fresh_database(self, label: str) -> AsyncIterator[str]:
        self.used.append(label)
        yield f"postgresql:///{label}"


async def _side_by_side(ctx: Context) -> list[Measurement]:
    async with ctx.fresh_database("system") as url:
        value = float(len(url) + ctx.repetition)
    async with ctx.fresh_database("anchor"):
        anchor_value = 10.0
    return [Measurement("x", value, "u", anchor="a", anchor_value=anchor_value)]


async def test_repetitions_interleave_system_and_anchor() -> None:
    database = FakeDatabase()
    scenario = Scenario("demo", "a demo", _side_by_side)
    (row,) = await run_scenario(scenario, repeat=3, quick=True, database=database, machine=MACHINE)
    assert database.used == ["demo_system", "demo_anchor"] * 3
    assert row.runs == [25.0, 26.0, 27.0] and row.value == 26.0 and row.ratio == 2.6
