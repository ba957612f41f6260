//! Fixtures of the load benchmark, `scripts/bench-load.sh` (not a test; nothing here runs in
//! `cargo test`): the bins `floor`, `bigquery-standin`, `corpus`, `coldstart` and `freeport`, and the few
//! helpers they share, among them the little of gRPC and protobuf the Storage Write stand-in of
//! `bigquery-standin` reads ([`grpc`]).

use std::net::{Ipv4Addr, SocketAddr};

/// The benchmark listens on loopback only.
pub const HOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// `127.0.0.1:$PORT`; exits with a message when `PORT` is missing or not a port.
pub fn address_from_env() -> SocketAddr {
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| {
            eprintln!("PORT must be set to a port number");
            std::process::exit(2);
        });
    SocketAddr::from((HOST, port))
}

/// A `u64` from the environment, `default` when unset; exits with a message when malformed.
pub fn u64_from_env(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Err(_) => default,
        Ok(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("{name} must be a non-negative integer, got {v:?}");
            std::process::exit(2);
        }),
    }
}

/// How many times `needle` occurs in `haystack` (non-overlapping). SIMD search (`memchr`): the
/// fixture shares the cores with the service it measures, so it must cost next to nothing.
pub fn count_occurrences(haystack: &[u8], needle: &[u8]) -> usize {
    if needle.is_empty() {
        return 0;
    }
    memchr::memmem::find_iter(haystack, needle).count()
}

/// A `kB` field (`VmRSS`, `VmHWM`, …) of `/proc/PID/status`, in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// What the Storage Write stand-in reads of gRPC (HTTP/2 body framing), of protobuf (a wire-format
/// walker: no generated code, no `.proto`) and of Arrow IPC (a record batch's row count, from its
/// flatbuffer header alone). Field numbers: `tests/protos/google/cloud/bigquery/storage/v1/`.
pub mod grpc {
    use bytes::{Buf, Bytes, BytesMut};

    /// The 5-byte prefix of a gRPC message: compressed flag, big-endian length.
    pub const PREFIX: usize = 5;

    /// `message` as one gRPC length-prefixed message (uncompressed).
    pub fn frame(message: &[u8]) -> Bytes {
        let len = u32::try_from(message.len()).expect("a gRPC message under 4 GiB");
        let mut out = BytesMut::with_capacity(PREFIX + message.len());
        out.extend_from_slice(&[0]);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(message);
        out.freeze()
    }

    /// Splits a request body into gRPC messages as its DATA frames arrive.
    #[derive(Default)]
    pub struct Deframer {
        buf: BytesMut,
    }

    impl Deframer {
        pub fn push(&mut self, data: &[u8]) {
            self.buf.extend_from_slice(data);
        }

        /// The next whole message (its protobuf bytes, prefix stripped), if there is one. A
        /// compressed message is returned as is (the clients here never compress).
        pub fn next_message(&mut self) -> Option<Bytes> {
            if self.buf.len() < PREFIX {
                return None;
            }
            let len = u32::from_be_bytes(self.buf[1..PREFIX].try_into().ok()?) as usize;
            if self.buf.len() < PREFIX + len {
                return None;
            }
            self.buf.advance(PREFIX);
            Some(self.buf.split_to(len).freeze())
        }

        /// Bytes of an incomplete message left over.
        pub fn pending(&self) -> usize {
            self.buf.len()
        }
    }

    /// Reads a base-128 varint at the front of `buf`.
    fn varint(buf: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = buf.split_first()?;
            *buf = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// The last occurrence of length-delimited field `number` in the protobuf message `msg`
    /// (as protobuf merges it for a singular field), or `None` when absent or malformed.
    pub fn field(msg: &[u8], number: u64) -> Option<&[u8]> {
        let mut buf = msg;
        let mut found = None;
        while !buf.is_empty() {
            let key = varint(&mut buf)?;
            match key & 7 {
                0 => {
                    varint(&mut buf)?;
                }
                1 => buf = buf.get(8..)?,
                5 => buf = buf.get(4..)?,
                2 => {
                    let len = usize::try_from(varint(&mut buf)?).ok()?;
                    let value = buf.get(..len)?;
                    if key >> 3 == number {
                        found = Some(value);
                    }
                    buf = &buf[len..];
                }
                _ => return None, // groups: not in these protos
            }
        }
        found
    }

    /// Appends a length-delimited field to a protobuf message being written.
    pub fn put_bytes(out: &mut Vec<u8>, number: u64, value: &[u8]) {
        put_varint(out, number << 3 | 2);
        put_varint(out, value.len() as u64);
        out.extend_from_slice(value);
    }

    /// Appends a varint field.
    pub fn put_uint(out: &mut Vec<u8>, number: u64, value: u64) {
        put_varint(out, number << 3);
        put_varint(out, value);
    }

    fn put_varint(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    /// The rows of an `AppendRowsRequest`: `arrow_rows` (5) → `rows` (2) →
    /// `serialized_record_batch` (1), read by [`ipc_batch_rows`]. `None` when the request carries
    /// no Arrow batch (`proto_rows`) or it cannot be read.
    pub fn append_request_rows(request: &[u8]) -> Option<u64> {
        let arrow = field(request, 5)?;
        let batch = field(field(arrow, 2)?, 1)?;
        ipc_batch_rows(batch)
    }

    /// The row count of an Arrow IPC record batch message (`[0xFFFFFFFF] len:i32le flatbuffer
    /// body`), from its flatbuffer header: the body (the rows themselves) is not read.
    pub fn ipc_batch_rows(message: &[u8]) -> Option<u64> {
        let rest = message.strip_prefix(&[0xff; 4]).unwrap_or(message);
        let len = usize::try_from(i32::from_le_bytes(rest.get(..4)?.try_into().ok()?)).ok()?;
        let header = rest.get(4..4 + len)?;
        let message = arrow_ipc::root_as_message(header).ok()?;
        u64::try_from(message.header_as_record_batch()?.length()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_insert_ids() {
        let body = br#"{"rows":[{"insertId":"a","json":{}},{"insertId":"b","json":{}}]}"#;
        assert_eq!(count_occurrences(body, br#""insertId":"#), 2);
        assert_eq!(count_occurrences(b"", br#""insertId":"#), 0);
    }

    #[test]
    fn deframes_grpc_messages_split_across_data_frames() {
        let mut body = grpc::frame(b"hello").to_vec();
        body.extend_from_slice(&grpc::frame(b""));
        body.extend_from_slice(&grpc::frame(&[7; 300]));
        let mut deframer = grpc::Deframer::default();
        let mut messages = Vec::new();
        for chunk in body.chunks(3) {
            deframer.push(chunk);
            while let Some(m) = deframer.next_message() {
                messages.push(m);
            }
        }
        assert_eq!(messages.len(), 3);
        assert_eq!(&messages[0][..], b"hello");
        assert!(messages[1].is_empty());
        assert_eq!(&messages[2][..], &[7; 300][..]);
        assert_eq!(deframer.pending(), 0);
    }

    #[test]
    fn reads_fields_and_writes_them_back() {
        let mut msg = Vec::new();
        grpc::put_uint(&mut msg, 3, 300);
        grpc::put_bytes(&mut msg, 1, b"name");
        grpc::put_bytes(&mut msg, 8, &[1; 200]);
        assert_eq!(grpc::field(&msg, 1), Some(&b"name"[..]));
        assert_eq!(grpc::field(&msg, 8).map(<[u8]>::len), Some(200));
        assert_eq!(grpc::field(&msg, 2), None);
        assert_eq!(grpc::field(&msg[..msg.len() - 1], 8), None, "truncated");
    }

    /// An `AppendRowsRequest` as the services send it: the rows of an Arrow record batch, from
    /// the services' own encoder.
    #[test]
    fn counts_the_rows_of_an_append() {
        use pipeline::row::PreparedRow;
        use pipeline::row::arrow::ArrowRows;

        let row = serde_json::json!({
            "message_id": "m", "handler": "sub-v2", "event_id": "e",
            "event_timestamp": "2026-12-01T10:00:00Z", "feature": "f", "action": "a",
            "is_transcript": false, "is_dotcom": true, "transcript_flag": false,
            "ingested_at": "2026-12-01T10:00:01Z", "request_metadata": {"identifier_type": "unknown"},
            "redacted_keys": [], "routing_mismatches": [], "attributes": "{}"
        });
        let rows: Vec<PreparedRow> = (0..37)
            .map(|i| PreparedRow::new(i.to_string(), &row).unwrap())
            .collect();
        let ipc = ArrowRows::event_telemetry().unwrap().encode(&rows).unwrap();
        assert_eq!(grpc::ipc_batch_rows(&ipc), Some(37));

        let mut record_batch = Vec::new();
        grpc::put_bytes(&mut record_batch, 1, &ipc);
        let mut arrow = Vec::new();
        grpc::put_bytes(&mut arrow, 1, b"(the schema, first request only)");
        grpc::put_bytes(&mut arrow, 2, &record_batch);
        let mut request = Vec::new();
        grpc::put_bytes(
            &mut request,
            1,
            b"projects/p/datasets/d/tables/t/streams/_default",
        );
        grpc::put_bytes(&mut request, 5, &arrow);
        grpc::put_bytes(&mut request, 6, b"rust-writer:0.19");
        assert_eq!(grpc::append_request_rows(&request), Some(37));
        assert_eq!(grpc::append_request_rows(b""), None);
    }
}
