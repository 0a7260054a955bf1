//! Encoding a 1,000-event batch into a binary COPY stream (the JSON `data` prewritten as text:
//! the Python binding serialises it from Python objects, which the `event_append` bench scenario
//! measures end to end).

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use flowhost_core::event_log::{write_json_string, CopyEncoder, EventHead};
use std::hint::black_box;

fn encode(messages: &[String]) -> Vec<u8> {
    let mut encoder = CopyEncoder::with_capacity(messages.len() * 128);
    for (index, message) in messages.iter().enumerate() {
        let head = EventHead {
            run_id: u128::try_from(index).unwrap_or_default().to_be_bytes(),
            kind: "log",
            step: Some("charge"),
            attempt: Some(1),
        };
        encoder
            .row(&head)
            .and_then(|row| {
                row.data(|json| {
                    json.extend_from_slice(b"{\"level\":\"info\",\"message\":");
                    write_json_string(json, message)?;
                    json.push(b'}');
                    Ok(())
                })
            })
            .expect("valid event");
    }
    encoder.finish()
}

fn batch_of_1000(criterion: &mut Criterion) {
    let messages: Vec<String> = (0..1000)
        .map(|i| format!("charged order A-{i}\n"))
        .collect();
    let mut group = criterion.benchmark_group("event_log");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("encode_1000_events", |bench| {
        bench.iter_batched(
            || &messages,
            |messages| black_box(encode(messages)),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, batch_of_1000);
criterion_main!(benches);
