//! decode → classify → redact → row, per message kind, through the real handler (its sink keeps
//! nothing), next to two floors: `serde_json` parsing the same push body alone (the event inside
//! is one base64 string to it), and the least any handler must do with those bytes: parse the
//! push, decode the base64 data and parse the event as a `serde_json::Value`.
//! Run with `cargo bench -p transcript-pipeline --bench pipeline` (or `scripts/bench.sh`).

// The services' allocator, so that what is measured is what they run.
pipeline::use_mimalloc!();

#[path = "corpus.rs"]
mod corpus;

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::HeaderMap;
use pipeline::config::Rules;
use pipeline::decode::{PushEnvelope, PushMessage};
use pipeline::handler::{Destination, Handler};
use pipeline::outcome::Outcome;
use pipeline::testing::Discard;

fn pipeline(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    for case in corpus::cases() {
        let body = PushEnvelope::new("1", &case.data)
            .attributes(&case.attributes)
            .publish_time("2026-11-28T00:00:00Z")
            .subscription("projects/p/subscriptions/s")
            .to_bytes();
        let handler = Handler::new(
            case.service,
            Rules::default(),
            Destination::Rows(Arc::new(Discard)),
        )
        .expect("a BigQuery handler");
        let headers = HeaderMap::new();
        let mut group = c.benchmark_group(case.name);
        group.throughput(Throughput::Bytes(body.len() as u64));
        if body.len() > 1_000_000 {
            group.sample_size(20);
        }
        group.bench_function("serde_json_floor", |b| {
            b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&body)).map(drop))
        });
        group.bench_function("event_floor", |b| {
            b.iter(|| {
                let push: serde_json::Value =
                    serde_json::from_slice(black_box(&body)).expect("a push");
                let data = push["message"]["data"].as_str().expect("data");
                let event = base64_simd::STANDARD
                    .decode_to_vec(data.as_bytes())
                    .expect("base64");
                serde_json::from_slice::<serde_json::Value>(&event).map(drop)
            })
        });
        group.bench_function("handler", |b| {
            b.iter(|| {
                let message = PushMessage::decode(&headers, black_box(&body)).expect("a push");
                let report = runtime.block_on(handler.handle(&message));
                assert!(matches!(report.result, Ok(Outcome::Written { .. })));
            })
        });
        group.finish();
    }
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
