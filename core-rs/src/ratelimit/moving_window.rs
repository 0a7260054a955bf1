//! Moving window (a sliding log), as the `limits` library's `MovingWindowRateLimiter` defines it
//! over its `MemoryStorage`: a hit is allowed if the cost counted in the last period, plus its own,
//! is at most `limit`. As in `limits`, the window is closed: a hit at `t` still counts at
//! `t + period` and stops counting 1 ns later.
//!
//! `limits` logs one entry per unit of cost; this log keeps one entry per distinct hit time with a
//! running total, so it never holds more than `limit` entries (each counts at least 1 and the
//! window holds at most `limit`), and finding when enough cost expires is a binary search.
//!
//! A `now` earlier than the key's latest hit is logged at that latest hit's time, keeping the log
//! in order; the hit then counts a little longer than it would have.

use std::collections::VecDeque;

use super::{Algorithm, Decision, Nanos, Quota, RetryAfter};

/// A moving window limit: `limit` per any `period`.
#[derive(Debug, Clone, Copy)]
pub struct MovingWindow {
    limit: u64,
    period: Nanos,
}

/// A key's log of counted hits within the window, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Log {
    /// `(time, total)`: a time hits were counted at, and the running total of all cost counted
    /// for the key up to and including them. Totals wrap, so only differences are meaningful.
    entries: VecDeque<(Nanos, u64)>,
    /// The running total before the oldest entry.
    expired_total: u64,
}

impl Log {
    fn total(&self) -> u64 {
        self.entries
            .back()
            .map_or(self.expired_total, |&(_, total)| total)
    }

    fn in_window(&self) -> u64 {
        self.total().wrapping_sub(self.expired_total)
    }
}

impl MovingWindow {
    /// The moving window limit of `quota`.
    #[must_use]
    pub fn new(quota: &Quota) -> Self {
        Self {
            limit: quota.limit(),
            period: quota.period(),
        }
    }

    /// When the hits counted at `time` stop counting.
    fn end_of(&self, time: Nanos) -> Nanos {
        time.saturating_add(self.period).saturating_add(1)
    }

    /// Drops the entries that no longer count at `now`.
    fn expire(&self, log: &mut Log, now: Nanos) {
        while let Some(&(time, total)) = log.entries.front() {
            if self.end_of(time) > now {
                break;
            }
            log.expired_total = total;
            log.entries.pop_front();
        }
        if log.entries.is_empty() {
            // Keeps the totals small; only their differences matter.
            log.expired_total = 0;
        }
    }

    /// When `needed` cost will have expired from `log` (which holds more than `needed`).
    fn time_until_expired(&self, log: &Log, needed: u64, now: Nanos) -> Nanos {
        let expired_total = log.expired_total;
        let index = log
            .entries
            .partition_point(|&(_, total)| total.wrapping_sub(expired_total) < needed);
        log.entries
            .get(index)
            .map_or(0, |&(time, _)| self.end_of(time).saturating_sub(now))
    }

    fn reset_after(&self, log: &Log, now: Nanos) -> Nanos {
        log.entries
            .back()
            .map_or(0, |&(time, _)| self.end_of(time).saturating_sub(now))
    }
}

impl Algorithm for MovingWindow {
    type State = Log;

    #[inline]
    fn decide(&self, log: &mut Log, cost: u64, now: Nanos, consume: bool) -> Decision {
        self.expire(log, now);
        let in_window = log.in_window();
        let mut decision = Decision {
            allowed: false,
            limit: self.limit,
            remaining: self.limit - in_window,
            retry_after: RetryAfter::Never,
            reset_after: self.reset_after(log, now),
        };
        if cost > self.limit {
            return decision;
        }
        if in_window + cost > self.limit {
            let needed = in_window + cost - self.limit;
            decision.retry_after = RetryAfter::After(self.time_until_expired(log, needed, now));
            return decision;
        }
        decision.allowed = true;
        decision.retry_after = RetryAfter::Allowed;
        decision.remaining -= cost;
        if cost == 0 {
            return decision;
        }
        let latest = log.entries.back().map_or(now, |&(time, _)| time.max(now));
        if consume {
            let total = log.total().wrapping_add(cost);
            match log.entries.back_mut() {
                Some(entry) if entry.0 == latest => entry.1 = total,
                _ => log.entries.push_back((latest, total)),
            }
        }
        decision.reset_after = self.end_of(latest).saturating_sub(now);
        decision
    }

    fn expires_at(&self, log: &Log) -> Nanos {
        log.entries.back().map_or(0, |&(time, _)| self.end_of(time))
    }

    fn lifetime(&self) -> Nanos {
        self.period.saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::Strategy;

    fn moving_window(limit: u64, period: Nanos) -> MovingWindow {
        MovingWindow::new(&Quota::new(Strategy::MovingWindow, limit, period, None).unwrap())
    }

    #[test]
    fn the_window_moves_with_each_hit() {
        let limiter = moving_window(3, 100);
        let mut log = Log::default();
        assert!(limiter.decide(&mut log, 1, 0, true).allowed);
        assert!(limiter.decide(&mut log, 2, 50, true).allowed);
        let refused = limiter.decide(&mut log, 1, 60, true);
        assert_eq!(
            refused,
            Decision {
                allowed: false,
                limit: 3,
                remaining: 0,
                retry_after: RetryAfter::After(41),
                reset_after: 91,
            }
        );
        // The window is closed, as in `limits`: the hit at 0 still counts at 100.
        assert!(!limiter.decide(&mut log, 1, 100, true).allowed);
        let allowed = limiter.decide(&mut log, 1, 101, true);
        assert_eq!(
            (allowed.allowed, allowed.remaining, allowed.reset_after),
            (true, 0, 101)
        );
        // A cost of 2 waits for both hits at 50.
        assert_eq!(
            limiter.decide(&mut log, 2, 120, true).retry_after,
            RetryAfter::After(31)
        );
        assert_eq!(
            limiter.decide(&mut log, 3, 120, true).retry_after,
            RetryAfter::After(82)
        );
    }

    #[test]
    fn hits_at_one_time_share_an_entry() {
        let limiter = moving_window(1_000, 100);
        let mut log = Log::default();
        for _ in 0..10 {
            assert!(limiter.decide(&mut log, 3, 7, true).allowed);
        }
        assert_eq!(log.entries.len(), 1);
        assert_eq!(log.in_window(), 30);
    }

    #[test]
    fn the_log_never_holds_more_than_limit_entries() {
        let limiter = moving_window(5, 1_000);
        let mut log = Log::default();
        for now in 0..10_000 {
            limiter.decide(&mut log, 1, now, true);
            assert!(log.entries.len() <= 5);
        }
    }

    #[test]
    fn refusals_tests_and_free_hits_count_nothing() {
        let limiter = moving_window(2, 100);
        let mut log = Log::default();
        assert!(limiter.decide(&mut log, 2, 0, false).allowed);
        assert!(limiter.decide(&mut log, 0, 0, true).allowed);
        assert_eq!(log, Log::default());
        assert!(limiter.decide(&mut log, 2, 0, true).allowed);
        let counted = log.clone();
        assert!(!limiter.decide(&mut log, 1, 1, true).allowed);
        assert!(!limiter.decide(&mut log, 3, 1, true).allowed);
        assert_eq!(log, counted);
    }

    #[test]
    fn a_clock_that_steps_back_logs_at_the_latest_time() {
        let limiter = moving_window(2, 100);
        let mut log = Log::default();
        assert!(limiter.decide(&mut log, 1, 1_000, true).allowed);
        assert!(limiter.decide(&mut log, 1, 500, true).allowed);
        assert_eq!(log.entries, [(1_000, 2)]);
        assert_eq!(limiter.expires_at(&log), 1_101);
    }
}
