//! GCRA, the generic cell rate algorithm, as redis-cell's `CL.THROTTLE` defines it.
//!
//! `CL.THROTTLE key max_burst count_per_period period quantity` maps to `limit = count_per_period`,
//! `burst = max_burst`, `cost = quantity`. Each key remembers one time, its theoretical arrival
//! time (TAT). Every unit of cost moves the TAT one emission interval `T = period / limit` later;
//! a hit is allowed if its new TAT is at most `now + (burst + 1) * T` (the delay variation
//! tolerance). So a fresh key admits `burst + 1` at once, then `limit` per period.
//!
//! Where this differs from redis-cell, on purpose:
//! - `T` is exact: time is kept in units of `1 / limit` ns, where redis-cell truncates `T` to whole
//!   nanoseconds (with `limit = 3` per second that admits one hit too many in some periods).
//!   Durations are reported rounded up to whole nanoseconds, so waiting `retry_after` always
//!   suffices.
//! - A cost above `burst + 1` never conforms: `retry_after` is [`RetryAfter::Never`], where
//!   redis-cell reports -1 as if the hit had been allowed; and `reset_after` is never negative.

use super::{ceil_div_saturating, div_u128, Algorithm, Decision, Nanos, Quota, RetryAfter};

/// The GCRA parameters, in units of `1 / limit` nanoseconds (so `T` is a whole number of units).
#[derive(Debug, Clone, Copy)]
pub struct Gcra {
    /// Units per nanosecond: the quota's `limit`.
    units_per_nanosecond: u128,
    /// `T`: the period in nanoseconds is the emission interval in units.
    emission_interval: u128,
    /// `(burst + 1) * T`: how far ahead of `now` the TAT may run.
    delay_variation_tolerance: u128,
    /// `burst + 1`: the most cost admitted at once.
    capacity: u64,
}

/// A key's theoretical arrival time, in units of `1 / limit` ns since the epoch; 0 for a fresh key
/// (any TAT not after `now` acts as a fresh key's).
pub type Tat = u128;

impl Gcra {
    /// GCRA for `quota`, whose `burst` is set ([`Quota::new`] sets it for GCRA).
    #[must_use]
    pub fn new(quota: &Quota) -> Self {
        let capacity = quota.burst().unwrap_or(quota.limit() - 1) + 1;
        let emission_interval = u128::from(quota.period());
        Self {
            units_per_nanosecond: u128::from(quota.limit()),
            emission_interval,
            delay_variation_tolerance: emission_interval * u128::from(capacity),
            capacity,
        }
    }

    /// How much cost fits before the TAT reaches `now + tolerance`, given `ahead = tat - now`.
    fn remaining(&self, ahead: u128) -> u64 {
        // `ahead` exceeds the tolerance only if the clock stepped back since the last hit.
        let room = self.delay_variation_tolerance.saturating_sub(ahead);
        // At most `capacity`.
        u64::try_from(div_u128(room, self.emission_interval, false)).unwrap_or(self.capacity)
    }

    fn nanos_of(&self, units: u128) -> Nanos {
        ceil_div_saturating(units, self.units_per_nanosecond)
    }
}

impl Algorithm for Gcra {
    type State = Tat;

    #[inline]
    fn decide(&self, tat: &mut Tat, cost: u64, now: Nanos, consume: bool) -> Decision {
        let now = u128::from(now) * self.units_per_nanosecond;
        let tat_from_now = (*tat).max(now);
        let mut decision = Decision {
            allowed: false,
            limit: self.capacity,
            remaining: 0,
            retry_after: RetryAfter::Never,
            reset_after: 0,
        };
        if cost > self.capacity {
            // Checked first: `cost * T` could otherwise be out of any range.
            let ahead = tat_from_now - now;
            decision.remaining = self.remaining(ahead);
            decision.reset_after = self.nanos_of(ahead);
            return decision;
        }
        let new_tat = tat_from_now + u128::from(cost) * self.emission_interval;
        let allow_at = now + self.delay_variation_tolerance;
        if new_tat > allow_at {
            let ahead = tat_from_now - now;
            decision.remaining = self.remaining(ahead);
            decision.retry_after = RetryAfter::After(self.nanos_of(new_tat - allow_at));
            decision.reset_after = self.nanos_of(ahead);
            return decision;
        }
        // A free hit would only move an expired TAT up to `now`, which decides the same.
        if consume && cost > 0 {
            *tat = new_tat;
        }
        let ahead = new_tat - now;
        decision.allowed = true;
        decision.remaining = self.remaining(ahead);
        decision.retry_after = RetryAfter::Allowed;
        decision.reset_after = self.nanos_of(ahead);
        decision
    }

    fn expires_at(&self, tat: &Tat) -> Nanos {
        self.nanos_of(*tat)
    }

    fn lifetime(&self) -> Nanos {
        self.nanos_of(self.delay_variation_tolerance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::Strategy;

    const SECOND: Nanos = 1_000_000_000;
    const MILLISECOND: Nanos = 1_000_000;

    fn gcra(limit: u64, period: Nanos, burst: Option<u64>) -> Gcra {
        Gcra::new(&Quota::new(Strategy::Gcra, limit, period, burst).unwrap())
    }

    /// A hit and what it must decide: (ms after start, cost, allowed, remaining, `reset_after` in
    /// ms, `retry_after` in ms or -1 when allowed, or `None` for never).
    type Case = (Nanos, u64, bool, u64, Nanos, Option<i64>);

    /// The scenario of redis-cell's own test: 1 per second with `max_burst` 4.
    #[test]
    fn decides_as_redis_cell_does() {
        let limiter = gcra(1, SECOND, Some(4));
        let start = 1_700_000_000 * SECOND;
        let cases: [Case; 15] = [
            // A cost above the capacity never conforms (redis-cell: retry_after -1).
            (0, 6, false, 5, 0, None),
            (0, 1, true, 4, 1_000, Some(-1)),
            (0, 1, true, 3, 2_000, Some(-1)),
            (0, 1, true, 2, 3_000, Some(-1)),
            (0, 1, true, 1, 4_000, Some(-1)),
            (0, 1, true, 0, 5_000, Some(-1)),
            (0, 1, false, 0, 5_000, Some(1_000)),
            (3_000, 1, true, 2, 3_000, Some(-1)),
            (3_100, 1, true, 1, 3_900, Some(-1)),
            (4_000, 1, true, 1, 4_000, Some(-1)),
            (8_000, 1, true, 4, 1_000, Some(-1)),
            (9_500, 1, true, 4, 1_000, Some(-1)),
            // A cost of 0 only reports.
            (9_500, 0, true, 4, 1_000, Some(-1)),
            (9_500, 2, true, 2, 3_000, Some(-1)),
            (9_500, 5, false, 2, 3_000, Some(3_000)),
        ];
        let mut tat = Tat::default();
        for (number, (at, cost, allowed, remaining, reset_after, retry_after)) in
            cases.into_iter().enumerate()
        {
            let decision = limiter.decide(&mut tat, cost, start + at * MILLISECOND, true);
            let expected = Decision {
                allowed,
                limit: 5,
                remaining,
                retry_after: match retry_after {
                    None => RetryAfter::Never,
                    Some(-1) => RetryAfter::Allowed,
                    Some(ms) => RetryAfter::After(Nanos::try_from(ms).unwrap() * MILLISECOND),
                },
                reset_after: reset_after * MILLISECOND,
            };
            assert_eq!(decision, expected, "case {number}");
        }
    }

    #[test]
    fn the_emission_interval_is_exact() {
        // 3 per second, no burst, each hit as soon as allowed: 3 in the first second. With
        // redis-cell's T truncated to 333_333_333 ns, a fourth would land at 999_999_999 ns.
        let limiter = gcra(3, SECOND, Some(0));
        let mut tat = Tat::default();
        let mut now = 0;
        let mut admitted = Vec::new();
        while now < SECOND {
            let decision = limiter.decide(&mut tat, 1, now, true);
            match decision.retry_after {
                RetryAfter::Allowed => admitted.push(now),
                RetryAfter::After(wait) => now += wait,
                RetryAfter::Never => panic!("{decision:?}"),
            }
        }
        assert_eq!(admitted, [0, 333_333_334, 666_666_668]);
    }

    #[test]
    fn waiting_retry_after_suffices() {
        let limiter = gcra(7, 3 * SECOND, Some(2));
        let mut tat = Tat::default();
        let mut now = 10 * SECOND;
        for _ in 0..3 {
            assert!(limiter.decide(&mut tat, 1, now, true).allowed);
        }
        for cost in [1, 2, 3] {
            let refused = limiter.decide(&mut tat, cost, now, false);
            let RetryAfter::After(wait) = refused.retry_after else {
                panic!("{refused:?}");
            };
            assert!(
                !limiter
                    .decide(&mut tat, cost, now + wait - 1, false)
                    .allowed
            );
            assert!(limiter.decide(&mut tat, cost, now + wait, false).allowed);
        }
        now += 3 * SECOND;
        let decision = limiter.decide(&mut tat, 0, now, true);
        assert_eq!(decision.remaining, 3);
        assert_eq!(decision.reset_after, 0);
    }

    #[test]
    fn the_default_burst_admits_limit_at_once() {
        let limiter = gcra(10, SECOND, None);
        let mut tat = Tat::default();
        let decision = limiter.decide(&mut tat, 10, 0, true);
        assert!(decision.allowed);
        assert_eq!((decision.limit, decision.remaining), (10, 0));
        assert_eq!(decision.reset_after, SECOND);
        assert_eq!(limiter.expires_at(&tat), SECOND);
        assert_eq!(limiter.lifetime(), SECOND);
    }

    #[test]
    fn a_refusal_or_a_test_leaves_the_state_alone() {
        let limiter = gcra(2, SECOND, Some(0));
        let mut tat = Tat::default();
        assert!(limiter.decide(&mut tat, 1, 0, false).allowed);
        assert_eq!(tat, 0);
        assert!(limiter.decide(&mut tat, 1, 0, true).allowed);
        let after_hit = tat;
        assert!(!limiter.decide(&mut tat, 1, 0, true).allowed);
        assert!(!limiter.decide(&mut tat, 5, 0, true).allowed);
        assert_eq!(tat, after_hit);
    }

    #[test]
    fn extreme_quotas_do_not_overflow() {
        use crate::ratelimit::{MAX_LIMIT, MAX_NANOS};
        let limiter = gcra(MAX_LIMIT, MAX_NANOS, Some(MAX_LIMIT));
        let mut tat = Tat::default();
        let decision = limiter.decide(&mut tat, MAX_LIMIT + 1, MAX_NANOS, true);
        assert!(decision.allowed);
        assert_eq!(decision.remaining, 0);
        assert!(!limiter.decide(&mut tat, 1, MAX_NANOS, true).allowed);
        // A clock far behind the key's TAT.
        let behind = limiter.decide(&mut tat, u64::MAX, 0, true);
        assert_eq!((behind.allowed, behind.remaining), (false, 0));
        assert!(!limiter.decide(&mut tat, 1, 0, true).allowed);
        let slow = gcra(1, MAX_NANOS, Some(MAX_LIMIT));
        let mut tat = Tat::default();
        assert!(slow.decide(&mut tat, 1, MAX_NANOS, true).allowed);
        assert_eq!(slow.expires_at(&tat), Nanos::MAX);
        assert_eq!(slow.lifetime(), Nanos::MAX);
    }
}
