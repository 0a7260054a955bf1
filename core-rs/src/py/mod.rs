//! The Python module `flowhost._core`: thin bindings over the pure Rust modules.
//!
//! Python users import `flowhost`, never `flowhost._core`; its stub is `python/flowhost/_core.pyi`,
//! checked against this module by `python -m mypy.stubtest flowhost._core`.

mod build_info;
mod convert;
mod cron;
mod errors;
mod event_log;
mod ratelimit;
mod readiness;
#[cfg(test)]
mod tests;
mod triggers;

use pyo3::prelude::*;

/// Rust core of flowhost. Private: import from `flowhost` instead.
// `gil_used = false` (PyO3's default since 0.28, stated here on purpose): the module keeps no state
// between calls but a cache of `zoneinfo.ZoneInfo` objects in a dict; `RateLimiter` is frozen and
// guards its keys with its own mutexes; `TriggerIndex` relies on PyO3's runtime borrow checks (a
// concurrent writer gets a `RuntimeError`, never a torn index); there is no `unsafe` code (the
// crate denies it), and arguments are read only through PyO3's safe API, so it is safe to call
// from several threads at once on free-threaded Python.
#[pymodule(gil_used = false)]
mod _core {
    #[pymodule_export]
    use super::build_info::build_info;
    #[pymodule_export]
    use super::cron::CronSchedule;
    #[pymodule_export]
    use super::errors::InvalidArgumentError;
    #[pymodule_export]
    use super::event_log::encode_events;
    #[pymodule_export]
    use super::ratelimit::{PyDecision, PyRateLimiter};
    #[pymodule_export]
    use super::readiness::{ready_steps, step_progress};
    #[pymodule_export]
    use super::triggers::TriggerIndex;

    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(module: &Bound<'_, PyModule>) -> PyResult<()> {
        module.add("__version__", crate::build_info::VERSION)
    }
}
