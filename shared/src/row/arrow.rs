//! The rows of one Storage Write append as an Arrow record batch.
//!
//! The Arrow schema is derived from the one schema file (`schema/event_telemetry.json`), never
//! written a second time: STRING and JSON columns are UTF-8 strings (BigQuery takes a JSON column
//! as its JSON text), INTEGER is Int64, BOOLEAN is Boolean, TIMESTAMP is microseconds in UTC,
//! RECORD is a struct of its fields, REPEATED a list of non-null items that is never null itself
//! (BigQuery wants an absent REPEATED column sent as an empty list: the row leaves out an empty
//! `dropped_columns`); REQUIRED columns are non-nullable. Each row is decoded from the JSON text it was encoded to once
//! ([`PreparedRow::json`], the same text `insertAll` sends), by `arrow-json` in strict mode, so
//! a key the schema lacks is an error and both write methods carry the same values. The batch is
//! written in Arrow's IPC stream format, the schema once per connection and each batch without
//! it, as `AppendRowsRequest.arrow_rows` wants.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{ArrayRef, ListArray, RecordBatch};
use arrow_ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteOptions, StreamWriter};
use arrow_json::ReaderBuilder;
use arrow_schema::{DataType, Field as ArrowField, Fields, Schema as ArrowSchema, TimeUnit};
use bytes::Bytes;

use super::PreparedRow;
use crate::schema::{Field, Schema};

/// The `event_telemetry` rows as Arrow: the schema, and the encoder of a batch.
#[derive(Debug, Clone)]
pub struct ArrowRows {
    /// What is sent: REPEATED columns are never null.
    schema: Arc<ArrowSchema>,
    /// What the rows' JSON is read with: a REPEATED column may be absent (then null, made empty).
    reading: Arc<ArrowSchema>,
    serialized_schema: Bytes,
}

/// A row the schema refuses: its index in the batch and why (names a column, never a value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfit {
    pub index: usize,
    pub why: String,
}

impl ArrowRows {
    /// The Arrow form of `schema`.
    pub fn new(schema: &Schema) -> Result<Self, String> {
        let schema = Arc::new(ArrowSchema::new(fields(&schema.fields, true)?));
        let reading = Arc::new(ArrowSchema::new(
            schema
                .fields()
                .iter()
                .map(|f| match f.data_type() {
                    DataType::List(_) => f.as_ref().clone().with_nullable(true),
                    // arrow-json reads named zones only with chrono-tz; UTC by its offset is the same.
                    DataType::Timestamp(unit, _) => f
                        .as_ref()
                        .clone()
                        .with_data_type(DataType::Timestamp(*unit, Some("+00:00".into()))),
                    _ => f.as_ref().clone(),
                })
                .collect::<Vec<_>>(),
        ));
        let mut serialized = Vec::new();
        StreamWriter::try_new(&mut serialized, &schema)
            .and_then(|mut w| w.flush())
            .map_err(|e| format!("the Arrow schema cannot be written: {e}"))?;
        Ok(Self {
            schema,
            reading,
            serialized_schema: Bytes::from(serialized),
        })
    }

    /// The `event_telemetry` schema's Arrow form.
    pub fn event_telemetry() -> Result<Self, String> {
        Self::new(&Schema::event_telemetry())
    }

    /// The Arrow schema itself.
    pub fn schema(&self) -> &Arc<ArrowSchema> {
        &self.schema
    }

    /// The schema as an Arrow IPC stream holding the schema alone (`ArrowSchema.serialized_schema`).
    pub fn serialized_schema(&self) -> Bytes {
        self.serialized_schema.clone()
    }

    /// `rows` as one record batch, decoded from their JSON text.
    pub fn batch(&self, rows: &[PreparedRow]) -> Result<RecordBatch, Vec<Unfit>> {
        match self.decode(rows) {
            Ok(batch) => Ok(batch),
            // Which rows: each alone (rare: a row that does not fit is a bug or a schema change).
            Err(_) => Err(rows
                .iter()
                .enumerate()
                .filter_map(|(index, row)| {
                    self.decode(std::slice::from_ref(row))
                        .err()
                        .map(|why| Unfit { index, why })
                })
                .collect()),
        }
    }

    fn decode(&self, rows: &[PreparedRow]) -> Result<RecordBatch, String> {
        let mut decoder = ReaderBuilder::new(self.reading.clone())
            .with_strict_mode(true)
            .with_batch_size(rows.len().max(1))
            .build_decoder()
            .map_err(|e| e.to_string())?;
        for row in rows {
            let text = row.json.get().as_bytes();
            let read = decoder.decode(text).map_err(|e| e.to_string())?;
            if read != text.len() {
                return Err("a row is not one JSON object".into());
            }
        }
        let Some(batch) = decoder.flush().map_err(|e| e.to_string())? else {
            return Ok(RecordBatch::new_empty(self.schema.clone()));
        };
        let columns = batch
            .columns()
            .iter()
            .map(|column| match column.data_type() {
                // A null list is an empty one with a null bit: dropping the bits leaves them empty.
                DataType::List(_) => {
                    let (field, offsets, values, _) = column.as_list::<i32>().clone().into_parts();
                    Arc::new(ListArray::new(field, offsets, values, None)) as ArrayRef
                }
                // The same microseconds, in the zone BigQuery names.
                DataType::Timestamp(..) => Arc::new(
                    column
                        .as_primitive::<TimestampMicrosecondType>()
                        .clone()
                        .with_timezone("UTC"),
                ) as ArrayRef,
                _ => column.clone(),
            })
            .collect();
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| e.to_string())
    }

    /// `rows` as one Arrow IPC record batch message (`ArrowRecordBatch.serialized_record_batch`).
    pub fn encode(&self, rows: &[PreparedRow]) -> Result<Bytes, Vec<Unfit>> {
        let batch = self.batch(rows)?;
        ipc_batch(batch).map_err(|why| {
            // Not a row's fault, but no row of the batch can go: each is told why.
            (0..rows.len())
                .map(|index| Unfit {
                    index,
                    why: why.clone(),
                })
                .collect()
        })
    }
}

/// One record batch as an IPC stream message, without the schema before it.
///
/// Memory: a batch of large rows is held once as Arrow columns and once as the message body;
/// the columns are dropped as soon as the body is written, and the message's few header bytes
/// are put in front of the body in its own buffer instead of copying the body after them
/// (arrow-ipc's `write_message` would hold a third copy; BENCHMARKS.md, "Memory").
pub fn ipc_batch(batch: RecordBatch) -> Result<Bytes, String> {
    let options = ipc_options()?;
    let (dictionaries, mut encoded) = IpcDataGenerator::default()
        .encode(
            &batch,
            &mut DictionaryTracker::new(false),
            &options,
            &mut Default::default(),
        )
        .map_err(|e| format!("the Arrow batch cannot be written: {e}"))?;
    drop(batch);
    debug_assert!(dictionaries.is_empty(), "the schema has no dictionaries");
    // The body is already padded to the alignment, so the message is the header (continuation,
    // length, flatbuffer, padding) as `write_message` writes it for an empty body, then the body.
    let body = std::mem::take(&mut encoded.arrow_data);
    if body.len() % usize::from(IPC_ALIGNMENT) != 0 {
        return Err("the Arrow batch's body is not aligned".into());
    }
    let mut header = Vec::with_capacity(encoded.ipc_message.len() + 16);
    arrow_ipc::writer::write_message(&mut header, encoded, &options)
        .map_err(|e| format!("the Arrow batch cannot be written: {e}"))?;
    Ok(Bytes::from(prepend(header, body)))
}

/// Arrow's default alignment of IPC buffers, named so the body's padding can be checked.
const IPC_ALIGNMENT: u8 = 64;

/// The IPC options every message is written with (Arrow's defaults, the alignment named).
fn ipc_options() -> Result<IpcWriteOptions, String> {
    IpcWriteOptions::try_new(IPC_ALIGNMENT.into(), false, arrow_ipc::MetadataVersion::V5)
        .map_err(|e| format!("the Arrow IPC options: {e}"))
}

/// `head` then `body`, in `body`'s buffer: it grows by `head.len()` (in place when the allocator
/// can), the body moves up, and the head is copied in front.
fn prepend(head: Vec<u8>, mut body: Vec<u8>) -> Vec<u8> {
    let len = body.len();
    body.resize(len + head.len(), 0);
    body.copy_within(..len, head.len());
    body[..head.len()].copy_from_slice(&head);
    body
}

/// The columns; `top` is false inside a RECORD, where a REPEATED or TIMESTAMP column would need
/// the reading fix-ups of [`ArrowRows::decode`] too (the schema has none there, and this says so
/// the day it does).
fn fields(fields: &[Field], top: bool) -> Result<Vec<ArrowField>, String> {
    fields.iter().map(|f| field(f, top)).collect()
}

/// One column: its type, nullability, and for REPEATED a list of non-null items.
fn field(f: &Field, top: bool) -> Result<ArrowField, String> {
    let item = data_type(f)?;
    let nested_fix_up = matches!(item, DataType::Timestamp(..)) || f.mode == "REPEATED";
    if !top && nested_fix_up {
        return Err(format!(
            "column {}: a nested REPEATED or TIMESTAMP column has no Arrow form here",
            f.name
        ));
    }
    Ok(match f.mode.as_str() {
        "REPEATED" => ArrowField::new(
            &f.name,
            DataType::List(Arc::new(ArrowField::new("item", item, false))),
            false,
        ),
        "REQUIRED" => ArrowField::new(&f.name, item, false),
        _ => ArrowField::new(&f.name, item, true),
    })
}

fn data_type(f: &Field) -> Result<DataType, String> {
    Ok(match f.field_type.as_str() {
        "STRING" | "JSON" => DataType::Utf8,
        "INTEGER" | "INT64" => DataType::Int64,
        "BOOLEAN" | "BOOL" => DataType::Boolean,
        "TIMESTAMP" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "RECORD" | "STRUCT" => DataType::Struct(Fields::from(fields(&f.fields, false)?)),
        other => {
            return Err(format!(
                "column {}: type {other} has no Arrow form here",
                f.name
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::types::Int64Type;

    fn row(json: serde_json::Value) -> PreparedRow {
        PreparedRow::new("id".into(), &json).unwrap()
    }

    fn minimal() -> serde_json::Value {
        serde_json::json!({
            "message_id": "m", "handler": "sub-v2", "event_id": "e",
            "event_timestamp": "2026-12-01T10:00:00.123456Z", "feature": "f", "action": "a",
            "is_transcript": false, "is_dotcom": true, "transcript_flag": false,
            "ingested_at": "2026-12-01T10:00:01Z", "request_metadata": {"identifier_type": "unknown"},
            "redacted_keys": [], "routing_mismatches": [],
            "attributes": "{\"a\":\"1\"}"
        })
    }

    #[test]
    fn every_column_of_the_schema_file_has_its_arrow_form() {
        let rows = ArrowRows::event_telemetry().unwrap();
        let schema = Schema::event_telemetry();
        assert_eq!(rows.schema().fields().len(), schema.fields.len());
        for (ours, theirs) in schema.fields.iter().zip(rows.schema().fields()) {
            assert_eq!(&ours.name, theirs.name());
            let never_null = ours.mode == "REQUIRED" || ours.mode == "REPEATED";
            assert_eq!(never_null, !theirs.is_nullable(), "{}", ours.name);
        }
    }

    #[test]
    fn values_keep_their_meaning() {
        let rows = ArrowRows::event_telemetry().unwrap();
        let mut full = minimal();
        full["user"] = serde_json::json!({"user_id": "9007199254740993"});
        full["dropped_columns"] =
            serde_json::json!([{"path": "feature_flags", "reason": "too_large", "bytes": 7}]);
        full["redacted_keys"] = serde_json::json!(["promptText"]);
        let batch = rows.batch(&[row(minimal()), row(full)]).unwrap();
        assert_eq!(batch.num_rows(), 2);
        let user = batch.column_by_name("user").unwrap().as_struct();
        assert!(user.is_null(0));
        // An INTEGER sent as a string (no JSON layer rounds it) is the same int64.
        let id = user.column_by_name("user_id").unwrap();
        assert_eq!(id.as_primitive::<Int64Type>().value(1), 9007199254740993);
        let ts = batch.column_by_name("event_timestamp").unwrap();
        assert_eq!(
            ts.as_primitive::<TimestampMicrosecondType>().value(0),
            1_796_119_200_123_456
        );
        // A JSON column is its JSON text.
        let attributes = batch
            .column_by_name("attributes")
            .unwrap()
            .as_string::<i32>();
        assert_eq!(attributes.value(0), r#"{"a":"1"}"#);
        let keys = batch
            .column_by_name("redacted_keys")
            .unwrap()
            .as_list::<i32>();
        assert_eq!(keys.value(1).as_string::<i32>().value(0), "promptText");
        let dropped = batch
            .column_by_name("dropped_columns")
            .unwrap()
            .as_list::<i32>();
        // An absent REPEATED column goes as an empty list, never a null one.
        assert_eq!(dropped.null_count(), 0);
        assert_eq!(dropped.value(0).len(), 0);
        assert_eq!(dropped.value(1).len(), 1);
    }

    #[test]
    fn a_row_the_schema_refuses_is_named_by_its_index() {
        let rows = ArrowRows::event_telemetry().unwrap();
        let mut unknown = minimal();
        unknown["no_such_column"] = serde_json::json!(1);
        let mut missing = minimal();
        missing.as_object_mut().unwrap().remove("event_id");
        let unfit = rows
            .batch(&[row(minimal()), row(unknown), row(minimal()), row(missing)])
            .unwrap_err();
        let indexes: Vec<usize> = unfit.iter().map(|u| u.index).collect();
        assert_eq!(indexes, [1, 3], "{unfit:?}");
    }

    #[test]
    fn a_batch_message_is_what_arrow_ipc_writes() {
        let rows = ArrowRows::event_telemetry().unwrap();
        let mut big = minimal();
        big["parameters"] = serde_json::json!({"private_metadata": "x".repeat(100_003)});
        let batch = rows.batch(&[row(minimal()), row(big)]).unwrap();
        let options = IpcWriteOptions::default();
        assert_eq!(
            format!("{options:?}"),
            format!("{:?}", ipc_options().unwrap())
        );
        let (_, encoded) = IpcDataGenerator::default()
            .encode(
                &batch,
                &mut DictionaryTracker::new(false),
                &options,
                &mut Default::default(),
            )
            .unwrap();
        let mut theirs = Vec::new();
        arrow_ipc::writer::write_message(&mut theirs, encoded, &options).unwrap();
        assert_eq!(ipc_batch(batch).unwrap(), theirs);
        assert_eq!(prepend(b"ab".to_vec(), b"cde".to_vec()), b"abcde");
    }

    #[test]
    fn the_schema_and_a_batch_read_back_as_one_ipc_stream() {
        let rows = ArrowRows::event_telemetry().unwrap();
        let encoded = rows.encode(&[row(minimal()), row(minimal())]).unwrap();
        let mut stream = rows.serialized_schema().to_vec();
        stream.extend_from_slice(&encoded);
        let mut reader =
            arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(stream), None).unwrap();
        let batch = reader.next().unwrap().unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema(), *rows.schema());
        assert!(reader.next().is_none());
    }
}
