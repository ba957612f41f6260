//! Hostile input, proptest-driven (bounded, so it runs in the test command): arbitrary bodies,
//! envelopes with arbitrary fields, and valid payloads with random mutations, through push
//! decoding, event parsing and the three handlers (over in-memory sinks), and a share of them
//! through the real HTTP server. For every input: no panic, no hang (each case is bounded by a
//! timeout), and the outcome is explained: a write that the sink really received, a skip with its
//! reason, or an error with a code and a detail — never an unexplained 2xx.
//!
//! 20,000 generated inputs through the handlers and 1,000 through HTTP per run (deterministic
//! seeds for the HTTP share; proptest's own for the rest), plus nesting 100,000 levels deep.

mod support;

use pipeline::sink::memory::MemoryRows;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use pipeline::decode::PushMessage;
use pipeline::outcome::Outcome;
use proptest::prelude::*;
use serde_json::{Value, json};

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn valid_payload() -> Value {
    json!({"event": {"id": "018f7b0e-2a41-7f93-8c5d-0e6b3a9f1c28", "timestamp": "2024-05-14T21:12:07.903Z",
        "feature": "cody.chat-question", "action": "submitted",
        "source": {"server": {"version": "5.4"}, "client": {"name": "VSCode.Cody", "version": "1.16.4"}},
        "parameters": {"version": 2, "metadata": {"recordsPrivateMetadataTranscript": 1, "tier": 1},
            "legacyMetadata": {"x": "7"},
            "privateMetadata": {"promptText": "p", "nested": [{"responseText": "r"}], "chatModel": "m"},
            "billingMetadata": {"product": "cody", "category": "billable"}},
        "user": {"userId": "4821377", "anonymousUserId": "a"},
        "featureFlags": {"flags": {"f": "true"}},
        "marketingTracking": {"url": "https://sourcegraph.com"},
        "interaction": {"traceId": "t", "geolocation": {"countryCode": "US"}}},
        "metadata": {"requestId": "r", "identifier": {"licensedInstance":
            {"licenseKey": "K", "instanceId": "i", "externalUrl": "https://sourcegraph.com"}}}})
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        ".{0,12}".prop_map(Value::String),
        Just(json!("NaN")),
        Just(json!("2024-05-14T21:12:07Z")),
        Just(json!("")),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z_.]{0,10}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every path (object keys and array indices) in a JSON value.
fn paths(v: &Value, prefix: Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(prefix.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                let mut p = prefix.clone();
                p.push(json!(k));
                paths(c, p, out);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                let mut p = prefix.clone();
                p.push(json!(i));
                paths(c, p, out);
            }
        }
        _ => {}
    }
}

fn at<'a>(v: &'a mut Value, path: &[Value]) -> Option<&'a mut Value> {
    let mut cur = v;
    for seg in path {
        cur = match seg {
            Value::String(k) => cur.get_mut(k.as_str())?,
            Value::Number(n) => cur.get_mut(n.as_u64()? as usize)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// A valid payload with up to four random nodes replaced or removed.
fn mutated_payload() -> impl Strategy<Value = Value> {
    proptest::collection::vec(
        (any::<prop::sample::Index>(), any::<bool>(), any_json()),
        0..4,
    )
    .prop_map(|muts| {
        let mut v = valid_payload();
        for (idx, remove, replacement) in muts {
            let mut all = Vec::new();
            paths(&v, vec![], &mut all);
            let path = idx.get(&all).clone();
            if path.is_empty() {
                continue;
            }
            if remove {
                let (last, parent) = path.split_last().expect("non-empty");
                if let (Some(p), Value::String(k)) = (at(&mut v, parent), last)
                    && let Some(obj) = p.as_object_mut()
                {
                    obj.remove(k);
                }
            } else if let Some(node) = at(&mut v, &path) {
                *node = replacement;
            }
        }
        v
    })
}

#[derive(Debug, Clone)]
enum Input {
    Raw(Vec<u8>),
    Envelope(Value),
    Unwrapped(Vec<u8>, Vec<(String, String)>),
}

fn input() -> impl Strategy<Value = Input> {
    let data = prop_oneof![
        mutated_payload().prop_map(|v| v.to_string().into_bytes()),
        any_json().prop_map(|v| v.to_string().into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..256),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512).prop_map(Input::Raw),
        (data.clone(), any_json(), any_json(), any::<bool>(), any::<bool>()).prop_map(|(d, attrs, extra, good_b64, with_id)| {
            let mut message = json!({"data": if good_b64 { json!(b64(&d)) } else { json!(String::from_utf8_lossy(&d)) }});
            if with_id {
                message["messageId"] = json!("m-1");
            }
            // Attributes: usually a string map (sometimes the flag), sometimes garbage.
            message["attributes"] = match attrs {
                Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, json!(v.to_string()))).collect()),
                other => other,
            };
            Input::Envelope(json!({"message": message, "subscription": "projects/p/subscriptions/s", "extra": extra}))
        }),
        (mutated_payload(), any::<bool>()).prop_map(|(p, flag)| {
            let attrs = if flag { json!({"event.recordsPrivateMetadataTranscript": "true"}) } else { json!({}) };
            Input::Envelope(json!({"message": {"data": b64(p.to_string().as_bytes()), "messageId": "m-2", "attributes": attrs}}))
        }),
        (data, proptest::collection::vec(("[a-z.]{1,12}", "[ -~]{0,16}"), 0..4)).prop_map(|(d, h)| Input::Unwrapped(d, h)),
    ]
}

fn request(input: &Input) -> (HeaderMap, Vec<u8>) {
    let mut headers = HeaderMap::new();
    let body = match input {
        Input::Raw(b) => b.clone(),
        Input::Envelope(v) => v.to_string().into_bytes(),
        Input::Unwrapped(b, hs) => {
            headers.insert("x-goog-pubsub-message-id", HeaderValue::from_static("u-1"));
            for (k, v) in hs {
                if let (Ok(k), Ok(v)) = (
                    HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(v),
                ) {
                    headers.insert(k, v);
                }
            }
            b.clone()
        }
    };
    (headers, body)
}

fn check(input: &Input) -> Result<(), TestCaseError> {
    let (headers, body) = request(input);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let message = match PushMessage::decode(&headers, &body) {
            Err(e) => {
                prop_assert!(!e.code().is_empty() && !e.to_string().is_empty());
                return Ok(());
            }
            Ok(m) => m,
        };
        let h = support::handlers();
        for handler in [&h.to_gcs, &h.to_bq, &h.sub_v2] {
            let before = (h.store.objects().len(), h.rows.len());
            let report = tokio::time::timeout(Duration::from_secs(5), handler.handle(&message))
                .await
                .map_err(|_| TestCaseError::fail("a handler hung"))?;
            let after = (h.store.objects().len(), h.rows.len());
            match report.result {
                Ok(Outcome::Written { target }) => {
                    prop_assert!(!target.is_empty());
                    prop_assert_eq!(
                        after.0 + after.1,
                        before.0 + before.1 + 1,
                        "written, but the sink got nothing"
                    );
                    prop_assert!(report.summary.event_id.is_some());
                }
                Ok(Outcome::AlreadyStored { target }) => {
                    prop_assert!(h.store.objects().contains_key(&target));
                }
                Ok(Outcome::Skipped { reason }) => {
                    prop_assert!(!reason.is_empty());
                    prop_assert_eq!(after, before, "skipped, but something was written");
                }
                Err(f) => {
                    prop_assert!(!f.code.is_empty() && !f.detail.is_empty());
                    prop_assert_eq!(after, before, "failed, but something was written");
                }
            }
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_input_is_written_skipped_or_refused_with_a_reason(input in input()) {
        check(&input)?;
    }
}

#[test]
fn deeply_nested_data_never_overflows_the_stack() {
    // Within the gateway's nesting (limits::MAX_EVENT_DEPTH) it is handled, beyond it refused.
    for depth in [200, 100_000] {
        let nested = "[".repeat(depth) + &"]".repeat(depth);
        let data = format!(
            r#"{{"event":{{"id":"x","timestamp":"2024-05-14T21:12:07Z","feature":"f","action":"a","parameters":{{"privateMetadata":{{"k":{nested}}}}}}}}}}}"#
        );
        let input = Input::Envelope(support::push("1", data.as_bytes()).to_json());
        check(&input).unwrap();
        let envelope = format!(r#"{{"message":{nested}}}"#);
        check(&Input::Raw(envelope.into_bytes())).unwrap();
    }
    // Deep privateMetadata is redacted like any other.
    let mut deep = json!({"promptText": "secret"});
    for _ in 0..120 {
        deep = json!({"k": [deep]});
    }
    let mut p = valid_payload();
    p["event"]["parameters"]["privateMetadata"] = deep;
    check(&Input::Envelope(
        support::push("1", p.to_string().as_bytes()).to_json(),
    ))
    .unwrap();
}

/// A share of the same inputs through the real HTTP server: the status and body always explain
/// the outcome.
#[tokio::test]
async fn through_http_every_2xx_is_a_write_or_a_skip_with_its_reason() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let rows = std::sync::Arc::new(MemoryRows::default());
    let app = support::spawn_local(
        pipeline::Service::SubV2,
        &[("BIGQUERY_DATASET", "d")],
        pipeline::handler::Destination::Rows(rows.clone()),
        None,
    )
    .await;
    let url = format!("{}/", app.url);
    let client = reqwest::Client::new();
    let mut runner = TestRunner::deterministic();
    let strategy = input();
    for _ in 0..1000 {
        let input = strategy.new_tree(&mut runner).unwrap().current();
        let (headers, body) = request(&input);
        let before = rows.len();
        let resp = client
            .post(&url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.expect("every response is JSON");
        let after = rows.len();
        match status {
            200 => match v["outcome"].as_str() {
                Some("written") => assert_eq!(after, before + 1, "{v}"),
                Some("skipped") => {
                    assert!(v["reason"].as_str().is_some_and(|r| !r.is_empty()), "{v}");
                    assert_eq!(after, before);
                }
                other => panic!("unexplained 2xx: {other:?} {v}"),
            },
            400 | 413 | 422 => {
                assert!(v["error"].as_str().is_some_and(|c| !c.is_empty()), "{v}");
                assert_eq!(after, before);
            }
            other => panic!("unexpected status {other}: {v}"),
        }
    }
}

/// Attributes as the unwrapped form carries them never break decoding either.
#[test]
fn unwrapped_attribute_headers() {
    let mut h = BTreeMap::new();
    h.insert(
        "event.recordsPrivateMetadataTranscript".to_string(),
        "true".to_string(),
    );
    let input = Input::Unwrapped(
        valid_payload().to_string().into_bytes(),
        h.into_iter().collect(),
    );
    check(&input).unwrap();
}
