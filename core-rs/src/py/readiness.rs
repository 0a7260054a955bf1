//! `flowhost._core.ready_steps()`.

use std::ops::Range;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyDict, PyMapping, PyString};

use super::convert::{for_each_name, name, name_set, repr, type_name};
use crate::readiness;

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
    let subscriptions = Subscriptions::read(subscriptions)?;
    let emitted = name_set(emitted, || "emitted".to_owned())?;
    let scheduled = name_set(scheduled, || "scheduled".to_owned())?;
    let ready = readiness::ready_steps(subscriptions.steps(), &emitted, &scheduled);
    // The caller's own `str` objects, not copies.
    ready
        .into_iter()
        .map(|step| Ok(step.into_pyobject(py)?))
        .collect()
}

/// A `Mapping[str, Sequence[str]]` of step names to event names, read into two flat vectors.
struct Subscriptions {
    /// Each step with the range of its event names in `events`.
    steps: Vec<(PyBackedStr, Range<usize>)>,
    events: Vec<PyBackedStr>,
}

impl Subscriptions {
    fn read(subscriptions: &Bound<'_, PyAny>) -> PyResult<Self> {
        let mut read = Self {
            steps: Vec::with_capacity(subscriptions.len().unwrap_or(0)),
            events: Vec::new(),
        };
        // Snapshots rather than iterators over the caller's mapping: reading a generator of event
        // names runs Python code, which could change the mapping under the iterator.
        if let Ok(dict) = subscriptions.cast::<PyDict>() {
            // A private copy, cheaper than `items()`: no tuple per step.
            for (step, events) in dict.copy()? {
                read.add(&step, &events)?;
            }
        } else if let Ok(mapping) = subscriptions.cast::<PyMapping>() {
            for item in mapping.items()? {
                let (step, events): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
                read.add(&step, &events)?;
            }
        } else {
            return Err(PyTypeError::new_err(format!(
                "subscriptions must be a mapping of step names to event names, not {}",
                type_name(subscriptions)
            )));
        }
        Ok(read)
    }

    fn add(&mut self, step: &Bound<'_, PyAny>, events: &Bound<'_, PyAny>) -> PyResult<()> {
        let step_name = name(step, || "keys of subscriptions".to_owned())?;
        let start = self.events.len();
        for_each_name(
            events,
            || format!("subscriptions[{}]", repr(step)),
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
