//! The Python exceptions of `flowhost._core`, and the one conversion from `CoreError`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::{create_exception, PyErr};

use crate::cron::CronSyntaxError;
use crate::CoreError;

create_exception!(
    flowhost._core,
    InvalidArgumentError,
    PyValueError,
    "An argument has the right type but a value flowhost's core cannot use."
);

impl From<CoreError> for PyErr {
    fn from(error: CoreError) -> Self {
        match error {
            CoreError::InvalidArgument(message) => InvalidArgumentError::new_err(message),
            CoreError::CronSyntax(error) => cron_syntax_error(&error),
            CoreError::InvalidPattern {
                ref pattern,
                ref problem,
            } => flowhost_error(
                "PatternError",
                &error.to_string(),
                [("pattern", pattern), ("problem", problem)],
            ),
            CoreError::InvalidName {
                ref name,
                ref problem,
            } => flowhost_error(
                "EventNameError",
                &error.to_string(),
                [("name", name), ("problem", problem)],
            ),
        }
    }
}

/// `flowhost.errors.CronSyntaxError(message, field=…, token=…, expression=…)`.
///
/// The class lives in Python, with flowhost's other exceptions, so it is imported when raised;
/// should that fail (`flowhost._core` loaded without its package), the error is still a
/// `ValueError` with the same message.
fn cron_syntax_error(error: &CronSyntaxError) -> PyErr {
    let message = error.to_string();
    Python::attach(|py| {
        let class = py.import("flowhost.errors")?.getattr("CronSyntaxError")?;
        let details = PyDict::new(py);
        details.set_item("field", error.field)?;
        details.set_item("token", &error.token)?;
        details.set_item("expression", &error.expression)?;
        let instance = class.call((&message,), Some(&details))?;
        Ok::<_, PyErr>(PyErr::from_value(instance))
    })
    .unwrap_or_else(|_| InvalidArgumentError::new_err(message))
}

/// An instance of `flowhost.errors.<class_name>(message, **details)`.
///
/// Errors users catch derive from `flowhost.errors.FlowhostError`, which is Python code; it is
/// imported when an error is raised, not when `flowhost._core` loads, so the core keeps no
/// import-time dependency on the package around it. Should that import fail, the error is still
/// raised, as the core's own `InvalidArgumentError` (a `ValueError`) with the import error as its
/// cause.
fn flowhost_error(class_name: &str, message: &str, details: [(&str, &String); 2]) -> PyErr {
    Python::attach(|py| {
        let build = || -> PyResult<PyErr> {
            let class = py.import("flowhost.errors")?.getattr(class_name)?;
            let keywords = PyDict::new(py);
            for (key, value) in details {
                keywords.set_item(key, value)?;
            }
            Ok(PyErr::from_value(class.call((message,), Some(&keywords))?))
        };
        build().unwrap_or_else(|import_error| {
            let error = InvalidArgumentError::new_err(message.to_owned());
            error.set_cause(py, Some(import_error));
            error
        })
    })
}
