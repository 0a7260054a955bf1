//! Reading Python arguments into Rust values, with `TypeError`s that name the argument at fault.

use std::collections::HashSet;

use foldhash::fast::RandomState;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyString, PyTuple};

use crate::CoreError;

/// The name of `object`'s type, for error messages.
pub fn type_name(object: &Bound<'_, PyAny>) -> String {
    object
        .get_type()
        .name()
        .map_or_else(|_| "<unknown type>".to_owned(), |name| name.to_string())
}

/// `object`'s `repr()`, for error messages.
pub fn repr(object: &Bound<'_, PyAny>) -> String {
    object
        .repr()
        .map_or_else(|_| "<unrepresentable>".to_owned(), |repr| repr.to_string())
}

/// A `str` (or subclass) argument as a Rust string that borrows the Python object's UTF-8 data.
///
/// `what` describes the value for the error message, e.g. `"keys of subscriptions"`; it is only
/// called when there is an error.
pub fn name(object: &Bound<'_, PyAny>, what: impl Fn() -> String) -> PyResult<PyBackedStr> {
    let string = object.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!("{} must be str, not {}", what(), type_name(object)))
    })?;
    PyBackedStr::try_from(string.clone()).map_err(|unicode_error| {
        // Only strings with lone surrogates have no UTF-8 form; no event or step can have such a name.
        let error = PyErr::from(CoreError::InvalidArgument(format!(
            "{} must be valid Unicode, not {} (it contains a lone surrogate)",
            what(),
            repr(object)
        )));
        error.set_cause(object.py(), Some(unicode_error));
        error
    })
}

/// A set of names read from Python.
pub type NameSet = HashSet<PyBackedStr, RandomState>;

/// A collection of `str` (any iterable except a `str` or bytes itself) as a set of Rust strings.
///
/// `what` names the argument, e.g. `"emitted"`; it is only called when there is an error.
pub fn name_set(object: &Bound<'_, PyAny>, what: impl Fn() -> String) -> PyResult<NameSet> {
    // Sized up front: growing a set rehashes every name it holds.
    let mut names =
        NameSet::with_capacity_and_hasher(object.len().unwrap_or(0), RandomState::default());
    for_each_name(object, what, |name| {
        names.insert(name);
    })?;
    Ok(names)
}

/// Calls `each` with every name of a collection of `str` (any iterable except a `str` or bytes
/// itself).
///
/// `what` names the argument, e.g. `"subscriptions['join']"`; it is only called when there is an
/// error.
pub fn for_each_name(
    object: &Bound<'_, PyAny>,
    what: impl Fn() -> String,
    mut each: impl FnMut(PyBackedStr),
) -> PyResult<()> {
    let item_what = || format!("items of {}", what());
    // Lists and tuples, the usual cases, are read in place instead of through an iterator object.
    if let Ok(list) = object.cast_exact::<PyList>() {
        for item in list {
            each(name(&item, item_what)?);
        }
        return Ok(());
    }
    if let Ok(tuple) = object.cast_exact::<PyTuple>() {
        for item in tuple {
            each(name(&item, item_what)?);
        }
        return Ok(());
    }
    // A `str` is an iterable of one-character strs: accepting it would turn "done" into
    // {"d", "o", "n", "e"}, which is never what the caller meant.
    let is_text = object.is_instance_of::<PyString>()
        || object.is_instance_of::<PyBytes>()
        || object.is_instance_of::<PyByteArray>();
    let not_a_collection = || {
        PyTypeError::new_err(format!(
            "{} must be a collection of str such as a list or set, not {}",
            what(),
            type_name(object)
        ))
    };
    if is_text {
        return Err(not_a_collection());
    }
    let iterator = match object.try_iter() {
        Ok(iterator) => iterator,
        Err(error) if error.is_instance_of::<PyTypeError>(object.py()) => {
            return Err(not_a_collection());
        }
        // `__iter__` itself failed: that error is the one to see.
        Err(error) => return Err(error),
    };
    for item in iterator {
        each(name(&item?, item_what)?);
    }
    Ok(())
}
