//! Limits of the real Google services that the emulators do not enforce, and the pipeline's own
//! bounds derived from them, in one place: the code, the docs' tests and the tools read them here.
//! Each says where it comes from; `docs/design.md` ("At the limits of the real services") says
//! what the pipeline does at each.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

/// BigQuery `insertAll`: an `insertId` longer than this is refused (quotas page; recalled, not
/// found in a stored copy of the docs, so checked on paper only). Longer event ids get a hash.
pub const INSERT_ID_MAX_CHARS: usize = 128;

/// `SINK_TIMEOUT_SECONDS` when unset: the most one write (and a push's wait for its verdict) may
/// take; [`push_worst_case`] and the ack deadline follow from it.
pub const DEFAULT_SINK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Pub/Sub's maximum message size (data), in bytes: a larger `message.data` in a push is refused.
pub const MAX_MESSAGE_DATA_BYTES: usize = PUBSUB_MAX_MESSAGE_BYTES;

/// The largest push body accepted: 10 MB of data as base64 (13,333,336 bytes), plus room for 100
/// attributes (256-byte keys, 1024-byte values) and the envelope. 14 MiB.
pub const MAX_PUSH_BODY_BYTES: usize = 14 * 1024 * 1024;

/// The most header bytes a push may carry: an unwrapped push puts up to 100 attributes (256-byte
/// keys, 1024-byte values) into headers, about 128 KiB, plus the request's own headers.
pub const MAX_HEADER_BYTES: usize = 160 * 1024;

/// Google's messages (an error's, a refused row's) are kept to this many characters: enough to
/// name the resource and the problem, short enough for a log line or a dead letter's detail.
pub const MAX_GOOGLE_MESSAGE_CHARS: usize = 300;

/// Identifiers from a payload (feature, action, an attribute key in an error) are kept to this
/// many characters in log lines, object metadata and messages (the gateway allows 64).
pub const MAX_LOGGED_NAME_CHARS: usize = 64;

/// At most `max` characters of `s`: messages and names for people (logs, errors).
pub fn clip_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The longest prefix of `s` within `max` bytes, cut at a character boundary: for limits Google
/// counts in bytes (Pub/Sub attribute values).
pub fn clip_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The most rows `BIGQUERY_BATCH_MAX_ROWS` may ask for in one `insertAll`: BigQuery takes up to
/// 50,000 rows a request and recommends about 500; beyond 10,000 a batch is only slower to fail.
pub const MAX_BATCH_ROWS: usize = 10_000;

/// The most bytes of rows one `insertAll` may carry: BigQuery refuses requests above 10 MB, and
/// the request adds at most 64 bytes to its rows ([`crate::google::bigquery::insert_all_body`]).
pub const MAX_BATCH_BYTES: usize = 9_000_000;

/// BigQuery `insertAll`: one encoded row may be at most this large, because it has to fit into a
/// request of its own (10 MB, see [`MAX_BATCH_BYTES`]). A bigger row loses its
/// largest JSON columns, each recorded in `dropped_columns`.
pub const MAX_ROW_BYTES: usize = MAX_BATCH_BYTES;

/// BigQuery JSON columns: nesting deeper than 500 levels is refused ("JSON data type": "up to 500
/// levels of nesting"). A deeper column is dropped and recorded in `dropped_columns`.
pub const JSON_COLUMN_MAX_DEPTH: usize = 500;

/// Streaming into a day-partitioned table: rows whose partition is out of range are refused as
/// `invalid` ("You can only stream to partitions of date range within 1825 days in the past and
/// 366 days in the future relative to the current date", BigQuery's error, 2025; the docs say 5
/// years and 1 year). The bounds used here keep a day or two of margin on each side; `event_timestamp` is clamped into them (the event's own time kept in
/// `event_timestamp_original`).
pub const PARTITION_PAST: Duration = Duration::days(5 * 365 - 1);
pub const PARTITION_FUTURE: Duration = Duration::days(365 - 1);

/// The partition bounds around `now`: `(earliest, latest)` accepted event time.
pub fn partition_bounds(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    (now - PARTITION_PAST, now + PARTITION_FUTURE)
}

/// JSON nesting the pipeline accepts in `message.data`: the gateway decodes events with Go's
/// protobuf, whose default recursion limit is 10,000 (and each JSON level of a `Struct` is more
/// than one protobuf level), so no published event is deeper. Deeper is refused as
/// `too_deep` (dead-lettered, never lost). serde_json's own default limit, 128, is lifted.
pub const MAX_EVENT_DEPTH: usize = 10_000;

/// The recursive steps over a deep tree (parsing `privateMetadata`, redacting it) grow the stack
/// on the heap by [`STACK_GROWTH`] whenever less than [`STACK_RED_ZONE`] is left (`stacker`), so
/// any depth up to [`MAX_EVENT_DEPTH`] is safe on any thread; the tree is dropped iteratively.
pub const STACK_RED_ZONE: usize = 128 * 1024;
pub const STACK_GROWTH: usize = 4 * 1024 * 1024;

/// The stack the slow parse runs on (only payloads that fail the fast one): large enough to drop
/// a value [`MAX_EVENT_DEPTH`] deep recursively, which the parser does when a later field fails.
/// Virtual memory: only the pages used are touched.
pub const DEEP_PARSE_STACK: usize = 256 * 1024 * 1024;

/// At most this many removed paths are recorded per event (in `redacted_keys`), each at most
/// [`MAX_REDACTED_PATH_CHARS`] long: a deep event with a transcript key at every level would
/// otherwise record paths quadratic in its size.
pub const MAX_REDACTED_PATHS: usize = 100;
pub const MAX_REDACTED_PATH_CHARS: usize = 1_000;

/// Pub/Sub: at most 100 attributes per message (quotas page, "Resource limits"; a publish with
/// more is refused with 400). An unwrapped push carries each as an HTTP header, next to the
/// request's own headers.
pub const PUBSUB_MAX_ATTRIBUTES: usize = 100;

/// Pub/Sub: an attribute value is at most 1024 bytes (quotas page, "Resource limits"); the
/// emulator accepts more.
pub const PUBSUB_MAX_ATTRIBUTE_VALUE_BYTES: usize = 1024;

/// Pub/Sub: an attribute key is at most 256 bytes (quotas page, "Resource limits").
pub const PUBSUB_MAX_ATTRIBUTE_KEY_BYTES: usize = 256;

/// Pub/Sub: a message (data and attributes) is at most 10 MB (quotas page, "Resource limits").
pub const PUBSUB_MAX_MESSAGE_BYTES: usize = 10_000_000;

/// Whether Pub/Sub takes a message of `data` and `attributes` (the limits above, which the
/// emulator does not hold); `Err` says which limit it breaks, never a value.
pub fn publishable(data: &[u8], attributes: &BTreeMap<String, String>) -> Result<(), String> {
    if attributes.len() > PUBSUB_MAX_ATTRIBUTES {
        return Err(format!(
            "{} attributes; Pub/Sub takes at most {PUBSUB_MAX_ATTRIBUTES}",
            attributes.len()
        ));
    }
    let mut size = data.len();
    for (k, v) in attributes {
        if k.len() > PUBSUB_MAX_ATTRIBUTE_KEY_BYTES {
            return Err(format!(
                "an attribute key of {} bytes; Pub/Sub takes at most {PUBSUB_MAX_ATTRIBUTE_KEY_BYTES}",
                k.len()
            ));
        }
        if v.len() > PUBSUB_MAX_ATTRIBUTE_VALUE_BYTES {
            return Err(format!(
                "attribute `{}` has {} bytes; Pub/Sub takes at most {PUBSUB_MAX_ATTRIBUTE_VALUE_BYTES}",
                clip_chars(k, MAX_LOGGED_NAME_CHARS),
                v.len()
            ));
        }
        size += k.len() + v.len();
    }
    if size > PUBSUB_MAX_MESSAGE_BYTES {
        return Err(format!(
            "a message of {size} bytes; Pub/Sub takes at most {PUBSUB_MAX_MESSAGE_BYTES}"
        ));
    }
    Ok(())
}

/// The most request headers the server parses: every attribute of an unwrapped push plus room
/// for the request's own (host, authorization, content type and length, trace, forwarding, …).
/// hyper's default of 100 would refuse an unwrapped push with about 85 attributes.
pub const MAX_REQUEST_HEADERS: usize = PUBSUB_MAX_ATTRIBUTES + 60;

/// Cloud Run sends SIGTERM this long before SIGKILL ("Container runtime contract": 10 seconds).
pub const CLOUD_RUN_SIGTERM_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// On SIGTERM the server waits this long for in-flight requests, then exits: within Cloud Run's
/// grace, with a second left to flush the logs. What is not answered by then is redelivered.
pub const SHUTDOWN_DRAIN: std::time::Duration = std::time::Duration::from_secs(9);

/// The longest one push can take on a service, from its first byte to its answer, given
/// `SINK_TIMEOUT_SECONDS`: the admission wait, a JWKS fetch, the body read, the write (for
/// BigQuery the wait for the row's verdict; for Cloud Storage the write and, after a 403, the
/// listing that tells a duplicate: twice the sink timeout at most) and a dead-letter publish.
/// The push subscriptions' ack deadline, which is also Cloud Run's request timeout, must be at
/// least this (Terraform's precondition in `pubsub.tf` is this formula; a test holds it to it).
pub fn push_worst_case(sink_timeout: std::time::Duration) -> std::time::Duration {
    ADMISSION_WAIT + JWKS_TIMEOUT + BODY_READ_TIMEOUT + 2 * sink_timeout + DEAD_LETTER_TIMEOUT
}

/// How long a push waits for room in the byte budget before it is answered 429 (`admission`).
pub const ADMISSION_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// One fetch of Google's JWKS ([`crate::push_auth`]).
pub const JWKS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long reading a push body may take. Pub/Sub sends it at once; a trickling body is not a
/// push ([`crate::routes`]).
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a dead letter's publish may take, retries included (its publisher is made in
/// [`crate::startup`]).
pub const DEAD_LETTER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A connection must send a whole request head within this long of opening or of its previous
/// response (hyper's header-read timeout, which also ends idle keep-alive connections): a client
/// that stalls mid-header (or never sends) does not hold a connection and its task for ever.
/// Pub/Sub's push and Cloud Run's front end send a head at once.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The deepest nesting of arrays and objects in a JSON text (0 for a scalar). A byte scan that
/// jumps through strings (`memchr` to the next quote or backslash: a transcript is mostly string);
/// it does not validate.
pub fn json_depth(text: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut i = 0;
    while let Some(&b) = text.get(i) {
        match b {
            b'"' => i = string_end(text, i),
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            _ => i += 1,
        }
    }
    deepest
}

/// The index just past the JSON string token that opens at `text[i]` (its end when unclosed).
pub fn string_end(text: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    while let Some(k) = text
        .get(j..)
        .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
    {
        let at = j + k;
        if text[at] == b'\\' {
            j = at + 2;
        } else {
            return at + 1;
        }
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    #[test]
    fn clipping_counts_characters_or_bytes_and_never_splits_a_character() {
        assert_eq!(super::clip_chars("ßßß", 2), "ßß");
        assert_eq!(super::clip_chars("ab", 5), "ab");
        // `ß` is two bytes: three bytes hold one of them, not one and a half.
        assert_eq!(super::clip_bytes("ßßß", 3), "ß");
        assert_eq!(super::clip_bytes("ßßß", 4), "ßß");
        assert_eq!(super::clip_bytes("ab", 5), "ab");
    }

    #[test]
    fn publishable_holds_pubsubs_documented_limits() {
        let attrs = |n: usize, key: usize, value: usize| -> BTreeMap<String, String> {
            (0..n)
                .map(|i| (format!("{i:03}{}", "k".repeat(key - 3)), "v".repeat(value)))
                .collect()
        };
        let max = attrs(100, 256, 1024);
        assert_eq!(publishable(b"{}", &max), Ok(()));
        assert!(publishable(b"{}", &attrs(101, 8, 1)).is_err());
        assert!(publishable(b"{}", &attrs(1, 257, 1)).is_err());
        assert!(publishable(b"{}", &attrs(1, 8, 1025)).is_err());
        assert_eq!(
            publishable(&vec![0; PUBSUB_MAX_MESSAGE_BYTES], &BTreeMap::new()),
            Ok(())
        );
        assert!(publishable(&vec![0; PUBSUB_MAX_MESSAGE_BYTES - 10], &attrs(1, 8, 8)).is_err());
    }
    use super::*;

    #[test]
    fn depth_counts_arrays_and_objects_and_skips_strings() {
        assert_eq!(json_depth(b"1"), 0);
        assert_eq!(json_depth(br#"{"a":[1,{"b":2}]}"#), 3);
        assert_eq!(json_depth(br#"{"a":"[[[[{{\"]]"}"#), 1);
        let deep = format!("{}{}", "[".repeat(700), "]".repeat(700));
        assert_eq!(json_depth(deep.as_bytes()), 700);
    }

    #[test]
    fn partition_bounds_stay_inside_what_bigquery_accepts() {
        let now = Utc::now();
        let (early, late) = partition_bounds(now);
        assert!(now - early < Duration::days(5 * 365));
        assert!(late - now < Duration::days(365));
        assert!(now - early > Duration::days(4 * 365));
    }
}
