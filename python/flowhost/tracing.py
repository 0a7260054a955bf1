"""OpenTelemetry spans of the engine, when `opentelemetry-api` is installed (`flowhost[otel]`);
nothing otherwise (docs/metrics.md#tracing).

Spans: `flowhost.run.start` (starting a run), `flowhost.claim` and `flowhost.complete` (a
batch of claims or results, each one transaction), `flowhost.step` (one step attempt, its
handler included). The step's span context goes to the step as a W3C `traceparent`
(`ctx.traceparent` in both SDKs, `traceparent` in the `execute` params of docs/protocol.md),
so that the step's own spans and outgoing calls join the trace.

Exporting is the application's: configure an SDK tracer provider (e.g. with
`opentelemetry-instrument` or in code); without one, the API's spans are no-ops that cost
a few microseconds.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

try:
    from opentelemetry import propagate, trace
except ImportError:  # pragma: no cover - the otel extra is not installed
    propagate = None  # type: ignore[assignment]
    trace = None  # type: ignore[assignment]

# W3C trace context: version-trace id-parent id-flags, lower-case hex.
TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")

AttributeValue = str | int | float | bool


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, AttributeValue] | None = None) -> Iterator[None]:
    """A span around the block (a child of the current one), when OpenTelemetry is there."""
    if trace is None:
        yield
        return
    tracer = trace.get_tracer("flowhost")
    with tracer.start_as_current_span(name, attributes=dict(attributes or {})):
        yield


def current_traceparent() -> str | None:
    """The current span's context as a W3C `traceparent`, None without a recording one."""
    if propagate is None:
        return None
    carrier: dict[str, Any] = {}
    propagate.inject(carrier)
    value = carrier.get("traceparent")
    return value if isinstance(value, str) and TRACEPARENT.match(value) else None
