//! In-process rate limiting: GCRA, fixed window, moving window and sliding-window counter, each
//! with a cost per hit, over many keys.
//!
//! Time is an integer count of nanoseconds since the Unix epoch ([`Nanos`]), passed in by the
//! caller so decisions are reproducible; [`clock::now`] reads the wall clock for callers that have
//! no time of their own. Integer time keeps every comparison exact: a hit at `t` and the window
//! boundary at `t + period` never disagree by a rounding error.
//!
//! - [`gcra`]: the generic cell rate algorithm as redis-cell's `CL.THROTTLE` defines it.
//! - [`fixed_window`], [`moving_window`], [`sliding_window_counter`]: the windows as the Python
//!   `limits` library defines them.
//!
//! [`RateLimiter`] holds one algorithm and the state of each key ([`keyed`]).

pub mod clock;
pub mod fixed_window;
pub mod gcra;
pub mod keyed;
pub mod moving_window;
pub mod sliding_window_counter;

#[cfg(test)]
mod properties;

use std::fmt;
use std::str::FromStr;

use crate::error::{CoreError, CoreResult};

pub use keyed::Keyed;

/// A point in time (nanoseconds since the Unix epoch) or a duration, in nanoseconds.
pub type Nanos = u64;

/// The largest `limit` and `burst` accepted: large enough for any real quota, small enough that
/// GCRA's exact arithmetic (in units of `1 / limit` ns) fits in a `u128` with room to spare.
pub const MAX_LIMIT: u64 = 1_000_000_000_000;

/// The latest time and the longest period accepted: 2^63 ns after the epoch (year 2262), as for
/// other nanosecond timestamps. Keeping both below 2^63 lets `time + period` never overflow.
pub const MAX_NANOS: Nanos = 1 << 63;

/// What one hit decided, and the state of its key afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the hit conforms (and, for a hit that consumes, was counted).
    pub allowed: bool,
    /// The most the key admits at once: `limit`, or `burst + 1` for GCRA.
    pub limit: u64,
    /// How much cost the key would still admit right now, after this hit.
    pub remaining: u64,
    /// When the same hit would be allowed.
    pub retry_after: RetryAfter,
    /// Time until the key is back to full capacity (`remaining == limit`); 0 when it is.
    pub reset_after: Nanos,
}

/// When a refused hit would be allowed, if nothing else happens to its key meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// The hit was allowed: no need to retry.
    Allowed,
    /// The same hit conforms after this many nanoseconds.
    After(Nanos),
    /// The hit costs more than the key ever admits at once: it never conforms.
    Never,
}

/// One of the four rate limiting algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// [`gcra`]: generic cell rate algorithm (a leaky bucket without a drip process).
    Gcra,
    /// [`fixed_window`]: a counter per window, the window opening at the key's first hit.
    FixedWindow,
    /// [`moving_window`]: a log of the hits within the last period.
    MovingWindow,
    /// [`sliding_window_counter`]: clock-aligned counters, the previous one weighted.
    SlidingWindowCounter,
}

impl Strategy {
    /// Every strategy, in the order the docs list them.
    pub const ALL: [Strategy; 4] = [
        Strategy::Gcra,
        Strategy::FixedWindow,
        Strategy::MovingWindow,
        Strategy::SlidingWindowCounter,
    ];

    /// The name the Python API uses, e.g. `"sliding_window_counter"`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Gcra => "gcra",
            Strategy::FixedWindow => "fixed_window",
            Strategy::MovingWindow => "moving_window",
            Strategy::SlidingWindowCounter => "sliding_window_counter",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

impl FromStr for Strategy {
    type Err = CoreError;

    fn from_str(name: &str) -> CoreResult<Self> {
        Strategy::ALL
            .into_iter()
            .find(|strategy| strategy.name() == name)
            .ok_or_else(|| {
                let valid: Vec<String> = Strategy::ALL
                    .iter()
                    .map(|strategy| format!("{:?}", strategy.name()))
                    .collect();
                CoreError::InvalidArgument(format!(
                    "unknown rate limiting strategy {name:?}: expected one of {}",
                    valid.join(", ")
                ))
            })
    }
}

/// A validated quota: at most `limit` cost per `period`, plus `burst` for GCRA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    limit: u64,
    period: Nanos,
    burst: Option<u64>,
}

impl Quota {
    /// Checks the arguments of a limiter of `strategy`.
    ///
    /// `burst` is GCRA's `max_burst` (at most `burst + 1` at once; `None` means `limit - 1`, so a
    /// fresh key admits `limit` at once). The windows have no burst: passing one is an error
    /// rather than being silently ignored.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidArgument`] if `limit` is not in `1..=MAX_LIMIT`, `period` is 0 or
    /// above [`MAX_NANOS`], `burst` is above `MAX_LIMIT`, or `burst` is given for a window.
    pub fn new(
        strategy: Strategy,
        limit: u64,
        period: Nanos,
        burst: Option<u64>,
    ) -> CoreResult<Self> {
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(CoreError::InvalidArgument(format!(
                "limit must be between 1 and {MAX_LIMIT}, not {limit}"
            )));
        }
        if period == 0 || period > MAX_NANOS {
            return Err(CoreError::InvalidArgument(format!(
                "period must be between 1 ns and {MAX_NANOS} ns (292 years), not {period} ns"
            )));
        }
        match (strategy, burst) {
            (Strategy::Gcra, Some(burst)) if burst > MAX_LIMIT => Err(CoreError::InvalidArgument(
                format!("burst must be between 0 and {MAX_LIMIT}, not {burst}"),
            )),
            (Strategy::Gcra, burst) => Ok(Self {
                limit,
                period,
                burst: Some(burst.unwrap_or(limit - 1)),
            }),
            (_, Some(_)) => Err(CoreError::InvalidArgument(format!(
                "burst applies to the \"gcra\" strategy only, not to {strategy:?}; \
                 a window admits at most limit per period",
                strategy = strategy.name()
            ))),
            (_, None) => Ok(Self {
                limit,
                period,
                burst: None,
            }),
        }
    }

    /// The most cost admitted per period (GCRA: the sustained rate, per period).
    #[must_use]
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The period, in nanoseconds.
    #[must_use]
    pub fn period(&self) -> Nanos {
        self.period
    }

    /// GCRA's `max_burst`; `None` for the windows.
    #[must_use]
    pub fn burst(&self) -> Option<u64> {
        self.burst
    }
}

/// One algorithm's decisions on the state of one key.
///
/// A fresh key's state is `State::default()`, and a state is dropped once its
/// [`expires_at`](Algorithm::expires_at) has passed, so both must mean the same to `decide`.
pub trait Algorithm: Send + Sync {
    /// What the algorithm remembers about a key.
    type State: Default + Send;

    /// Decides a hit of `cost` at `now` on `state`, counting it there if `consume` and it is
    /// allowed. With `consume == false`, `state` changes only in ways that do not change any
    /// decision (dropping what has expired).
    fn decide(&self, state: &mut Self::State, cost: u64, now: Nanos, consume: bool) -> Decision;

    /// The time from which `state` decides as a fresh key would (0 if it already does).
    fn expires_at(&self, state: &Self::State) -> Nanos;

    /// The longest a state can take to expire after a hit: how often sweeping pays off.
    fn lifetime(&self) -> Nanos;
}

/// A rate limiter of any strategy, over many keys; safe to share between threads.
#[derive(Debug)]
pub struct RateLimiter {
    quota: Quota,
    keyed: ByStrategy,
}

/// The keyed limiter of each strategy: a `match` per call picks the monomorphic code.
#[derive(Debug)]
enum ByStrategy {
    Gcra(Keyed<gcra::Gcra>),
    FixedWindow(Keyed<fixed_window::FixedWindow>),
    MovingWindow(Keyed<moving_window::MovingWindow>),
    SlidingWindowCounter(Keyed<sliding_window_counter::SlidingWindowCounter>),
}

/// Evaluates `$body` with `$keyed` bound to the keyed limiter of whichever strategy `$limiter` has.
macro_rules! with_keyed {
    ($limiter:expr, $keyed:ident => $body:expr) => {
        match &$limiter.keyed {
            ByStrategy::Gcra($keyed) => $body,
            ByStrategy::FixedWindow($keyed) => $body,
            ByStrategy::MovingWindow($keyed) => $body,
            ByStrategy::SlidingWindowCounter($keyed) => $body,
        }
    };
}

impl RateLimiter {
    /// A limiter of `strategy` admitting `limit` cost per `period` (see [`Quota::new`]).
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidArgument`] if the quota is invalid (see [`Quota::new`]).
    pub fn new(
        strategy: Strategy,
        limit: u64,
        period: Nanos,
        burst: Option<u64>,
    ) -> CoreResult<Self> {
        let quota = Quota::new(strategy, limit, period, burst)?;
        let keyed = match strategy {
            Strategy::Gcra => ByStrategy::Gcra(Keyed::new(gcra::Gcra::new(&quota))),
            Strategy::FixedWindow => {
                ByStrategy::FixedWindow(Keyed::new(fixed_window::FixedWindow::new(&quota)))
            }
            Strategy::MovingWindow => {
                ByStrategy::MovingWindow(Keyed::new(moving_window::MovingWindow::new(&quota)))
            }
            Strategy::SlidingWindowCounter => ByStrategy::SlidingWindowCounter(Keyed::new(
                sliding_window_counter::SlidingWindowCounter::new(&quota),
            )),
        };
        Ok(Self { quota, keyed })
    }

    /// The strategy of this limiter.
    #[must_use]
    pub fn strategy(&self) -> Strategy {
        match self.keyed {
            ByStrategy::Gcra(_) => Strategy::Gcra,
            ByStrategy::FixedWindow(_) => Strategy::FixedWindow,
            ByStrategy::MovingWindow(_) => Strategy::MovingWindow,
            ByStrategy::SlidingWindowCounter(_) => Strategy::SlidingWindowCounter,
        }
    }

    /// The quota this limiter enforces.
    #[must_use]
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Decides a hit of `cost` on `key` at `now`, and counts it if allowed.
    #[inline]
    pub fn hit(&self, key: &str, cost: u64, now: Nanos) -> Decision {
        with_keyed!(self, keyed => keyed.decide(key, cost, now, true))
    }

    /// Whether a hit of `cost` on `key` at `now` would be allowed; counts nothing.
    #[inline]
    pub fn test(&self, key: &str, cost: u64, now: Nanos) -> bool {
        with_keyed!(self, keyed => keyed.decide(key, cost, now, false).allowed)
    }

    /// Like [`hit`](Self::hit), but only says whether the hit was allowed (and counted).
    #[inline]
    pub fn allow(&self, key: &str, cost: u64, now: Nanos) -> bool {
        with_keyed!(self, keyed => keyed.decide(key, cost, now, true).allowed)
    }

    /// How many keys the limiter holds state for (expired ones are dropped lazily).
    #[must_use]
    pub fn len(&self) -> usize {
        with_keyed!(self, keyed => keyed.len())
    }

    /// Whether the limiter holds no key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every key.
    pub fn clear(&self) {
        with_keyed!(self, keyed => keyed.clear());
    }

    /// As [`hit`](Self::hit) or [`test`](Self::test), but never dropping a key.
    #[cfg(test)]
    fn decide_without_sweeping(&self, key: &str, cost: u64, now: Nanos, consume: bool) -> Decision {
        with_keyed!(self, keyed => keyed.decide_without_sweeping(key, cost, now, consume))
    }
}

/// `numerator / denominator` rounded up, saturated to `Nanos`.
fn ceil_div_saturating(numerator: u128, denominator: u128) -> Nanos {
    Nanos::try_from(div_u128(numerator, denominator, true)).unwrap_or(Nanos::MAX)
}

/// `numerator / denominator`, rounded up if `ceil`, else down; `denominator` is not 0.
///
/// Divides in 64 bits when both fit, as they nearly always do: a 128-bit division is a call to a
/// routine several times slower, and GCRA divides twice per decision.
#[inline]
fn div_u128(numerator: u128, denominator: u128, ceil: bool) -> u128 {
    match (u64::try_from(numerator), u64::try_from(denominator)) {
        (Ok(numerator), Ok(denominator)) if ceil => u128::from(numerator.div_ceil(denominator)),
        (Ok(numerator), Ok(denominator)) => u128::from(numerator / denominator),
        _ if ceil => numerator.div_ceil(denominator),
        _ => numerator / denominator,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_parse_from_their_names() {
        for strategy in Strategy::ALL {
            assert_eq!(strategy.name().parse::<Strategy>(), Ok(strategy));
            assert_eq!(strategy.to_string(), strategy.name());
        }
    }

    #[test]
    fn an_unknown_strategy_names_the_valid_ones() {
        let error = "leaky".parse::<Strategy>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown rate limiting strategy \"leaky\": expected one of \"gcra\", \"fixed_window\", \
             \"moving_window\", \"sliding_window_counter\""
        );
    }

    #[test]
    fn quotas_are_validated() {
        assert!(Quota::new(Strategy::Gcra, 0, 1, None).is_err());
        assert!(Quota::new(Strategy::Gcra, MAX_LIMIT + 1, 1, None).is_err());
        assert!(Quota::new(Strategy::Gcra, 1, 0, None).is_err());
        assert!(Quota::new(Strategy::Gcra, 1, MAX_NANOS + 1, None).is_err());
        assert!(Quota::new(Strategy::Gcra, 1, 1, Some(MAX_LIMIT + 1)).is_err());
        assert!(Quota::new(Strategy::Gcra, MAX_LIMIT, MAX_NANOS, Some(MAX_LIMIT)).is_ok());
        for window in &Strategy::ALL[1..] {
            let error = Quota::new(*window, 10, 1, Some(0)).unwrap_err();
            assert!(error
                .to_string()
                .contains("burst applies to the \"gcra\" strategy only"));
            assert_eq!(Quota::new(*window, 10, 1, None).unwrap().burst(), None);
        }
    }

    #[test]
    fn gcra_burst_defaults_to_limit_minus_one() {
        let quota = Quota::new(Strategy::Gcra, 10, 1, None).unwrap();
        assert_eq!(quota.burst(), Some(9));
        let quota = Quota::new(Strategy::Gcra, 10, 1, Some(0)).unwrap();
        assert_eq!(quota.burst(), Some(0));
    }

    #[test]
    fn the_limiter_dispatches_to_its_strategy() {
        for strategy in Strategy::ALL {
            let limiter = RateLimiter::new(strategy, 2, 1_000, None).unwrap();
            assert_eq!(limiter.strategy(), strategy);
            assert!(limiter.is_empty());
            assert!(limiter.test("a", 2, 0));
            assert!(limiter.hit("a", 1, 0).allowed);
            assert!(limiter.allow("a", 1, 0));
            assert!(!limiter.test("a", 1, 0));
            assert!(!limiter.hit("a", 1, 0).allowed);
            assert_eq!(limiter.len(), 1);
            limiter.clear();
            assert!(limiter.is_empty());
        }
    }
}
