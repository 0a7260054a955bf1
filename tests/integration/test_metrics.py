"""`/metrics` after real runs: every family, with values that match what happened."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flowhost import metrics
from tests.support.api import TOKEN, api_client, assert_problem, serving_api
from tests.support.engine import running_host, start, wait_for_run, write_functions

FLOWS = """
from flowhost_worker import step

@step(flow="metered", name="first", entry=True, emits=["then"], isolation="inprocess")
async def first(data, ctx):
    await ctx.emit("then", {})
    return 1

@step(flow="metered", name="second", subscribes=["then"])
async def second(events, ctx):
    await ctx.state.set("seen", True)
    return 2

@step(flow="flaky", name="only", entry=True, attempts=2, isolation="inprocess")
async def only(data, ctx):
    raise ValueError("always")
"""
METRICS_TOKEN = "metrics-token-0123456789"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> tuple[Samples, set[str]]:
    samples: Samples = {}
    families = set()
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, families


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(client: httpx.AsyncClient) -> tuple[Samples, set[str]]:
    answer = await client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return parse(answer.text)


@pytest.fixture(autouse=True)
def fresh_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every scrape reads the database figures (not the last ones of up to 5 s ago).
    monkeypatch.setattr(metrics, "DATABASE_FIGURES_TTL", 0.0)


async def test_metrics_after_runs(tmp_path: Path, database_url: str) -> None:
    project_dir = write_functions(tmp_path, {"flows.py": FLOWS})
    # Before any host: started runs wait in the queue.
    async with serving_api(project_dir, database_url) as (project, client):
        before, _ = await scrape(client)
        queued = [await start(project, "metered", {}) for _ in range(3)]
        waiting, _ = await scrape(client)
    async with (
        running_host(project_dir, database_url, api_token=TOKEN) as project,
        api_client(project) as client,
    ):
        for run_id in queued:
            await wait_for_run(project, run_id)
        flaky = await start(project, "flaky", {})
        await wait_for_run(project, flaky)
        hook = await client.post("/hooks/await/" + "x" * 20, json={})
        async with project.database.connection() as conn:
            await conn.execute(
                "UPDATE flowhost.runs SET status = 'awaiting' WHERE id = %s", [queued[0]]
            )
        after, families = await scrape(client)
        text = (await client.get("/metrics")).text
    assert hook.status_code == 404
    entry = "flow:metered"

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert value(waiting, "flowhost_queue_jobs", entrypoint=entry, status="queued") == 3
    assert value(after, "flowhost_queue_jobs", entrypoint=entry, status="queued") == 0
    assert value(after, "flowhost_runs_awaiting") == 1
    for table in ("runs", "steps", "events", "pgqueuer"):
        assert ("flowhost_table_dead_tuples", (("table", table),)) in after
    # Each step of each run was picked up once (the second step after the first's emit).
    assert delta("flowhost_step_enqueue_to_start_seconds_count", flow="metered") == 6
    assert delta("flowhost_step_enqueue_to_start_seconds_sum", flow="metered") >= 0
    for step in ("first", "second"):
        assert delta("flowhost_steps_total", flow="metered", step=step, status="completed") == 3
        assert delta("flowhost_step_duration_seconds_count", flow="metered", step=step) == 3
    assert delta("flowhost_steps_total", flow="flaky", step="only", status="retried") == 1
    assert delta("flowhost_steps_total", flow="flaky", step="only", status="failed") == 1
    # The second step runs in a Python child: its execute calls and its state.set call.
    assert delta("flowhost_worker_rpc_seconds_count", runtime="python", method="execute") == 3
    assert delta("flowhost_worker_rpc_seconds_count", runtime="python", method="state.set") == 3
    assert value(after, "flowhost_worker_children", runtime="python") >= 1
    assert delta("flowhost_webhook_ack_seconds_count", route="await", status="404") == 1
    assert value(after, "flowhost_stream_subscribers") == 0
    # Defined for the schedules, which record it per fire.
    assert "# TYPE flowhost_schedule_tick_lag_seconds histogram" in text
    expected = {
        "flowhost_step_enqueue_to_start_seconds",
        "flowhost_step_duration_seconds",
        "flowhost_steps",
        "flowhost_worker_rpc_seconds",
        "flowhost_webhook_ack_seconds",
        "flowhost_queue_jobs",
        "flowhost_runs_awaiting",
        "flowhost_table_dead_tuples",
        "flowhost_worker_children",
        "flowhost_stream_subscribers",
        "flowhost_stream_reads",
        "flowhost_stream_lags",
        "process_cpu_seconds",
    }
    assert expected <= families, expected - families


async def test_metrics_need_the_metrics_token_when_one_is_set(
    tmp_path: Path, database_url: str
) -> None:
    project_dir = write_functions(tmp_path, {"flows.py": FLOWS})
    async with serving_api(project_dir, database_url, token=None, metrics_token=METRICS_TOKEN) as (
        _project,
        client,
    ):
        anonymous = await client.get("/metrics")
        admin = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        scraper = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    async with serving_api(project_dir, database_url, token=None) as (_project, client):
        open_ = await client.get("/metrics")
    assert_problem(anonymous, 401)
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    # The admin token is not the metrics token: a scraper never needs admin rights.
    assert_problem(admin, 401)
    assert scraper.status_code == 200 and "flowhost_steps" in scraper.text
    assert open_.status_code == 200


def test_observing_an_attempt_costs_microseconds() -> None:
    """What the hot path pays per step attempt: a counter and a histogram, no I/O."""
    began = time.perf_counter()
    for _ in range(10_000):
        metrics.observe_attempt("bench", "step", "completed", 0.001)
    per_call = (time.perf_counter() - began) / 10_000
    assert per_call < 50e-6, per_call
