//! The transcript rules as a truth table: flag × DotCom × private text × attributes, through the
//! three handlers (over in-memory sinks). For every combination:
//! - to-gcs writes exactly when flag > 0 AND DotCom AND non-empty privateMetadata, whatever the
//!   attributes say;
//! - exactly one of to-bq and sub-v2 writes a BigQuery row, chosen by the attribute alone;
//! - the row never contains the planted transcript text.

mod support;

use std::collections::BTreeMap;

use bytes::Bytes;
use pipeline::decode::{PushFormat, PushMessage};
use pipeline::event::RawData;
use pipeline::outcome::Outcome;
use serde_json::{Value, json};

const SECRET: &str = "SECRET-TRANSCRIPT-TEXT";

fn message(id: &str, data: &Value, attributes: BTreeMap<String, String>) -> PushMessage {
    PushMessage {
        message_id: id.into(),
        publish_time: None,
        subscription: Some("projects/p/subscriptions/s".into()),
        delivery_attempt: None,
        attributes,
        data: RawData::new(Bytes::from(data.to_string())),
        format: PushFormat::Wrapped,
    }
}

#[tokio::test]
async fn truth_table() {
    // (flag value, counts as flagged)
    let flags: Vec<(Option<Value>, bool)> = vec![
        (None, false),
        (Some(json!(0)), false),
        (Some(json!(1)), true),
        (Some(json!(0.5)), true),
        (Some(json!(-1)), false),
        (Some(json!("NaN")), false),
        (Some(json!("Infinity")), true),
    ];
    // (identifier, is DotCom)
    let identities: Vec<(Value, bool)> = vec![
        (
            json!({"licensedInstance": {"externalUrl": "https://sourcegraph.com", "licenseKey": "K"}}),
            true,
        ),
        (
            json!({"unlicensedInstance": {"externalUrl": "https://sourcegraph.com/"}}),
            true,
        ),
        (
            json!({"licensedInstance": {"externalUrl": "https://sourcegraph.example.com"}}),
            false,
        ),
        (
            json!({"managedService": {"serviceId": "cody-gateway"}}),
            false,
        ),
        (json!({}), false),
    ];
    // (privateMetadata, holds text)
    let privates: Vec<(Option<Value>, bool)> = vec![
        (None, false),
        (Some(json!({})), false),
        (Some(json!({"promptText": SECRET})), true),
        (
            Some(json!({"chatModel": "m", "nested": [{"ResponseText": SECRET}]})),
            true,
        ),
    ];
    // Attribute styles: none (older gateways), consistent, always "true", always absent.
    let styles = ["none", "consistent", "claims_transcript", "claims_nothing"];

    let h = support::handlers();
    let mut n = 0;
    for (flag, flagged) in &flags {
        for (identifier, dotcom) in &identities {
            for (private, has_text) in &privates {
                for style in styles {
                    n += 1;
                    let id = format!("case-{n}");
                    let mut metadata = serde_json::Map::new();
                    if let Some(f) = flag {
                        metadata.insert("recordsPrivateMetadataTranscript".into(), f.clone());
                    }
                    let mut parameters = json!({"metadata": metadata});
                    if let Some(p) = private {
                        parameters["privateMetadata"] = p.clone();
                    }
                    let data = json!({"event": {"id": id, "timestamp": "2024-05-14T21:12:07Z",
                        "feature": "cody.chat-question", "action": "submitted", "parameters": parameters},
                        "metadata": {"identifier": identifier}});
                    let mut attrs = BTreeMap::new();
                    let attr_true = match style {
                        "consistent" => *flagged,
                        "claims_transcript" => true,
                        _ => false,
                    };
                    if attr_true {
                        attrs.insert(
                            "event.recordsPrivateMetadataTranscript".to_string(),
                            "true".to_string(),
                        );
                    }
                    if style != "none" {
                        attrs.insert(
                            "event.hasPrivateMetadata".into(),
                            private.is_some().to_string(),
                        );
                    }
                    let msg = message(&id, &data, attrs);
                    let expect_transcript = *flagged && *dotcom && *has_text;

                    let gcs = h
                        .to_gcs
                        .handle(&msg)
                        .await
                        .result
                        .expect("to-gcs handles it");
                    assert_eq!(
                        matches!(gcs, Outcome::Written { .. }),
                        expect_transcript,
                        "{id}: flag {flag:?} dotcom {dotcom} private {private:?} style {style}: {gcs:?}"
                    );
                    if let Outcome::Skipped { reason } = &gcs {
                        assert_eq!(reason.contains("no_flag"), !flagged, "{id}: {reason}");
                        assert_eq!(reason.contains("not_dotcom"), !dotcom, "{id}: {reason}");
                        assert_eq!(
                            reason.contains("no_private_text"),
                            !has_text,
                            "{id}: {reason}"
                        );
                    }

                    let bq = h.to_bq.handle(&msg).await.result.expect("to-bq handles it");
                    let sub = h
                        .sub_v2
                        .handle(&msg)
                        .await
                        .result
                        .expect("sub-v2 handles it");
                    let written = |o: &Outcome| matches!(o, Outcome::Written { .. });
                    assert_eq!(written(&bq), attr_true, "{id}: to-bq {bq:?}");
                    assert_eq!(written(&sub), !attr_true, "{id}: sub-v2 {sub:?}");
                    for skipped in [&bq, &sub].into_iter().filter(|o| !written(o)) {
                        assert_eq!(
                            skipped,
                            &Outcome::Skipped {
                                reason: "not_for_this_subscription".into()
                            }
                        );
                    }

                    let last = h.rows.last().expect("a row");
                    let row = &last.value();
                    assert_eq!(row["event_id"], json!(id));
                    assert_eq!(row["is_transcript"], json!(expect_transcript), "{id}");
                    assert_eq!(row["is_dotcom"], json!(dotcom), "{id}");
                    assert_eq!(row["transcript_flag"], json!(flagged), "{id}");
                    assert!(
                        !row.to_string().contains(SECRET),
                        "{id}: secret in row {row}"
                    );
                    let mismatch = row["routing_mismatches"].to_string();
                    assert_eq!(
                        mismatch.contains("event.recordsPrivateMetadataTranscript"),
                        attr_true != *flagged,
                        "{id}: {mismatch}"
                    );
                }
            }
        }
    }
    assert_eq!(n, 7 * 5 * 4 * 4);
    assert_eq!(h.rows.len(), n, "one row per event");
    let objects = h.store.objects();
    // 3 flagged values × 2 DotCom identities × 2 texts × 4 attribute styles.
    assert_eq!(objects.len(), 3 * 2 * 2 * 4);
    assert!(
        objects
            .values()
            .all(|b| String::from_utf8_lossy(b).contains(SECRET))
    );
}

#[tokio::test]
async fn malformed_data_fails_in_every_handler_with_a_code() {
    let h = support::handlers();
    for (data, code) in [
        ("", "empty_data"),
        ("not json", "invalid_json"),
        ("{\"event\":{}}", "invalid_payload"),
        ("[1,2]", "invalid_payload"),
    ] {
        let msg = PushMessage {
            message_id: "1".into(),
            publish_time: None,
            subscription: None,
            delivery_attempt: None,
            attributes: BTreeMap::new(),
            data: RawData::new(Bytes::from(data)),
            format: PushFormat::Wrapped,
        };
        for handler in [&h.to_gcs, &h.to_bq, &h.sub_v2] {
            let failure = handler.handle(&msg).await.result.unwrap_err();
            assert_eq!(failure.code, code, "{data:?}");
        }
    }
}
