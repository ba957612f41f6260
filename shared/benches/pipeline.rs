//! decode → classify → redact → row, per message kind, through the real handler (its sink keeps
//! nothing), next to two floors: `serde_json` parsing the same push body alone (the event inside
//! is one base64 string to it), and the least any handler must do with those bytes: parse the
//! push, decode the base64 data and parse the event as a `serde_json::Value`.
//!
//! And the two write methods' share of the work, per push: the handler with its sink taking rows
//! as JSON text (`insertAll`, "handler") or recorded (the Storage Write API, "handler_tokens"),
//! and a group-commit batch of [`BATCH`] such rows made into one request: `insertAll`'s body
//! ("batch_insert_all") or one Arrow IPC record batch ("batch_arrow").
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
use pipeline::google::bigquery::{InsertRow, insert_all_body};
use pipeline::handler::{Destination, Handler};
use pipeline::outcome::Outcome;
use pipeline::row::arrow::ArrowRows;
use pipeline::row::{PreparedRow, RowForm};
use pipeline::sink::memory::MemoryRows;
use pipeline::testing::Discard;

/// Rows per group-commit batch: about what the services send per call at 64 connections
/// (BENCHMARKS.md, "Load").
const BATCH: usize = 22;

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
        let handler = |sink: Arc<dyn pipeline::sink::RowSink>| {
            Handler::new(case.service, Rules::default(), Destination::Rows(sink))
                .expect("a BigQuery handler")
        };
        let headers = HeaderMap::new();
        let message = PushMessage::decode(&headers, &body).expect("a push");
        let batch = |form: RowForm| -> Vec<PreparedRow> {
            let table = Arc::new(MemoryRows::in_form(form));
            let handler = handler(table.clone());
            for _ in 0..BATCH {
                runtime.block_on(handler.handle(&message));
            }
            table.rows()
        };
        let (json_rows, token_rows) = (batch(RowForm::Json), batch(RowForm::Tokens));
        assert_eq!((json_rows.len(), token_rows.len()), (BATCH, BATCH));
        let arrow = ArrowRows::event_telemetry().expect("the Arrow schema");
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
        for (name, form) in [
            ("handler", RowForm::Json),
            ("handler_tokens", RowForm::Tokens),
        ] {
            let handler = handler(Arc::new(Discard { form }));
            group.bench_function(name, |b| {
                b.iter(|| {
                    let message = PushMessage::decode(&headers, black_box(&body)).expect("a push");
                    let report = runtime.block_on(handler.handle(&message));
                    assert!(matches!(report.result, Ok(Outcome::Written { .. })));
                })
            });
        }
        group.bench_function("batch_insert_all", |b| {
            b.iter(|| {
                let texts: Vec<_> = json_rows.iter().map(PreparedRow::json).collect();
                let rows: Vec<InsertRow<'_>> = json_rows
                    .iter()
                    .zip(&texts)
                    .map(|(row, json)| row.insert_row(json))
                    .collect();
                insert_all_body(black_box(&rows))
            })
        });
        group.bench_function("batch_arrow", |b| {
            b.iter(|| {
                arrow
                    .encode(black_box(&token_rows))
                    .expect("a record batch")
            })
        });
        group.finish();
    }
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
