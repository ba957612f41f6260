//! `bigquery-standin`: a BigQuery stand-in for the load benchmark (a fixture, not a correctness test),
//! for both ways the services write rows (`BIGQUERY_WRITE_METHOD`).
//!
//! REST on `PORT` (HTTP/1.1):
//! `GET /bigquery/v2/projects/{p}/datasets/{d}/tables/{t}` answers the table with the row schema
//! (the services check it at start-up);
//! `POST /bigquery/v2/projects/{p}/datasets/{d}/tables/{t}/insertAll` answers success after
//! `LATENCY_MS` (default 0, a Tokio sleep) and counts calls, rows (occurrences of `"insertId":`,
//! a byte scan; the body is not parsed) and body bytes.
//!
//! Storage Write on `GRPC_PORT`, when set (gRPC over HTTP/2 without TLS, hand-written: a fake,
//! not Google's service): `BigQueryWrite/GetWriteStream` answers a COMMITTED stream of the name
//! asked; `BigQueryWrite/AppendRows` answers each request of the stream, in order, with success
//! (an empty `append_result`) `LATENCY_MS` after it arrived, requests pipelined, and counts
//! appends, rows (read from the Arrow batch's IPC header, [`bench::grpc`]) and request bytes (the
//! gRPC messages with their 5-byte prefixes, as an HTTP body counts for insertAll).
//!
//! `GET /stats`: `{"calls":N,"rows":M,"bytes":B,"appends":A,"append_rows":R,"append_bytes":C}`
//! (insertAll calls, rows and body bytes; AppendRows requests, rows and bytes);
//! `POST /reset` zeroes them; `GET /healthz`.

// The services' allocator, so that what is measured is what they run.
pipeline::use_mimalloc!();

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use bench::grpc;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::http::{HeaderMap, HeaderValue, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::mpsc;
use tokio::time::Instant;

#[derive(Default)]
struct Stats {
    calls: AtomicU64,
    rows: AtomicU64,
    bytes: AtomicU64,
    appends: AtomicU64,
    append_rows: AtomicU64,
    append_bytes: AtomicU64,
}

impl Stats {
    const FIELDS: usize = 6;

    fn counters(&self) -> [(&'static str, &AtomicU64); Self::FIELDS] {
        [
            ("calls", &self.calls),
            ("rows", &self.rows),
            ("bytes", &self.bytes),
            ("appends", &self.appends),
            ("append_rows", &self.append_rows),
            ("append_bytes", &self.append_bytes),
        ]
    }

    fn to_json(&self) -> String {
        let fields: Vec<String> = self
            .counters()
            .iter()
            .map(|(name, n)| format!(r#""{name}":{}"#, n.load(Ordering::Relaxed)))
            .collect();
        format!("{{{}}}", fields.join(","))
    }
}

#[derive(Clone)]
struct App {
    stats: Arc<Stats>,
    latency: Duration,
}

// --- REST: tables.get, insertAll --------------------------------------------------------------

fn json(text: String) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], text)
}

async fn insert_all(State(app): State<App>, body: Bytes) -> impl IntoResponse {
    let rows = bench::count_occurrences(&body, br#""insertId":"#) as u64;
    app.stats.calls.fetch_add(1, Ordering::Relaxed);
    app.stats.rows.fetch_add(rows, Ordering::Relaxed);
    app.stats
        .bytes
        .fetch_add(body.len() as u64, Ordering::Relaxed);
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
    json(app.stats.to_json())
}

async fn reset(State(app): State<App>) -> impl IntoResponse {
    for (_, n) in app.stats.counters() {
        n.store(0, Ordering::Relaxed);
    }
    json(app.stats.to_json())
}

async fn healthz() -> impl IntoResponse {
    json(r#"{"status":"ok","service":"bigquery-standin"}"#.to_string())
}

// --- gRPC: GetWriteStream, AppendRows ----------------------------------------------------------

const SERVICE: &str = "/google.cloud.bigquery.storage.v1.BigQueryWrite/";

/// `AppendRowsResponse{append_result: AppendResult{}}`: the append succeeded.
const APPEND_OK: &[u8] = &[0x0a, 0x00];

/// A response body fed by a channel: gRPC messages, then the trailers.
struct ChannelBody(mpsc::Receiver<Frame<Bytes>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|frame| frame.map(Ok))
    }
}

fn trailers(status: u32, message: &str) -> Frame<Bytes> {
    let mut map = HeaderMap::new();
    map.insert("grpc-status", HeaderValue::from(status));
    if !message.is_empty()
        && let Ok(value) = HeaderValue::from_str(message)
    {
        map.insert("grpc-message", value);
    }
    Frame::trailers(map)
}

fn grpc_response(body: ChannelBody) -> Response<ChannelBody> {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

/// A response of `frames`, all known now.
fn unary(frames: Vec<Frame<Bytes>>) -> Response<ChannelBody> {
    let (tx, rx) = mpsc::channel(frames.len().max(1));
    for frame in frames {
        let _ = tx.try_send(frame);
    }
    grpc_response(ChannelBody(rx))
}

async fn grpc_call(
    app: App,
    request: Request<Incoming>,
) -> Result<Response<ChannelBody>, Infallible> {
    let method = request.uri().path().strip_prefix(SERVICE).unwrap_or("");
    Ok(match method {
        "AppendRows" => append_rows(app, request.into_body()),
        "GetWriteStream" => get_write_stream(request.into_body()).await,
        _ => unary(vec![trailers(12, "not in the Storage Write stand-in")]), // UNIMPLEMENTED
    })
}

/// `GetWriteStream`: a `WriteStream` of the name asked, type COMMITTED (as the default stream).
async fn get_write_stream(body: Incoming) -> Response<ChannelBody> {
    let Ok(collected) = body.collect().await else {
        return unary(vec![trailers(13, "request body")]); // INTERNAL
    };
    let mut deframer = grpc::Deframer::default();
    deframer.push(&collected.to_bytes());
    let Some(request) = deframer.next_message() else {
        return unary(vec![trailers(3, "no GetWriteStreamRequest")]); // INVALID_ARGUMENT
    };
    let name = grpc::field(&request, 1).unwrap_or_default();
    let mut stream = Vec::new();
    grpc::put_bytes(&mut stream, 1, name); // name
    grpc::put_uint(&mut stream, 2, 1); // type (2): COMMITTED
    grpc::put_bytes(&mut stream, 8, b"us"); // location
    unary(vec![Frame::data(grpc::frame(&stream)), trailers(0, "")])
}

/// `AppendRows`: the response stream starts at once (the client waits for its headers); each
/// request is counted as it arrives and answered `latency` later, in order. Ends with OK once the
/// client has closed its side and every request is answered.
fn append_rows(app: App, mut body: Incoming) -> Response<ChannelBody> {
    let (tx, rx) = mpsc::channel::<Frame<Bytes>>(64);
    // The deadlines of the requests not answered yet: they grow, so answering them in turn keeps
    // the order.
    let (due_tx, mut due_rx) = mpsc::unbounded_channel::<Instant>();
    let latency = app.latency;
    tokio::spawn(async move {
        while let Some(due) = due_rx.recv().await {
            if !latency.is_zero() {
                tokio::time::sleep_until(due).await;
            }
            let answer = Frame::data(grpc::frame(APPEND_OK));
            if tx.send(answer).await.is_err() {
                return; // the client went away
            }
        }
        let _ = tx.send(trailers(0, "")).await;
    });
    tokio::spawn(async move {
        let mut deframer = grpc::Deframer::default();
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else {
                continue; // the client's trailers
            };
            deframer.push(&data);
            while let Some(request) = deframer.next_message() {
                let rows = grpc::append_request_rows(&request).unwrap_or(0);
                let stats = &app.stats;
                stats.appends.fetch_add(1, Ordering::Relaxed);
                stats.append_rows.fetch_add(rows, Ordering::Relaxed);
                let bytes = (grpc::PREFIX + request.len()) as u64;
                stats.append_bytes.fetch_add(bytes, Ordering::Relaxed);
                if due_tx.send(Instant::now() + latency).is_err() {
                    return;
                }
            }
        }
        // Dropping `due_tx` lets the answering task finish the stream.
    });
    grpc_response(ChannelBody(rx))
}

async fn serve_grpc(listener: tokio::net::TcpListener, app: App) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request| grpc_call(app.clone(), request));
            let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            // Wide windows and large frames: the fake must not be what limits an append of
            // megabytes.
            builder
                .initial_stream_window_size(16 << 20)
                .initial_connection_window_size(32 << 20)
                .max_frame_size(1 << 20);
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = bench::address_from_env();
    let app = App {
        stats: Arc::default(),
        latency: Duration::from_millis(bench::u64_from_env("LATENCY_MS", 0)),
    };
    if std::env::var_os("GRPC_PORT").is_some() {
        let port = bench::u64_from_env("GRPC_PORT", 0);
        let port = u16::try_from(port).unwrap_or_else(|_| {
            eprintln!("GRPC_PORT must be a port number");
            std::process::exit(2);
        });
        // Bound before the REST port answers /healthz: ready when healthy.
        let listener = tokio::net::TcpListener::bind((bench::HOST, port)).await?;
        tokio::spawn(serve_grpc(listener, app.clone()));
    }
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
