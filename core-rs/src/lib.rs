//! The Rust core of flowhost: hot paths as plain Rust, bound to Python as `flowhost._core`.
//!
//! The modules at the crate root never touch Python, so `cargo test` covers them without an
//! interpreter. The bindings live in `py/`, compiled only with the `python` feature, which maturin
//! turns on when it builds the extension.

pub mod build_info;
pub mod cron;
pub mod error;
pub mod event_log;
pub mod ratelimit;
pub mod readiness;
pub mod triggers;

#[cfg(feature = "python")]
mod py;

pub use error::CoreError;
