"""OpenTelemetry (the `otel` extra): the engine's spans around starting a run, claims, steps and
completions, and the step span's traceparent handed to the step in every runtime."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import flowhost_worker

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flowhost.engine.starting import start_run
from flowhost.tracing import current_traceparent, span
from tests.support.engine import running_host, wait_for_run, write_functions

TRACED = """
from flowhost_worker import step

@step(flow="traced", name="here", entry=True, emits=["there"], isolation="inprocess")
async def here(data, ctx):
    await ctx.emit("there", {"here": ctx.traceparent})
    return ctx.traceparent

@step(flow="traced", name="child", subscribes=["there"])
async def child(events, ctx):
    return {"here": events["there"]["here"], "child": ctx.traceparent}
"""
EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def tracer_provider() -> Iterator[None]:
    # The global provider can be set once per process: this module's, for all its tests.
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)
    yield


def same_sdk_python(folder: Path) -> Path:
    """An interpreter for the children that imports the SDK this test imports (children get a
    clean environment, and would otherwise import whichever flowhost_worker is installed)."""
    sdk = Path(flowhost_worker.__file__).resolve().parent.parent
    script = folder / "python-with-sdk"
    script.write_text(f'#!/bin/sh\nPYTHONPATH={sdk} exec {sys.executable} "$@"\n')
    script.chmod(0o755)
    return script


def traceparent_of(finished: ReadableSpan) -> str:
    context = finished.get_span_context()
    assert context is not None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def test_without_a_recording_span_there_is_no_traceparent() -> None:
    assert current_traceparent() is None
    with span("flowhost.test"):
        assert current_traceparent() is not None


async def test_steps_get_their_span_as_traceparent_in_every_runtime(
    tmp_path: Path, database_url: str
) -> None:
    EXPORTER.clear()
    project_dir = write_functions(tmp_path, {"traced.py": TRACED})
    python = same_sdk_python(tmp_path)
    async with running_host(project_dir, database_url, python=str(python)) as project:
        async with project.database.transaction() as conn:
            started = await start_run(conn, project.catalog.flows["traced"], {})
        run = await wait_for_run(project, started.run_id)
    assert run["status"] == "completed", run["error"]
    spans = EXPORTER.get_finished_spans()
    names = {s.name for s in spans}
    assert {"flowhost.run.start", "flowhost.claim", "flowhost.step", "flowhost.complete"} <= names
    steps = {
        str((s.attributes or {})["flowhost.step"]): s
        for s in spans
        if s.name == "flowhost.step"
        and (s.attributes or {}).get("flowhost.run_id") == str(started.run_id)
    }
    assert set(steps) == {"here", "child"}
    assert steps["here"].attributes is not None
    assert steps["here"].attributes["flowhost.flow"] == "traced"
    assert steps["here"].attributes["flowhost.attempt"] == 1
    # In-process and in a Python child: the step's ctx.traceparent is its own span's context.
    assert run["result"] == {
        "here": traceparent_of(steps["here"]),
        "child": traceparent_of(steps["child"]),
    }
