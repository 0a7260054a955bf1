"""The dashboard's pure parts: the session cookie, the step graph's layout, the runs-over-time
chart, the forms generated from JSON Schemas and the timeline's summaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flowhost.api.session import (
    LIFETIME,
    may_change,
    new_session,
    same_origin,
    session_cookie,
    session_is_valid,
)
from flowhost.engine.definitions import AwaitDefinition
from flowhost.store.events import Event
from flowhost.ui import charts, graph, timeline
from flowhost.ui.auth import safe_next
from flowhost.ui.schema_form import form_fields
from tests.support.flows import flow_of, make

TOKEN = b"a-token-of-sixteen-or-more"


def test_a_session_is_valid_for_its_token_until_it_expires() -> None:
    value = new_session(TOKEN.decode(), now=1000).encode()
    assert session_is_valid(TOKEN, value, now=1000 + LIFETIME - 1)
    assert not session_is_valid(TOKEN, value, now=1000 + LIFETIME)
    assert not session_is_valid(b"another-token-entirely", value, now=1000)
    version, expires, signature = value.split(b".")
    # Moving the expiry breaks the signature; junk is refused without an error.
    assert not session_is_valid(TOKEN, b".".join([version, b"99999999999", signature]), now=0)
    for junk in (b"", b"v1", b"v1.x.y", b"v2." + expires + b"." + signature, b"\xff.1.2"):
        assert not session_is_valid(TOKEN, junk, now=0)


def test_the_session_cookie_is_read_among_others() -> None:
    headers = [(b"cookie", b'a=1; flowhost_session="v1.2.ab"; b=2')]
    assert session_cookie(headers) == b"v1.2.ab"
    assert session_cookie([(b"cookie", b"flowhost_session_other=1")]) is None
    assert session_cookie([]) is None


def test_only_same_origin_requests_may_change_something_with_the_cookie() -> None:
    host = (b"host", b"127.0.0.1:8600")
    assert may_change("GET", [host])
    assert not may_change("POST", [host])  # no Origin
    assert may_change("POST", [host, (b"origin", b"http://127.0.0.1:8600")])
    assert not same_origin([host, (b"origin", b"http://127.0.0.1:8601")])
    assert not same_origin([host, (b"origin", b"null")])
    assert not same_origin(
        [host, (b"origin", b"http://127.0.0.1:8600"), (b"sec-fetch-site", b"same-site")]
    )


def test_after_logging_in_a_browser_goes_to_a_path_of_this_site_only() -> None:
    assert safe_next("/runs?status=failed") == "/runs?status=failed"
    for away in (None, "", "https://evil.example", "//evil.example", "/\\evil.example"):
        assert safe_next(away) == "/"


def test_the_graph_puts_each_step_after_the_steps_it_follows() -> None:
    flow = flow_of(
        make("a", entry=True, emits=("a.done",)),
        make("b", subscribes=("a.done",), emits=("b.done",)),
        make(
            "c",
            subscribes=("a.done",),
            emits=("c.done",),
            await_before=AwaitDefinition(type="webhook"),
        ),
        make("d", subscribes=("b.done", "c.done")),
    )
    laid = graph.layout(flow)
    nodes = {n.name: n for n in laid.nodes}
    assert nodes["a"].x < nodes["b"].x == nodes["c"].x < nodes["d"].x
    assert nodes["b"].y != nodes["c"].y
    assert nodes["c"].awaits == ("waits before: webhook POST",)
    assert nodes["c"].height > nodes["b"].height  # room for the await's line
    edges = {(e.source, e.target): e.events for e in laid.edges}
    assert edges == {
        ("a", "b"): ("a.done",),
        ("a", "c"): ("a.done",),
        ("b", "d"): ("b.done",),
        ("c", "d"): ("c.done",),
    }
    assert all(n.x + n.width <= laid.width and n.y + n.height <= laid.height for n in laid.nodes)


def test_the_chart_stacks_ended_runs_per_bucket_and_fills_empty_buckets() -> None:
    window = charts.WINDOWS["1h"]
    now = datetime(2026, 1, 1, 12, 30, 20, tzinfo=UTC)
    start = charts.window_start(window, now)
    assert start == datetime(2026, 1, 1, 11, 31, tzinfo=UTC)
    rows = [
        {"at": start, "started": 4, "completed": 3, "failed": 1, "canceled": 0, "stalled": 0},
        {
            "at": start + timedelta(minutes=59),
            "started": 2,
            "completed": 0,
            "failed": 0,
            "canceled": 0,
            "stalled": 0,
        },
    ]
    chart = charts.activity_chart(window, start, rows)
    assert chart.totals == {"started": 6, "completed": 3, "failed": 1, "canceled": 0, "stalled": 0}
    assert [b.status for b in chart.bars] == ["completed", "failed"]
    assert len(chart.started.split()) == 60  # a point per minute, empty ones at 0
    tallest = max(b.y + b.height for b in chart.bars) - min(b.y for b in chart.bars)
    assert abs(tallest - (charts.HEIGHT - charts.TOP - charts.BOTTOM)) < 0.01  # 4 is the peak
    assert charts.activity_chart(window, start, []).empty


def test_a_schema_becomes_fields_addressed_by_json_pointers() -> None:
    fields = form_fields(
        {
            "type": "object",
            "required": ["name", "age"],
            "properties": {
                "note": {"type": "string", "format": "email"},
                "age": {"type": "integer", "minimum": 0, "default": 3},
                "name": {"type": "string", "title": "Full name"},
                "kind": {"enum": ["a", 1]},
                "a/b": {
                    "type": "object",
                    "properties": {"on": {"type": "boolean", "default": True}},
                },
                "tags": {"type": "array"},
            },
        }
    )
    assert fields is not None
    by_pointer = {f.pointer: f for f in fields}
    assert [f.pointer for f in fields][:2] == ["/name", "/age"]  # required first, in order
    assert by_pointer["/name"].label == "Full name" and by_pointer["/name"].required
    assert by_pointer["/age"].kind == "integer" and by_pointer["/age"].initial == "3"
    assert by_pointer["/note"].input_type == "email"
    assert by_pointer["/kind"].options == (('"a"', "a"), ("1", "1"))
    group = by_pointer["/a~1b"]
    assert group.kind == "group" and group.children[0].pointer == "/a~1b/on"
    assert group.children[0].checked
    assert by_pointer["/tags"].kind == "json"
    assert form_fields({"type": "array"}) is None
    assert form_fields(None) is None


def test_timeline_rows_say_what_happened() -> None:
    def event(kind: str, data: dict[str, object], step_name: str | None = "s") -> timeline.Row:
        return timeline.row(Event(1, kind, step_name, 1, datetime.now(UTC), data))

    assert event("log", {"level": "info", "message": "hi", "fields": {"n": 1}}).summary == "hi n=1"
    assert event("log", {"level": "warning", "message": "x"}).level == "warning"
    failed = event("step.failed", {"error": {"type": "ValueError", "message": "bad"}})
    assert failed.summary == "failed: ValueError: bad" and failed.category == "step"
    assert event("state.set", {"key": "k", "value": [1]}).summary == "state k = [1]"
    assert event("flow.completed", {}, None).category == "run"
    assert event("something.new", {"a": 1}).summary == '{"a": 1}'
    assert "await.resolved" in timeline.RUN_EVENT_TYPES and "log" in timeline.RUN_EVENT_TYPES
