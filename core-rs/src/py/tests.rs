//! The bindings seen from Python: `cargo test --features python` (links libpython).

use std::ffi::CStr;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::errors::InvalidArgumentError;
use crate::CoreError;

/// Runs `script` with `core` bound to a fresh `flowhost._core` module (also importable under that
/// name, for pickle); fails the test with the Python traceback if the code raises. The stand-in
/// `flowhost` package finds its other modules (`flowhost.errors`) in the source tree, always:
/// the tests share one interpreter and run in parallel, so a package that only sometimes had
/// `errors` would make the error tests depend on their order.
fn run_python(script: &CStr) {
    Python::initialize();
    Python::attach(|py| {
        let run = || -> PyResult<()> {
            let core = pyo3::wrap_pymodule!(super::_core)(py);
            let package = PyModule::new(py, "flowhost")?;
            package.add("_core", &core)?;
            let sources = concat!(env!("CARGO_MANIFEST_DIR"), "/../python/flowhost");
            package.add("__path__", vec![sources])?;
            let modules = py.import("sys")?.getattr("modules")?;
            modules.set_item("flowhost", package)?;
            modules.set_item("flowhost._core", &core)?;
            let globals = PyDict::new(py);
            globals.set_item("core", core)?;
            py.run(script, Some(&globals), None)
        };
        if let Err(error) = run() {
            let traceback = error
                .traceback(py)
                .and_then(|traceback| traceback.format().ok())
                .unwrap_or_default();
            panic!("{traceback}{error}");
        }
    });
}

#[test]
fn core_error_maps_to_its_exception() {
    Python::initialize();
    Python::attach(|py| {
        let error = PyErr::from(CoreError::InvalidArgument("bad name".to_owned()));
        assert!(error.is_instance_of::<InvalidArgumentError>(py));
        assert!(error.is_instance_of::<pyo3::exceptions::PyValueError>(py));
        assert_eq!(error.value(py).to_string(), "bad name");
    });
}

#[test]
fn module_reports_its_version_and_build() {
    run_python(
        cr#"
info = core.build_info()
assert list(info) == ["version", "rustc", "target", "profile"], info
assert all(isinstance(value, str) and value for value in info.values()), info
assert info["version"] == core.__version__
assert info["rustc"].startswith("rustc "), info
assert info["profile"] in ("debug", "release"), info
assert core.build_info() is not info
"#,
    );
}

#[test]
fn ready_steps_is_the_and_join() {
    run_python(
        cr#"
flow = {"start": [], "left": ["started"], "right": ["started"], "join": ["left.done", "right.done"]}
assert core.ready_steps(flow, set(), set()) == []
assert core.ready_steps(flow, {"started"}, {"start"}) == ["left", "right"]
assert core.ready_steps(flow, {"started", "left.done"}, {"start", "left", "right"}) == []
assert core.ready_steps(flow, {"started", "left.done", "right.done"}, {"start", "left", "right"}) == ["join"]
assert core.ready_steps({}, {"started"}, set()) == []
assert core.ready_steps({"twice": ["a", "a"]}, {"a"}, set()) == ["twice"]
assert core.ready_steps(subscriptions=flow, emitted=["started"], scheduled=()) == ["left", "right"]
"#,
    );
}

#[test]
fn ready_steps_accepts_any_mapping_and_collections() {
    run_python(
        cr#"
import collections.abc, enum, types

class Event(enum.StrEnum):
    DONE = "done"

class Flow(collections.abc.Mapping):
    def __getitem__(self, step): return ("done",)
    def __iter__(self): return iter(["b", "a"])
    def __len__(self): return 2

expected = ["a", "b"]
assert core.ready_steps(Flow(), frozenset([Event.DONE]), []) == expected
assert core.ready_steps(types.MappingProxyType({"b": {"done"}, "a": ("done",)}), {"done": 1}, ()) == expected
assert core.ready_steps({"b": iter(["done"]), "a": ["done"]}, (e for e in ["done"]), set()) == expected

step = "".join(["st", "ep"])
[ready] = core.ready_steps({step: ["done"]}, {"done"}, set())
assert ready is step, "returns the caller's own str objects"
"#,
    );
}

#[test]
fn ready_steps_rejects_wrong_types_with_type_errors() {
    run_python(
        cr#"
def message(*args):
    try:
        core.ready_steps(*args)
    except TypeError as error:
        return str(error)
    raise AssertionError(f"no TypeError for {args!r}")

assert message([("a", ["x"])], set(), set()) == "subscriptions must be a mapping of step names to event names, not list"
assert message({1: ["x"]}, set(), set()) == "keys of subscriptions must be str, not int"
assert message({"a": "x"}, set(), set()) == "subscriptions['a'] must be a collection of str such as a list or set, not str"
assert message({"a": b"x"}, set(), set()) == "subscriptions['a'] must be a collection of str such as a list or set, not bytes"
assert message({"a": None}, set(), set()) == "subscriptions['a'] must be a collection of str such as a list or set, not NoneType"
assert message({"a": [1]}, set(), set()) == "items of subscriptions['a'] must be str, not int"
assert message({"a": ["x"]}, "x", set()) == "emitted must be a collection of str such as a list or set, not str"
assert message({"a": ["x"]}, {"x"}, {None}) == "items of scheduled must be str, not NoneType"

class Broken:
    def __iter__(self):
        raise RuntimeError("broken __iter__")
try:
    core.ready_steps({"a": ["x"]}, Broken(), set())
except RuntimeError as error:
    assert str(error) == "broken __iter__", error
else:
    raise AssertionError("the error of __iter__ was swallowed")
"#,
    );
}

#[test]
fn ready_steps_rejects_names_without_utf8_form() {
    run_python(
        cr#"
import pickle

for args in [({"\ud800": ["x"]}, set(), set()), ({"a": ["x"]}, {"\udc80"}, set())]:
    try:
        core.ready_steps(*args)
    except core.InvalidArgumentError as error:
        assert isinstance(error, ValueError)
        assert "lone surrogate" in str(error), error
        assert isinstance(error.__cause__, UnicodeEncodeError), error.__cause__
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is core.InvalidArgumentError and copy.args == error.args
    else:
        raise AssertionError(f"no InvalidArgumentError for {args!r}")
"#,
    );
}

#[test]
fn ready_steps_survives_a_mapping_changed_while_it_is_read() {
    run_python(
        cr#"
flow = {"a": None, "b": ["x"]}
def events():
    flow["c"] = ["x"]
    yield "x"
flow["a"] = events()
assert core.ready_steps(flow, {"x"}, set()) == ["a", "b"]
"#,
    );
}

#[test]
fn cron_schedule_answers_and_maps_errors_to_flowhost_errors() {
    // `flowhost.errors` is importable here (see `run_python`), so a syntax error is
    // flowhost.errors.CronSyntaxError, a ValueError; pytest covers its fields.
    run_python(
        cr#"
import datetime
schedule = core.CronSchedule("*/15 * * * *", "Europe/Berlin")
start = datetime.datetime(2024, 5, 1, 10, 0, tzinfo=datetime.timezone.utc)
fires = schedule.next_after(start, 2)
assert [fire.minute for fire in fires] == [15, 30], fires
assert str(fires[0].tzinfo) == "Europe/Berlin"
import flowhost.errors
try:
    core.CronSchedule("0 0 30 2 *")
except flowhost.errors.CronSyntaxError as error:
    assert isinstance(error, ValueError)
    assert "day-of-month" in str(error), error
else:
    raise AssertionError("no error")
"#,
    );
}

#[test]
fn step_progress_skips_a_branch_not_taken_while_another_runs() {
    run_python(
        cr#"
subscriptions = {"decide": [], "left": ["go.left"], "right": ["go.right"], "report": ["left.done"]}
emits = {"decide": ["go.left", "go.right"], "left": ("left.done",)}
assert core.step_progress(subscriptions, emits, {"go.left"}, {"decide": "completed"}) == (["left"], ["right"], False)
assert core.step_progress(subscriptions, emits, set(), {"decide": "running"}) == ([], [], False)
assert core.step_progress(subscriptions, emits, set(), {"decide": "failed"}) == ([], ["left", "report", "right"], True)
assert core.step_progress(subscriptions, {}, {"go.left"}, {"decide": "completed"}) == (["left"], ["report", "right"], False)
assert core.step_progress({}, {}, [], {}) == ([], [], True)
step = "".join(["le", "ft"])
([ready], _, _) = core.step_progress({step: ["x"]}, {}, {"x"}, {})
assert ready is step, "returns the caller's own str objects"
"#,
    );
}

#[test]
fn rate_limiter_decides_and_refuses_bad_arguments() {
    run_python(
        cr#"
limiter = core.RateLimiter("gcra", 1, 1.0, burst=4)
first = limiter.hit("k", 1, 100.0)
assert first and first.limit == 5 and first.remaining == 4, first
assert first.retry_after == -1.0 and first.reset_after == 1.0, first
assert limiter.hit("k", 6, 100.0).retry_after == float("inf")
assert limiter.test("k", 4, 100.0) and not limiter.test("k", 5, 100.0)
assert limiter.hit_many(["k", "j"], [4, 1], now=100.0) == [True, True]
assert len(limiter) == 2
for arguments, error in [((1,), TypeError), (("k", -1), ValueError), (("k", 1, float("nan")), ValueError)]:
    try:
        limiter.hit(*arguments)
    except error:
        pass
    else:
        raise AssertionError(arguments)
try:
    core.RateLimiter("leaky", 1, 1.0)
except core.InvalidArgumentError as error:
    assert '"sliding_window_counter"' in str(error), error
else:
    raise AssertionError("unknown strategy accepted")
"#,
    );
}

#[test]
fn step_progress_rejects_bad_statuses_and_types() {
    run_python(
        cr#"
def error(*args):
    try:
        core.step_progress(*args)
    except (TypeError, ValueError) as error:
        return type(error).__name__, str(error)
    raise AssertionError(f"no error for {args!r}")

flow = {"a": ["x"]}
assert error(flow, {}, set(), {"a": "done"}) == ("InvalidArgumentError", "statuses['a'] must be one of 'queued', 'running', 'awaiting', 'completed', 'failed', 'skipped', not 'done'")
assert error(flow, {}, set(), {"a": 1}) == ("TypeError", "statuses['a'] must be str, not int")
assert error(flow, {}, set(), [("a", "queued")]) == ("TypeError", "statuses must be a mapping of step names to statuses, not list")
assert error(flow, {"a": "x"}, set(), {}) == ("TypeError", "emits['a'] must be a collection of str such as a list or set, not str")
assert error(flow, None, set(), {}) == ("TypeError", "emits must be a mapping of step names to event names, not NoneType")
assert error(flow, {1: []}, set(), {}) == ("TypeError", "keys of emits must be str, not int")
"#,
    );
}

#[test]
fn trigger_index_matches_event_and_mqtt_patterns() {
    run_python(
        cr##"
index = core.TriggerIndex()
assert index.syntax == "event" and len(index) == 0
index.add("order.*", "audit")
index.add("order.paid", "ship")
index.add("#", "log")
index.add("order.paid", "ship")
assert len(index) == 3
assert index.match("order.paid") == ["audit", "ship", "log"]
assert index.match("invoice.sent") == ["log"]
assert index.patterns() == ["#", "order.*", "order.paid"]
assert index.registrations() == [("order.*", "audit"), ("order.paid", "ship"), ("#", "log")]
assert index.remove("order.paid", "ship") is True
assert index.remove("order.paid", "ship") is False
assert index.remove("order.paid", "never added") is False
assert index.match("order.paid") == ["audit", "log"]

mqtt = core.TriggerIndex(syntax="mqtt")
key = ("a", 1)
mqtt.add("sport/#", key)
mqtt.add("+/tennis", key)
mqtt.add("#", 1.0)
mqtt.add("$SYS/#", 1)
assert mqtt.match("sport") == [key, 1.0]
assert mqtt.match("sport/tennis") == [key, 1.0]
assert mqtt.match("sport/tennis")[0] is key
assert mqtt.match("$SYS/load") == [1.0], "1 and 1.0 are one value, kept as first added"
assert repr(mqtt) == 'TriggerIndex(syntax="mqtt") with 4 registrations', repr(mqtt)
"##,
    );
}

#[test]
fn trigger_index_raises_flowhost_errors_for_bad_input() {
    run_python(
        cr##"
import pickle
import flowhost.errors as errors

index = core.TriggerIndex()
for pattern in ["", "a..b", "a*", "a.#b"]:
    try:
        index.add(pattern, "x")
    except errors.PatternError as error:
        assert isinstance(error, ValueError) and isinstance(error, errors.FlowhostError)
        assert error.details["pattern"] == pattern and error.details["problem"], error.details
        assert repr(pattern)[1:-1] in str(error), str(error)
        copy = pickle.loads(pickle.dumps(error))
        assert copy.details == error.details and str(copy) == str(error)
    else:
        raise AssertionError(f"no PatternError for {pattern!r}")
assert len(index) == 0
for name in ["", "a.*", "#", "a..b"]:
    try:
        index.match(name)
    except errors.EventNameError as error:
        assert isinstance(error, ValueError) and error.details["name"] == name
    else:
        raise AssertionError(f"no EventNameError for {name!r}")
try:
    core.TriggerIndex(syntax="amqp")
except core.InvalidArgumentError as error:
    assert "'event' or 'mqtt'" in str(error)
else:
    raise AssertionError("no error for syntax='amqp'")
try:
    index.add("a", [])
except TypeError:
    pass
else:
    raise AssertionError("a list is not hashable")
assert len(index) == 0 and index.match("a") == []
for bad in [None, 1, b"a"]:
    try:
        index.match(bad)
    except TypeError:
        pass
    else:
        raise AssertionError(f"no TypeError for {bad!r}")
"##,
    );
}

#[test]
fn trigger_index_survives_values_that_misbehave() {
    run_python(
        cr#"
import gc, weakref

index = core.TriggerIndex()

class Reentrant:
    def __hash__(self):
        return 1
    def __eq__(self, other):
        index.match("a")
        return False

index.add("a", Reentrant())
try:
    index.add("a", Reentrant())
except RuntimeError:
    pass
assert len(index) >= 1

class Node:
    pass

node = Node()
cyclic = core.TriggerIndex()
node.index = cyclic
cyclic.add("a", node)
watch = weakref.ref(node)
del node, cyclic
gc.collect()
assert watch() is None, "the GC breaks a cycle through the index"
"#,
    );
}
