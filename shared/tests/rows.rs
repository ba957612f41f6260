//! Every row the BigQuery handlers produce matches `schema/event_telemetry.json`: names, types,
//! modes and nesting. Rows come from the sample events and from arbitrary generated events with
//! every optional field present or absent.

mod support;

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::TimeZone;
use pipeline::decode::{PushFormat, PushMessage};
use pipeline::event::RawData;
use pipeline::schema::Schema;
use pipeline::sink::PreparedRow;
use proptest::prelude::*;
use serde_json::{Value, json};

fn message(data: &Value, attributes: BTreeMap<String, String>) -> PushMessage {
    PushMessage {
        message_id: "42".into(),
        publish_time: chrono::Utc
            .timestamp_opt(1_795_773_600, 123_000_000)
            .single(),
        subscription: Some("projects/p/subscriptions/s".into()),
        delivery_attempt: Some(2),
        attributes,
        data: RawData::new(Bytes::from(data.to_string())),
        format: PushFormat::Wrapped,
    }
}

async fn rows_for(msg: &PushMessage) -> Vec<Value> {
    let h = support::handlers();
    h.to_bq.handle(msg).await.result.expect("to-bq handles it");
    h.sub_v2
        .handle(msg)
        .await
        .result
        .expect("sub-v2 handles it");
    h.rows.rows().iter().map(PreparedRow::value).collect()
}

#[tokio::test]
async fn sample_rows_match_the_schema() {
    let schema = Schema::event_telemetry();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let sample: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let attrs: BTreeMap<String, String> =
            serde_json::from_value(sample["attributes"].clone()).unwrap();
        let rows = rows_for(&message(&sample["data"], attrs)).await;
        assert_eq!(rows.len(), 1, "{}", path.display());
        let problems = schema.check_row(&rows[0]);
        assert!(problems.is_empty(), "{}: {problems:#?}", path.display());
        // The license key is hashed, never stored.
        let text = rows[0].to_string();
        assert!(
            !text.contains("EXAMPLE-OPAQUE-LICENSE-KEY"),
            "{}",
            path.display()
        );
        n += 1;
    }
    assert!(n >= 8);
}

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    proptest::option::of(s).boxed()
}

fn event_json() -> impl Strategy<Value = Value> {
    let word = "[a-zA-Z0-9 ._-]{0,12}";
    (
        ("[a-z0-9-]{1,36}", 0i64..4_000_000_000, 0u32..1_000_000_000),
        (opt(word), opt(word), opt(word), opt(0i32..5)),
        (
            opt(proptest::collection::btree_map("[a-zA-Z.]{1,10}", prop_oneof![any::<f64>().prop_map(|f| if f.is_finite() { json!(f) } else { json!("NaN") }), Just(json!("Infinity")), Just(json!(1))], 0..4)),
            opt(proptest::collection::btree_map("[a-z]{1,6}", any::<i64>().prop_map(|n| json!(n.to_string())), 0..3)),
            opt(proptest::collection::btree_map("[a-zA-Z]{1,10}", prop_oneof![Just(json!("text")), Just(json!({"promptText": "x"})), Just(json!([1, false]))], 0..4)),
        ),
        (opt(any::<i64>()), opt(word), opt(proptest::collection::btree_map("[a-z-]{1,8}", "(true|false)", 0..3))),
        (opt(word), opt(word), opt("[A-Z]{2}"), 0usize..4, opt(word)),
    )
        .prop_map(|((id, secs, nanos), (server, client, client_version, version), (metadata, legacy, private), (user_id, anon, flags), (trace, url, country, identity, mt))| {
            let ts = chrono::Utc.timestamp_opt(secs, nanos).single().unwrap().to_rfc3339();
            let mut event = json!({"id": id, "timestamp": ts, "feature": "cody.chat-question", "action": "submitted"});
            let mut source = json!({});
            if let Some(v) = server { source["server"] = json!({"version": v}); }
            if let Some(v) = client { source["client"] = json!({"name": v, "version": client_version}); }
            event["source"] = source;
            let mut parameters = json!({});
            if let Some(v) = version { parameters["version"] = json!(v); }
            if let Some(v) = metadata { parameters["metadata"] = json!(v); }
            if let Some(v) = legacy { parameters["legacyMetadata"] = json!(v); }
            if let Some(v) = private { parameters["privateMetadata"] = json!(v); }
            parameters["billingMetadata"] = json!({"product": "cody"});
            event["parameters"] = parameters;
            if user_id.is_some() || anon.is_some() {
                event["user"] = json!({"userId": user_id.map(|u| u.to_string()), "anonymousUserId": anon});
            }
            if let Some(f) = flags { event["featureFlags"] = json!({"flags": f}); }
            if let Some(t) = trace { event["interaction"] = json!({"traceId": t, "geolocation": {"countryCode": country}}); }
            if let Some(u) = mt { event["marketingTracking"] = json!({"url": u, "cohortId": "c"}); }
            let identifier = match identity {
                0 => json!({"licensedInstance": {"licenseKey": "K", "instanceId": "i", "externalUrl": url}}),
                1 => json!({"unlicensedInstance": {"instanceId": "i"}}),
                2 => json!({"managedService": {"serviceId": "s", "serviceEnvironment": "prod"}}),
                _ => json!({}),
            };
            json!({"event": event, "metadata": {"requestId": "r", "identifier": identifier}})
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn generated_rows_match_the_schema(data in event_json(), flagged in any::<bool>()) {
        let mut attrs = BTreeMap::new();
        if flagged {
            attrs.insert("event.recordsPrivateMetadataTranscript".to_string(), "true".to_string());
        }
        let msg = message(&data, attrs);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let rows = rt.block_on(rows_for(&msg));
        prop_assert_eq!(rows.len(), 1);
        let problems = Schema::event_telemetry().check_row(&rows[0]);
        prop_assert!(problems.is_empty(), "{:#?}\nrow: {}\nevent: {}", problems, rows[0], data);
    }
}
