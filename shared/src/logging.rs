//! Logging set-up: one JSON object per line on stdout, in the shape Cloud Logging reads
//! (`severity`, `time`, `message`, fields camelCased), through `tracing-stackdriver`.
//!
//! Trace correlation: the server records the request's trace as a `trace` field
//! (`projects/{project}/traces/{id}`, from `X-Cloud-Trace-Context` or `traceparent`).
//! tracing-stackdriver camelCases every key, and Cloud Logging only links a line to its trace under
//! the key `logging.googleapis.com/trace`, so [`CloudLoggingWriter`] renames `trace`, `spanId` and
//! `traceSampled` to Cloud Logging's special keys: a byte search in the written line, not a
//! second parse of it (`BENCHMARKS.md`, issue 17).
//!
//! `LOG_FORMAT=text` gives plain human-readable lines instead (the local demo uses it);
//! `RUST_LOG` filters as usual (default `info`).

use std::io::{self, Write};

use std::borrow::Cow;
use std::sync::LazyLock;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber, writing to stdout. Safe to call more than once (later calls
/// do nothing), so tests can call it freely.
pub fn init() {
    init_with_writer(io::stdout)
}

/// Installs the global subscriber with another destination for the lines.
pub fn init_with_writer<W>(make_writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let text = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("text"));
    let result = if text {
        tracing_subscriber::registry()
            .with(filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(make_writer)
                    .with_ansi(false),
            )
            .try_init()
    } else {
        tracing_subscriber::registry()
            .with(filter)
            .with(tracing_stackdriver::layer().with_writer(CloudLogging(make_writer)))
            .try_init()
    };
    // Already initialised (a second service in one test process): keep the first.
    let _ = result;
}

/// Wraps a `MakeWriter` so that each line goes through [`CloudLoggingWriter`].
pub struct CloudLogging<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for CloudLogging<M> {
    type Writer = CloudLoggingWriter<M::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        CloudLoggingWriter {
            inner: self.0.make_writer(),
            buf: Vec::new(),
        }
    }
}

/// Buffers one formatted line, moves the trace fields to Cloud Logging's keys, writes it.
pub struct CloudLoggingWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> Write for CloudLoggingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // The usual case: the formatter hands over exactly one whole line.
        if self.buf.is_empty() && memchr::memchr(b'\n', data) == Some(data.len().wrapping_sub(1)) {
            self.inner.write_all(&rewrite_line(data))?;
            return Ok(data.len());
        }
        self.buf.extend_from_slice(data);
        while let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            self.inner.write_all(&rewrite_line(&line))?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            self.inner.write_all(&rewrite_line(&rest))?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for CloudLoggingWriter<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// The keys tracing-stackdriver writes for the fields `trace`, `span_id` and `trace_sampled`, and
/// the keys Cloud Logging links a line to its trace by.
const SPECIAL_KEYS: [(&str, &str); 3] = [
    (r#""trace":"#, r#""logging.googleapis.com/trace":"#),
    (r#""spanId":"#, r#""logging.googleapis.com/spanId":"#),
    (
        r#""traceSampled":"#,
        r#""logging.googleapis.com/trace_sampled":"#,
    ),
];

/// Renames the trace keys of one JSON log line to Cloud Logging's, without parsing it: in the
/// compact JSON tracing-stackdriver writes, `"trace":` can only be a key (a quote inside a value is
/// always escaped, `\"`), so the bytes are searched and the key alone replaced. A line without
/// them is passed through as it is.
pub fn rewrite_line(line: &[u8]) -> Cow<'_, [u8]> {
    static FINDERS: LazyLock<[memchr::memmem::Finder<'static>; 3]> = LazyLock::new(|| {
        SPECIAL_KEYS.map(|(from, _)| memchr::memmem::Finder::new(from.as_bytes()))
    });
    let mut out: Option<Vec<u8>> = None;
    for ((from, to), finder) in SPECIAL_KEYS.iter().zip(FINDERS.iter()) {
        let current: &[u8] = out.as_deref().unwrap_or(line);
        let Some(at) = finder.find(current) else {
            continue;
        };
        let mut next = Vec::with_capacity(current.len() + to.len());
        next.extend_from_slice(&current[..at]);
        next.extend_from_slice(to.as_bytes());
        next.extend_from_slice(&current[at + from.len()..]);
        out = Some(next);
    }
    match out {
        Some(v) => Cow::Owned(v),
        None => Cow::Borrowed(line),
    }
}

/// The trace of the request, from `X-Cloud-Trace-Context: TRACE/SPAN;o=1` or W3C
/// `traceparent: 00-TRACE-SPAN-FLAGS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: String,
    pub span_id: Option<String>,
    pub sampled: bool,
}

impl TraceContext {
    pub fn from_headers(headers: &http::HeaderMap) -> Option<Self> {
        if let Some(v) = headers
            .get("x-cloud-trace-context")
            .and_then(|v| v.to_str().ok())
        {
            let (ids, options) = v.split_once(';').unwrap_or((v, ""));
            let (trace, span) = ids.split_once('/').unwrap_or((ids, ""));
            if is_hex(trace, 32) {
                return Some(Self {
                    trace_id: trace.to_ascii_lowercase(),
                    span_id: span.parse::<u64>().ok().map(|s| format!("{s:016x}")),
                    sampled: options.trim() == "o=1",
                });
            }
        }
        if let Some(v) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
            let parts: Vec<&str> = v.trim().split('-').collect();
            if parts.len() >= 4 && is_hex(parts[1], 32) && is_hex(parts[2], 16) {
                return Some(Self {
                    trace_id: parts[1].to_ascii_lowercase(),
                    span_id: Some(parts[2].to_ascii_lowercase()),
                    sampled: u8::from_str_radix(parts[3], 16).is_ok_and(|f| f & 1 == 1),
                });
            }
        }
        None
    }

    /// The value of `logging.googleapis.com/trace`.
    pub fn resource_name(&self, project: &str) -> String {
        format!("projects/{project}/traces/{}", self.trace_id)
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()) && s.bytes().any(|b| b != b'0')
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    #[test]
    fn trace_from_cloud_trace_context_and_traceparent() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-cloud-trace-context",
            HeaderValue::from_static("105445aa7843bc8bf206b12000100000/1;o=1"),
        );
        let t = TraceContext::from_headers(&h).unwrap();
        assert_eq!(t.trace_id, "105445aa7843bc8bf206b12000100000");
        assert_eq!(t.span_id.as_deref(), Some("0000000000000001"));
        assert!(t.sampled);
        assert_eq!(
            t.resource_name("p"),
            "projects/p/traces/105445aa7843bc8bf206b12000100000"
        );

        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let t = TraceContext::from_headers(&h).unwrap();
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.span_id.as_deref(), Some("00f067aa0ba902b7"));

        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_static("garbage"));
        assert_eq!(TraceContext::from_headers(&h), None);
    }

    #[test]
    fn rewrites_trace_keys_for_cloud_logging() {
        let line = br#"{"severity":"INFO","trace":"projects/p/traces/abc","spanId":"01","traceSampled":true,"message":"m"}
"#;
        let rewritten = rewrite_line(line);
        assert!(rewritten.ends_with(b"\n"));
        let out: serde_json::Value = serde_json::from_slice(&rewritten).unwrap();
        assert_eq!(out["logging.googleapis.com/trace"], "projects/p/traces/abc");
        assert_eq!(out["logging.googleapis.com/spanId"], "01");
        assert_eq!(out["logging.googleapis.com/trace_sampled"], true);
        assert!(out.get("trace").is_none());
        assert_eq!(out["message"], "m");
        // A value that says `"trace":` is escaped in the line: left alone.
        let line = br#"{"detail":"a \"trace\": b","message":"m"}"#;
        assert!(matches!(rewrite_line(line), Cow::Borrowed(_)));
        assert_eq!(rewrite_line(b"not json\n").as_ref(), b"not json\n");
    }
}
