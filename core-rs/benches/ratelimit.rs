//! Rate-limit decisions in pure Rust, per strategy: `cargo bench --bench ratelimit`.
//!
//! 1,000 keys hit round-robin, as in the Python scenario `bench/scenarios/ratelimit.py`, 1 µs
//! apart, so each key sees 10 hits per 10 ms; with a quota of 1,000 per 10 ms that admits every hit
//! (the common case), and with 1 per 10 ms that refuses most. Time moves on between passes, so
//! windows roll and expired keys are swept as they would be in a process that runs for long.

// `criterion_group!` defines a public function without a doc comment.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flowhost_core::ratelimit::{RateLimiter, Strategy};

const KEYS: usize = 1_000;
const HITS: u64 = 10_000;
const SECOND: u64 = 1_000_000_000;
const PERIOD: u64 = 10_000_000;

fn keys() -> Vec<String> {
    (0..KEYS).map(|key| format!("user:{key}")).collect()
}

/// One pass of `HITS` decisions over the keys, 1 µs apart, starting at `start`.
fn pass(limiter: &RateLimiter, keys: &[String], start: u64, consume: bool) -> usize {
    let mut allowed = 0;
    for (hit, key) in (0..HITS).zip(keys.iter().cycle()) {
        let now = start + hit * 1_000;
        let decision = if consume {
            limiter.hit(key, 1, now).allowed
        } else {
            limiter.test(key, 1, now)
        };
        allowed += usize::from(decision);
    }
    allowed
}

fn decisions(criterion: &mut Criterion) {
    let keys = keys();
    let mut group = criterion.benchmark_group("ratelimit");
    group.throughput(Throughput::Elements(HITS));
    for (quota, limit) in [("allowing", 1_000), ("refusing", 1)] {
        for strategy in Strategy::ALL {
            let limiter = RateLimiter::new(strategy, limit, PERIOD, None).unwrap();
            let mut start = 1_700_000_000 * SECOND;
            group.bench_function(
                BenchmarkId::new(format!("hit/{quota}"), strategy),
                |bench| {
                    bench.iter(|| {
                        // Keeps time moving so the windows stay in their steady state.
                        start += HITS * 1_000;
                        black_box(pass(&limiter, &keys, start, true))
                    });
                },
            );
            group.bench_function(
                BenchmarkId::new(format!("test/{quota}"), strategy),
                |bench| {
                    bench.iter(|| black_box(pass(&limiter, &keys, start, false)));
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
