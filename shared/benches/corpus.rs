//! The benchmark corpus: one message per kind, built from the repository's samples, the same for
//! the criterion benches, the whole-process redaction run and the Node UDF baseline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pipeline::config::Service;
use serde_json::{Value, json};

/// One kind of message and the service that writes it.
pub struct Case {
    pub name: &'static str,
    pub service: Service,
    pub attributes: BTreeMap<String, String>,
    /// `message.data`, compact JSON.
    pub data: Vec<u8>,
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn sample(name: &str) -> (BTreeMap<String, String>, Value) {
    let path = repo_root().join("samples").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let v: Value = serde_json::from_str(&text).expect("a sample is JSON");
    let attributes = serde_json::from_value(v["attributes"].clone()).expect("attributes");
    (attributes, v["data"].clone())
}

/// A transcript of about `bytes` bytes: prompt and response text split the padding.
fn transcript(bytes: usize) -> (BTreeMap<String, String>, Value) {
    let (attributes, mut data) = sample("dotcom-chat-prompt-transcript.json");
    let text = "Why does parseConfig return nil when the file is empty? ".repeat(bytes / 112 + 1);
    let private = &mut data["event"]["parameters"]["privateMetadata"];
    private["promptText"] = json!(text);
    private["responseText"] = json!(text);
    (attributes, data)
}

/// plain (~1 KB, `sub-v2` writes it), transcript (~4 KB), 64 KB and 3 MB transcripts (`to-bq`).
pub fn cases() -> Vec<Case> {
    let (plain_attributes, mut plain) = sample("licensed-search-viewed.json");
    let metadata = &mut plain["event"]["parameters"]["metadata"];
    for i in 0..12 {
        metadata[format!("resultCount{i}")] = json!(i * 1000 + 7);
    }
    let mut out = vec![Case {
        name: "plain_1k",
        service: Service::SubV2,
        attributes: plain_attributes,
        data: serde_json::to_vec(&plain).expect("JSON"),
    }];
    for (name, bytes) in [
        ("transcript_4k", 4 * 1024),
        ("transcript_64k", 64 * 1024),
        ("transcript_3m", 3 * 1024 * 1024),
    ] {
        let (attributes, data) = transcript(bytes);
        out.push(Case {
            name,
            service: Service::ToBq,
            attributes,
            data: serde_json::to_vec(&data).expect("JSON"),
        });
    }
    out
}
