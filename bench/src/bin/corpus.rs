//! `corpus SAMPLES_DIR OUT_DIR`: writes the push bodies of the load benchmark, wrapped Pub/Sub
//! push envelopes built from the repo's `samples/`:
//! - `plain.json`: `licensed-search-viewed.json`, a plain event (~1 KB) that `sub-v2` writes;
//! - `transcript.json`: `dotcom-chat-prompt-transcript.json` with `promptText` padded to ~4 KB,
//!   a transcript that `to-bq` writes;
//! - `skip.json`: the same transcript, for `sub-v2`, which skips it (`not_for_this_subscription`).
//!
//! Prints one line per file: `kind bytes path`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use pipeline::decode::PushEnvelope;
use serde_json::Value;

/// `promptText` of the transcript body is padded to at least this many bytes (~4 KB once its
/// newlines and tabs are JSON-escaped; the envelope stays under 8 KB).
const PROMPT_BYTES: usize = 3600;

fn read_sample(dir: &Path, name: &str) -> Result<(BTreeMap<String, String>, Value), String> {
    let path = dir.join(name);
    let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let sample: Value =
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let attributes = sample["attributes"]
        .as_object()
        .ok_or_else(|| format!("{}: no attributes", path.display()))?
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    Ok((attributes, sample["data"].clone()))
}

/// A question followed by as much Go source as it takes to reach `bytes`.
fn long_prompt(question: &str, bytes: usize) -> String {
    let mut prompt = format!("{question}\n\nHere is the code:\n\n```go\n");
    let mut n = 0;
    while prompt.len() < bytes {
        n += 1;
        prompt.push_str(&format!(
            "func parseConfig{n}(path string) (*Config, error) {{\n\tdata, err := os.ReadFile(path)\n\
             \tif err != nil || len(data) == 0 {{\n\t\treturn nil, err\n\t}}\n\treturn decode(data)\n}}\n\n"
        ));
    }
    prompt.push_str("```\n");
    prompt
}

fn envelope(attributes: &BTreeMap<String, String>, data: &Value) -> Vec<u8> {
    let data = serde_json::to_vec(data).expect("a JSON value serialises");
    PushEnvelope::new("1", &data)
        .attributes(attributes)
        .publish_time("2026-11-28T00:00:00Z")
        .subscription("projects/p/subscriptions/s")
        .to_bytes()
}

fn run(samples: &Path, out: &Path) -> Result<(), String> {
    let (plain_attributes, plain_data) = read_sample(samples, "licensed-search-viewed.json")?;
    let (transcript_attributes, mut transcript_data) =
        read_sample(samples, "dotcom-chat-prompt-transcript.json")?;
    let prompt = &mut transcript_data["event"]["parameters"]["privateMetadata"]["promptText"];
    let question = prompt.as_str().unwrap_or("Why?").to_string();
    *prompt = Value::String(long_prompt(&question, PROMPT_BYTES));

    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let transcript = envelope(&transcript_attributes, &transcript_data);
    let bodies = [
        ("plain", envelope(&plain_attributes, &plain_data)),
        ("skip", transcript.clone()),
        ("transcript", transcript),
    ];
    for (kind, body) in bodies {
        let path: PathBuf = out.join(format!("{kind}.json"));
        std::fs::write(&path, &body).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("{kind} {} {}", body.len(), path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [samples, out] = args.as_slice() else {
        eprintln!("usage: corpus SAMPLES_DIR OUT_DIR");
        return ExitCode::from(2);
    };
    match run(Path::new(samples), Path::new(out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corpus: {e}");
            ExitCode::FAILURE
        }
    }
}
