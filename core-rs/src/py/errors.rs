//! The Python exceptions of `flowhost._core`, and the one conversion from `CoreError`.

use pyo3::exceptions::PyValueError;
use pyo3::{create_exception, PyErr};

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
        }
    }
}
