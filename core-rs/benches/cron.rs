//! Criterion benches of cron parsing and next/previous fire-time search.

// `criterion_group!` and `criterion_main!` generate functions that cannot carry doc comments.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use flowhost_core::cron::Schedule;
use std::hint::black_box;

const EXPRESSIONS: [&str; 6] = [
    "*/5 * * * *",
    "0 9 * * MON-FRI",
    "30 2 * * *",
    "0 0 L * *",
    "0 12 1,15 * 5#2",
    "0 0 29 2 *",
];
const ZONES: [&str; 3] = ["UTC", "America/New_York", "Australia/Lord_Howe"];
/// 2024-03-09T12:00:00Z, a day before New York's spring forward.
const START: i64 = 1_709_985_600;

fn parse(criterion: &mut Criterion) {
    criterion.bench_function("cron/parse", |bencher| {
        bencher.iter(|| {
            for expression in EXPRESSIONS {
                black_box(Schedule::new(black_box(expression), "UTC").unwrap());
            }
        });
    });
}

fn next_after(criterion: &mut Criterion) {
    for zone in ZONES {
        let schedules: Vec<Schedule> = EXPRESSIONS
            .iter()
            .map(|expression| Schedule::new(expression, zone).unwrap())
            .collect();
        criterion.bench_function(&format!("cron/next_after/{zone}"), |bencher| {
            bencher.iter(|| {
                for schedule in &schedules {
                    black_box(schedule.next_after(black_box(START)));
                }
            });
        });
        criterion.bench_function(&format!("cron/previous_before/{zone}"), |bencher| {
            bencher.iter(|| {
                for schedule in &schedules {
                    black_box(schedule.previous_before(black_box(START)));
                }
            });
        });
    }
}

criterion_group!(benches, parse, next_after);
criterion_main!(benches);
