//! Events to publish: the hand-written samples in `samples/` (each with its expected outcome), and
//! generated events covering every combination of the transcript rules, attribute styles and
//! redaction-key placements, each carrying unique marker strings where transcript text would be.
//!
//! The expectations are derived from how an event was *built* (flag chosen, identity chosen,
//! private text chosen), never by calling the classifier under test.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::emulators::repo_root;

/// One message to publish and what must become of it.
#[derive(Debug, Clone)]
pub struct Message {
    pub name: String,
    pub event_id: String,
    pub attributes: BTreeMap<String, String>,
    /// The exact bytes to publish.
    pub data: Vec<u8>,
    /// Stored in the transcript bucket.
    pub to_gcs: bool,
    /// `to-bq` or `sub-v2`.
    pub bq_handler: &'static str,
    pub transcript: bool,
    /// Strings planted in redacted keys: must never appear in BigQuery, logs or responses.
    pub secrets: Vec<String>,
}

/// Compact JSON as Go's `encoding/json` writes it: `<`, `>`, `&` escaped as `\u003c` etc.
/// (Those characters can only occur inside JSON strings, so replacing them is safe.)
pub fn go_json(v: &Value) -> Vec<u8> {
    serde_json::to_string(v)
        .expect("a Value serialises")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .into_bytes()
}

/// Values of `promptText` / `responseText` (any case, any depth) in a JSON value.
fn transcript_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let lk = k.to_lowercase();
                if lk == "prompttext" || lk == "responsetext" {
                    collect_strings(v, out);
                } else {
                    transcript_strings(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| transcript_strings(i, out)),
        _ => {}
    }
}

fn collect_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.len() >= 8 => out.push(s.clone()),
        Value::Object(m) => m.values().for_each(|v| collect_strings(v, out)),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// The samples in `samples/*.json`, sorted by name.
pub fn load_samples() -> Result<Vec<Message>> {
    let dir = repo_root().join("samples");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)
            .with_context(|| format!("parsing {}", path.display()))?;
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let mut secrets = Vec::new();
        transcript_strings(&v["data"], &mut secrets);
        out.push(Message {
            event_id: v["data"]["event"]["id"]
                .as_str()
                .context("sample without event id")?
                .to_owned(),
            attributes: serde_json::from_value(v["attributes"].clone())?,
            data: go_json(&v["data"]),
            to_gcs: v["expect"]["gcs"].as_bool().context("expect.gcs")?,
            bq_handler: match v["expect"]["bq_handler"].as_str() {
                Some("to-bq") => "to-bq",
                Some("sub-v2") => "sub-v2",
                other => anyhow::bail!("{name}: expect.bq_handler {other:?}"),
            },
            transcript: v["expect"]["transcript"]
                .as_bool()
                .context("expect.transcript")?,
            secrets,
            name,
        });
    }
    Ok(out)
}

/// A small deterministic PRNG (xorshift64*), so a failing case can be reproduced by its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// `n` generated events. Case `i` cycles through every combination of flag × identity × private
/// text × attribute style, so any `n >= 120` covers them all; the PRNG only varies details.
pub fn generate(n: usize, seed: u64) -> Vec<Message> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        // Flag: absent, 0, 1, 2.5, NaN (string), -1.
        let flags: [(Option<Value>, bool); 6] = [
            (None, false),
            (Some(json!(0)), false),
            (Some(json!(1)), true),
            (Some(json!(2.5)), true),
            (Some(json!("NaN")), false),
            (Some(json!(-1)), false),
        ];
        let (flag_value, flagged) = flags[i % 6].clone();
        // Identity: DotCom in several spellings, or not.
        let identities: [(Value, bool); 5] = [
            (
                json!({"licensedInstance": {"licenseKey": format!("LICENSE-KEY-{i}-SECRET"),
                "instanceId": "0e5a8c2f-7b3d-4f1e-9a6c-4d2b8e0f7a13", "externalUrl": "https://sourcegraph.com"}}),
                true,
            ),
            (
                json!({"unlicensedInstance": {"instanceId": "x", "externalUrl": "HTTPS://Sourcegraph.com/"}}),
                true,
            ),
            (
                json!({"licensedInstance": {"licenseKey": format!("LICENSE-KEY-{i}-SECRET"),
                "instanceId": "6b2d9f4e", "externalUrl": "https://sourcegraph.acme-corp.example"}}),
                false,
            ),
            (
                json!({"managedService": {"serviceId": "cody-gateway"}}),
                false,
            ),
            (
                json!({"licensedInstance": {"externalUrl": "https://sourcegraph.com.evil.example"}}),
                false,
            ),
        ];
        let (identifier, dotcom) = identities[(i / 6) % 5].clone();
        // Private metadata: absent, {}, text at the top, nested/in arrays/odd cases, no text keys.
        let m = |k: &str| format!("MARKER-{seed}-{i}-{k} <b>&amp; “quoted” é 漢字");
        let (private, has_private, secrets): (Option<Value>, bool, Vec<String>) = match (i / 30) % 4
        {
            0 => (None, false, vec![]),
            1 => (Some(json!({})), false, vec![]),
            2 => {
                let (a, b) = (m("prompt"), m("response"));
                let shape = rng.below(4);
                let v = match shape {
                    0 => json!({"promptText": a, "chatModel": "m"}),
                    1 => json!({"ResponseText": b, "nested": {"PROMPTTEXT": a}}),
                    2 => {
                        json!({"turns": [{"promptText": a}, {"x": [{"responsetext": {"deep": b}}]}]})
                    }
                    _ => {
                        json!({"promptText": a, "responseText": b, "gitMetadata": [{"commit": "c"}]})
                    }
                };
                let secrets = match shape {
                    0 => vec![a],
                    _ => vec![a, b],
                }
                .into_iter()
                .filter(|s| v.to_string().contains(&s[..20]))
                .collect();
                (Some(v), true, secrets)
            }
            _ => (
                Some(json!({"chatModel": "m", "languageId": "go"})),
                true,
                vec![],
            ),
        };
        // Attribute style: the current gateway, an older one (no flag attribute), or none at all.
        let style = (i / 120) % 3;
        let event_id = format!("gen-{seed}-{i:05}");
        let mut metadata = serde_json::Map::new();
        metadata.insert("charCount".into(), json!(rng.below(500)));
        if let Some(f) = &flag_value {
            metadata.insert("recordsPrivateMetadataTranscript".into(), f.clone());
        }
        let mut parameters = json!({"metadata": metadata});
        if let Some(p) = &private {
            parameters["privateMetadata"] = p.clone();
        }
        let data = json!({
            "event": {
                "id": event_id,
                "timestamp": format!("2024-05-{:02}T{:02}:{:02}:07.{:03}Z", 1 + i % 28, i % 24, i % 60, i % 1000),
                "feature": *rng.pick(&["cody.chat-question", "cody.chatResponse", "search.results"]),
                "action": *rng.pick(&["submitted", "hasCode", "viewed"]),
                "parameters": parameters,
                "user": {"userId": format!("{}", 1000 + i)},
            },
            "metadata": {"requestId": format!("req-{i}"), "identifier": identifier},
        });
        let mut attributes = BTreeMap::new();
        let has_private_attr = private.is_some();
        if style < 2 {
            attributes.insert(
                "event.feature".into(),
                data["event"]["feature"].as_str().unwrap_or("").into(),
            );
            attributes.insert(
                "event.action".into(),
                data["event"]["action"].as_str().unwrap_or("").into(),
            );
            attributes.insert(
                "event.hasPrivateMetadata".into(),
                has_private_attr.to_string(),
            );
        }
        if style == 0 {
            attributes.insert("publisher.source".into(), "licensed_instance".into());
            if flagged {
                attributes.insert(
                    "event.recordsPrivateMetadataTranscript".into(),
                    "true".into(),
                );
            }
        }
        let attr_flag = attributes
            .get("event.recordsPrivateMetadataTranscript")
            .is_some_and(|v| v == "true");
        let transcript = flagged && dotcom && has_private;
        out.push(Message {
            name: format!("generated #{i}"),
            event_id,
            attributes,
            data: go_json(&data),
            to_gcs: transcript,
            bq_handler: if attr_flag { "to-bq" } else { "sub-v2" },
            transcript,
            secrets,
        });
    }
    out
}

impl Message {
    /// `{prefix}/YYYY/MM/DD/HH/{id}.{content}.json`, from the event's RFC 3339 `Z` timestamp and the
    /// first 8 bytes of the SHA-256 of the data in hex, written out here independently of the
    /// code under test; `None` when the data has no timestamp.
    pub fn expected_object(&self, prefix: &str) -> Option<String> {
        let v: Value = serde_json::from_slice(&self.data).ok()?;
        let ts = v["event"]["timestamp"].as_str()?;
        Some(format!(
            "{prefix}/{}/{}/{}/{}/{}.{}.json",
            ts.get(0..4)?,
            ts.get(5..7)?,
            ts.get(8..10)?,
            ts.get(11..13)?,
            self.event_id,
            hex::encode(&sha2::Sha256::digest(&self.data)[..8])
        ))
    }
}

/// Every string in a JSON value, keys included (where planted text could hide).
pub fn all_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| all_strings(v, out)),
        Value::Object(m) => {
            for (k, v) in m {
                out.push(k.clone());
                all_strings(v, out);
            }
        }
        _ => {}
    }
}
