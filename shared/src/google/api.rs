//! The JSON layer: the one hand-written Google client, for the calls no maintained crate covers
//! here (see the module list in [`super`]).
//!
//! One constructor ([`Api::new`]: the API, an emulator or none, the token scopes, a timeout), one
//! place that attaches the token ([`super::Credentials::authorize`]), one error
//! ([`GoogleError`]), and one retry rule: an answer of class [`Class::Retry`] is tried again with
//! backoff until the timeout is spent. Every call made through it is safe to repeat (reads,
//! `acknowledge`, `modifyAckDeadline`; a `pull` whose answer is lost leaves its messages leased
//! until their deadline, then Pub/Sub delivers them again).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::{Call, Class, Credentials, GoogleApi, GoogleError};

/// Where an API is reached: Google's address, or an emulator serving the same paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `rootUrl` + `servicePath`, ending in `/`.
    pub base: String,
    pub emulator: bool,
}

impl Endpoint {
    /// `service` at Google, or at `emulator` (`http://host:port`).
    pub fn new(service: &GoogleApi, emulator: Option<&str>) -> Self {
        match emulator {
            Some(e) => Self {
                base: format!("{}/{}", e.trim_end_matches('/'), service.service_path),
                emulator: true,
            },
            None => Self {
                base: format!("{}{}", service.root_url, service.service_path),
                emulator: false,
            },
        }
    }
}

/// A JSON client for one Google API.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    endpoint: Endpoint,
    credentials: Arc<Credentials>,
    timeout: Duration,
    service: &'static str,
}

/// The first retry waits this long; each further one twice as long, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

impl Api {
    /// A client for `service` at Google (Application Default Credentials with `scopes`), or at
    /// `emulator` (`http://host:port`, no credentials). `timeout` bounds a call, retries included.
    pub fn new(
        service: &'static GoogleApi,
        emulator: Option<&str>,
        scopes: &[&str],
        timeout: Duration,
    ) -> Result<Self, String> {
        let credentials = Credentials::new(emulator.is_some(), scopes, service.name)?;
        Self::with_credentials(service, emulator, Arc::new(credentials), timeout)
    }

    /// As [`Api::new`], sharing credentials made for another client of the same service.
    pub fn with_credentials(
        service: &'static GoogleApi,
        emulator: Option<&str>,
        credentials: Arc<Credentials>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .build()
            .map_err(|e| format!("cannot create the HTTP client for {}: {e}", service.name))?;
        Ok(Self {
            http,
            endpoint: Endpoint::new(service, emulator),
            credentials,
            timeout,
            service: service.name,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn credentials(&self) -> &Arc<Credentials> {
        &self.credentials
    }

    /// `GET {base}{path}?{query}`, the answer's JSON as `T`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        call: Call,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, GoogleError> {
        let url = self.url(path);
        self.send(call, || self.http.get(&url).query(query)).await
    }

    /// `POST {base}{path}` with `body` as JSON, the answer's JSON as `T`.
    pub async fn post<T: DeserializeOwned>(
        &self,
        call: Call,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, GoogleError> {
        let url = self.url(path);
        self.send(call, || self.http.post(&url).json(body)).await
    }

    /// `POST {base}{path}` with `body` (JSON text written by the caller), the answer's JSON as `T`.
    pub async fn post_json_text<T: DeserializeOwned>(
        &self,
        call: Call,
        path: &str,
        body: bytes::Bytes,
    ) -> Result<T, GoogleError> {
        let url = self.url(path);
        self.send(call, || {
            self.http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
        })
        .await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint.base)
    }

    /// Sends the request `make` builds, retrying [`Class::Retry`] answers within the timeout.
    /// Each attempt, its access token included (a metadata server that never answers), ends
    /// within the time left.
    async fn send<T: DeserializeOwned>(
        &self,
        call: Call,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<T, GoogleError> {
        with_retries(self.timeout, |left| {
            let attempt = self.once(call, make().timeout(left));
            async move {
                tokio::time::timeout(left, attempt)
                    .await
                    .unwrap_or_else(|_| {
                        Err(GoogleError::transport(
                            call,
                            format!("no answer (the access token included) within {left:?}"),
                        ))
                    })
            }
        })
        .await
    }

    async fn once<T: DeserializeOwned>(
        &self,
        call: Call,
        request: reqwest::RequestBuilder,
    ) -> Result<T, GoogleError> {
        let request = self.credentials.authorize(call, request).await?;
        let response = request.send().await.map_err(|e| {
            GoogleError::transport(call, transport_text(self.service, &e, self.timeout))
        })?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| {
            GoogleError::transport(call, transport_text(self.service, &e, self.timeout))
        })?;
        if !(200..300).contains(&status) {
            return Err(GoogleError::from_answer(call, status, &body));
        }
        let body: &[u8] = if body.is_empty() { b"{}" } else { &body };
        serde_json::from_slice(body).map_err(|e| {
            GoogleError::transport(
                call,
                format!(
                    "{} answered an unexpected body ({})",
                    self.service,
                    e.classify_name()
                ),
            )
        })
    }
}

/// Runs `attempt` until it succeeds, fails with a class other than [`Class::Retry`], or
/// `timeout` is spent; each attempt is given the time left, to bound itself by. The one retry
/// rule of every call the pipeline makes itself (the maintained clients run their own loops,
/// driven by the same classifier).
pub async fn with_retries<T, F, Fut>(timeout: Duration, mut attempt: F) -> Result<T, GoogleError>
where
    F: FnMut(Duration) -> Fut,
    Fut: std::future::Future<Output = Result<T, GoogleError>>,
{
    let deadline = Instant::now() + timeout;
    let mut backoff = FIRST_BACKOFF;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let error = match attempt(left).await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if error.class() != Class::Retry || Instant::now() + backoff >= deadline {
            return Err(error);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// What went wrong on the way, without the URL (it may hold object names).
fn transport_text(service: &str, e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("{service} did not answer within {timeout:?}")
    } else if e.is_connect() {
        format!("{service} unreachable (connection failed)")
    } else {
        format!("{service}: connection broken")
    }
}

/// How a serde error is named in messages: its category only (never the text around it).
trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O",
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "unexpected shape",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

/// `s` as one path segment (`/` and everything but unreserved characters percent-encoded): an
/// object name in `b/{bucket}/o/{object}`.
pub fn segment(s: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::google::{BIGQUERY, PUBSUB, STORAGE};

    #[test]
    fn an_emulator_serves_googles_paths_under_its_own_address() {
        assert_eq!(
            Endpoint::new(&STORAGE, None).base,
            "https://storage.googleapis.com/storage/v1/"
        );
        assert_eq!(
            Endpoint::new(&STORAGE, Some("http://127.0.0.1:9/")).base,
            "http://127.0.0.1:9/storage/v1/"
        );
        assert_eq!(
            Endpoint::new(&BIGQUERY, Some("http://h:1")).base,
            "http://h:1/bigquery/v2/"
        );
        assert_eq!(
            Endpoint::new(&PUBSUB, None).base,
            "https://pubsub.googleapis.com/"
        );
    }

    #[test]
    fn a_path_segment_keeps_no_slash() {
        assert_eq!(segment("t/2026/a b.json"), "t%2F2026%2Fa%20b.json");
    }

    #[tokio::test]
    async fn a_token_that_never_comes_is_bounded_by_the_calls_timeout() {
        // A token endpoint that takes the connection and never answers.
        let held = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let token_uri = format!("http://{}/token", held.local_addr().unwrap());
        tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = held.accept().await {
                open.push(socket);
            }
        });
        let tokens = google_cloud_auth::credentials::user_account::Builder::new(
            serde_json::json!({"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r"}),
        )
        .with_token_uri(token_uri)
        .build_access_token_credentials()
        .unwrap();
        let api = Api::with_credentials(
            &STORAGE,
            Some("http://127.0.0.1:1"),
            Arc::new(Credentials::from_tokens(tokens)),
            Duration::from_millis(500),
        )
        .unwrap();
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(
            Duration::from_secs(20),
            api.get::<serde_json::Value>(crate::google::calls::OBJECTS_LIST, "b/x/o", &[]),
        )
        .await
        .expect("the call waited for the token past its own timeout");
        let e = answer.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(e.class(), Class::Retry, "{e}");
    }

    #[tokio::test]
    async fn retries_stop_at_the_timeout_and_name_the_call() {
        // Nothing listens on port 1: every attempt fails to connect, class Retry.
        let api = Api::new(
            &STORAGE,
            Some("http://127.0.0.1:1"),
            &[],
            Duration::from_millis(900),
        )
        .unwrap();
        let started = std::time::Instant::now();
        let e = api
            .get::<serde_json::Value>(crate::google::calls::BUCKETS_GET, "b/x", &[])
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(e.class(), Class::Retry);
        assert!(
            e.to_string().starts_with("storage.buckets.get: no answer"),
            "{e}"
        );
    }
}
