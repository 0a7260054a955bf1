//! Cron schedules: parse and validate expressions, find next and previous fire times in an IANA
//! time zone with Vixie cron's DST rules, test a time, and describe an expression in English.
//!
//! Written by hand: the cron crates on crates.io each miss part of what flowhost's schedules
//! promise (Vixie cron's OR of day-of-month and day-of-week, `L` and `#` together, the DST rules
//! for fixed-hour versus wildcard-hour jobs, never-firing expressions refused at parse time).
//! Time zones come from `jiff`'s bundled IANA database.
//!
//! - [`parse`]: text to fields, with [`CronSyntaxError`] naming the field and token;
//! - [`pattern`]: the matching wall-clock times as bitsets, searched field by field;
//! - [`schedule`]: the fire times as instants in a zone, across DST changes;
//! - [`describe`]: the English description.

pub mod civil;
pub mod describe;
pub mod parse;
pub mod pattern;
pub mod schedule;

pub use parse::CronSyntaxError;
pub use schedule::{FireTime, Schedule};
