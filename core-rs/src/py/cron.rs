//! `flowhost._core.CronSchedule`, re-exported as `flowhost.cron.CronSchedule`.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDateAccess, PyTimeAccess, PyTzInfoAccess};
use pyo3::types::{PyDateTime, PyDelta, PyDeltaAccess, PyDict, PyTuple, PyTzInfo};

use super::convert::{name, type_name};
use crate::cron::civil::Civil;
use crate::cron::describe::describe;
use crate::cron::{FireTime, Schedule};
use crate::CoreError;

/// The most fire times one call returns: enough for any schedule preview, small enough that a
/// mistaken `count` cannot build a list that exhausts memory.
const MAX_COUNT: usize = 10_000;

const MICROS_PER_SECOND: i64 = 1_000_000;

/// A cron expression bound to an IANA time zone.
#[pyclass(frozen, module = "flowhost.cron", name = "CronSchedule")]
pub struct CronSchedule {
    schedule: Schedule,
    expression: String,
    /// `zoneinfo.ZoneInfo(tz)`, the `tzinfo` of every datetime returned.
    zone: Py<PyTzInfo>,
}

#[pymethods]
impl CronSchedule {
    #[new]
    #[pyo3(signature = (expression, tz = None))]
    fn new(expression: &Bound<'_, PyAny>, tz: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let py = expression.py();
        let expression = name(expression, || "expression".to_owned())?;
        let zone_name = match tz {
            Some(tz) => name(tz, || "tz".to_owned())?,
            None => name(intern!(py, "UTC").as_any(), || "tz".to_owned())?,
        };
        let schedule = Schedule::new(&expression, &zone_name)?;
        let zone = zone_info(py, schedule.zone_name())?;
        Ok(Self {
            schedule,
            expression: expression.to_string(),
            zone,
        })
    }

    /// The expression as given.
    #[getter]
    fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone's IANA name, as the database spells it.
    #[getter]
    fn tz(&self) -> &str {
        self.schedule.zone_name()
    }

    /// The next `count` fire times strictly after `start`, as aware datetimes in the zone.
    #[pyo3(signature = (start, count = 1))]
    fn next_after<'py>(
        &self,
        start: &Bound<'py, PyAny>,
        count: i64,
    ) -> PyResult<Vec<Bound<'py, PyDateTime>>> {
        let count = read_count(count)?;
        let after = instant(start, "start")?.div_euclid(MICROS_PER_SECOND);
        self.walk(start.py(), count, after, |from| {
            self.schedule.next_after(from)
        })
    }

    /// The previous `count` fire times strictly before `start`, latest first.
    #[pyo3(signature = (start, count = 1))]
    fn previous_before<'py>(
        &self,
        start: &Bound<'py, PyAny>,
        count: i64,
    ) -> PyResult<Vec<Bound<'py, PyDateTime>>> {
        let count = read_count(count)?;
        let before = -(-instant(start, "start")?).div_euclid(MICROS_PER_SECOND);
        self.walk(start.py(), count, before, |from| {
            self.schedule.previous_before(from)
        })
    }

    /// Whether `dt` is exactly a fire time.
    fn matches(&self, dt: &Bound<'_, PyAny>) -> PyResult<bool> {
        let micros = instant(dt, "dt")?;
        Ok(micros % MICROS_PER_SECOND == 0 && self.schedule.matches(micros / MICROS_PER_SECOND))
    }

    /// The schedule in English.
    fn describe(&self) -> String {
        describe(self.schedule.parsed(), self.schedule.zone_name())
    }

    fn __repr__(&self) -> String {
        format!(
            "CronSchedule({:?}, tz={:?})",
            self.expression,
            self.schedule.zone_name()
        )
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<Self>().is_ok_and(|other| {
            let other = other.get();
            other.expression == self.expression && other.tz() == self.tz()
        })
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (&self.expression, self.tz()).hash(&mut hasher);
        hasher.finish()
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let this = slf.get();
        (slf.get_type(), (this.expression.as_str(), this.tz())).into_pyobject(slf.py())
    }
}

impl CronSchedule {
    /// Up to `count` fire times, each found by `step` from the one before (from `from` first).
    fn walk<'py>(
        &self,
        py: Python<'py>,
        count: usize,
        mut from: i64,
        step: impl Fn(i64) -> Option<FireTime>,
    ) -> PyResult<Vec<Bound<'py, PyDateTime>>> {
        let mut fires = Vec::with_capacity(count);
        while fires.len() < count {
            let Some(fire) = step(from) else {
                break;
            };
            fires.push(self.datetime(py, fire)?);
            from = fire.timestamp;
        }
        Ok(fires)
    }

    fn datetime<'py>(&self, py: Python<'py>, fire: FireTime) -> PyResult<Bound<'py, PyDateTime>> {
        let local = fire.local();
        PyDateTime::new_with_fold(
            py,
            local.year,
            local.month,
            local.day,
            local.hour,
            local.minute,
            local.second,
            0,
            Some(self.zone.bind(py)),
            fire.fold,
        )
    }
}

/// `count` as a number of fire times, 1 to `MAX_COUNT`.
fn read_count(count: i64) -> PyResult<usize> {
    usize::try_from(count)
        .ok()
        .filter(|count| (1..=MAX_COUNT).contains(count))
        .ok_or_else(|| {
            CoreError::InvalidArgument(format!("count must be 1 to {MAX_COUNT}, not {count}"))
                .into()
        })
}

/// An aware datetime as microseconds since the epoch.
fn instant(value: &Bound<'_, PyAny>, what: &str) -> PyResult<i64> {
    let py = value.py();
    let datetime = value.cast::<PyDateTime>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what} must be a datetime, not {}",
            type_name(value)
        ))
    })?;
    let offset = if datetime.get_tzinfo().is_some() {
        datetime.call_method0(intern!(py, "utcoffset"))?
    } else {
        py.None().into_bound(py)
    };
    let Ok(offset) = offset.cast::<PyDelta>() else {
        return Err(PyValueError::new_err(format!(
            "{what} must be an aware datetime (with a tzinfo such as zoneinfo.ZoneInfo(\"UTC\")), \
             not the naive {}",
            datetime
                .str()
                .map_or_else(|_| "datetime".to_owned(), |text| text.to_string())
        )));
    };
    let local = Civil {
        year: datetime.get_year(),
        month: datetime.get_month(),
        day: datetime.get_day(),
        hour: datetime.get_hour(),
        minute: datetime.get_minute(),
        second: datetime.get_second(),
    };
    let offset_micros = (i64::from(offset.get_days()) * 86_400 + i64::from(offset.get_seconds()))
        * MICROS_PER_SECOND
        + i64::from(offset.get_microseconds());
    Ok(
        local.to_seconds() * MICROS_PER_SECOND + i64::from(datetime.get_microsecond())
            - offset_micros,
    )
}

/// `zoneinfo.ZoneInfo(name)`, cached per name for the life of the interpreter.
fn zone_info(py: Python<'_>, zone_name: &str) -> PyResult<Py<PyTzInfo>> {
    static ZONES: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
    let zones = ZONES.get_or_init(py, || PyDict::new(py).unbind()).bind(py);
    if let Some(zone) = zones.get_item(zone_name)? {
        return Ok(zone.cast_into::<PyTzInfo>()?.unbind());
    }
    let zone = py
        .import(intern!(py, "zoneinfo"))?
        .getattr(intern!(py, "ZoneInfo"))?
        .call1((zone_name,))
        .map_err(|error| {
            let wrapped = PyValueError::new_err(format!(
                "time zone {zone_name:?} is not in Python's zoneinfo database (install the \
                 tzdata package)"
            ));
            wrapped.set_cause(py, Some(error));
            wrapped
        })?;
    zones.set_item(zone_name, &zone)?;
    Ok(zone.cast_into::<PyTzInfo>()?.unbind())
}
