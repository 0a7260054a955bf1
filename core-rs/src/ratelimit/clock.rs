//! Time in the rate limiter: the wall clock, and seconds given by a caller as nanoseconds.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{Nanos, MAX_NANOS};
use crate::error::{CoreError, CoreResult};

/// Nanoseconds per second.
const NANOS_PER_SECOND: f64 = 1e9;

/// The wall clock (as Python's `time.time()`), in nanoseconds since the Unix epoch.
///
/// A clock set before the epoch reads as 0 and one past [`MAX_NANOS`] as `MAX_NANOS`: the limiter
/// then still decides, as if at that time, instead of failing.
#[must_use]
pub fn now() -> Nanos {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since_epoch| {
            Nanos::try_from(since_epoch.as_nanos()).map_or(MAX_NANOS, |nanos| nanos.min(MAX_NANOS))
        })
}

/// `seconds` as whole nanoseconds, rounded to the nearest.
///
/// The whole seconds and the fraction are converted apart, so a time like `1_700_000_000.015625`
/// converts exactly; multiplying the whole `f64` by 1e9 would round it to a multiple of 256 ns.
///
/// # Errors
///
/// [`CoreError::InvalidArgument`] naming `what` if `seconds` is not finite, is negative, or is
/// above [`MAX_NANOS`] nanoseconds.
pub fn seconds_to_nanos(seconds: f64, what: &str) -> CoreResult<Nanos> {
    // `MAX_NANOS` as seconds is exact in an f64 (it is a power of two).
    #[allow(clippy::cast_precision_loss)]
    let max_seconds = MAX_NANOS as f64 / NANOS_PER_SECOND;
    if !(0.0..=max_seconds).contains(&seconds) {
        return Err(CoreError::InvalidArgument(format!(
            "{what} must be a finite number of seconds between 0 and {max_seconds}, not {seconds}"
        )));
    }
    let whole = seconds.trunc();
    // Both are in range and non-negative, checked above; `as` saturates anyway.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let nanos =
        (whole as u64) * 1_000_000_000 + ((seconds - whole) * NANOS_PER_SECOND).round() as u64;
    Ok(nanos.min(MAX_NANOS))
}

/// `nanos` as seconds (rounded to the nearest `f64`).
#[must_use]
pub fn nanos_to_seconds(nanos: Nanos) -> f64 {
    // Converting apart keeps whole seconds exact however large.
    #[allow(clippy::cast_precision_loss)]
    let seconds =
        (nanos / 1_000_000_000) as f64 + (nanos % 1_000_000_000) as f64 / NANOS_PER_SECOND;
    seconds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_convert_exactly_when_they_can() {
        assert_eq!(seconds_to_nanos(0.0, "now"), Ok(0));
        assert_eq!(seconds_to_nanos(1.5, "now"), Ok(1_500_000_000));
        assert_eq!(
            seconds_to_nanos(1_700_000_000.015_625, "now"),
            Ok(1_700_000_000_015_625_000)
        );
        assert_eq!(seconds_to_nanos(1e-9, "period"), Ok(1));
        assert_eq!(seconds_to_nanos(0.4e-9, "period"), Ok(0));
    }

    #[test]
    fn bad_seconds_are_refused_with_the_argument_named() {
        for bad in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -1.0,
            -1e-12,
            1e10,
        ] {
            let error = seconds_to_nanos(bad, "now").unwrap_err();
            assert!(
                error
                    .to_string()
                    .starts_with("now must be a finite number of seconds"),
                "{error}"
            );
        }
    }

    #[test]
    fn the_largest_time_is_accepted() {
        #[allow(clippy::cast_precision_loss)]
        let max_seconds = MAX_NANOS as f64 / NANOS_PER_SECOND;
        assert_eq!(seconds_to_nanos(max_seconds, "now"), Ok(MAX_NANOS));
    }

    #[test]
    fn nanos_convert_back_to_seconds() {
        assert!((nanos_to_seconds(1_500_000_000) - 1.5).abs() < f64::EPSILON);
        assert!((nanos_to_seconds(1) - 1e-9).abs() < 1e-24);
        assert!((nanos_to_seconds(1_700_000_000_015_625_000) - 1_700_000_000.015_625).abs() < 1e-6);
    }

    #[test]
    fn the_wall_clock_is_after_2020() {
        assert!(now() > 1_577_836_800 * 1_000_000_000);
    }
}
