//! Readiness of one run after a step completes: `ready_steps` and `step_progress` on a fan-out /
//! fan-in flow of 10 and 100 branches. `cargo bench --bench readiness`.

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::collections::{HashMap, HashSet};
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use flowhost_core::readiness::{ready_steps, step_progress, FlowStep, StepStatus};

/// `start` emits `go.i` for every branch `i`; branch `i` emits `done.i`; `join` waits for all.
struct FanFlow {
    names: Vec<String>,
    subscribes: Vec<Vec<String>>,
    emits: Vec<Vec<String>>,
}

impl FanFlow {
    fn new(branches: usize) -> Self {
        let mut flow = Self {
            names: vec!["start".to_owned()],
            subscribes: vec![vec![]],
            emits: vec![(0..branches).map(|i| format!("go.{i}")).collect()],
        };
        for i in 0..branches {
            flow.names.push(format!("branch{i}"));
            flow.subscribes.push(vec![format!("go.{i}")]);
            flow.emits.push(vec![format!("done.{i}")]);
        }
        flow.names.push("join".to_owned());
        flow.subscribes
            .push((0..branches).map(|i| format!("done.{i}")).collect());
        flow.emits.push(vec![]);
        flow
    }

    fn steps(&self) -> Vec<FlowStep<'_, String>> {
        (0..self.names.len())
            .map(|i| FlowStep {
                name: &self.names[i],
                subscribes: &self.subscribes[i],
                emits: &self.emits[i],
            })
            .collect()
    }
}

fn readiness(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("readiness");
    for branches in [10, 100] {
        let flow = FanFlow::new(branches);
        let steps = flow.steps();
        // Mid-run: every branch scheduled, half completed, the other half running.
        let emitted: HashSet<String> = (0..branches)
            .map(|i| format!("go.{i}"))
            .chain((0..branches / 2).map(|i| format!("done.{i}")))
            .collect();
        let statuses: HashMap<String, StepStatus> =
            std::iter::once(("start".to_owned(), StepStatus::Completed))
                .chain((0..branches).map(|i| {
                    let status = if i < branches / 2 {
                        StepStatus::Completed
                    } else {
                        StepStatus::Running
                    };
                    (format!("branch{i}"), status)
                }))
                .collect();
        let scheduled: HashSet<String> = statuses.keys().cloned().collect();
        let subscriptions: Vec<(&String, &Vec<String>)> =
            flow.names.iter().zip(&flow.subscribes).collect();
        group.bench_function(BenchmarkId::new("step_progress", branches), |bencher| {
            bencher.iter(|| black_box(step_progress(black_box(&steps), &emitted, &statuses)));
        });
        group.bench_function(BenchmarkId::new("ready_steps", branches), |bencher| {
            bencher.iter(|| {
                black_box(ready_steps(
                    black_box(subscriptions.iter().copied()),
                    &emitted,
                    &scheduled,
                ))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, readiness);
criterion_main!(benches);
