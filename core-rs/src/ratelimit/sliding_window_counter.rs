//! Sliding-window counter, as the `limits` library's `SlidingWindowCounterRateLimiter` defines it
//! over its `MemoryStorage`: a counter per clock-aligned bucket (`[k * period, (k + 1) * period)`),
//! the previous bucket's counter weighted by the share of it still inside the last period. A hit
//! is allowed if `floor(previous * (period - elapsed) / period) + current + cost <= limit`, with
//! `elapsed` the time since the current bucket began. The arithmetic is exact, so the weighting is
//! `limits`'s without its floating-point rounding.
//!
//! A `now` earlier than the start of the key's current bucket is decided as at that start (the
//! previous bucket then weighs in full): the key never goes back to an older bucket.

use super::{Algorithm, Decision, Nanos, Quota, RetryAfter};

/// A sliding-window counter limit: about `limit` per any `period`.
#[derive(Debug, Clone, Copy)]
pub struct SlidingWindowCounter {
    limit: u64,
    period: Nanos,
}

/// A key's counters: its latest bucket's index, that bucket's and the one before's cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    bucket: u64,
    previous: u64,
    current: u64,
}

/// Where `now` falls relative to a key's current bucket.
#[derive(Debug, Clone, Copy)]
struct Position {
    /// Time since the bucket began (0 if `now` is before it).
    elapsed: Nanos,
    /// How far `now` is before the bucket's start, when the clock stepped back; else 0.
    behind: Nanos,
}

impl SlidingWindowCounter {
    /// The sliding-window counter limit of `quota`.
    #[must_use]
    pub fn new(quota: &Quota) -> Self {
        Self {
            limit: quota.limit(),
            period: quota.period(),
        }
    }

    /// Moves `counters` to the bucket of `now`, rolling or clearing the counters it leaves.
    fn advance(&self, counters: &mut Counters, now: Nanos) -> Position {
        let bucket = now / self.period;
        if bucket > counters.bucket {
            counters.previous = if bucket == counters.bucket + 1 {
                counters.current
            } else {
                0
            };
            counters.current = 0;
            counters.bucket = bucket;
        }
        let start = counters.bucket * self.period;
        Position {
            elapsed: now.saturating_sub(start),
            behind: start.saturating_sub(now),
        }
    }

    /// `floor(previous * (period - elapsed) / period)`: the previous bucket's share.
    fn weighted_previous(&self, previous: u64, elapsed: Nanos) -> u64 {
        let period = u128::from(self.period);
        let share = u128::from(previous) * (period - u128::from(elapsed)) / period;
        // At most `previous`.
        u64::try_from(share).unwrap_or(previous)
    }

    /// How long until the weighted count is at most `most`, if no hit is counted meanwhile.
    fn time_until_at_most(&self, counters: &Counters, elapsed: Nanos, most: u64) -> Nanos {
        if counters.current <= most {
            let wait =
                self.until_share_at_most(counters.previous, most - counters.current, elapsed);
            return wait;
        }
        // Not before the next bucket, where the current counter becomes the weighted one.
        (self.period - elapsed) + self.until_share_at_most(counters.current, most, 0)
    }

    /// How long after `elapsed` until `floor(count * (period - elapsed) / period) <= most`.
    fn until_share_at_most(&self, count: u64, most: u64, elapsed: Nanos) -> Nanos {
        if self.weighted_previous(count, elapsed) <= most {
            return 0;
        }
        // The share is at most `most` once `count * (period - t) < (most + 1) * period`, i.e. from
        // `t = floor((count - most - 1) * period / count) + 1`, which is at most `period`.
        let period = u128::from(self.period);
        let count_128 = u128::from(count);
        let from = (count_128 - u128::from(most) - 1) * period / count_128 + 1;
        // At most `period`, so it fits.
        Nanos::try_from(from).unwrap_or(self.period) - elapsed
    }
}

impl Algorithm for SlidingWindowCounter {
    type State = Counters;

    #[inline]
    fn decide(&self, counters: &mut Counters, cost: u64, now: Nanos, consume: bool) -> Decision {
        let Position { elapsed, behind } = self.advance(counters, now);
        let weighted = self.weighted_previous(counters.previous, elapsed) + counters.current;
        // The weighted count never exceeds the limit: every counted hit kept it within, and it
        // only decreases as time passes.
        let mut decision = Decision {
            allowed: false,
            limit: self.limit,
            remaining: self.limit.saturating_sub(weighted),
            retry_after: RetryAfter::Never,
            reset_after: 0,
        };
        let reset_after = |counters: &Counters| {
            if counters.previous == 0 && counters.current == 0 {
                0
            } else {
                behind + self.time_until_at_most(counters, elapsed, 0)
            }
        };
        if cost > self.limit {
            decision.reset_after = reset_after(counters);
            return decision;
        }
        if weighted + cost > self.limit {
            let wait = self.time_until_at_most(counters, elapsed, self.limit - cost);
            decision.retry_after = RetryAfter::After(behind + wait);
            decision.reset_after = reset_after(counters);
            return decision;
        }
        decision.allowed = true;
        decision.retry_after = RetryAfter::Allowed;
        decision.remaining -= cost;
        let after = Counters {
            current: counters.current + cost,
            ..*counters
        };
        decision.reset_after = reset_after(&after);
        if consume {
            *counters = after;
        }
        decision
    }

    fn expires_at(&self, counters: &Counters) -> Nanos {
        let buckets_left = if counters.current > 0 {
            2
        } else if counters.previous > 0 {
            1
        } else {
            return 0;
        };
        (counters.bucket + buckets_left).saturating_mul(self.period)
    }

    fn lifetime(&self) -> Nanos {
        self.period.saturating_mul(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::Strategy;

    fn sliding(limit: u64, period: Nanos) -> SlidingWindowCounter {
        SlidingWindowCounter::new(
            &Quota::new(Strategy::SlidingWindowCounter, limit, period, None).unwrap(),
        )
    }

    #[test]
    fn the_previous_bucket_weighs_by_its_share_of_the_window() {
        let limiter = sliding(10, 100);
        let mut counters = Counters::default();
        // Bucket [1000, 1100): 10 hits.
        assert!(limiter.decide(&mut counters, 10, 1_050, true).allowed);
        // At 1101 the bucket [1000, 1100) is the previous one and weighs floor(10 * 99 / 100) = 9.
        let full = limiter.decide(&mut counters, 1, 1_099, true);
        assert_eq!(full.retry_after, RetryAfter::After(2));
        // At 1110, the previous bucket weighs floor(10 * 90 / 100) = 9: one more fits.
        let one = limiter.decide(&mut counters, 1, 1_110, true);
        assert_eq!((one.allowed, one.remaining), (true, 0));
        // 2 more need floor(10 * (100 - e) / 100) <= 7, from e = 21 (weight 7.9).
        let refused = limiter.decide(&mut counters, 2, 1_111, true);
        assert_eq!(refused.retry_after, RetryAfter::After(10));
        assert!(!limiter.decide(&mut counters, 2, 1_120, true).allowed);
        assert!(limiter.decide(&mut counters, 2, 1_121, true).allowed);
        assert_eq!(
            counters,
            Counters {
                bucket: 11,
                previous: 10,
                current: 3
            }
        );
    }

    #[test]
    fn retry_after_and_reset_after_are_exact() {
        let limiter = sliding(5, 1_000);
        let mut counters = Counters::default();
        let mut now = 7_777;
        for cost in [2, 3] {
            assert!(limiter.decide(&mut counters, cost, now, true).allowed);
        }
        now += 100;
        // Decides on a copy of the counters, as they are now.
        let at = |cost: u64, time: Nanos| {
            let mut copy = counters;
            limiter.decide(&mut copy, cost, time, false)
        };
        for cost in 1..=5 {
            let refused = at(cost, now);
            let RetryAfter::After(wait) = refused.retry_after else {
                panic!("{refused:?}")
            };
            assert!(!at(cost, now + wait - 1).allowed);
            assert!(at(cost, now + wait).allowed);
            assert_eq!(refused.reset_after, 924);
            assert_eq!(at(0, now + refused.reset_after).remaining, 5);
            assert_eq!(at(0, now + refused.reset_after - 1).remaining, 4);
        }
    }

    #[test]
    fn buckets_are_aligned_to_the_clock_and_forgotten_after_two() {
        let limiter = sliding(4, 100);
        let mut counters = Counters::default();
        assert!(limiter.decide(&mut counters, 4, 199, true).allowed);
        assert_eq!(limiter.expires_at(&counters), 300);
        // At 200 the bucket [100, 200) becomes the previous one and weighs in full.
        assert!(!limiter.decide(&mut counters, 1, 200, true).allowed);
        assert!(limiter.decide(&mut counters, 4, 300, true).allowed);
        assert_eq!(
            counters,
            Counters {
                bucket: 3,
                previous: 0,
                current: 4
            }
        );
        assert!(limiter.decide(&mut counters, 0, 900, true).allowed);
        assert_eq!(
            counters,
            Counters {
                bucket: 9,
                previous: 0,
                current: 0
            }
        );
        assert_eq!(limiter.expires_at(&counters), 0);
    }

    #[test]
    fn a_clock_that_steps_back_is_decided_at_the_bucket_start() {
        let limiter = sliding(2, 100);
        let mut counters = Counters::default();
        assert!(limiter.decide(&mut counters, 2, 150, true).allowed);
        assert!(limiter.decide(&mut counters, 0, 250, true).allowed);
        let refused = limiter.decide(&mut counters, 1, 120, true);
        // As at 200, where the previous bucket weighs 2, plus the 80 ns from 120 to 200; then
        // floor(2 * (100 - e) / 100) <= 1 from e = 1.
        assert_eq!(refused.retry_after, RetryAfter::After(80 + 1));
    }

    #[test]
    fn refusals_and_tests_count_nothing() {
        let limiter = sliding(3, 100);
        let mut counters = Counters::default();
        assert!(limiter.decide(&mut counters, 3, 0, false).allowed);
        assert_eq!(counters, Counters::default());
        assert!(limiter.decide(&mut counters, 3, 0, true).allowed);
        assert!(!limiter.decide(&mut counters, 1, 1, true).allowed);
        assert!(!limiter.decide(&mut counters, 4, 1, true).allowed);
        assert_eq!(
            counters,
            Counters {
                bucket: 0,
                previous: 0,
                current: 3
            }
        );
    }
}
