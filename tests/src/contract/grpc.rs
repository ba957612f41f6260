//! gRPC calls held to Google's own protos: the BigQuery Storage v1 API (`tests/protos/`, vendored
//! by `scripts/vendor-protos.sh` from Google's published protos, the way the discovery documents
//! are), compiled here by `protox`.
//!
//! A call's path must name a method of a service in the protos, and every request message must
//! decode as that method's request type with no field the type lacks (at any depth), and with
//! every field Google marks `REQUIRED` (`google.api.field_behavior`) set. The messages come from
//! Google's generated client (`google-cloud-bigquery`); what this holds to the protos is which
//! method is called and with what, not the client's encoding.

use std::path::Path;

use anyhow::{Context, Result, bail};
use prost_reflect::{
    DescriptorPool, DynamicMessage, ExtensionDescriptor, MessageDescriptor, MethodDescriptor,
    ReflectMessage, Value,
};

use crate::emulators::repo_root;

/// The proto package of each API held here, and the name its calls have in
/// `pipeline::google::CALLS` (`bigquerystorage.BigQueryWrite.AppendRows`).
pub const APIS: [(&str, &str); 1] = [("bigquerystorage", "google.cloud.bigquery.storage.v1")];

/// The protos that are compiled (their imports come along).
const FILES: [&str; 1] = ["google/cloud/bigquery/storage/v1/storage.proto"];

pub struct Protos {
    pool: DescriptorPool,
    field_behavior: Option<ExtensionDescriptor>,
}

impl Protos {
    /// The vendored protos under `tests/protos/`.
    pub fn of_repo() -> Result<Self> {
        Self::compile(&repo_root().join("tests/protos"))
    }

    pub fn compile(dir: &Path) -> Result<Self> {
        let mut compiler = protox::Compiler::new([dir])?;
        compiler
            .include_imports(true)
            .open_files(FILES)
            .with_context(|| format!("compiling the protos under {}", dir.display()))?;
        // The pool itself, not a `prost_types` copy, which would drop the options' extensions.
        let pool = compiler.descriptor_pool();
        let field_behavior = pool.get_extension_by_name("google.api.field_behavior");
        Ok(Self {
            pool,
            field_behavior,
        })
    }

    /// The method a gRPC path calls (`/google.cloud.bigquery.storage.v1.BigQueryWrite/AppendRows`),
    /// in a package of `api`.
    pub fn method(&self, api: &str, path: &str) -> Result<MethodDescriptor> {
        let Some((_, package)) = APIS.iter().find(|(a, _)| *a == api) else {
            bail!("no protos for the API `{api}`");
        };
        let Some((service, name)) = path.trim_start_matches('/').split_once('/') else {
            bail!("gRPC path `{path}` names no method");
        };
        let Some(found) = self.pool.get_service_by_name(service) else {
            bail!("gRPC {path}: the protos have no service `{service}`");
        };
        if found.package_name() != *package {
            bail!("gRPC {path}: `{service}` is not in {package}");
        }
        found
            .methods()
            .find(|m| m.name() == name)
            .with_context(|| format!("gRPC {path}: `{service}` has no method `{name}`"))
    }

    /// The method's name in `pipeline::google::CALLS`: `api.Service.Method`.
    pub fn call_id(api: &str, method: &MethodDescriptor) -> String {
        format!("{api}.{}.{}", method.parent_service().name(), method.name())
    }

    /// What is wrong with one request message of `method` (its protobuf bytes); `first`: the
    /// first message of its call. In a client stream the `REQUIRED` fields are checked on the
    /// first message only: `AppendRowsRequest` documents that later requests on a connection may
    /// omit `write_stream` and the writer schema, and Google's client does omit them.
    pub fn check_request(
        &self,
        method: &MethodDescriptor,
        bytes: &[u8],
        first: bool,
    ) -> Vec<String> {
        let input = method.input();
        let required = first || !method.is_client_streaming();
        match DynamicMessage::decode(input.clone(), bytes) {
            Err(e) => vec![format!("not a {}: {e}", input.full_name())],
            Ok(message) => {
                let mut problems = Vec::new();
                self.walk(&message, input.name(), required, &mut problems);
                problems
            }
        }
    }

    fn walk(
        &self,
        message: &DynamicMessage,
        path: &str,
        required: bool,
        problems: &mut Vec<String>,
    ) {
        let descriptor = message.descriptor();
        for unknown in message.unknown_fields() {
            problems.push(format!(
                "`{path}`: field number {} is not a field of {}",
                unknown.number(),
                descriptor.full_name()
            ));
        }
        for field in descriptor.fields() {
            let name = format!("{path}.{}", field.name());
            if required && self.required(&field) && !message.has_field(&field) {
                problems.push(format!("`{name}` is REQUIRED and not set"));
            }
            if !message.has_field(&field) {
                continue;
            }
            match message.get_field(&field).as_ref() {
                Value::Message(inner) => self.walk(inner, &name, required, problems),
                Value::List(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Value::Message(inner) = item {
                            self.walk(inner, &format!("{name}[{i}]"), required, problems);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Whether Google marks the field `REQUIRED` (`google.api.field_behavior`).
    fn required(&self, field: &prost_reflect::FieldDescriptor) -> bool {
        let Some(behavior) = &self.field_behavior else {
            return false;
        };
        let options = field.options();
        if !options.has_extension(behavior) {
            return false;
        }
        match options.get_extension(behavior).as_ref() {
            // `FieldBehavior.REQUIRED` is 2.
            Value::List(values) => values.iter().any(|v| matches!(v, Value::EnumNumber(2))),
            Value::EnumNumber(2) => true,
            _ => false,
        }
    }

    /// A message type by its full name (tests).
    pub fn message(&self, name: &str) -> Option<MessageDescriptor> {
        self.pool.get_message_by_name(name)
    }
}

/// An error in a streamed body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A body streamed frame by frame (a gRPC stream, forwarded as it comes).
pub type StreamedBody = http_body_util::combinators::BoxBody<bytes::Bytes, BoxError>;
/// Where the frames of a [`StreamedBody`] are sent.
pub type Frames = tokio::sync::mpsc::Sender<Result<hyper::body::Frame<bytes::Bytes>, BoxError>>;

/// A body whose frames are what is sent on the returned sender, until it is dropped.
pub fn streamed_body() -> (Frames, StreamedBody) {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|frame| (frame, rx))
    });
    (
        tx,
        http_body_util::BodyExt::boxed(http_body_util::StreamBody::new(stream)),
    )
}

/// Splits gRPC's length-prefixed messages off the front of `buffer`: each is a compressed flag,
/// a 4-byte big-endian length and the message. What is left is an incomplete message.
pub fn take_messages(buffer: &mut Vec<u8>) -> Vec<Result<Vec<u8>, String>> {
    let mut out = Vec::new();
    loop {
        if buffer.len() < 5 {
            return out;
        }
        let len = u32::from_be_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize;
        if buffer.len() < 5 + len {
            return out;
        }
        let compressed = buffer[0] != 0;
        let message: Vec<u8> = buffer.drain(..5 + len).skip(5).collect();
        out.push(if compressed {
            Err("a compressed message (no grpc-encoding is negotiated here)".into())
        } else {
            Ok(message)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn protos() -> Protos {
        Protos::of_repo().expect("the vendored protos compile")
    }

    fn append_rows(p: &Protos) -> MethodDescriptor {
        p.method(
            "bigquerystorage",
            "/google.cloud.bigquery.storage.v1.BigQueryWrite/AppendRows",
        )
        .unwrap()
    }

    #[test]
    fn a_path_names_a_method_of_the_protos() {
        let p = protos();
        let m = append_rows(&p);
        assert_eq!(
            Protos::call_id("bigquerystorage", &m),
            "bigquerystorage.BigQueryWrite.AppendRows"
        );
        assert!(
            p.method(
                "bigquerystorage",
                "/google.cloud.bigquery.storage.v1.BigQueryWrite/AppendRow"
            )
            .is_err()
        );
        assert!(
            p.method("bigquerystorage", "/google.pubsub.v1.Publisher/Publish")
                .is_err()
        );
    }

    #[test]
    fn a_request_is_held_to_its_message_type() {
        let p = protos();
        let m = append_rows(&p);
        let request = m.input();
        let mut ok = DynamicMessage::new(request.clone());
        ok.set_field_by_name(
            "write_stream",
            Value::String("projects/p/datasets/d/tables/t/streams/_default".into()),
        );
        assert_eq!(
            p.check_request(&m, &ok.encode_to_vec(), true),
            Vec::<String>::new()
        );

        // REQUIRED `write_stream` missing from the first request; later ones may omit it.
        let empty = DynamicMessage::new(request.clone()).encode_to_vec();
        let problems = p.check_request(&m, &empty, true);
        assert!(
            problems.iter().any(|e| e.contains("write_stream")),
            "{problems:?}"
        );
        assert!(p.check_request(&m, &empty, false).is_empty());

        // A field number AppendRowsRequest does not have (99, a string).
        let mut unknown = ok.encode_to_vec();
        unknown.extend_from_slice(&[0x9a, 0x06, 0x01, b'x']);
        let problems = p.check_request(&m, &unknown, false);
        assert!(problems.iter().any(|e| e.contains("99")), "{problems:?}");

        // A wire type that does not fit the field (write_stream as a varint).
        let problems = p.check_request(&m, &[0x08, 0x01], false);
        assert!(!problems.is_empty());
    }

    #[test]
    fn grpc_frames_are_split_into_messages() {
        let mut buffer = vec![0, 0, 0, 0, 2, b'a', b'b', 0, 0, 0, 0, 1];
        let messages = take_messages(&mut buffer);
        assert_eq!(messages, [Ok(b"ab".to_vec())]);
        assert_eq!(buffer, [0, 0, 0, 0, 1], "an incomplete message waits");
        buffer.push(b'c');
        assert_eq!(take_messages(&mut buffer), [Ok(b"c".to_vec())]);
        assert!(buffer.is_empty());
    }
}
