//! A fault-injecting proxy in front of the BigQuery Storage Write API (gRPC, h2c): the services'
//! `BIGQUERY_STORAGE_EMULATOR_HOST` points here, and it forwards to the contract recorder in front
//! of the emulator.
//!
//! Each `AppendRows` stream is served in order, one request at a time: each request is decoded
//! (Google's protos, as the contract check reads them) and its Arrow batch read for its event ids.
//! A batch holding an event of the permanent set is answered, not forwarded, as BigQuery answers a
//! refused row: `row_errors` naming each such row (`FIELDS_ERROR`), nothing appended. Otherwise, at
//! the configured rates, it is: answered with an in-stream `UNAVAILABLE` error (not forwarded; the
//! client retries it); held past the sink timeout, then answered so; forwarded and its answer held
//! past the sink timeout (the rows land, the caller times out, the push is redelivered: a
//! duplicate row); or the stream is broken (reset) with the request unanswered. The rest are
//! forwarded and their answers passed back. Other methods (`GetWriteStream`) pass untouched.
//! [`GrpcProxy::close_next`] scripts the next appends instead: each closes its stream with a
//! gRPC status, unanswered, as BigQuery closes an idle stream with ABORTED.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use arrow_array::cast::AsArray;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::proxy::{FaultRates, ProxyCounts};
use crate::contract::grpc::{BoxError, Frames, Protos, StreamedBody, streamed_body, take_messages};
use crate::samples::Rng;

type Body = StreamedBody;

const PACKAGE: &str = "google.cloud.bigquery.storage.v1";

pub struct GrpcProxy {
    pub port: u16,
    pub counts: Arc<ProxyCounts>,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

struct Inner {
    upstream: String,
    rates: FaultRates,
    hold: Duration,
    permanent: HashSet<String>,
    rng: Mutex<Rng>,
    counts: Arc<ProxyCounts>,
    client: Client<HttpConnector, Body>,
    request: MessageDescriptor,
    response: MessageDescriptor,
    /// Scripted closes for the next appends: the gRPC status code and message of each.
    script: Mutex<VecDeque<(&'static str, &'static str)>>,
}

impl GrpcProxy {
    /// Starts the proxy on a free loopback port in front of `upstream` (`http://host:port`).
    pub async fn start(
        upstream: &str,
        rates: FaultRates,
        hold: Duration,
        permanent: HashSet<String>,
        seed: u64,
    ) -> Result<GrpcProxy> {
        let protos: Arc<Protos> = crate::contract::protos()?;
        let message = |name: &str| {
            protos
                .message(&format!("{PACKAGE}.{name}"))
                .with_context(|| format!("{name} in the protos"))
        };
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let counts = Arc::new(ProxyCounts::default());
        let inner = Arc::new(Inner {
            upstream: upstream.trim_end_matches('/').to_owned(),
            rates,
            hold,
            permanent,
            rng: Mutex::new(Rng::new(seed)),
            counts: counts.clone(),
            client: Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build_http(),
            request: message("AppendRowsRequest")?,
            response: message("AppendRowsResponse")?,
            script: Mutex::new(VecDeque::new()),
        });
        let task_inner = inner.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let inner = task_inner.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let inner = inner.clone();
                        async move { Ok::<_, Infallible>(handle(inner, req).await) }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(GrpcProxy {
            port,
            counts,
            inner,
            task,
        })
    }

    /// The next `n` appends each close their stream with gRPC status `code` (e.g. "10",
    /// ABORTED) and `message`, unanswered and not forwarded.
    pub fn close_next(&self, n: usize, code: &'static str, message: &'static str) {
        let mut script = self.inner.script.lock().unwrap_or_else(|p| p.into_inner());
        script.extend(std::iter::repeat_n((code, message), n));
    }

    /// Forgets the scripted closes not yet reached.
    pub fn clear_script(&self) {
        self.inner
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Appends still scripted to close.
    pub fn scripted(&self) -> usize {
        self.inner
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for GrpcProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Inner {
    fn roll(&self) -> f64 {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        (rng.next_u64() % 1_000_000) as f64 / 1_000_000.0
    }
}

/// What to do with one append.
enum Fate {
    /// Close the stream with this gRPC status and message.
    Close(&'static str, &'static str),
    Refuse(Vec<usize>),
    Error,
    Delay,
    Late,
    Reset,
    Forward,
}

async fn handle(inner: Arc<Inner>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let (to_upstream, upstream_body) = streamed_body();
    let mut out = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{}{path}", inner.upstream));
    for (name, value) in &parts.headers {
        if name != "host" {
            out = out.header(name, value);
        }
    }
    let Ok(out) = out.body(upstream_body) else {
        return status_only("13", "unforwardable request");
    };
    if !path.ends_with("/AppendRows") {
        // Unary calls pass untouched.
        spawn_pump(body, to_upstream);
        return match inner.client.request(out).await {
            Ok(r) => r.map(|b| b.map_err(BoxError::from).boxed()),
            Err(_) => status_only("14", "the upstream is unreachable"),
        };
    }
    inner.counts.requests.fetch_add(1, Ordering::Relaxed);
    let (to_caller, caller_body) = streamed_body();
    tokio::spawn(serve_appends(inner, body, out, to_upstream, to_caller));
    let mut response = Response::new(caller_body);
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/grpc"),
    );
    response
}

/// One `AppendRows` stream, request by request, in order.
async fn serve_appends(
    inner: Arc<Inner>,
    mut body: Incoming,
    upstream_request: Request<Body>,
    to_upstream: Frames,
    to_caller: Frames,
) {
    // The upstream call, opened at once; its answers come back as messages, in order.
    let (answers_tx, mut answers) = mpsc::channel::<Vec<u8>>(16);
    let client = inner.client.clone();
    tokio::spawn(async move {
        let Ok(response) = client.request(upstream_request).await else {
            return;
        };
        let mut body = response.into_body();
        let mut buffer = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                buffer.extend_from_slice(data);
                for message in take_messages(&mut buffer).into_iter().flatten() {
                    if answers_tx.send(message).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut buffer = Vec::new();
    // The writer schema and the stream's name, sent in the first request of the stream only.
    let mut schema: Option<Bytes> = None;
    let mut write_stream = String::new();
    // Whether a request went upstream yet: the first one must carry both.
    let mut forwarded = false;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return };
        let Some(data) = frame.data_ref() else {
            continue;
        };
        buffer.extend_from_slice(data);
        for message in take_messages(&mut buffer).into_iter().flatten() {
            let fate = inner.fate(&message, &mut schema, &mut write_stream);
            let answer = match fate {
                Fate::Close(code, why) => {
                    inner.counts.errors.fetch_add(1, Ordering::Relaxed);
                    let mut trailers = hyper::HeaderMap::new();
                    trailers.insert("grpc-status", hyper::header::HeaderValue::from_static(code));
                    trailers.insert("grpc-message", hyper::header::HeaderValue::from_static(why));
                    let _ = to_caller.send(Ok(Frame::trailers(trailers))).await;
                    return;
                }
                Fate::Refuse(rows) => {
                    inner
                        .counts
                        .rows_invalid
                        .fetch_add(rows.len() as u64, Ordering::Relaxed);
                    inner.refusal(&rows)
                }
                Fate::Error => {
                    inner.counts.errors.fetch_add(1, Ordering::Relaxed);
                    inner.unavailable()
                }
                Fate::Delay => {
                    inner.counts.delays.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(inner.hold).await;
                    inner.unavailable()
                }
                Fate::Reset => {
                    inner.counts.resets.fetch_add(1, Ordering::Relaxed);
                    let _ = to_caller.send(Err("reset by the soak proxy".into())).await;
                    return;
                }
                Fate::Late | Fate::Forward => {
                    inner.counts.forwarded.fetch_add(1, Ordering::Relaxed);
                    // Requests the proxy answered itself never reached the upstream stream, which
                    // must learn the stream's name and schema from the first one it gets.
                    let message = if forwarded {
                        message
                    } else {
                        inner.complete(&message, schema.as_ref(), &write_stream)
                    };
                    forwarded = true;
                    if to_upstream
                        .send(Ok(Frame::data(grpc_frame(&message))))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let Ok(Some(answer)) =
                        tokio::time::timeout(Duration::from_secs(60), answers.recv()).await
                    else {
                        inner.counts.upstream_down.fetch_add(1, Ordering::Relaxed);
                        let _ = to_caller.send(Err("no answer upstream".into())).await;
                        return;
                    };
                    if matches!(fate, Fate::Late) {
                        inner.counts.late.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(inner.hold).await;
                    }
                    answer
                }
            };
            if to_caller
                .send(Ok(Frame::data(grpc_frame(&answer))))
                .await
                .is_err()
            {
                return;
            }
        }
    }
    // The caller closed its side: so does the proxy, with an OK status.
    drop(to_upstream);
    let mut trailers = hyper::HeaderMap::new();
    trailers.insert("grpc-status", hyper::header::HeaderValue::from_static("0"));
    let _ = to_caller.send(Ok(Frame::trailers(trailers))).await;
}

impl Inner {
    /// The fate of one `AppendRowsRequest`: refused rows first, then the dice.
    fn fate(&self, message: &[u8], schema: &mut Option<Bytes>, stream: &mut String) -> Fate {
        let ids = self.event_ids(message, schema, stream).unwrap_or_default();
        let scripted = self
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        if let Some((code, why)) = scripted {
            return Fate::Close(code, why);
        }
        let refused: Vec<usize> = ids
            .iter()
            .enumerate()
            .filter(|(_, id)| self.permanent.contains(*id))
            .map(|(i, _)| i)
            .collect();
        if !refused.is_empty() {
            return Fate::Refuse(refused);
        }
        let r = self.rates;
        let roll = self.roll();
        let mut edge = 0.0;
        for (p, fate) in [
            (r.error, Fate::Error),
            (r.delay, Fate::Delay),
            (r.late, Fate::Late),
            (r.reset, Fate::Reset),
        ] {
            edge += p;
            if roll < edge {
                return fate;
            }
        }
        Fate::Forward
    }

    /// The `event_id` of each row of the request's Arrow batch; `schema`: the stream's writer
    /// schema, kept from the request that carried it.
    fn event_ids(
        &self,
        message: &[u8],
        schema: &mut Option<Bytes>,
        stream: &mut String,
    ) -> Option<Vec<String>> {
        let request = DynamicMessage::decode(self.request.clone(), message).ok()?;
        if let Some(Value::String(name)) = request
            .get_field_by_name("write_stream")
            .map(|v| v.into_owned())
            && !name.is_empty()
        {
            *stream = name;
        }
        let arrow = field(&request, "arrow_rows")?;
        if let Some(carried) = field(&arrow, "writer_schema").and_then(|s| bytes_of(&s)) {
            *schema = Some(carried);
        }
        let schema = schema.clone()?;
        let batch = bytes_of(&field(&arrow, "rows")?)?;
        let mut stream = schema.to_vec();
        stream.extend_from_slice(&batch);
        let reader =
            arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(stream), None).ok()?;
        let mut ids = Vec::new();
        for batch in reader {
            let batch = batch.ok()?;
            let column = batch.column_by_name("event_id")?.as_string_opt::<i32>()?;
            ids.extend(column.iter().map(|v| v.unwrap_or_default().to_owned()));
        }
        Some(ids)
    }

    /// `message` with the stream's name and writer schema where it omits them.
    fn complete(&self, message: &[u8], schema: Option<&Bytes>, stream: &str) -> Vec<u8> {
        let Ok(mut request) = DynamicMessage::decode(self.request.clone(), message) else {
            return message.to_vec();
        };
        if !request.has_field_by_name("write_stream") {
            request.set_field_by_name("write_stream", Value::String(stream.to_owned()));
        }
        if let (Some(mut arrow), Some(schema)) = (field(&request, "arrow_rows"), schema)
            && !arrow.has_field_by_name("writer_schema")
        {
            let descriptor = arrow
                .descriptor()
                .get_field_by_name("writer_schema")
                .and_then(|f| f.kind().as_message().cloned());
            if let Some(descriptor) = descriptor {
                let mut writer_schema = DynamicMessage::new(descriptor);
                writer_schema.set_field_by_name("serialized_schema", Value::Bytes(schema.clone()));
                arrow.set_field_by_name("writer_schema", Value::Message(writer_schema));
                request.set_field_by_name("arrow_rows", Value::Message(arrow));
            }
        }
        request.encode_to_vec()
    }

    /// BigQuery's answer to refused rows: `row_errors`, and the request's status.
    fn refusal(&self, rows: &[usize]) -> Vec<u8> {
        let mut answer = DynamicMessage::new(self.response.clone());
        let row_error = self
            .response
            .get_field_by_name("row_errors")
            .and_then(|f| f.kind().as_message().cloned());
        let Some(row_error) = row_error else {
            return Vec::new();
        };
        let errors = rows
            .iter()
            .map(|&i| {
                let mut e = DynamicMessage::new(row_error.clone());
                e.set_field_by_name("index", Value::I64(i as i64));
                // FIELDS_ERROR
                e.set_field_by_name("code", Value::EnumNumber(1));
                e.set_field_by_name(
                    "message",
                    Value::String("injected by the soak proxy: invalid row".into()),
                );
                Value::Message(e)
            })
            .collect();
        answer.set_field_by_name("row_errors", Value::List(errors));
        self.set_status(&mut answer, 3, "injected by the soak proxy: rows refused");
        answer.encode_to_vec()
    }

    /// An in-stream `UNAVAILABLE`: the append failed, nothing was appended.
    fn unavailable(&self) -> Vec<u8> {
        let mut answer = DynamicMessage::new(self.response.clone());
        self.set_status(&mut answer, 14, "injected by the soak proxy");
        answer.encode_to_vec()
    }

    fn set_status(&self, answer: &mut DynamicMessage, code: i32, message: &str) {
        let Some(status) = self
            .response
            .get_field_by_name("error")
            .and_then(|f| f.kind().as_message().cloned())
        else {
            return;
        };
        let mut s = DynamicMessage::new(status);
        s.set_field_by_name("code", Value::I32(code));
        s.set_field_by_name("message", Value::String(message.into()));
        answer.set_field_by_name("error", Value::Message(s));
    }
}

/// A message field that is set (an unset one reads as its empty default).
fn field(message: &DynamicMessage, name: &str) -> Option<DynamicMessage> {
    if !message.has_field_by_name(name) {
        return None;
    }
    match message.get_field_by_name(name)?.as_ref() {
        Value::Message(m) => Some(m.clone()),
        _ => None,
    }
}

fn bytes_of(message: &DynamicMessage) -> Option<Bytes> {
    // The one bytes field of ArrowSchema / ArrowRecordBatch we read is their first.
    let f = message.descriptor().fields().next()?;
    match message.get_field(&f).as_ref() {
        Value::Bytes(b) => Some(b.clone()),
        _ => None,
    }
}

fn grpc_frame(message: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(message.len() + 5);
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    Bytes::from(out)
}

/// Copies the caller's frames upstream as they come.
fn spawn_pump(mut body: Incoming, to: Frames) {
    tokio::spawn(async move {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(BoxError::from);
            if to.send(frame).await.is_err() {
                return;
            }
        }
    });
}

/// A trailers-only gRPC answer with `code`.
fn status_only(code: &'static str, why: &str) -> Response<Body> {
    let mut r = Response::new(http_body_util::Empty::new().map_err(|e| match e {}).boxed());
    let h = r.headers_mut();
    h.insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/grpc"),
    );
    h.insert("grpc-status", hyper::header::HeaderValue::from_static(code));
    if let Ok(v) = hyper::header::HeaderValue::from_str(why) {
        h.insert("grpc-message", v);
    }
    r
}
