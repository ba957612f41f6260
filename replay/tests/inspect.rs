//! `replay inspect` reads the routing settings exactly as the services do: with `REDACT_KEYS` set
//! to other keys (as an on-call engineer would export it "as the services read it"), the rows it
//! prints must still have `promptText` / `responseText` removed. Runs the real binary over a
//! dead-letter file built from the samples and generated events; no emulator needed.

use std::process::Command;

use base64::Engine;
use e2e::samples::{Message, generate, load_samples};
use serde_json::{Value, json};

/// The messages as `replay pull` saves them (gcloud's pull format), as if `sub-v2` and `to-bq` had
/// dead-lettered them.
fn pull_file(messages: &[Message]) -> String {
    let received: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut attributes = m.attributes.clone();
            attributes.insert("dead_letter.handler".into(), m.bq_handler.into());
            attributes.insert("dead_letter.reason".into(), "row_invalid".into());
            attributes.insert("dead_letter.message_id".into(), format!("orig-{i}"));
            json!({
                "ackId": format!("ack-{i}"),
                "message": {
                    "data": base64::engine::general_purpose::STANDARD.encode(&m.data),
                    "attributes": attributes,
                    "messageId": format!("dl-{i}"),
                    "publishTime": "2026-11-28T00:00:00Z",
                },
            })
        })
        .collect();
    serde_json::to_string_pretty(&received).expect("JSON")
}

/// The deployment's rules as `terraform output -json rules` prints them, with these extra keys
/// and the default DotCom.
fn rules(redact_keys: &str) -> String {
    let rules: serde_json::Map<String, Value> = pipeline::config::Rules::VARIABLES
        .iter()
        .map(|v| {
            let value = if *v == "REDACT_KEYS" { redact_keys } else { "" };
            (v.to_string(), Value::from(value))
        })
        .collect();
    Value::Object(rules).to_string()
}

/// `replay inspect` over `file` with the deployment's keys given in `--rules` (`None`: no rules
/// given), from a shell whose own `REDACT_KEYS` is `shell_keys`.
fn inspect(file: &std::path::Path, redact_keys: Option<&str>, shell_keys: &str) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_replay"));
    command
        .args(["inspect", "--limit", "1000", "--file"])
        .arg(file);
    if let Some(keys) = redact_keys {
        command.args(["--rules", &rules(keys)]);
    }
    let out = command
        .env("REDACT_KEYS", shell_keys)
        .env_remove("CLOUD_RUN_JOB")
        .env_remove("DOTCOM_URL")
        .env_remove("DOTCOM_INSTANCE_IDS")
        .output()
        .expect("replay runs");
    assert!(
        out.status.success(),
        "replay inspect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
fn redact_keys_only_add_to_the_transcript_keys_in_inspect() {
    let mut messages = load_samples().expect("samples");
    messages.extend(generate(120, 7));
    // Each planted text by its first 20 characters: plain ASCII, so JSON escaping (the row's
    // `private_metadata` is JSON inside JSON) cannot hide it.
    let secrets: Vec<String> = messages
        .iter()
        .flat_map(|m| &m.secrets)
        .map(|s| s.chars().take(20).collect())
        .collect();
    assert!(
        secrets.len() > 40,
        "the corpus plants transcript text to look for ({})",
        secrets.len()
    );
    let dir = std::env::temp_dir().join(format!("replay-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let file = dir.join("dlq.json");
    std::fs::write(&file, pull_file(&messages)).expect("write the pull file");

    for keys in ["diff", "diff,prediction", "PROMPTTEXT", " "] {
        let printed = inspect(&file, Some(keys), "");
        let lines: Vec<Value> = printed
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        assert_eq!(lines.len(), messages.len(), "one line per letter");
        // The rows are there to look at, so the test would see the text if it were in them.
        let rows = lines
            .iter()
            .filter(|l| {
                l["now"]["sub-v2"]["row"].is_object() || l["now"]["to-bq"]["row"].is_object()
            })
            .count();
        assert_eq!(rows, messages.len(), "every letter shows a BigQuery row");
        for secret in &secrets {
            assert!(
                !printed.contains(secret.as_str()),
                "REDACT_KEYS {keys:?}: replay inspect printed transcript text {secret:?}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The deployment redacts an extra key (`diff`); the engineer's shell does not have it. Rows are
/// printed only with the deployment's keys, and then without the key; never with the shell's.
#[test]
fn inspect_prints_rows_only_as_the_deployment_redacts_them() {
    let planted = "deployment-only-secret-7f3a";
    // A generated event sub-v2 writes, with the deployment's extra key planted in it.
    let mut message = generate(60, 3)
        .into_iter()
        .find(|m| m.bq_handler == "sub-v2" && !m.transcript)
        .expect("a sub-v2 event");
    let mut event: Value = serde_json::from_slice(&message.data).expect("JSON");
    event["event"]["parameters"]["privateMetadata"] = json!({"diff": planted, "kept": "k"});
    message.data = event.to_string().into_bytes();
    let dir = std::env::temp_dir().join(format!("replay-inspect-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let file = dir.join("dlq.json");
    std::fs::write(&file, pull_file(std::slice::from_ref(&message))).expect("write");

    let without = inspect(&file, None, "");
    assert!(
        !without.contains(planted),
        "rows printed without the deployment's keys: {without}"
    );
    assert!(without.contains("withheld"), "{without}");
    let with = inspect(&file, Some("diff"), "");
    assert!(
        !with.contains(planted),
        "the deployment's key was not redacted: {with}"
    );
    let line: Value = serde_json::from_str(with.lines().next().expect("a line")).expect("JSON");
    assert!(line["now"]["sub-v2"]["row"].is_object(), "{line}");
    std::fs::remove_dir_all(&dir).ok();
}
