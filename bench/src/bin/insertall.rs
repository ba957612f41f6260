//! `insertall`: a BigQuery stand-in for the load benchmark (a fixture, not a correctness test).
//! `GET /bigquery/v2/projects/{p}/datasets/{d}/tables/{t}` answers the table with the row schema
//! (the services check it at start-up);
//! `POST /bigquery/v2/projects/{p}/datasets/{d}/tables/{t}/insertAll` answers success after
//! `LATENCY_MS` (default 0, a Tokio sleep) and counts calls and rows (occurrences of
//! `"insertId":`, a byte scan; the body is not parsed). `GET /stats`: `{"calls":N,"rows":M}`;
//! `POST /reset` zeroes both; `GET /healthz`.

// The services' allocator, so that what is measured is what they run.
pipeline::use_mimalloc!();

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};

#[derive(Default)]
struct Stats {
    calls: AtomicU64,
    rows: AtomicU64,
}

#[derive(Clone)]
struct App {
    stats: Arc<Stats>,
    latency: Duration,
}

fn json(text: String) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], text)
}

async fn insert_all(State(app): State<App>, body: Bytes) -> impl IntoResponse {
    let rows = bench::count_occurrences(&body, br#""insertId":"#) as u64;
    app.stats.calls.fetch_add(1, Ordering::Relaxed);
    app.stats.rows.fetch_add(rows, Ordering::Relaxed);
    if !app.latency.is_zero() {
        tokio::time::sleep(app.latency).await;
    }
    json(r#"{"kind":"bigquery#tableDataInsertAllResponse"}"#.to_string())
}

/// `tables.get`: the table, with the schema the services write.
async fn table() -> impl IntoResponse {
    let schema = pipeline::schema::Schema::event_telemetry().to_api_json();
    // As BigQuery answers: `tableReference` is always there (gcp-bigquery-client requires it).
    json(
        serde_json::json!({"kind": "bigquery#table", "schema": schema,
            "tableReference": {"projectId": "bench", "datasetId": "d", "tableId": "event_telemetry"}})
        .to_string(),
    )
}

async fn stats(State(app): State<App>) -> impl IntoResponse {
    let calls = app.stats.calls.load(Ordering::Relaxed);
    let rows = app.stats.rows.load(Ordering::Relaxed);
    json(format!(r#"{{"calls":{calls},"rows":{rows}}}"#))
}

async fn reset(State(app): State<App>) -> impl IntoResponse {
    app.stats.calls.store(0, Ordering::Relaxed);
    app.stats.rows.store(0, Ordering::Relaxed);
    json(r#"{"calls":0,"rows":0}"#.to_string())
}

async fn healthz() -> impl IntoResponse {
    json(r#"{"status":"ok","service":"insertall"}"#.to_string())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = bench::address_from_env();
    let app = App {
        stats: Arc::default(),
        latency: Duration::from_millis(bench::u64_from_env("LATENCY_MS", 0)),
    };
    let router = Router::new()
        .route(
            "/bigquery/v2/projects/{project}/datasets/{dataset}/tables/{table}/insertAll",
            post(insert_all),
        )
        .route(
            "/bigquery/v2/projects/{project}/datasets/{dataset}/tables/{table}",
            get(table),
        )
        .route("/stats", get(stats))
        .route("/reset", post(reset))
        .route("/healthz", get(healthz))
        // An insertAll request stays under BigQuery's 10 MB limit.
        .layer(DefaultBodyLimit::max(16 * 1024 * 1024))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router).await
}
