//! `flowhost._core.TriggerIndex`: the trigger trie holding Python values.

use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use pyo3::PyTraverseError;

use crate::triggers::{self, Syntax};

/// Index of a value in `TriggerIndex::values`. The trie stores these small integers; the Python
/// objects stay on this side, compared the way dict keys are.
type ValueId = u32;

/// A value registered under at least one pattern.
struct Interned {
    value: Py<PyAny>,
    /// How many patterns hold it; the id is freed when this drops to zero.
    registrations: usize,
}

/// Patterns of event names or MQTT topics, each holding values, matched against names.
///
/// Values are any hashable objects, compared the way dict keys are (so `1` and `1.0` are the
/// same value). Not thread-safe for writers: a method called while another one runs on the same
/// index (from another thread, or from a value's `__eq__`) raises `RuntimeError`, never corrupts.
#[pyclass(module = "flowhost._core", name = "TriggerIndex")]
pub struct TriggerIndex {
    index: triggers::TriggerIndex<ValueId>,
    /// value -> its id. `None` only after the garbage collector cleared the index.
    ids: Option<Py<PyDict>>,
    /// id -> value; `None` marks a free id, listed in `free`.
    values: Vec<Option<Interned>>,
    free: Vec<ValueId>,
}

impl TriggerIndex {
    fn ids<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyDict> {
        self.ids
            .get_or_insert_with(|| PyDict::new(py).unbind())
            .bind(py)
            .clone()
    }

    /// The id of `value`, allocated if `value` is not registered yet; and whether it was.
    fn intern(&mut self, value: &Bound<'_, PyAny>) -> PyResult<(ValueId, bool)> {
        let ids = self.ids(value.py());
        if let Some(id) = ids.get_item(value)? {
            return Ok((id.extract()?, false));
        }
        let interned = Interned {
            value: value.clone().unbind(),
            registrations: 0,
        };
        let id = if let Some(id) = self.free.pop() {
            self.values[id as usize] = Some(interned);
            id
        } else {
            let id = ValueId::try_from(self.values.len()).map_err(|_| {
                crate::CoreError::InvalidArgument(
                    "a TriggerIndex cannot hold more than 2^32 distinct values".to_owned(),
                )
            })?;
            self.values.push(Some(interned));
            id
        };
        if let Err(error) = ids.set_item(value, id) {
            self.release(id);
            return Err(error);
        }
        Ok((id, true))
    }

    /// Frees `id`, whose value is not in the id map.
    fn release(&mut self, id: ValueId) {
        if let Some(slot) = self.values.get_mut(id as usize) {
            *slot = None;
            self.free.push(id);
        }
    }

    fn interned_mut(&mut self, id: ValueId) -> Option<&mut Interned> {
        self.values.get_mut(id as usize).and_then(Option::as_mut)
    }
}

#[pymethods]
impl TriggerIndex {
    /// An empty index whose patterns and names follow `syntax`: `"event"` or `"mqtt"`.
    #[new]
    #[pyo3(signature = (*, syntax = "event"))]
    fn new(syntax: &str) -> PyResult<Self> {
        let syntax: Syntax = syntax.parse()?;
        Ok(Self {
            index: triggers::TriggerIndex::new(syntax),
            ids: None,
            values: Vec::new(),
            free: Vec::new(),
        })
    }

    /// `"event"` or `"mqtt"`.
    #[getter]
    fn syntax(&self) -> &'static str {
        self.index.syntax().as_str()
    }

    /// Registers `value` under `pattern`; registering the same pair again changes nothing.
    fn add(&mut self, pattern: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        // Checked first, so a bad pattern leaves no interned value behind.
        triggers::parse_pattern(self.index.syntax(), pattern)?;
        let (id, fresh) = self.intern(value)?;
        match self.index.add(pattern, id) {
            Ok(true) => {
                if let Some(interned) = self.interned_mut(id) {
                    interned.registrations += 1;
                }
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(error) => {
                if fresh {
                    self.forget(value.py(), id)?;
                }
                Err(error.into())
            }
        }
    }

    /// Unregisters `value` from `pattern`; returns whether it was registered there.
    fn remove(&mut self, pattern: &str, value: &Bound<'_, PyAny>) -> PyResult<bool> {
        triggers::parse_pattern(self.index.syntax(), pattern)?;
        let Some(id) = self.ids(value.py()).get_item(value)? else {
            return Ok(false);
        };
        let id: ValueId = id.extract()?;
        if !self.index.remove(pattern, &id)? {
            return Ok(false);
        }
        let left = self.interned_mut(id).map_or(0, |interned| {
            interned.registrations = interned.registrations.saturating_sub(1);
            interned.registrations
        });
        if left == 0 {
            self.forget(value.py(), id)?;
        }
        Ok(true)
    }

    /// The values whose patterns match `name`, each once, in registration order.
    #[pyo3(name = "match")]
    fn match_name<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyList>> {
        let ids = self.index.matches(name)?;
        let values = ids.into_iter().filter_map(|id| {
            self.values
                .get(*id as usize)
                .and_then(Option::as_ref)
                .map(|interned| interned.value.bind(py))
        });
        PyList::new(py, values)
    }

    /// The patterns holding at least one value, sorted.
    fn patterns(&self) -> Vec<&str> {
        self.index.patterns()
    }

    /// Every `(pattern, value)` registration, in registration order.
    fn registrations<'py>(&self, py: Python<'py>) -> Vec<(&str, Bound<'py, PyAny>)> {
        self.index
            .registrations()
            .filter_map(|(pattern, id)| {
                let interned = self.values.get(*id as usize)?.as_ref()?;
                Some((pattern, interned.value.bind(py).clone()))
            })
            .collect()
    }

    /// The number of `(pattern, value)` registrations.
    fn __len__(&self) -> usize {
        self.index.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "TriggerIndex(syntax={:?}) with {} registrations",
            self.index.syntax().as_str(),
            self.index.len()
        )
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.ids)?;
        for interned in self.values.iter().flatten() {
            visit.call(&interned.value)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.index = triggers::TriggerIndex::new(self.index.syntax());
        self.ids = None;
        self.values.clear();
        self.free.clear();
    }
}

impl TriggerIndex {
    /// Drops the value of `id`, which no pattern holds any more, from the id map and frees the id.
    fn forget(&mut self, py: Python<'_>, id: ValueId) -> PyResult<()> {
        let Some(interned) = self.values.get(id as usize).and_then(Option::as_ref) else {
            return Ok(());
        };
        let value = interned.value.clone_ref(py);
        // If the value's `__hash__` or `__eq__` fails now, the id stays allocated (with no
        // registrations) so the map never points at a freed or reused id.
        self.ids(py).del_item(value.bind(py))?;
        self.release(id);
        Ok(())
    }
}
