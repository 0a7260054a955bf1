//! Fixed window, as the `limits` library's `FixedWindowRateLimiter` defines it over its
//! `MemoryStorage`: a counter per key, whose window opens at the key's first counted hit and lasts
//! one period (`[start, start + period)`); a hit is allowed while `count + cost <= limit`.
//!
//! Where this differs from `limits`, on purpose: a refused hit is not counted (`limits` adds every
//! hit's cost to the counter, refused or not, so a client that keeps retrying stays refused until
//! the window ends even if it only retries with cost 1 after a refused cost of 100).

use super::{Algorithm, Decision, Nanos, Quota, RetryAfter};

/// A fixed window limit: `limit` per `period` from the key's first hit.
#[derive(Debug, Clone, Copy)]
pub struct FixedWindow {
    limit: u64,
    period: Nanos,
}

/// A key's window: when it opened and the cost counted in it (0: no window open).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    start: Nanos,
    count: u64,
}

impl FixedWindow {
    /// The fixed window limit of `quota`.
    #[must_use]
    pub fn new(quota: &Quota) -> Self {
        Self {
            limit: quota.limit(),
            period: quota.period(),
        }
    }

    fn reset_after(&self, window: &Window, now: Nanos) -> Nanos {
        self.expires_at(window).saturating_sub(now)
    }
}

impl Algorithm for FixedWindow {
    type State = Window;

    #[inline]
    fn decide(&self, window: &mut Window, cost: u64, now: Nanos, consume: bool) -> Decision {
        if window.count > 0 && now >= window.start.saturating_add(self.period) {
            *window = Window::default();
        }
        let mut decision = Decision {
            allowed: false,
            limit: self.limit,
            remaining: self.limit - window.count,
            retry_after: RetryAfter::Never,
            reset_after: self.reset_after(window, now),
        };
        if cost > self.limit {
            return decision;
        }
        if window.count + cost > self.limit {
            // Only an open window (count > 0) can refuse a cost within the limit; it admits the
            // cost once it ends.
            decision.retry_after = RetryAfter::After(decision.reset_after);
            return decision;
        }
        decision.allowed = true;
        decision.retry_after = RetryAfter::Allowed;
        decision.remaining -= cost;
        if consume && cost > 0 {
            if window.count == 0 {
                window.start = now;
            }
            window.count += cost;
            decision.reset_after = self.reset_after(window, now);
        } else if window.count == 0 && cost > 0 {
            // What the hit would have left: a window opening now.
            decision.reset_after = self.period;
        }
        decision
    }

    fn expires_at(&self, window: &Window) -> Nanos {
        if window.count == 0 {
            0
        } else {
            window.start.saturating_add(self.period)
        }
    }

    fn lifetime(&self) -> Nanos {
        self.period
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::Strategy;

    fn fixed_window(limit: u64, period: Nanos) -> FixedWindow {
        FixedWindow::new(&Quota::new(Strategy::FixedWindow, limit, period, None).unwrap())
    }

    #[test]
    fn the_window_opens_at_the_first_hit_and_lasts_a_period() {
        let limiter = fixed_window(3, 100);
        let mut window = Window::default();
        // A cost of 0 opens no window.
        assert!(limiter.decide(&mut window, 0, 5, true).allowed);
        assert_eq!(window, Window::default());
        let first = limiter.decide(&mut window, 2, 10, true);
        assert_eq!(
            first,
            Decision {
                allowed: true,
                limit: 3,
                remaining: 1,
                retry_after: RetryAfter::Allowed,
                reset_after: 100
            }
        );
        assert!(limiter.decide(&mut window, 1, 60, true).allowed);
        let refused = limiter.decide(&mut window, 1, 109, true);
        assert_eq!(
            refused,
            Decision {
                allowed: false,
                limit: 3,
                remaining: 0,
                retry_after: RetryAfter::After(1),
                reset_after: 1
            }
        );
        // The window is [10, 110): at 110 a new one opens.
        let next = limiter.decide(&mut window, 3, 110, true);
        assert!(next.allowed);
        assert_eq!((next.remaining, next.reset_after), (0, 100));
        assert_eq!(limiter.expires_at(&window), 210);
    }

    #[test]
    fn a_refused_hit_is_not_counted() {
        let limiter = fixed_window(3, 100);
        let mut window = Window::default();
        assert!(limiter.decide(&mut window, 2, 0, true).allowed);
        assert!(!limiter.decide(&mut window, 2, 1, true).allowed);
        assert!(limiter.decide(&mut window, 1, 2, true).allowed);
    }

    #[test]
    fn a_cost_above_the_limit_never_conforms() {
        let limiter = fixed_window(3, 100);
        let mut window = Window::default();
        let decision = limiter.decide(&mut window, 4, 0, true);
        assert_eq!(
            decision,
            Decision {
                allowed: false,
                limit: 3,
                remaining: 3,
                retry_after: RetryAfter::Never,
                reset_after: 0
            }
        );
        assert_eq!(window, Window::default());
    }

    #[test]
    fn a_test_counts_nothing_but_reports_what_a_hit_would() {
        let limiter = fixed_window(3, 100);
        let mut window = Window::default();
        let tested = limiter.decide(&mut window, 1, 0, false);
        assert_eq!(
            (tested.allowed, tested.remaining, tested.reset_after),
            (true, 2, 100)
        );
        assert_eq!(window, Window::default());
    }

    #[test]
    fn a_clock_that_steps_back_stays_in_the_open_window() {
        let limiter = fixed_window(1, 100);
        let mut window = Window::default();
        assert!(limiter.decide(&mut window, 1, 1_000, true).allowed);
        let refused = limiter.decide(&mut window, 1, 900, true);
        assert_eq!(refused.retry_after, RetryAfter::After(200));
    }
}
