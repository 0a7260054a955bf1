//! The bindings seen from Python: `cargo test --features python` (links libpython).

use std::ffi::CStr;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::errors::InvalidArgumentError;
use crate::CoreError;

/// Runs `script` with `core` bound to a fresh `flowhost._core` module (also importable under that
/// name, for pickle); fails the test with the Python traceback if the code raises.
fn run_python(script: &CStr) {
    Python::initialize();
    Python::attach(|py| {
        let run = || -> PyResult<()> {
            let core = pyo3::wrap_pymodule!(super::_core)(py);
            let package = PyModule::new(py, "flowhost")?;
            package.add("_core", &core)?;
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
fn cron_schedule_answers_and_maps_errors_without_the_python_package() {
    // Here `flowhost` is a bare module without `errors`, so a syntax error falls back to
    // InvalidArgumentError (still a ValueError); pytest covers flowhost.errors.CronSyntaxError.
    run_python(
        cr#"
import datetime
schedule = core.CronSchedule("*/15 * * * *", "Europe/Berlin")
start = datetime.datetime(2024, 5, 1, 10, 0, tzinfo=datetime.timezone.utc)
fires = schedule.next_after(start, 2)
assert [fire.minute for fire in fires] == [15, 30], fires
assert str(fires[0].tzinfo) == "Europe/Berlin"
try:
    core.CronSchedule("0 0 30 2 *")
except core.InvalidArgumentError as error:
    assert "day-of-month" in str(error), error
else:
    raise AssertionError("no error")
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
