//! A fault-injecting HTTP proxy in front of an emulator (Cloud Storage or BigQuery).
//!
//! The services get `STORAGE_EMULATOR_HOST` / `BIGQUERY_EMULATOR_HOST` pointing here. Each request
//! is, at the configured rates: answered 500/503/429 without being forwarded; held past the sink
//! timeout and then answered 503 without being forwarded; forwarded and its answer held past the
//! sink timeout (the write lands, the caller sees a timeout); or reset at accept time (`SO_LINGER`
//! 0, so the caller sees a reset, never a response). Every response carries `Connection: close`,
//! so each request comes on a new connection and can be reset.
//!
//! BigQuery `insertAll`: rows whose `insertId` (the event id) is in the permanent set are always
//! answered with a per-row `invalid` error and never forwarded; for a fraction of calls some other
//! rows get a transient per-row `backendError`; the remaining rows are forwarded in one request
//! and their verdicts are mapped back to the caller's row indices. Which events get a permanent
//! fault is decided by the caller up front, so the checker knows the expected dead letters.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

use crate::samples::Rng;

/// Probabilities per request (each in 0..1; their sum must stay below 1).
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultRates {
    /// Answer 500, 503 or 429 without forwarding.
    pub error: f64,
    /// Hold the request past `hold`, then answer 503 without forwarding.
    pub delay: f64,
    /// Forward, then hold the answer past `hold` (the write lands; the caller times out).
    pub late: f64,
    /// Reset the connection at accept time (per connection, i.e. per request here).
    pub reset: f64,
    /// For `insertAll`: answer some rows with a transient `backendError` (not forwarded).
    pub row_transient: f64,
}

/// What the proxy did, for the report.
#[derive(Debug, Default)]
pub struct ProxyCounts {
    pub requests: AtomicU64,
    pub forwarded: AtomicU64,
    pub errors: AtomicU64,
    pub delays: AtomicU64,
    pub late: AtomicU64,
    pub resets: AtomicU64,
    pub upstream_down: AtomicU64,
    pub rows_invalid: AtomicU64,
    pub rows_transient: AtomicU64,
}

impl ProxyCounts {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

struct Inner {
    upstream: String,
    rates: FaultRates,
    hold: Duration,
    permanent: HashSet<String>,
    http: reqwest::Client,
    rng: Mutex<Rng>,
    counts: Arc<ProxyCounts>,
}

impl Inner {
    fn roll(&self) -> f64 {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        (rng.next_u64() % 1_000_000) as f64 / 1_000_000.0
    }
}

/// A running proxy.
pub struct Proxy {
    pub port: u16,
    pub counts: Arc<ProxyCounts>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy on a free loopback port in front of `upstream` (`http://host:port`).
    /// `permanent`: `insertId`s that always get a per-row `invalid` error.
    pub async fn start(
        upstream: &str,
        rates: FaultRates,
        hold: Duration,
        permanent: HashSet<String>,
        seed: u64,
    ) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the proxy")?;
        let port = listener.local_addr()?.port();
        let counts = Arc::new(ProxyCounts::default());
        let inner = Arc::new(Inner {
            upstream: upstream.trim_end_matches('/').to_owned(),
            rates,
            hold,
            permanent,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .connect_timeout(Duration::from_secs(2))
                .build()
                .context("proxy HTTP client")?,
            rng: Mutex::new(Rng::new(seed)),
            counts: counts.clone(),
        });
        let faulty = FaultyListener {
            inner: listener,
            rate: rates.reset,
            rng: Rng::new(seed ^ 0x5eed),
            counts: counts.clone(),
        };
        let app = Router::new().fallback(handle).with_state(inner);
        let task = tokio::spawn(async move {
            let _ = axum::serve(faulty, app).await;
        });
        Ok(Proxy { port, counts, task })
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts connections, resetting a fraction of them before reading anything.
struct FaultyListener {
    inner: TcpListener,
    rate: f64,
    rng: Rng,
    counts: Arc<ProxyCounts>,
}

impl axum::serve::Listener for FaultyListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let roll = (self.rng.next_u64() % 1_000_000) as f64 / 1_000_000.0;
                    if roll < self.rate {
                        self.counts.resets.fetch_add(1, Ordering::Relaxed);
                        let _ = stream.set_zero_linger();
                        drop(stream);
                        continue;
                    }
                    return (stream, addr);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

fn error_response(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let (reason, text) = match code {
        429 => ("rateLimitExceeded", "RESOURCE_EXHAUSTED"),
        500 => ("backendError", "INTERNAL"),
        _ => ("backendError", "UNAVAILABLE"),
    };
    let body = json!({"error": {"code": code, "message": "injected by the soak proxy",
        "status": text, "errors": [{"reason": reason, "message": "injected"}]}});
    closing((status, axum::Json(body)).into_response())
}

fn closing(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

async fn handle(State(s): State<Arc<Inner>>, req: Request) -> Response {
    s.counts.requests.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 * 1024 * 1024).await else {
        return error_response(400);
    };
    let path_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());

    let roll = s.roll();
    let r = s.rates;
    if roll < r.error {
        s.counts.errors.fetch_add(1, Ordering::Relaxed);
        let code = [500, 503, 429][(s.roll() * 3.0) as usize % 3];
        return error_response(code);
    }
    if roll < r.error + r.delay {
        s.counts.delays.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(s.hold).await;
        return error_response(503);
    }
    let late = roll < r.error + r.delay + r.late;

    let is_insert_all =
        parts.method == axum::http::Method::POST && parts.uri.path().ends_with("/insertAll");
    let response = if is_insert_all {
        insert_all(&s, &parts.headers, &path_query, &body).await
    } else {
        forward(&s, &parts.method, &parts.headers, &path_query, body).await
    };
    if late {
        s.counts.late.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(s.hold).await;
    }
    closing(response)
}

/// Sends the request on to the emulator and returns its answer (502 when it is unreachable).
async fn forward(
    s: &Inner,
    method: &axum::http::Method,
    headers: &HeaderMap,
    path_query: &str,
    body: Bytes,
) -> Response {
    let Ok(method) = reqwest::Method::from_bytes(method.as_str().as_bytes()) else {
        return error_response(400);
    };
    let mut req = s
        .http
        .request(method, format!("{}{path_query}", s.upstream))
        .body(body);
    for (k, v) in headers {
        let name = k.as_str();
        if matches!(
            name,
            "host" | "content-length" | "connection" | "transfer-encoding" | "keep-alive"
        ) {
            continue;
        }
        req = req.header(name, v.as_bytes());
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(_) => {
            s.counts.upstream_down.fetch_add(1, Ordering::Relaxed);
            return error_response(502);
        }
    };
    s.counts.forwarded.fetch_add(1, Ordering::Relaxed);
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out_headers = Vec::new();
    for (k, v) in resp.headers() {
        let name = k.as_str();
        if matches!(
            name,
            "content-length" | "connection" | "transfer-encoding" | "keep-alive"
        ) {
            continue;
        }
        out_headers.push((name.to_owned(), v.as_bytes().to_vec()));
    }
    let Ok(bytes) = resp.bytes().await else {
        s.counts.upstream_down.fetch_add(1, Ordering::Relaxed);
        return error_response(502);
    };
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    for (k, v) in out_headers {
        if let (Ok(k), Ok(v)) = (
            header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_bytes(&v),
        ) {
            r.headers_mut().append(k, v);
        }
    }
    r
}

/// `insertAll` with per-row faults: permanent rows answered `invalid`, some rows (in a fraction of
/// calls) answered `backendError`, the rest forwarded and their verdicts mapped back.
async fn insert_all(s: &Inner, headers: &HeaderMap, path_query: &str, body: &Bytes) -> Response {
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return forward(
            s,
            &axum::http::Method::POST,
            headers,
            path_query,
            body.clone(),
        )
        .await;
    };
    let rows = parsed["rows"].as_array().cloned().unwrap_or_default();
    let transient_call = s.roll() < s.rates.row_transient;
    let mut errors = Vec::new();
    let mut forward_rows = Vec::new();
    let mut forward_index = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let id = row["insertId"].as_str().unwrap_or_default();
        if s.permanent.contains(id) {
            s.counts.rows_invalid.fetch_add(1, Ordering::Relaxed);
            errors.push(
                json!({"index": i, "errors": [{"reason": "invalid", "location": "event_id",
                "message": "injected permanent row error"}]}),
            );
        } else if transient_call && s.roll() < 0.5 {
            s.counts.rows_transient.fetch_add(1, Ordering::Relaxed);
            errors.push(json!({"index": i, "errors": [{"reason": "backendError",
                "message": "injected transient row error"}]}));
        } else {
            forward_rows.push(row.clone());
            forward_index.push(i);
        }
    }
    if errors.is_empty() {
        return forward(
            s,
            &axum::http::Method::POST,
            headers,
            path_query,
            body.clone(),
        )
        .await;
    }
    if !forward_rows.is_empty() {
        let mut sub = parsed.clone();
        sub["rows"] = Value::Array(forward_rows);
        let sub_body = Bytes::from(sub.to_string());
        let mut h = headers.clone();
        h.remove(header::CONTENT_ENCODING);
        let resp = forward(s, &axum::http::Method::POST, &h, path_query, sub_body).await;
        if !resp.status().is_success() {
            // The forwarded part failed as a whole: so does the caller's call.
            return resp;
        }
        let Ok(bytes) = axum::body::to_bytes(resp.into_body(), 16 * 1024 * 1024).await else {
            return error_response(502);
        };
        let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
            return error_response(502);
        };
        for e in v["insertErrors"].as_array().cloned().unwrap_or_default() {
            let Some(original) = e["index"]
                .as_u64()
                .and_then(|i| forward_index.get(i as usize))
            else {
                // An unattributed error: fail every forwarded row (never report one written).
                for i in &forward_index {
                    errors.push(json!({"index": i, "errors": e["errors"].clone()}));
                }
                continue;
            };
            errors.push(json!({"index": original, "errors": e["errors"].clone()}));
        }
    }
    axum::Json(json!({"kind": "bigquery#tableDataInsertAllResponse", "insertErrors": errors}))
        .into_response()
}
