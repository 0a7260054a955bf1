//! `flowhost._core.RateLimiter` and `flowhost._core.Decision`, re-exported by `flowhost.ratelimit`.
//!
//! The call path is kept lean: a Python call costs about 0.1 µs, so arguments are read straight
//! from their objects and a decision is one small frozen object (or a bare `bool` for `allow`).

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyFloat, PyInt, PyList, PyString, PyTuple};

use super::convert::{repr, type_name};
use crate::ratelimit::clock::{self, nanos_to_seconds, seconds_to_nanos};
use crate::ratelimit::{Nanos, RateLimiter, RetryAfter, Strategy};
use crate::CoreError;

/// What one hit decided; falsy when refused.
#[pyclass(module = "flowhost.ratelimit", name = "Decision", frozen, eq)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PyDecision {
    #[pyo3(get)]
    allowed: bool,
    #[pyo3(get)]
    limit: u64,
    #[pyo3(get)]
    remaining: u64,
    #[pyo3(get)]
    retry_after: f64,
    #[pyo3(get)]
    reset_after: f64,
}

#[pymethods]
impl PyDecision {
    #[new]
    #[pyo3(signature = (*, allowed, limit, remaining, retry_after, reset_after))]
    fn new(allowed: bool, limit: u64, remaining: u64, retry_after: f64, reset_after: f64) -> Self {
        Self {
            allowed,
            limit,
            remaining,
            retry_after,
            reset_after,
        }
    }

    fn __bool__(&self) -> bool {
        self.allowed
    }

    fn __repr__(&self) -> String {
        format!(
            "Decision(allowed={}, limit={}, remaining={}, retry_after={}, reset_after={})",
            if self.allowed { "True" } else { "False" },
            self.limit,
            self.remaining,
            python_float(self.retry_after),
            python_float(self.reset_after),
        )
    }
}

/// `value` as Python's `repr()` writes a float.
fn python_float(value: f64) -> String {
    if value.is_infinite() {
        if value > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else if value.fract() == 0.0 && value.abs() < 1e16 {
        format!("{value:.1}")
    } else {
        format!("{value}")
    }
}

impl From<crate::ratelimit::Decision> for PyDecision {
    #[inline]
    fn from(decision: crate::ratelimit::Decision) -> Self {
        Self {
            allowed: decision.allowed,
            limit: decision.limit,
            remaining: decision.remaining,
            retry_after: match decision.retry_after {
                RetryAfter::Allowed => -1.0,
                RetryAfter::After(wait) => nanos_to_seconds(wait),
                RetryAfter::Never => f64::INFINITY,
            },
            reset_after: nanos_to_seconds(decision.reset_after),
        }
    }
}

/// A rate limiter over many keys, by one strategy.
#[pyclass(module = "flowhost.ratelimit", name = "RateLimiter", frozen)]
pub struct PyRateLimiter {
    limiter: RateLimiter,
    /// The arguments as given, for the properties and `repr()`.
    period: f64,
}

#[pymethods]
impl PyRateLimiter {
    #[new]
    #[pyo3(signature = (strategy, limit, period, burst = None))]
    fn new(
        strategy: &Bound<'_, PyAny>,
        limit: &Bound<'_, PyAny>,
        period: &Bound<'_, PyAny>,
        burst: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let strategy: Strategy = strategy
            .cast::<PyString>()
            .map_err(|_| {
                PyTypeError::new_err(format!("strategy must be str, not {}", type_name(strategy)))
            })?
            .to_cow()?
            .parse()?;
        let limit = count(limit, "limit")?;
        let period_seconds = seconds(period, "period")?;
        let period = seconds_to_nanos(period_seconds, "period")?;
        let burst = burst
            .filter(|burst| !burst.is_none())
            .map(|burst| count(burst, "burst"))
            .transpose()?;
        Ok(Self {
            limiter: RateLimiter::new(strategy, limit, period, burst)?,
            period: period_seconds,
        })
    }

    /// Decides a hit of `cost` on `key` and counts it if allowed.
    #[pyo3(signature = (key, cost = 1, now = None))]
    fn hit(
        &self,
        key: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = cost_argument)] cost: u64,
        #[pyo3(from_py_with = now_argument)] now: Option<Nanos>,
    ) -> PyResult<PyDecision> {
        let now = now.unwrap_or_else(clock::now);
        Ok(self.limiter.hit(key_str(key)?, cost, now).into())
    }

    /// Whether a hit of `cost` on `key` would be allowed now; counts nothing.
    #[pyo3(signature = (key, cost = 1, now = None))]
    fn test(
        &self,
        key: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = cost_argument)] cost: u64,
        #[pyo3(from_py_with = now_argument)] now: Option<Nanos>,
    ) -> PyResult<bool> {
        let now = now.unwrap_or_else(clock::now);
        Ok(self.limiter.test(key_str(key)?, cost, now))
    }

    /// Like `hit`, but returns only whether the hit was allowed (and counted).
    #[pyo3(signature = (key, cost = 1, now = None))]
    fn allow(
        &self,
        key: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = cost_argument)] cost: u64,
        #[pyo3(from_py_with = now_argument)] now: Option<Nanos>,
    ) -> PyResult<bool> {
        let now = now.unwrap_or_else(clock::now);
        Ok(self.limiter.allow(key_str(key)?, cost, now))
    }

    /// Hits each key in turn, all at one time; whether each was allowed.
    #[pyo3(signature = (keys, costs = None, now = None))]
    fn hit_many<'py>(
        &self,
        keys: &Bound<'py, PyAny>,
        costs: Option<&Bound<'py, PyAny>>,
        #[pyo3(from_py_with = now_argument)] now: Option<Nanos>,
    ) -> PyResult<Bound<'py, PyList>> {
        let py = keys.py();
        let now = now.unwrap_or_else(clock::now);
        let keys = sequence(keys, "keys")?;
        let costs = costs
            .filter(|costs| !costs.is_none())
            .map(|costs| sequence(costs, "costs"))
            .transpose()?;
        if let Some(costs) = &costs {
            if costs.len() != keys.len() {
                return Err(CoreError::InvalidArgument(format!(
                    "costs must have one cost per key: {} keys, {} costs",
                    keys.len(),
                    costs.len()
                ))
                .into());
            }
        }
        // Every argument is read before the first hit, so an error counts nothing.
        let mut hits = Vec::with_capacity(keys.len());
        for (index, key) in keys.iter().enumerate() {
            let key = key_str(key).map_err(|error| at_index(py, error, "keys", index))?;
            let cost = match &costs {
                Some(costs) => cost_argument(&costs[index])
                    .map_err(|error| at_index(py, error, "costs", index))?,
                None => 1,
            };
            hits.push((key, cost));
        }
        let allowed = hits
            .into_iter()
            .map(|(key, cost)| PyBool::new(py, self.limiter.allow(key, cost, now)).to_owned());
        PyList::new(py, allowed)
    }

    /// How many keys the limiter holds state for.
    fn __len__(&self) -> usize {
        self.limiter.len()
    }

    /// Forgets every key.
    fn clear(&self) {
        self.limiter.clear();
    }

    #[getter]
    fn strategy(&self) -> &'static str {
        self.limiter.strategy().name()
    }

    #[getter]
    fn limit(&self) -> u64 {
        self.quota().limit()
    }

    #[getter]
    fn period(&self) -> f64 {
        self.period
    }

    #[getter]
    fn burst(&self) -> Option<u64> {
        self.quota().burst()
    }

    fn __repr__(&self) -> String {
        let burst = self
            .quota()
            .burst()
            .map_or_else(String::new, |burst| format!(", burst={burst}"));
        format!(
            "RateLimiter({:?}, limit={}, period={}{burst})",
            self.strategy(),
            self.limit(),
            python_float(self.period)
        )
    }
}

impl PyRateLimiter {
    fn quota(&self) -> crate::ratelimit::Quota {
        self.limiter.quota()
    }
}

/// A key: a `str` without lone surrogates.
#[inline]
fn key_str<'a>(key: &'a Bound<'_, PyAny>) -> PyResult<&'a str> {
    let Ok(string) = key.cast::<PyString>() else {
        return Err(PyTypeError::new_err(format!(
            "key must be str, not {}",
            type_name(key)
        )));
    };
    string.to_str().map_err(|unicode_error| {
        let error = PyErr::from(CoreError::InvalidArgument(format!(
            "key must be valid Unicode, not {} (it contains a lone surrogate)",
            repr(key)
        )));
        error.set_cause(key.py(), Some(unicode_error));
        error
    })
}

/// A cost: an `int` from 0 up. Costs beyond `u64` are above any limit, so they are refused as
/// such rather than raising.
#[inline]
fn cost_argument(cost: &Bound<'_, PyAny>) -> PyResult<u64> {
    if let Ok(cost) = cost.extract::<u64>() {
        return Ok(cost);
    }
    let int = integer(cost, "cost")?;
    if int.lt(0)? {
        return Err(
            CoreError::InvalidArgument(format!("cost must be >= 0, not {}", repr(cost))).into(),
        );
    }
    Ok(u64::MAX)
}

/// `now`: seconds since the Unix epoch (an `int` or a `float`), or `None` for the wall clock.
#[inline]
fn now_argument(now: &Bound<'_, PyAny>) -> PyResult<Option<Nanos>> {
    if now.is_none() {
        return Ok(None);
    }
    Ok(Some(seconds_to_nanos(seconds(now, "now")?, "now")?))
}

/// A number of seconds: an `int` or a `float` (or a subclass), not a `bool`.
fn seconds(value: &Bound<'_, PyAny>, what: &str) -> PyResult<f64> {
    if let Ok(float) = value.cast::<PyFloat>() {
        return Ok(float.value());
    }
    let int = integer(value, what).map_err(|_| {
        PyTypeError::new_err(format!(
            "{what} must be int or float, not {}",
            type_name(value)
        ))
    })?;
    // Out of range as an `f64` only beyond 1e308; the range check then refuses it.
    Ok(int.extract::<f64>().unwrap_or(f64::INFINITY))
}

/// A limit or a burst: an `int`, with its range checked by `Quota::new`.
fn count(value: &Bound<'_, PyAny>, what: &str) -> PyResult<u64> {
    let int = integer(value, what)?;
    int.extract::<u64>().map_err(|_| {
        CoreError::InvalidArgument(format!(
            "{what} must be between {} and {}, not {}",
            u64::from(what != "burst"),
            crate::ratelimit::MAX_LIMIT,
            repr(value)
        ))
        .into()
    })
}

/// `value` as an `int`, refusing `bool` (an `int` subclass that is never meant as a number here).
fn integer<'a, 'py>(value: &'a Bound<'py, PyAny>, what: &str) -> PyResult<&'a Bound<'py, PyInt>> {
    match value.cast::<PyInt>() {
        Ok(int) if !value.is_instance_of::<PyBool>() => Ok(int),
        _ => Err(PyTypeError::new_err(format!(
            "{what} must be int, not {}",
            type_name(value)
        ))),
    }
}

/// A list or tuple as is, or any other iterable (but a `str` or bytes) collected into a list.
fn sequence<'py>(value: &Bound<'py, PyAny>, what: &str) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if let Ok(list) = value.cast_exact::<PyList>() {
        return Ok(list.iter().collect());
    }
    if let Ok(tuple) = value.cast_exact::<PyTuple>() {
        return Ok(tuple.iter().collect());
    }
    let is_text = value.is_instance_of::<PyString>()
        || value.is_instance_of::<PyBytes>()
        || value.is_instance_of::<PyByteArray>();
    let not_a_sequence = || {
        PyTypeError::new_err(format!(
            "{what} must be a sequence such as a list, not {}",
            type_name(value)
        ))
    };
    if is_text {
        return Err(not_a_sequence());
    }
    match value.try_iter() {
        Ok(iterator) => iterator.collect(),
        Err(error) if error.is_instance_of::<PyTypeError>(value.py()) => Err(not_a_sequence()),
        Err(error) => Err(error),
    }
}

/// `error`, its message prefixed with where in `what` it happened.
fn at_index(py: Python<'_>, error: PyErr, what: &str, index: usize) -> PyErr {
    let message = format!("{what}[{index}]: {}", error.value(py));
    let located = if error.is_instance_of::<PyTypeError>(py) {
        PyTypeError::new_err(message)
    } else {
        CoreError::InvalidArgument(message).into()
    };
    located.set_cause(py, Some(error));
    located
}
