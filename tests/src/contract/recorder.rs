//! A recording proxy in front of one emulator. The services, `replay` and the audit are pointed
//! at it (their `*_EMULATOR_HOST`); the harness's own clients, which create buckets and read rows
//! back, talk to the emulator directly, so that only the pipeline's requests are recorded.
//!
//! Each request is held to the API's discovery document ([`super::discovery`]). One that
//! conforms is forwarded and its answer streamed back untouched; one that does not is refused with
//! HTTP 400 and a Google-style error naming the method and the field, as Google would refuse it, so
//! the test that sent it fails there. Either way it is entered in the [`super::Ledger`].
//!
//! HTTP/1.1 and HTTP/2 (cleartext, prior knowledge) are both served: the Pub/Sub publisher of
//! `google-cloud-pubsub` speaks gRPC. A gRPC call is matched to the discovery method of the same
//! name (`Publisher/Publish` → `pubsub.projects.topics.publish`); its body is protobuf, generated
//! from Google's own protos by that client, and is not checked field by field.
//!
//! The BigQuery Storage Write API (`bigquerystorage`) has no discovery document: its calls are held
//! to Google's protos instead ([`super::grpc`]), message by message. `AppendRows` streams both
//! ways for as long as the connection lives, so these calls are forwarded as streams: each
//! request message is checked and entered in the ledger as it passes.

use std::convert::Infallible;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use super::discovery::{self, Discovery};
use super::grpc::{self, Protos};
use super::{Entry, ledger};

type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A running recorder; stops when dropped.
pub struct Recorder {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

struct Inner {
    api: &'static str,
    /// Whether entries go to the run's files too (not for the recorder's own tests, which send
    /// wrong requests on purpose).
    persist: bool,
    /// `http://127.0.0.1:PORT` of the emulator.
    upstream: String,
    discovery: Arc<Discovery>,
    /// For an API held to protos (`bigquerystorage`).
    protos: Option<Arc<Protos>>,
    http1: Client<HttpConnector, Full<Bytes>>,
    http2: Client<HttpConnector, Full<Bytes>>,
    /// gRPC streams, forwarded as they come.
    streams: Client<HttpConnector, grpc::StreamedBody>,
}

impl Recorder {
    /// Starts a recorder for `api` (`storage`, `bigquery`, `pubsub`) in front of `upstream`.
    pub async fn start(api: &'static str, upstream: &str) -> Result<Recorder> {
        Self::start_with(api, upstream, true).await
    }

    /// A recorder whose entries stay in this process (for tests of the recorder itself).
    pub async fn start_in_memory(api: &'static str, upstream: &str) -> Result<Recorder> {
        Self::start_with(api, upstream, false).await
    }

    async fn start_with(api: &'static str, upstream: &str, persist: bool) -> Result<Recorder> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the recorder")?;
        let port = listener.local_addr()?.port();
        let inner = Arc::new(Inner {
            api,
            persist,
            upstream: upstream.trim_end_matches('/').to_string(),
            discovery: super::discovery()?,
            protos: if grpc::APIS.iter().any(|(a, _)| *a == api) {
                Some(super::protos()?)
            } else {
                None
            },
            http1: Client::builder(TokioExecutor::new()).build_http(),
            http2: Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build_http(),
            streams: Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build_http(),
        });
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let inner = inner.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let inner = inner.clone();
                        async move { Ok::<_, Infallible>(handle(&inner, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Recorder { port, task })
    }

    /// `127.0.0.1:PORT`, for an `*_EMULATOR_HOST` variable.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(inner: &Inner, req: Request<Incoming>) -> Response<Body> {
    if let Some(protos) = &inner.protos {
        return stream(inner, protos, req).await;
    }
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return refuse(false, StatusCode::BAD_REQUEST, "the body could not be read"),
    };
    let content_type = parts
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let grpc = content_type.starts_with("application/grpc");
    let request = discovery::Request {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        content_type,
        body: body.to_vec(),
    };
    let entry = judge(inner, &request, grpc);
    let refused = entry.refusal();
    ledger().record(entry, inner.persist);
    if let Some(why) = refused {
        return refuse(grpc, StatusCode::BAD_REQUEST, &why);
    }
    forward(inner, parts, body, grpc).await
}

/// Which method the request calls, and what is wrong with it.
fn judge(inner: &Inner, request: &discovery::Request, grpc: bool) -> Entry {
    let mut entry = Entry {
        api: inner.api.to_string(),
        call: None,
        transport: if grpc { "grpc" } else { "http" }.to_string(),
        request: format!("{} {}", request.method, request.path),
        problems: Vec::new(),
    };
    if grpc {
        match inner.discovery.grpc_method(inner.api, &request.path) {
            Ok(id) => entry.call = Some(id),
            Err(e) => entry.problems.push(format!("{e:#}")),
        }
        return entry;
    }
    match inner.discovery.check(inner.api, request) {
        Ok((method, problems)) => {
            entry.call = Some(method.id.clone());
            entry.problems = problems;
        }
        Err(e) => entry.problems.push(format!("{e:#}")),
    }
    entry
}

async fn forward(
    inner: &Inner,
    parts: hyper::http::request::Parts,
    body: Bytes,
    grpc: bool,
) -> Response<Body> {
    let path_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let Ok(uri) = format!("{}{path_query}", inner.upstream).parse::<hyper::Uri>() else {
        return refuse(grpc, StatusCode::BAD_REQUEST, "unparsable path");
    };
    let Ok(out) = upstream_request(&parts, uri, Full::new(body)) else {
        return refuse(grpc, StatusCode::BAD_REQUEST, "unforwardable request");
    };
    let client = if grpc || parts.version == hyper::Version::HTTP_2 {
        &inner.http2
    } else {
        &inner.http1
    };
    match client.request(out).await {
        Ok(response) => response.map(|b| b.map_err(|e| e.into()).boxed()),
        Err(_) => refuse(grpc, StatusCode::BAD_GATEWAY, "the emulator is unreachable"),
    }
}

/// A gRPC call of an API held to protos: the path must name a method; the request is forwarded as
/// a stream, each message checked and entered in the ledger as it passes. A message Google would
/// refuse ends the call with INVALID_ARGUMENT, as Google would.
async fn stream(inner: &Inner, protos: &Arc<Protos>, req: Request<Incoming>) -> Response<Body> {
    let (parts, mut body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let mut entry = Entry {
        api: inner.api.to_string(),
        call: None,
        transport: "grpc".into(),
        request: format!("{} {path}", parts.method),
        problems: Vec::new(),
    };
    let method = match protos.method(inner.api, &path) {
        Ok(m) => m,
        Err(e) => {
            entry.problems.push(format!("{e:#}"));
            let why = entry.refusal().unwrap_or_default();
            ledger().record(entry, inner.persist);
            return refuse(true, StatusCode::BAD_REQUEST, &why);
        }
    };
    entry.call = Some(Protos::call_id(inner.api, &method));
    let (frames, upstream_body) = grpc::streamed_body();
    let (protos, persist) = (protos.clone(), inner.persist);
    tokio::spawn(async move {
        let mut buffer = Vec::new();
        let mut first = true;
        while let Some(frame) = body.frame().await {
            let frame = match frame {
                Ok(f) => f,
                Err(e) => {
                    let _ = frames.send(Err(e.into())).await;
                    return;
                }
            };
            if let Some(data) = frame.data_ref() {
                buffer.extend_from_slice(data);
                for message in grpc::take_messages(&mut buffer) {
                    let problems = match message {
                        Ok(bytes) => protos.check_request(&method, &bytes, first),
                        Err(why) => vec![why],
                    };
                    first = false;
                    let refused = !problems.is_empty();
                    ledger().record(
                        Entry {
                            problems,
                            ..entry.clone()
                        },
                        persist,
                    );
                    if refused {
                        // The call fails upstream as a broken stream; the ledger says why.
                        let _ = frames.send(Err("refused by the contract".into())).await;
                        return;
                    }
                }
            }
            if frames.send(Ok(frame)).await.is_err() {
                return;
            }
        }
    });
    let Ok(uri) = format!("{}{path}", inner.upstream).parse::<hyper::Uri>() else {
        return refuse(true, StatusCode::BAD_REQUEST, "unparsable path");
    };
    let Ok(out) = upstream_request(&parts, uri, upstream_body) else {
        return refuse(true, StatusCode::BAD_REQUEST, "unforwardable request");
    };
    match inner.streams.request(out).await {
        Ok(response) => response.map(|b| b.map_err(|e| e.into()).boxed()),
        Err(_) => refuse(true, StatusCode::BAD_GATEWAY, "the emulator is unreachable"),
    }
}

/// The caller's request as sent to the emulator: its method and headers (less the hop-by-hop
/// ones), `uri`, `body`.
fn upstream_request<B>(
    parts: &hyper::http::request::Parts,
    uri: hyper::Uri,
    body: B,
) -> hyper::http::Result<Request<B>> {
    let mut out = Request::builder().method(parts.method.clone()).uri(uri);
    for (name, value) in &parts.headers {
        if !matches!(
            name.as_str(),
            "host" | "connection" | "keep-alive" | "transfer-encoding" | "upgrade"
        ) {
            out = out.header(name, value);
        }
    }
    out.body(body)
}

/// A Google-style error answer (JSON for HTTP; a trailers-only status for gRPC).
fn refuse(grpc: bool, status: StatusCode, why: &str) -> Response<Body> {
    let mut response = if grpc {
        let mut r = Response::new(empty());
        r.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/grpc"),
        );
        // INVALID_ARGUMENT (3) or UNAVAILABLE (14).
        let code = if status == StatusCode::BAD_REQUEST {
            "3"
        } else {
            "14"
        };
        r.headers_mut()
            .insert("grpc-status", hyper::header::HeaderValue::from_static(code));
        if let Ok(v) = hyper::header::HeaderValue::from_str(&why.replace(['\r', '\n'], " ")) {
            r.headers_mut().insert("grpc-message", v);
        }
        r
    } else {
        let reason = if status == StatusCode::BAD_REQUEST {
            "invalid"
        } else {
            "backendError"
        };
        let body = serde_json::json!({"error": {"code": status.as_u16(), "message": why,
            "errors": [{"reason": reason, "message": why}]}});
        let mut r = Response::new(
            Full::new(Bytes::from(body.to_string()))
                .map_err(|e| match e {})
                .boxed(),
        );
        r.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/json"),
        );
        *r.status_mut() = status;
        r
    };
    if grpc {
        *response.status_mut() = StatusCode::OK;
    }
    response
}

fn empty() -> Body {
    Full::new(Bytes::new()).map_err(|e| match e {}).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_google_would_refuse_is_refused_and_recorded() {
        // Nothing listens upstream: what conforms is forwarded and fails there (502).
        let recorder = Recorder::start_in_memory("bigquery", "http://127.0.0.1:1")
            .await
            .unwrap();
        let url = format!(
            "http://{}/bigquery/v2/projects/p/datasets/d/tables/t/insertAll",
            recorder.host()
        );
        let http = reqwest::Client::new();
        let wrong = http
            .post(&url)
            .header("content-type", "application/json")
            .body(r#"{"skipInvalidRows":true,"rows":[{"insertID":"e-1","json":{}}]}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 400);
        let answer: serde_json::Value = wrong.json().await.unwrap();
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("bigquery.tabledata.insertAll")
                && message.contains("`body.rows[0].insertID`"),
            "{message}"
        );
        let right = http
            .post(&url)
            .header("content-type", "application/json")
            .body(r#"{"skipInvalidRows":true,"rows":[{"insertId":"e-1","json":{}}]}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(right.status(), 502, "forwarded to the (absent) emulator");
        let entries = ledger().entries();
        let refused = entries
            .iter()
            .find(|e| e.problems.iter().any(|p| p.contains("insertID")))
            .expect("the refused request is recorded");
        assert_eq!(
            refused.call.as_deref(),
            Some("bigquery.tabledata.insertAll")
        );
    }
}
