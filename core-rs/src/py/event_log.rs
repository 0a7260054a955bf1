//! `flowhost._core.encode_events()`: events from Python, serialised straight into a COPY stream.
//!
//! The `data` of each event is written as JSON by walking the Python objects here, instead of
//! `json.dumps` and a copy of its text: one pass, no intermediate `str`.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PySequence, PyString, PyTuple};
use pyo3::{intern, PyTypeInfo};

use super::convert::{name, repr, type_name};
use super::errors::InvalidArgumentError;
use crate::event_log::{write_json_float, write_json_string, CopyEncoder, EventHead};
use crate::CoreError;

/// Containers nested deeper than this are refused (and so are cycles, which nest forever).
const MAX_DEPTH: usize = 256;

/// Encodes events as one binary `COPY` stream for `flowhost.events`.
///
/// `events` is a sequence of `(run_id, type, step, attempt, data)` tuples: `run_id` a `uuid.UUID`,
/// `type` a `str`, `step` a `str` or `None`, `attempt` an `int` or `None`, `data` JSON data
/// (`dict`, `list`, `tuple`, `str`, `int`, `float`, `bool`, `None`; `dict` keys must be `str`).
#[pyfunction]
pub fn encode_events<'py>(events: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let py = events.py();
    let events = events.cast::<PySequence>().map_err(|_| {
        PyTypeError::new_err(format!(
            "events must be a sequence of (run_id, type, step, attempt, data) tuples, not {}",
            type_name(events)
        ))
    })?;
    let count = events.len()?;
    let mut encoder = CopyEncoder::with_capacity(64 + count * 160);
    for index in 0..count {
        let event = events.get_item(index)?;
        append(&mut encoder, &event)
            .map_err(|error| prefixed(py, &format!("events[{index}]"), error))?;
    }
    Ok(PyBytes::new(py, &encoder.finish()))
}

fn append(encoder: &mut CopyEncoder, event: &Bound<'_, PyAny>) -> PyResult<()> {
    let fields = event.cast::<PyTuple>().map_err(|_| {
        PyTypeError::new_err(format!(
            "must be a (run_id, type, step, attempt, data) tuple, not {}",
            type_name(event)
        ))
    })?;
    if fields.len() != 5 {
        return Err(PyTypeError::new_err(format!(
            "must be a (run_id, type, step, attempt, data) tuple, not a tuple of {}",
            fields.len()
        )));
    }
    let run_id = run_id(&fields.get_item(0)?)?;
    let kind = name(&fields.get_item(1)?, || "type".to_owned())?;
    let step = fields.get_item(2)?;
    let step = if step.is_none() {
        None
    } else {
        Some(name(&step, || "step".to_owned())?)
    };
    let attempt = fields.get_item(3)?;
    let attempt = if attempt.is_none() {
        None
    } else {
        Some(attempt.extract::<i32>().map_err(|_| {
            PyValueError::new_err(format!(
                "attempt must be None or an int that fits in 32 bits, not {}",
                repr(&attempt)
            ))
        })?)
    };
    let data = fields.get_item(4)?;
    let head = EventHead {
        run_id,
        kind: &kind,
        step: step.as_deref(),
        attempt,
    };
    encoder
        .row(&head)?
        .data(|buffer| write_json(buffer, &data, 0).map_err(|fault| fault.into_error(data.py())))
}

fn run_id(value: &Bound<'_, PyAny>) -> PyResult<[u8; 16]> {
    static UUID: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let py = value.py();
    if !value.is_instance(UUID.import(py, "uuid", "UUID")?)? {
        return Err(PyTypeError::new_err(format!(
            "run_id must be a uuid.UUID, not {}",
            type_name(value)
        )));
    }
    let number: u128 = value.getattr(intern!(py, "int"))?.extract()?;
    Ok(number.to_be_bytes())
}

/// Why `data` could not be written, and where in it (innermost key or index first).
struct JsonFault {
    error: PyErr,
    path: Vec<String>,
}

impl JsonFault {
    fn new(error: PyErr) -> Self {
        Self {
            error,
            path: Vec::new(),
        }
    }

    fn within(mut self, segment: impl FnOnce() -> String) -> Self {
        self.path.push(segment());
        self
    }

    /// The error, its message prefixed with the JSON path of the value at fault.
    fn into_error(self, py: Python<'_>) -> PyErr {
        let path: String = self.path.iter().rev().map(String::as_str).collect();
        prefixed(py, &format!("data{path}"), self.error)
    }
}

impl From<CoreError> for JsonFault {
    fn from(error: CoreError) -> Self {
        Self::new(error.into())
    }
}

impl From<PyErr> for JsonFault {
    fn from(error: PyErr) -> Self {
        Self::new(error)
    }
}

fn write_json(
    buffer: &mut Vec<u8>,
    value: &Bound<'_, PyAny>,
    depth: usize,
) -> Result<(), JsonFault> {
    if depth > MAX_DEPTH {
        return Err(JsonFault::new(PyValueError::new_err(format!(
            "nested deeper than {MAX_DEPTH} levels (or a container contains itself)"
        ))));
    }
    if value.is_none() {
        buffer.extend_from_slice(b"null");
    } else if let Ok(string) = value.cast::<PyString>() {
        let text = string.to_str().map_err(|_| {
            CoreError::InvalidArgument(format!(
                "{} contains a lone surrogate, which has no UTF-8 form",
                repr(value)
            ))
        })?;
        write_json_string(buffer, text)?;
    } else if let Ok(boolean) = value.cast::<PyBool>() {
        buffer.extend_from_slice(if boolean.is_true() { b"true" } else { b"false" });
    } else if value.is_instance_of::<PyInt>() {
        write_int(buffer, value)?;
    } else if let Ok(float) = value.cast::<PyFloat>() {
        write_json_float(buffer, float.value())?;
    } else if let Ok(dict) = value.cast::<PyDict>() {
        write_object(buffer, dict, depth)?;
    } else if let Ok(list) = value.cast::<PyList>() {
        write_array(buffer, list.iter(), depth)?;
    } else if let Ok(tuple) = value.cast::<PyTuple>() {
        write_array(buffer, tuple.iter(), depth)?;
    } else {
        return Err(JsonFault::new(PyTypeError::new_err(format!(
            "an object of type {} is not JSON data",
            type_name(value)
        ))));
    }
    Ok(())
}

fn write_int(buffer: &mut Vec<u8>, value: &Bound<'_, PyAny>) -> PyResult<()> {
    if let Ok(small) = value.extract::<i64>() {
        buffer.extend_from_slice(small.to_string().as_bytes());
    } else {
        // `int.__repr__` itself, not the object's: a subclass's own repr could be anything.
        let py = value.py();
        let digits = PyInt::type_object(py).call_method1(intern!(py, "__repr__"), (value,))?;
        buffer.extend_from_slice(digits.cast::<PyString>()?.to_str()?.as_bytes());
    }
    Ok(())
}

fn write_object(
    buffer: &mut Vec<u8>,
    dict: &Bound<'_, PyDict>,
    depth: usize,
) -> Result<(), JsonFault> {
    buffer.push(b'{');
    for (position, (key, item)) in dict.iter().enumerate() {
        if position > 0 {
            buffer.push(b',');
        }
        let Ok(key_string) = key.cast::<PyString>() else {
            return Err(JsonFault::new(PyTypeError::new_err(format!(
                "keys must be str, not {} ({})",
                type_name(&key),
                repr(&key)
            ))));
        };
        let key_text = key_string.to_str().map_err(|_| {
            CoreError::InvalidArgument(format!("the key {} contains a lone surrogate", repr(&key)))
        })?;
        write_json_string(buffer, key_text)?;
        buffer.push(b':');
        write_json(buffer, &item, depth + 1)
            .map_err(|fault| fault.within(|| format!("[{}]", repr(&key))))?;
    }
    buffer.push(b'}');
    Ok(())
}

fn write_array<'py>(
    buffer: &mut Vec<u8>,
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    depth: usize,
) -> Result<(), JsonFault> {
    buffer.push(b'[');
    for (index, item) in items.enumerate() {
        if index > 0 {
            buffer.push(b',');
        }
        write_json(buffer, &item, depth + 1)
            .map_err(|fault| fault.within(|| format!("[{index}]")))?;
    }
    buffer.push(b']');
    Ok(())
}

/// `error` with `prefix: ` before its message, of the same class for the classes raised here.
fn prefixed(py: Python<'_>, prefix: &str, error: PyErr) -> PyErr {
    let message = format!("{prefix}: {}", error.value(py));
    let wrapped = if error.is_instance_of::<PyTypeError>(py) {
        PyTypeError::new_err(message)
    } else if error.is_instance_of::<InvalidArgumentError>(py) {
        InvalidArgumentError::new_err(message)
    } else if error.is_instance_of::<PyValueError>(py) {
        PyValueError::new_err(message)
    } else {
        return error;
    };
    wrapped.set_cause(py, Some(error));
    wrapped
}
