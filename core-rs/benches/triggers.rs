//! Trigger matching: names against 1k and 10k registered patterns, and building the index.
//!
//! The patterns look like a real deployment's: mostly exact event names, some with `*` or a
//! trailing `#`, a few catch-alls. `cargo bench --bench triggers`.

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flowhost_core::triggers::{Syntax, TriggerIndex};

/// `count` patterns over `count / 10` domains: `domain.entity.action` names, one in eight with
/// `*`, one in sixteen ending in `#`.
fn patterns(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let domain = format!("domain{}", i % (count / 10).max(1));
            let entity = format!("entity{}", (i / 7) % 50);
            match i % 16 {
                0 => format!("{domain}.#"),
                1 | 9 => format!("{domain}.*.action{}", i % 5),
                2 => format!("{domain}.{entity}.*"),
                _ => format!("{domain}.{entity}.action{}", i % 5),
            }
        })
        .collect()
}

fn names(count: usize) -> Vec<String> {
    (0..1024)
        .map(|i| {
            format!(
                "domain{}.entity{}.action{}",
                (i * 7) % (count / 10).max(1),
                i % 50,
                i % 5
            )
        })
        .collect()
}

fn build(patterns: &[String]) -> TriggerIndex<usize> {
    let mut index = TriggerIndex::new(Syntax::Event);
    for (value, pattern) in patterns.iter().enumerate() {
        index.add(pattern, value).expect("valid pattern");
    }
    index
}

fn matching(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("trigger_match");
    group.throughput(Throughput::Elements(1));
    for count in [1_000, 10_000] {
        let index = build(&patterns(count));
        let names = names(count);
        let mut next = 0;
        group.bench_with_input(
            BenchmarkId::new("event", count),
            &index,
            |bencher, index| {
                bencher.iter(|| {
                    next = (next + 1) % names.len();
                    black_box(index.matches(black_box(&names[next])).expect("valid name"))
                });
            },
        );
    }
    let mut mqtt = TriggerIndex::new(Syntax::Mqtt);
    for (value, pattern) in patterns(10_000).iter().enumerate() {
        let topic = pattern.replace('.', "/").replace('*', "+");
        if mqtt.add(&topic, value).is_err() {
            unreachable!("{topic} is a valid topic filter");
        }
    }
    let topics: Vec<String> = names(10_000)
        .iter()
        .map(|name| name.replace('.', "/"))
        .collect();
    let mut next = 0;
    group.bench_function(BenchmarkId::new("mqtt", 10_000), |bencher| {
        bencher.iter(|| {
            next = (next + 1) % topics.len();
            black_box(mqtt.matches(black_box(&topics[next])).expect("valid topic"))
        });
    });
    group.finish();
}

fn building(criterion: &mut Criterion) {
    let patterns = patterns(10_000);
    let mut group = criterion.benchmark_group("trigger_build");
    group.throughput(Throughput::Elements(patterns.len() as u64));
    group.bench_function("event/10000", |bencher| {
        bencher.iter(|| black_box(build(black_box(&patterns))));
    });
    group.finish();
}

criterion_group!(benches, matching, building);
criterion_main!(benches);
