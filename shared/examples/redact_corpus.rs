//! The whole-process side of the redaction comparison with the seed's JavaScript UDF
//! (`shared/benches/udf.js`): both read the same corpus files and process each message `N`
//! times; this one through the pipeline's redaction path (parse the payload, classify, redact,
//! build and encode the row), which does more than the UDF does.
//!
//! `redact_corpus --write DIR` writes the corpus (one file per kind: the message data);
//! `redact_corpus DIR` processes it and prints one JSON line per kind.

// The services' allocator, so that what is measured is what they run.
pipeline::use_mimalloc!();

#[path = "../benches/corpus.rs"]
mod corpus;

use std::time::Instant;

use chrono::Utc;
use pipeline::classify::Classification;
use pipeline::config::Rules;
use pipeline::decode::PushMessage;
use pipeline::event::TelemetryPayload;
use pipeline::row::{EventRow, RowForm, RowSource, insert_id};

/// How many times each kind is processed: about 200 MB of data per kind.
fn iterations(bytes: usize) -> usize {
    (200_000_000 / bytes).clamp(20, 200_000)
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag, dir] if flag == "--write" => write(dir),
        [dir] => run(dir),
        _ => Err("usage: redact_corpus [--write] DIR".into()),
    }
}

fn write(dir: &str) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    for case in corpus::cases() {
        let path = format!("{dir}/{}.json", case.name);
        std::fs::write(&path, &case.data).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}

fn run(dir: &str) -> Result<(), String> {
    let rules = Rules::default();
    for case in corpus::cases() {
        let path = format!("{dir}/{}.json", case.name);
        let data = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
        let message = PushMessage::decode(
            &Default::default(),
            &pipeline::decode::PushEnvelope::new("1", &data)
                .attributes(&case.attributes)
                .to_bytes(),
        )
        .map_err(|e| e.to_string())?;
        let n = iterations(data.len());
        let started = Instant::now();
        let mut encoded = 0usize;
        for _ in 0..n {
            encoded += redact(&message, &rules, case.service.name())?;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{{\"kind\":\"{}\",\"bytes\":{},\"events\":{n},\"seconds\":{secs:.3},\"events_per_s\":{:.0},\"mb_per_s\":{:.1},\"out_bytes\":{encoded}}}",
            case.name,
            data.len(),
            n as f64 / secs,
            (n * data.len()) as f64 / secs / 1e6
        );
    }
    Ok(())
}

/// Parse, classify, redact, build and encode the row; the encoded length.
fn redact(message: &PushMessage, rules: &Rules, handler: &'static str) -> Result<usize, String> {
    let payload = TelemetryPayload::parse(message.data.bytes()).map_err(|e| e.to_string())?;
    let classification = Classification::of(
        &payload.event,
        &payload.metadata,
        &message.attributes,
        &rules.dotcom,
    );
    let redacted = rules
        .redactor
        .redact_private(payload.event.parameters.private_metadata.as_ref());
    let source = RowSource {
        message,
        payload: &payload,
        classification: &classification,
        handler,
    };
    let row = EventRow::build(source, redacted, Utc::now());
    let prepared = row
        .encode(insert_id(&payload.event.id), RowForm::Json)
        .map_err(|e| e.to_string())?;
    Ok(prepared.encoded_len())
}
