//! Property tests: the invariants every strategy keeps, on random quotas and hit sequences.

use std::collections::HashMap;
use std::fmt::Debug;

use proptest::prelude::*;
// The trait, unnamed: `Strategy` here is the rate limiting strategy.
use proptest::strategy::Strategy as _;

use super::fixed_window::FixedWindow;
use super::gcra::Gcra;
use super::moving_window::MovingWindow;
use super::sliding_window_counter::SlidingWindowCounter;
use super::{Algorithm, Decision, Nanos, Quota, RateLimiter, RetryAfter, Strategy};

/// One call: which of a few keys, its cost, how long after the previous call, and whether it is a
/// hit (else a test).
#[derive(Debug, Clone, Copy)]
struct Call {
    key: u8,
    cost: u64,
    after: Nanos,
    consume: bool,
}

/// Small numbers, so that limits are reached and window boundaries are hit exactly.
fn quota(strategy: Strategy) -> impl proptest::strategy::Strategy<Value = Quota> {
    let burst = if strategy == Strategy::Gcra {
        prop::option::of(0..5_u64).boxed()
    } else {
        Just(None).boxed()
    };
    (1..6_u64, 1..200_u64, burst)
        .prop_map(move |(limit, period, burst)| Quota::new(strategy, limit, period, burst).unwrap())
}

fn calls(max_cost: u64, max_gap: Nanos) -> impl proptest::strategy::Strategy<Value = Vec<Call>> {
    let call = (
        0..3_u8,
        prop_oneof![3 => Just(1_u64), 1 => 0..=max_cost],
        prop_oneof![2 => Just(0), 3 => 0..=max_gap],
        prop::bool::weighted(0.8),
    )
        .prop_map(|(key, cost, after, consume)| Call {
            key,
            cost,
            after,
            consume,
        });
    prop::collection::vec(call, 1..120)
}

/// The largest total cost admitted in any window `[t, t + length)` (`closed`: `[t, t + length]`).
fn most_in_any_window(admitted: &[(Nanos, u64)], length: Nanos, closed: bool) -> u64 {
    admitted
        .iter()
        .map(|&(start, _)| {
            admitted
                .iter()
                .filter(|&&(time, _)| {
                    time >= start && (time - start < length || closed && time - start == length)
                })
                .map(|&(_, cost)| cost)
                .sum()
        })
        .max()
        .unwrap_or(0)
}

/// Decides on a copy of `state`.
fn decide_copy<A: Algorithm>(algorithm: &A, state: &A::State, cost: u64, now: Nanos) -> Decision
where
    A::State: Clone,
{
    algorithm.decide(&mut state.clone(), cost, now, false)
}

/// Runs `calls` on `algorithm` at increasing times, checking each decision, and returns the hits
/// admitted per key.
fn run_checked<A: Algorithm>(algorithm: &A, limit: u64, calls: &[Call]) -> Vec<Vec<(Nanos, u64)>>
where
    A::State: Clone + PartialEq + Debug,
{
    let mut states: Vec<A::State> = (0..3).map(|_| A::State::default()).collect();
    let mut admitted = vec![Vec::new(); 3];
    let mut now: Nanos = 1_000_000;
    for call in calls {
        now += call.after;
        let state = &mut states[usize::from(call.key)];
        let before = state.clone();
        let mut tested = before.clone();
        let test = algorithm.decide(&mut tested, call.cost, now, false);
        let decision = algorithm.decide(state, call.cost, now, call.consume);
        // A test reports exactly what the hit decides, and counts nothing.
        assert_eq!(test, decision);
        if !decision.allowed || !call.consume || call.cost == 0 {
            // A refusal, a test or a free hit counts nothing.
            assert_eq!(*state, tested, "{call:?}");
        }
        assert_eq!(decision.limit, limit);
        assert!(decision.remaining <= limit, "{decision:?}");
        match decision.retry_after {
            RetryAfter::Allowed => assert!(decision.allowed),
            RetryAfter::Never => assert!(!decision.allowed && call.cost > limit),
            RetryAfter::After(wait) => {
                assert!(!decision.allowed && call.cost <= limit && wait > 0);
                // Waiting `retry_after` suffices, and is the least wait that does.
                assert!(decide_copy(algorithm, &before, call.cost, now + wait).allowed);
                assert!(!decide_copy(algorithm, &before, call.cost, now + wait - 1).allowed);
            }
        }
        // `reset_after` is the time until the key is back to full capacity, as the hit leaves it
        // (a test reports what the hit would leave).
        let mut after_hit = before.clone();
        algorithm.decide(&mut after_hit, call.cost, now, true);
        let at_reset = decide_copy(algorithm, &after_hit, 0, now + decision.reset_after);
        assert_eq!(at_reset.remaining, limit, "{decision:?}");
        if decision.reset_after > 0 {
            let before_reset =
                decide_copy(algorithm, &after_hit, 0, now + decision.reset_after - 1);
            assert!(before_reset.remaining < limit, "{decision:?}");
        }
        // An expired state decides as a fresh key's.
        let expired = algorithm.expires_at(state).max(now);
        assert_eq!(
            decide_copy(algorithm, state, call.cost, expired),
            decide_copy(algorithm, &A::State::default(), call.cost, expired)
        );
        if decision.allowed && call.consume && call.cost > 0 {
            admitted[usize::from(call.key)].push((now, call.cost));
        }
    }
    admitted
}

/// Runs `calls` with the clock jumping back and forth: no panic, and the basic facts hold.
fn run_unordered<A: Algorithm>(algorithm: &A, limit: u64, calls: &[Call])
where
    A::State: Clone + PartialEq + Debug,
{
    let mut states: Vec<A::State> = (0..3).map(|_| A::State::default()).collect();
    for call in calls {
        // `after` as an absolute time, anywhere from the epoch to the largest time accepted.
        let now = call.after.wrapping_mul(0x9E37_79B9_7F4A_7C15) % (super::MAX_NANOS + 1);
        let state = &mut states[usize::from(call.key)];
        let decision = algorithm.decide(state, call.cost, now, call.consume);
        assert!(decision.remaining <= limit);
        assert_eq!(
            decision.allowed,
            decision.retry_after == RetryAfter::Allowed
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn gcra_admits_at_most_limit_plus_burst_per_period(
        (quota, calls) in quota(Strategy::Gcra).prop_flat_map(|quota| {
            (Just(quota), calls(quota.burst().unwrap() + 2, quota.period() * 2))
        })
    ) {
        let algorithm = Gcra::new(&quota);
        let capacity = quota.burst().unwrap() + 1;
        for admitted in run_checked(&algorithm, capacity, &calls) {
            let most = most_in_any_window(&admitted, quota.period(), false);
            prop_assert!(most <= quota.limit() + quota.burst().unwrap(), "{most} in {admitted:?}");
        }
    }

    #[test]
    fn a_fixed_window_admits_at_most_twice_limit_per_period(
        (quota, calls) in quota(Strategy::FixedWindow).prop_flat_map(|quota| {
            (Just(quota), calls(quota.limit() + 2, quota.period() * 2))
        })
    ) {
        let algorithm = FixedWindow::new(&quota);
        for admitted in run_checked(&algorithm, quota.limit(), &calls) {
            // Each window admits at most `limit`; a period can overlap two windows.
            let most = most_in_any_window(&admitted, quota.period(), false);
            prop_assert!(most <= 2 * quota.limit(), "{most} in {admitted:?}");
            // Each window, opened by the first hit after the previous one ended, admits at most
            // `limit`.
            let mut window: Option<(Nanos, u64)> = None;
            for &(time, cost) in &admitted {
                let (start, count) = match window {
                    Some((start, count)) if time < start + quota.period() => (start, count + cost),
                    _ => (time, cost),
                };
                prop_assert!(count <= quota.limit(), "{count} in {admitted:?}");
                window = Some((start, count));
            }
        }
    }

    #[test]
    fn a_moving_window_admits_at_most_limit_per_period(
        (quota, calls) in quota(Strategy::MovingWindow).prop_flat_map(|quota| {
            (Just(quota), calls(quota.limit() + 2, quota.period() * 2))
        })
    ) {
        let algorithm = MovingWindow::new(&quota);
        for admitted in run_checked(&algorithm, quota.limit(), &calls) {
            let most = most_in_any_window(&admitted, quota.period(), true);
            prop_assert!(most <= quota.limit(), "{most} in {admitted:?}");
        }
    }

    #[test]
    fn a_sliding_window_counter_admits_at_most_twice_limit_per_period(
        (quota, calls) in quota(Strategy::SlidingWindowCounter).prop_flat_map(|quota| {
            (Just(quota), calls(quota.limit() + 2, quota.period() * 2))
        })
    ) {
        let algorithm = SlidingWindowCounter::new(&quota);
        for admitted in run_checked(&algorithm, quota.limit(), &calls) {
            let most = most_in_any_window(&admitted, quota.period(), false);
            prop_assert!(most <= 2 * quota.limit(), "{most} in {admitted:?}");
            // Within one clock-aligned bucket, at most `limit`.
            let mut per_bucket: HashMap<Nanos, u64> = HashMap::new();
            for (time, cost) in &admitted {
                *per_bucket.entry(time / quota.period()).or_default() += cost;
            }
            prop_assert!(per_bucket.values().all(|&cost| cost <= quota.limit()));
        }
    }

    #[test]
    fn any_clock_and_any_cost_decide_without_panicking(
        strategy in prop::sample::select(Strategy::ALL.to_vec()),
        limit in prop_oneof![1..6_u64, Just(super::MAX_LIMIT)],
        period in prop_oneof![1..200_u64, Just(super::MAX_NANOS)],
        burst in prop::option::of(prop_oneof![0..5_u64, Just(super::MAX_LIMIT)]),
        calls in calls(u64::MAX, u64::MAX),
    ) {
        let burst = burst.filter(|_| strategy == Strategy::Gcra);
        let quota = Quota::new(strategy, limit, period, burst).unwrap();
        match strategy {
            Strategy::Gcra => {
                run_unordered(&Gcra::new(&quota), quota.burst().unwrap() + 1, &calls);
            }
            Strategy::FixedWindow => run_unordered(&FixedWindow::new(&quota), limit, &calls),
            Strategy::MovingWindow => run_unordered(&MovingWindow::new(&quota), limit, &calls),
            Strategy::SlidingWindowCounter => {
                run_unordered(&SlidingWindowCounter::new(&quota), limit, &calls);
            }
        }
    }

    #[test]
    fn dropping_expired_keys_never_changes_a_decision(
        strategy in prop::sample::select(Strategy::ALL.to_vec()),
        calls in calls(4, 150),
        keys in 1..300_usize,
    ) {
        // Many keys, so that shards sweep, decided by the limiter and by states that are never
        // dropped.
        let limiter = RateLimiter::new(strategy, 3, 100, None).unwrap();
        let reference = RateLimiter::new(strategy, 3, 100, None).unwrap();
        let mut now = 0;
        for (index, call) in calls.iter().enumerate() {
            now += call.after;
            for key in 0..keys {
                let key = format!("{key}:{}", call.key);
                let expected = reference.decide_without_sweeping(&key, call.cost, now, call.consume);
                let decision = if call.consume {
                    limiter.hit(&key, call.cost, now)
                } else {
                    let allowed = limiter.test(&key, call.cost, now);
                    prop_assert_eq!(allowed, expected.allowed);
                    continue;
                };
                prop_assert_eq!(decision, expected, "call {}", index);
            }
        }
    }
}
