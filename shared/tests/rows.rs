//! Every row the BigQuery handlers produce matches `schema/event_telemetry.json`: names, types,
//! modes and nesting. Rows come from the sample events and from arbitrary generated events with
//! every optional field present or absent.

mod support;

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::TimeZone;
use pipeline::decode::{PushFormat, PushMessage};
use pipeline::event::RawData;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{ArrayRef, ListArray, RecordBatch};
use arrow_schema::{DataType, Schema as ArrowSchema, SchemaRef};
use pipeline::row::arrow::ArrowRows;
use pipeline::row::{PreparedRow, RowForm};
use pipeline::schema::Schema;
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
    let rows = rows_in_form(msg, RowForm::Json).await;
    rows.iter().map(PreparedRow::value).collect()
}

/// Each sample event (`samples/*.json`) as a push, with its file's name.
fn samples() -> Vec<(String, PushMessage)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples");
    let mut samples = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let sample: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let attrs: BTreeMap<String, String> =
            serde_json::from_value(sample["attributes"].clone()).unwrap();
        samples.push((path.display().to_string(), message(&sample["data"], attrs)));
    }
    assert!(samples.len() >= 8);
    samples
}

#[tokio::test]
async fn sample_rows_match_the_schema() {
    let schema = Schema::event_telemetry();
    for (path, msg) in samples() {
        let rows = rows_for(&msg).await;
        assert_eq!(rows.len(), 1, "{path}");
        let problems = schema.check_row(&rows[0]);
        assert!(problems.is_empty(), "{path}: {problems:#?}");
        // The license key is hashed, never stored.
        let text = rows[0].to_string();
        assert!(!text.contains("EXAMPLE-OPAQUE-LICENSE-KEY"), "{path}");
    }
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
        let recorded = rt.block_on(rows_in_form(&msg, RowForm::Tokens));
        same_values_both_ways(&rows, &recorded);
    }
}

// --- The Storage Write path's rows (recorded values, `RowForm::Tokens`) carry the same values as
// insertAll's JSON rows, and fill the same Arrow columns arrow-json reads from that JSON.

async fn rows_in_form(msg: &PushMessage, form: RowForm) -> Vec<PreparedRow> {
    let h = support::handlers_in_form(form);
    h.to_bq.handle(msg).await.result.expect("to-bq handles it");
    h.sub_v2
        .handle(msg)
        .await
        .result
        .expect("sub-v2 handles it");
    h.rows.rows()
}

/// The row without the columns that come from the clock when it was handled.
fn without_clock(row: &Value) -> Value {
    let mut row = row.clone();
    for column in ["ingested_at", "event_timestamp", "event_timestamp_original"] {
        row.as_object_mut().unwrap().remove(column);
    }
    row
}

/// `json` (JSON rows) and `recorded` (the same events' recorded rows): the same values, the
/// recorded rows' JSON the length they say, and their Arrow batch what arrow-json reads from it.
fn same_values_both_ways(json: &[Value], recorded: &[PreparedRow]) {
    assert_eq!(json.len(), recorded.len());
    for (json, recorded) in json.iter().zip(recorded) {
        assert_eq!(without_clock(json), without_clock(&recorded.value()));
        assert_eq!(recorded.json_len(), recorded.json().len());
    }
    let arrow = ArrowRows::event_telemetry().unwrap();
    let ours = arrow.batch(recorded).expect("the rows fit the schema");
    let texts: Vec<String> = recorded.iter().map(|r| r.json().into_owned()).collect();
    assert_eq!(ours, arrow_json_batch(arrow.schema(), &texts));
}

/// The rows' JSON text read by arrow-json in strict mode: the oracle of the Arrow columns.
/// arrow-json reads a REPEATED column that is absent as a null list (BigQuery wants it empty) and
/// a zone only by its offset, so it reads with those two relaxed and the result is made so.
fn arrow_json_batch(schema: &SchemaRef, texts: &[String]) -> RecordBatch {
    let reading: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::List(_) => f.as_ref().clone().with_nullable(true),
            DataType::Timestamp(unit, _) => f
                .as_ref()
                .clone()
                .with_data_type(DataType::Timestamp(*unit, Some("+00:00".into()))),
            _ => f.as_ref().clone(),
        })
        .collect();
    let mut decoder = arrow_json::ReaderBuilder::new(Arc::new(ArrowSchema::new(reading)))
        .with_strict_mode(true)
        .with_batch_size(texts.len().max(1))
        .build_decoder()
        .unwrap();
    for text in texts {
        assert_eq!(decoder.decode(text.as_bytes()).unwrap(), text.len());
    }
    let batch = decoder.flush().unwrap().unwrap();
    let columns = batch
        .columns()
        .iter()
        .map(|column| match column.data_type() {
            DataType::List(_) => {
                let (field, offsets, values, _) = column.as_list::<i32>().clone().into_parts();
                Arc::new(ListArray::new(field, offsets, values, None)) as ArrayRef
            }
            DataType::Timestamp(..) => Arc::new(
                column
                    .as_primitive::<TimestampMicrosecondType>()
                    .clone()
                    .with_timezone("UTC"),
            ) as ArrayRef,
            _ => column.clone(),
        })
        .collect();
    RecordBatch::try_new(schema.clone(), columns).unwrap()
}

#[tokio::test]
async fn sample_rows_are_the_same_values_both_ways() {
    let mut json = Vec::new();
    let mut recorded = Vec::new();
    for (_, msg) in samples() {
        json.extend(rows_for(&msg).await);
        recorded.extend(rows_in_form(&msg, RowForm::Tokens).await);
    }
    // Every sample in one batch, as group commit sends them.
    same_values_both_ways(&json, &recorded);
}

// --- At the limits of the real BigQuery (docs/design.md, "At the limits of the real services").
// The emulator enforces none of these, so they are held here against the documented limits.

/// A plain event (sub-v2's) with the given id, time and `privateMetadata`.
fn limit_event(id: &str, timestamp: &str, private: Value) -> PushMessage {
    let data = json!({"event": {
        "id": id, "timestamp": timestamp, "feature": "search.results", "action": "viewed",
        "parameters": {"metadata": {"n": 1}, "privateMetadata": private}}});
    message(&data, BTreeMap::new())
}

async fn one_row(msg: &PushMessage) -> (String, Value) {
    let h = support::handlers();
    h.sub_v2.handle(msg).await.result.expect("sub-v2 writes it");
    let rows = h.rows.rows();
    assert_eq!(rows.len(), 1);
    let value = rows[0].value();
    let problems = Schema::event_telemetry().check_row(&value);
    assert!(problems.is_empty(), "{problems:#?}");
    (rows[0].insert_id.clone(), value)
}

fn event_time(row: &Value) -> chrono::DateTime<chrono::Utc> {
    row["event_timestamp"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn an_event_outside_the_partition_bounds_is_clamped_and_keeps_its_own_time() {
    let now = chrono::Utc::now();
    for (timestamp, past) in [
        ("2001-01-01T00:00:00Z", true),
        ("2199-12-31T23:00:00Z", false),
    ] {
        let (_, row) = one_row(&limit_event("e1", timestamp, json!({}))).await;
        let at = event_time(&row);
        assert!(now - at < chrono::Duration::days(1825), "{timestamp}: {at}");
        assert!(at - now < chrono::Duration::days(366), "{timestamp}: {at}");
        assert_eq!(at < now, past);
        let original: chrono::DateTime<chrono::Utc> = row["event_timestamp_original"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            original,
            timestamp.parse::<chrono::DateTime<chrono::Utc>>().unwrap()
        );
    }
    let (_, row) = one_row(&limit_event("e2", &now.to_rfc3339(), json!({}))).await;
    assert!(row.get("event_timestamp_original").is_none(), "{row}");
}

#[tokio::test]
async fn an_event_id_longer_than_an_insert_id_gets_its_hash() {
    let long = "x".repeat(pipeline::limits::INSERT_ID_MAX_CHARS + 1);
    let (insert_id, row) = one_row(&limit_event(&long, "2026-01-01T00:00:00Z", json!({}))).await;
    assert!(
        insert_id.starts_with("sha256:") && insert_id.len() == 71,
        "{insert_id}"
    );
    assert!(insert_id.chars().count() <= pipeline::limits::INSERT_ID_MAX_CHARS);
    assert_eq!(row["event_id"], long, "the column keeps the whole id");
    let (again, _) = one_row(&limit_event(&long, "2026-01-01T00:00:00Z", json!({}))).await;
    assert_eq!(again, insert_id, "a redelivery gets the same insert id");
    let exact = "y".repeat(pipeline::limits::INSERT_ID_MAX_CHARS);
    let (insert_id, _) = one_row(&limit_event(&exact, "2026-01-01T00:00:00Z", json!({}))).await;
    assert_eq!(insert_id, exact);
}

#[tokio::test]
async fn a_row_over_the_request_limit_drops_its_largest_json_column_and_says_so() {
    // 5 MB of quotes: 10 MB in the column's JSON text, 20 MB once the row escapes it again.
    let quotes = "\"".repeat(5_000_000);
    let msg = limit_event("big", "2026-01-01T00:00:00Z", json!({"diff": quotes}));
    let h = support::handlers();
    h.sub_v2
        .handle(&msg)
        .await
        .result
        .expect("sub-v2 writes it");
    let rows = h.rows.rows();
    assert!(rows[0].json_len() <= pipeline::limits::MAX_ROW_BYTES);
    let row = rows[0].value();
    assert!(Schema::event_telemetry().check_row(&row).is_empty());
    assert!(
        row["parameters"].get("private_metadata").is_none(),
        "dropped"
    );
    assert_eq!(
        row["parameters"]["metadata"], r#"{"n":1}"#,
        "the small column stays"
    );
    let dropped = &row["dropped_columns"][0];
    assert_eq!(dropped["path"], "parameters.private_metadata");
    assert_eq!(dropped["reason"], "too_large");
    assert!(dropped["bytes"].as_u64().unwrap() > 10_000_000, "{dropped}");
}

#[tokio::test]
async fn a_json_column_nested_deeper_than_bigquery_allows_is_dropped_and_recorded() {
    let depth = pipeline::limits::JSON_COLUMN_MAX_DEPTH; // plus the privateMetadata object itself
    let nested = |levels: usize| (1..levels).fold(json!([]), |inner, _| json!([inner]));
    let deep = nested(depth);
    let (_, row) = one_row(&limit_event(
        "deep",
        "2026-01-01T00:00:00Z",
        json!({"tree": deep}),
    ))
    .await;
    assert!(row["parameters"].get("private_metadata").is_none(), "{row}");
    assert_eq!(row["dropped_columns"][0]["reason"], "too_deep");
    // One level less is kept.
    let ok = nested(depth - 1);
    let (_, row) = one_row(&limit_event(
        "ok",
        "2026-01-01T00:00:00Z",
        json!({"tree": ok}),
    ))
    .await;
    assert!(row["parameters"]["private_metadata"].is_string());
    assert!(row.get("dropped_columns").is_none());
}

#[tokio::test]
async fn a_row_too_large_even_without_its_json_columns_is_refused_with_a_reason() {
    // A feature name no gateway would send, 5 MB of quotes: 10 MB in the row on its own.
    let data = json!({"event": {"id": "huge", "timestamp": "2026-01-01T00:00:00Z",
        "feature": "\"".repeat(5_000_000), "action": "viewed"}});
    let h = support::handlers();
    let failure = h
        .sub_v2
        .handle(&message(&data, BTreeMap::new()))
        .await
        .result
        .expect_err("refused");
    assert_eq!(failure.code, "row_too_large");
    assert!(failure.kind.is_permanent(), "dead-lettered, not retried");
    assert!(h.rows.rows().is_empty());
}

/// The DotCom transcript sample with `privateMetadata.turns` nested `depth` arrays deep, a
/// `promptText` at the bottom.
fn deep_transcript(depth: usize) -> PushMessage {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples/dotcom-chat-prompt-transcript.json");
    let sample: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let attrs: BTreeMap<String, String> =
        serde_json::from_value(sample["attributes"].clone()).unwrap();
    let mut data = sample["data"].to_string();
    let marker = r#""privateMetadata":{"#;
    let at = data.find(marker).expect("sample has privateMetadata") + marker.len();
    let turns = format!(
        r#""turns":{}{{"promptText":"DEEP SECRET PROMPT"}}{},"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    data.insert_str(at, &turns);
    PushMessage {
        data: RawData::new(Bytes::from(data)),
        ..message(&json!({}), attrs)
    }
}

#[tokio::test]
async fn a_transcript_nested_as_deep_as_the_gateway_allows_reaches_the_bucket_and_a_row() {
    let depth = pipeline::limits::MAX_EVENT_DEPTH - 10;
    let msg = deep_transcript(depth);
    let h = support::handlers();
    h.to_gcs
        .handle(&msg)
        .await
        .result
        .expect("to-gcs stores it");
    let objects = h.store.objects();
    assert_eq!(objects.len(), 1);
    assert_eq!(
        objects.values().next().unwrap(),
        msg.data.bytes(),
        "byte for byte"
    );

    h.to_bq
        .handle(&msg)
        .await
        .result
        .expect("to-bq writes its row");
    let rows = h.rows.rows();
    assert_eq!(rows.len(), 1);
    let text = rows[0].json();
    assert!(!text.contains("DEEP SECRET PROMPT"), "redacted");
    let row = rows[0].value();
    assert!(Schema::event_telemetry().check_row(&row).is_empty());
    assert_eq!(
        row["dropped_columns"][0]["path"],
        "parameters.private_metadata"
    );
    assert_eq!(row["dropped_columns"][0]["reason"], "too_deep");
    assert_eq!(row["is_transcript"], true);
}

#[tokio::test]
async fn a_transcript_key_deep_inside_privatemetadata_is_redacted_from_a_kept_column() {
    // Deeper than serde_json's default limit (128), shallow enough for a JSON column (500).
    let msg = deep_transcript(300);
    let h = support::handlers();
    h.to_bq
        .handle(&msg)
        .await
        .result
        .expect("to-bq writes its row");
    let rows = h.rows.rows();
    assert!(!rows[0].json().contains("DEEP SECRET PROMPT"));
    let row = rows[0].value();
    assert!(row["parameters"]["private_metadata"].is_string(), "kept");
    let redacted: Vec<String> = serde_json::from_value(row["redacted_keys"].clone()).unwrap();
    assert!(
        redacted
            .iter()
            .any(|p| p.starts_with("turns[0][0]") && p.ends_with("promptText"))
    );
}

#[tokio::test]
async fn an_event_deeper_than_any_the_gateway_sends_is_refused_as_too_deep() {
    let msg = deep_transcript(pipeline::limits::MAX_EVENT_DEPTH + 1);
    let h = support::handlers();
    for handler in [&h.to_gcs, &h.to_bq, &h.sub_v2] {
        let failure = handler.handle(&msg).await.result.expect_err("refused");
        assert_eq!(failure.code, "too_deep");
        assert!(failure.kind.is_permanent(), "dead-lettered with its reason");
    }
}

/// A payload that fails after a deep value was built (here a wrong type after a 9,990-deep
/// `privateMetadata`) is refused with its reason; the value is dropped by the parser itself,
/// which must not overflow the stack (that would crash the instance on every redelivery).
#[tokio::test]
async fn a_deep_payload_that_fails_late_is_refused_without_crashing() {
    let depth = pipeline::limits::MAX_EVENT_DEPTH - 10;
    // Objects inside arrays: their drop takes the deepest frames.
    let data = format!(
        r#"{{"event":{{"id":"late","timestamp":"2024-05-14T21:12:07Z","feature":"f","action":"a","parameters":{{"privateMetadata":{{"k":{}1{}}},"version":"not a number"}}}}}}"#,
        r#"[{"k":"#.repeat(depth / 2),
        "}]".repeat(depth / 2)
    );
    let msg = PushMessage {
        data: RawData::new(Bytes::from(data)),
        ..message(&json!({}), BTreeMap::new())
    };
    let h = support::handlers();
    for handler in [&h.to_gcs, &h.to_bq, &h.sub_v2] {
        let failure = handler.handle(&msg).await.result.expect_err("refused");
        assert_eq!(failure.code, "invalid_payload", "{failure:?}");
    }
}

/// A transcript key at every level of a deep event: every one is removed, and the recorded paths
/// stay bounded (100 of at most 1,000 characters) instead of growing with the square of the depth.
#[tokio::test]
async fn redacted_paths_stay_bounded_however_many_keys_are_removed() {
    let depth = 3_000;
    let mut inner = String::from("{}");
    for _ in 0..depth {
        inner = format!(r#"{{"promptText":"SECRET AT EVERY LEVEL","k":{inner}}}"#);
    }
    let data = format!(
        r#"{{"event":{{"id":"many","timestamp":"2026-01-01T00:00:00Z","feature":"f","action":"a","parameters":{{"privateMetadata":{inner}}}}}}}"#
    );
    let msg = PushMessage {
        data: RawData::new(Bytes::from(data)),
        ..message(&json!({}), BTreeMap::new())
    };
    let h = support::handlers();
    h.sub_v2.handle(&msg).await.result.expect("written");
    let rows = h.rows.rows();
    assert!(!rows[0].json().contains("SECRET AT EVERY LEVEL"));
    let row = rows[0].value();
    let paths = row["redacted_keys"].as_array().unwrap();
    assert_eq!(paths.len(), pipeline::limits::MAX_REDACTED_PATHS);
    assert!(
        paths
            .iter()
            .all(|p| p.as_str().unwrap().chars().count() <= 1_001)
    );
}
