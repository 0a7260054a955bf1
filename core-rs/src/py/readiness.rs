//! `flowhost._core.ready_steps()` and `flowhost._core.step_progress()`.

use std::collections::HashMap;
use std::ops::Range;

use foldhash::fast::RandomState;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyDict, PyMapping, PyString};

use super::convert::{for_each_name, name, name_set, repr, type_name};
use crate::readiness::{self, FlowStep, StepStatus};
use crate::CoreError;

/// The steps of a run that can be scheduled now, sorted by name.
///
/// A step is ready when it is not in `scheduled`, subscribes to at least one event name, and every
/// name it subscribes to is in `emitted` (AND-join). Steps that subscribe to nothing are entry
/// steps and are never returned.
#[pyfunction]
pub fn ready_steps<'py>(
    subscriptions: &Bound<'py, PyAny>,
    emitted: &Bound<'py, PyAny>,
    scheduled: &Bound<'py, PyAny>,
) -> PyResult<Vec<Bound<'py, PyString>>> {
    let py = subscriptions.py();
    let subscriptions = StepNames::read(subscriptions, "subscriptions")?;
    let emitted = name_set(emitted, || "emitted".to_owned())?;
    let scheduled = name_set(scheduled, || "scheduled".to_owned())?;
    let ready = readiness::ready_steps(subscriptions.steps(), &emitted, &scheduled);
    // The caller's own `str` objects, not copies.
    ready
        .into_iter()
        .map(|step| Ok(step.into_pyobject(py)?))
        .collect()
}

/// Step names returned to Python.
type StepList<'py> = Vec<Bound<'py, PyString>>;

/// The steps of a run that can be scheduled now, those that never can, and whether the run is
/// over: `(ready, skipped, finished)`. See `readiness::step_progress` for the rules.
#[pyfunction]
pub fn step_progress<'py>(
    subscriptions: &Bound<'py, PyAny>,
    emits: &Bound<'py, PyAny>,
    emitted: &Bound<'py, PyAny>,
    statuses: &Bound<'py, PyAny>,
) -> PyResult<(StepList<'py>, StepList<'py>, bool)> {
    let py = subscriptions.py();
    let subscriptions = StepNames::read(subscriptions, "subscriptions")?;
    let emits = StepNames::read(emits, "emits")?;
    let emitted = name_set(emitted, || "emitted".to_owned())?;
    let statuses = read_statuses(statuses)?;
    let emits_of: HashMap<&str, &[PyBackedStr], RandomState> = emits
        .steps()
        .map(|(step, events)| (&**step, events))
        .collect();
    let steps: Vec<FlowStep<'_, PyBackedStr>> = subscriptions
        .steps()
        .map(|(step, subscribes)| FlowStep {
            name: step,
            subscribes,
            emits: emits_of.get(&**step).copied().unwrap_or_default(),
        })
        .collect();
    let progress = readiness::step_progress(&steps, &emitted, &statuses);
    // The caller's own `str` objects, not copies.
    let to_python = |names: Vec<&PyBackedStr>| -> PyResult<StepList<'py>> {
        names
            .into_iter()
            .map(|step| Ok(step.into_pyobject(py)?))
            .collect()
    };
    Ok((
        to_python(progress.ready)?,
        to_python(progress.skipped)?,
        progress.finished,
    ))
}

/// A `Mapping[str, str]` of step names to statuses.
fn read_statuses(
    statuses: &Bound<'_, PyAny>,
) -> PyResult<HashMap<PyBackedStr, StepStatus, RandomState>> {
    let items = mapping_items(statuses, "statuses", "step names to statuses")?;
    let mut read = HashMap::with_capacity_and_hasher(items.len(), RandomState::default());
    for (step, status) in items {
        let step_name = name(&step, || "keys of statuses".to_owned())?;
        let status_name = name(&status, || format!("statuses[{}]", repr(&step)))?;
        let status: StepStatus = status_name.parse().map_err(|_| {
            CoreError::InvalidArgument(format!(
                "statuses[{}] must be one of 'queued', 'running', 'awaiting', 'completed', \
                 'failed', 'skipped', not {}",
                repr(&step),
                repr(&status)
            ))
        })?;
        read.insert(step_name, status);
    }
    Ok(read)
}

/// A snapshot of a mapping's items: a private copy rather than an iterator over the caller's
/// mapping, since reading the values (a generator of event names) runs Python code, which could
/// change the mapping under the iterator.
fn mapping_items<'py>(
    mapping: &Bound<'py, PyAny>,
    what: &str,
    of_what: &str,
) -> PyResult<Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
    if let Ok(dict) = mapping.cast::<PyDict>() {
        // A private copy, cheaper than `items()`: no tuple per item.
        return Ok(dict.copy()?.iter().collect());
    }
    if let Ok(mapping) = mapping.cast::<PyMapping>() {
        return mapping.items()?.iter().map(|item| item.extract()).collect();
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be a mapping of {of_what}, not {}",
        type_name(mapping)
    )))
}

/// A `Mapping[str, Collection[str]]` of step names to event names, read into two flat vectors.
struct StepNames {
    /// The argument's name, for error messages: `"subscriptions"` or `"emits"`.
    what: &'static str,
    /// Each step with the range of its event names in `events`.
    steps: Vec<(PyBackedStr, Range<usize>)>,
    events: Vec<PyBackedStr>,
}

impl StepNames {
    fn read(mapping: &Bound<'_, PyAny>, what: &'static str) -> PyResult<Self> {
        let items = mapping_items(mapping, what, "step names to event names")?;
        let mut read = Self {
            what,
            steps: Vec::with_capacity(items.len()),
            events: Vec::new(),
        };
        for (step, events) in items {
            read.add(&step, &events)?;
        }
        Ok(read)
    }

    fn add(&mut self, step: &Bound<'_, PyAny>, events: &Bound<'_, PyAny>) -> PyResult<()> {
        let what = self.what;
        let step_name = name(step, || format!("keys of {what}"))?;
        let start = self.events.len();
        for_each_name(
            events,
            || format!("{what}[{}]", repr(step)),
            |event| self.events.push(event),
        )?;
        self.steps.push((step_name, start..self.events.len()));
        Ok(())
    }

    fn steps(&self) -> impl Iterator<Item = (&PyBackedStr, &[PyBackedStr])> {
        self.steps
            .iter()
            .map(|(step, events)| (step, &self.events[events.clone()]))
    }
}
