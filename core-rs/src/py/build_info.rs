//! `flowhost._core.build_info()`.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::build_info::BUILD_INFO;

/// The version, compiler, target and profile this extension was built with.
///
/// Returns a dict with the keys `version` (e.g. `"0.1.0"`), `rustc` (the compiler's `--version`
/// line), `target` (e.g. `"x86_64-unknown-linux-gnu"`) and `profile` (`"release"` or `"debug"`).
#[pyfunction]
pub fn build_info(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let info = PyDict::new(py);
    info.set_item("version", BUILD_INFO.version)?;
    info.set_item("rustc", BUILD_INFO.rustc)?;
    info.set_item("target", BUILD_INFO.target)?;
    info.set_item("profile", BUILD_INFO.profile)?;
    Ok(info)
}
