//! The rows of one Storage Write append as an Arrow record batch.
//!
//! The Arrow schema is derived from the one schema file (`schema/event_telemetry.json`), never
//! written a second time: STRING and JSON columns are UTF-8 strings (BigQuery takes a JSON column
//! as its JSON text), INTEGER is Int64, BOOLEAN is Boolean, TIMESTAMP is microseconds in UTC,
//! RECORD is a struct of its fields, REPEATED a list of non-null items that is never null itself
//! (BigQuery wants an absent REPEATED column sent as an empty list: the row leaves out an empty
//! `dropped_columns`); REQUIRED columns are non-nullable.
//!
//! The columns are filled straight from each row's recorded values ([`super::tokens::RowTokens`], the same
//! serde calls `insertAll`'s JSON is written from), strictly: a key the schema lacks, a REQUIRED
//! column missing or a value of the wrong type refuses the row, naming the column. Values are
//! read as `arrow-json` reads the same row's JSON text (a JSON column's literal as its text, an
//! INTEGER as a number or a decimal string, a TIMESTAMP as RFC 3339); `shared/tests/rows.rs` holds
//! the two batches equal. Measured, it costs less than half of what `arrow-json` did (BENCHMARKS.md).
//! The batch is written in Arrow's IPC stream format, the schema once per connection and each
//! batch without it, as `AppendRowsRequest.arrow_rows` wants.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow_buffer::{BooleanBufferBuilder, Buffer, NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteOptions, StreamWriter};
use arrow_schema::{
    DataType, Field as ArrowField, FieldRef, Fields, Schema as ArrowSchema, TimeUnit,
};
use bytes::Bytes;

use super::PreparedRow;
use super::tokens::{Node, Token};
use crate::schema::{Field, Schema};

/// The `event_telemetry` rows as Arrow: the schema, and the encoder of a batch.
#[derive(Debug, Clone)]
pub struct ArrowRows {
    schema: Arc<ArrowSchema>,
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
        let schema = Arc::new(ArrowSchema::new(fields(&schema.fields)?));
        // A struct's columns present in a row are marked in one 64-bit mask ([`Column::fill`]).
        check_widths(schema.fields())?;
        let mut serialized = Vec::new();
        StreamWriter::try_new(&mut serialized, &schema)
            .and_then(|mut w| w.flush())
            .map_err(|e| format!("the Arrow schema cannot be written: {e}"))?;
        Ok(Self {
            schema,
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

    /// `rows` as one record batch, filled from their recorded values.
    pub fn batch(&self, rows: &[PreparedRow]) -> Result<RecordBatch, Vec<Unfit>> {
        match self.fill(rows) {
            Ok(batch) => Ok(batch),
            // Which rows: each alone (rare: a row that does not fit is a bug or a schema change;
            // a refused row leaves the columns half-filled, so they are started again).
            Err(_) => Err(rows
                .iter()
                .enumerate()
                .filter_map(|(index, row)| {
                    self.fill(std::slice::from_ref(row))
                        .err()
                        .map(|why| Unfit { index, why })
                })
                .collect()),
        }
    }

    fn fill(&self, rows: &[PreparedRow]) -> Result<RecordBatch, String> {
        let mut top = Column::record(self.schema.fields(), rows.len());
        for row in rows {
            let tokens = row.tokens().map_err(|e| e.to_string())?;
            top.fill(tokens.root(), Path::TOP)?;
        }
        let Column::Struct { children, .. } = top else {
            unreachable!("Column::record makes a struct")
        };
        let columns = children
            .into_iter()
            .map(Column::finish)
            .collect::<Result<_, _>>()?;
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

/// The columns of a schema (or of a RECORD).
fn fields(fields: &[Field]) -> Result<Vec<ArrowField>, String> {
    fields.iter().map(field).collect()
}

/// One column: its type, nullability, and for REPEATED a list of non-null items.
fn field(f: &Field) -> Result<ArrowField, String> {
    let item = data_type(f)?;
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
        "RECORD" | "STRUCT" => DataType::Struct(Fields::from(fields(&f.fields)?)),
        other => {
            return Err(format!(
                "column {}: type {other} has no Arrow form here",
                f.name
            ));
        }
    })
}

/// Every struct has at most 64 columns (the mask of those present in a row).
fn check_widths(fields: &Fields) -> Result<(), String> {
    if fields.len() > 64 {
        return Err("a RECORD with more than 64 columns has no Arrow form here".into());
    }
    for f in fields {
        match f.data_type() {
            DataType::Struct(inner) => check_widths(inner)?,
            DataType::List(item) => {
                if let DataType::Struct(inner) = item.data_type() {
                    check_widths(inner)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// One column being filled, row by row, from recorded values.
enum Column {
    Utf8 {
        offsets: Vec<i32>,
        data: Vec<u8>,
        nulls: NullBufferBuilder,
    },
    Int64 {
        values: Vec<i64>,
        nulls: NullBufferBuilder,
    },
    Timestamp {
        values: Vec<i64>,
        nulls: NullBufferBuilder,
    },
    Bool {
        values: BooleanBufferBuilder,
        nulls: NullBufferBuilder,
    },
    Struct {
        fields: Fields,
        children: Vec<Column>,
        nulls: NullBufferBuilder,
    },
    /// Never null: an absent or null list is an empty one.
    List {
        item: FieldRef,
        offsets: Vec<i32>,
        values: Box<Column>,
    },
}

impl Column {
    /// A struct of `fields`, for about `rows` rows.
    fn record(fields: &Fields, rows: usize) -> Self {
        Column::Struct {
            fields: fields.clone(),
            children: fields
                .iter()
                .map(|f| Column::new(f.data_type(), rows))
                .collect(),
            nulls: NullBufferBuilder::new(rows),
        }
    }

    fn new(data_type: &DataType, rows: usize) -> Self {
        match data_type {
            DataType::Int64 => Column::Int64 {
                values: Vec::with_capacity(rows),
                nulls: NullBufferBuilder::new(rows),
            },
            DataType::Timestamp(..) => Column::Timestamp {
                values: Vec::with_capacity(rows),
                nulls: NullBufferBuilder::new(rows),
            },
            DataType::Boolean => Column::Bool {
                values: BooleanBufferBuilder::new(rows),
                nulls: NullBufferBuilder::new(rows),
            },
            DataType::Struct(fields) => Column::record(fields, rows),
            DataType::List(item) => Column::List {
                item: item.clone(),
                offsets: vec![0],
                values: Box::new(Column::new(item.data_type(), rows)),
            },
            // Utf8, and anything `data_type` never makes.
            _ => {
                let mut offsets = Vec::with_capacity(rows + 1);
                offsets.push(0);
                Column::Utf8 {
                    offsets,
                    // Most columns are short; the few long ones grow by doubling.
                    data: Vec::with_capacity(rows * 32),
                    nulls: NullBufferBuilder::new(rows),
                }
            }
        }
    }

    /// Adds a null (for a list: an empty list; for a struct: nulls in its columns too).
    fn push_null(&mut self) {
        match self {
            Column::Utf8 { offsets, nulls, .. } => {
                offsets.push(offsets.last().copied().unwrap_or(0));
                nulls.append_null();
            }
            Column::Int64 { values, nulls } | Column::Timestamp { values, nulls } => {
                values.push(0);
                nulls.append_null();
            }
            Column::Bool { values, nulls } => {
                values.append(false);
                nulls.append_null();
            }
            Column::Struct {
                children, nulls, ..
            } => {
                children.iter_mut().for_each(Column::push_null);
                nulls.append_null();
            }
            Column::List { offsets, .. } => offsets.push(offsets.last().copied().unwrap_or(0)),
        }
    }

    /// Adds `value`, the value of column `path`.
    fn fill(&mut self, value: Node<'_>, path: Path<'_>) -> Result<(), String> {
        let row = value.row();
        let token = value.token();
        if token == Token::Null {
            self.push_null();
            return Ok(());
        }
        let wrong = |want: &str| Err(format!("{path}: not {want}"));
        match self {
            Column::Utf8 {
                offsets,
                data,
                nulls,
            } => {
                match token {
                    Token::Str(span) => data.extend_from_slice(row.str(span).as_bytes()),
                    // A JSON column: the text its literal holds.
                    Token::Raw(span) => unescape_into(data, row.str(span))
                        .map_err(|_| format!("{path}: not a JSON string literal"))?,
                    _ => return wrong("a string"),
                }
                let end = i32::try_from(data.len())
                    .map_err(|_| format!("{path}: more than 2 GiB of text"))?;
                offsets.push(end);
                nulls.append_non_null();
            }
            Column::Int64 { values, nulls } => {
                let n = match token {
                    Token::I64(n) => Some(n),
                    Token::U64(n) => i64::try_from(n).ok(),
                    // An integer outside what a JSON number holds exactly (EventRow's user_id).
                    Token::Str(span) => row.str(span).parse().ok(),
                    _ => None,
                };
                let Some(n) = n else {
                    return wrong("an int64");
                };
                values.push(n);
                nulls.append_non_null();
            }
            Column::Timestamp { values, nulls } => {
                let Token::Str(span) = token else {
                    return wrong("an RFC 3339 timestamp");
                };
                let Ok(t) = chrono::DateTime::parse_from_rfc3339(row.str(span)) else {
                    return wrong("an RFC 3339 timestamp");
                };
                values.push(t.timestamp_micros());
                nulls.append_non_null();
            }
            Column::Bool { values, nulls } => {
                let Token::Bool(b) = token else {
                    return wrong("a boolean");
                };
                values.append(b);
                nulls.append_non_null();
            }
            Column::Struct {
                fields,
                children,
                nulls,
            } => {
                if token != Token::Object {
                    return wrong("an object");
                }
                let mut present = 0u64;
                // Rows name their columns in the schema's order: look there first.
                let mut next = 0;
                for (key, child) in value.entries() {
                    let i = match fields.get(next) {
                        Some(f) if f.name() == key => next,
                        _ => fields
                            .iter()
                            .position(|f| f.name() == key)
                            .ok_or_else(|| format!("{}: no such column", path.child(key)))?,
                    };
                    next = i + 1;
                    if present & (1 << i) != 0 {
                        return Err(format!("{}: given twice", path.child(key)));
                    }
                    present |= 1 << i;
                    children[i].fill(child, path.child(key))?;
                }
                for (i, (f, column)) in fields.iter().zip(children.iter_mut()).enumerate() {
                    if present & (1 << i) == 0 {
                        if !f.is_nullable() && !matches!(column, Column::List { .. }) {
                            return Err(format!("{}: REQUIRED and missing", path.child(f.name())));
                        }
                        column.push_null();
                    }
                }
                nulls.append_non_null();
            }
            Column::List {
                offsets, values, ..
            } => {
                if token != Token::Seq {
                    return wrong("an array");
                }
                let mut len = 0usize;
                for item in value.items() {
                    if item.token() == Token::Null {
                        return Err(format!("{path}: a null item"));
                    }
                    values.fill(item, path)?;
                    len += 1;
                }
                let end = offsets.last().copied().unwrap_or(0) as usize + len;
                offsets.push(i32::try_from(end).map_err(|_| format!("{path}: too many items"))?);
            }
        }
        Ok(())
    }

    /// The filled column as an Arrow array.
    fn finish(self) -> Result<ArrayRef, String> {
        Ok(match self {
            Column::Utf8 {
                offsets,
                data,
                mut nulls,
            } => {
                let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
                // SAFETY: `data` is whole `&str`s one after another and the offsets are where
                // each starts and ends, increasing: valid UTF-8 at valid boundaries, which
                // `try_new` would check again byte by byte.
                Arc::new(unsafe {
                    StringArray::new_unchecked(offsets, Buffer::from_vec(data), nulls.finish())
                })
            }
            Column::Int64 { values, mut nulls } => {
                Arc::new(Int64Array::new(ScalarBuffer::from(values), nulls.finish()))
            }
            Column::Timestamp { values, mut nulls } => Arc::new(
                TimestampMicrosecondArray::new(ScalarBuffer::from(values), nulls.finish())
                    .with_timezone("UTC"),
            ),
            Column::Bool {
                mut values,
                mut nulls,
            } => Arc::new(BooleanArray::new(values.finish(), nulls.finish())),
            Column::Struct {
                fields,
                children,
                mut nulls,
            } => {
                let children = children
                    .into_iter()
                    .map(Column::finish)
                    .collect::<Result<Vec<_>, _>>()?;
                Arc::new(
                    StructArray::try_new(fields, children, nulls.finish())
                        .map_err(|e| e.to_string())?,
                )
            }
            Column::List {
                item,
                offsets,
                values,
            } => Arc::new(
                ListArray::try_new(
                    item,
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    values.finish()?,
                    None,
                )
                .map_err(|e| e.to_string())?,
            ),
        })
    }
}

/// Appends the text of the JSON string literal `literal`. The row's literals escape only `"` and
/// `\` (JSON columns are written that way and are valid JSON, [`super::JsonColumnText`]): those are
/// undone here with a byte search; a literal with any other escape, or a bare quote, is read by
/// serde_json, which also refuses what is not a JSON string.
fn unescape_into(out: &mut Vec<u8>, literal: &str) -> Result<(), serde_json::Error> {
    let start = out.len();
    if let Some(inner) = literal.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        let mut rest = inner.as_bytes();
        loop {
            let Some(i) = memchr::memchr2(b'\\', b'"', rest) else {
                out.extend_from_slice(rest);
                return Ok(());
            };
            match (rest[i], rest.get(i + 1)) {
                (b'\\', Some(&c @ (b'"' | b'\\'))) => {
                    out.extend_from_slice(&rest[..i]);
                    out.push(c);
                    rest = &rest[i + 2..];
                }
                _ => break,
            }
        }
    }
    out.truncate(start);
    let text: Cow<'_, str> = serde_json::from_str(literal)?;
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

/// Where a value is in the row, spelled as the schema file names columns
/// (`column parameters.private_metadata`) only when an error names it.
#[derive(Clone, Copy)]
struct Path<'p> {
    parent: Option<&'p Path<'p>>,
    name: &'p str,
}

impl<'p> Path<'p> {
    const TOP: Path<'static> = Path {
        parent: None,
        name: "",
    };

    fn child(&'p self, name: &'p str) -> Path<'p> {
        Path {
            parent: Some(self),
            name,
        }
    }
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn names(p: &Path<'_>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match p.parent {
                Some(parent) if parent.parent.is_some() => {
                    names(parent, f)?;
                    write!(f, ".{}", p.name)
                }
                _ => f.write_str(p.name),
            }
        }
        f.write_str(if self.parent.is_none() {
            "the row"
        } else {
            "column "
        })?;
        names(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::types::TimestampMicrosecondType;

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
    fn a_literal_is_unescaped_as_serde_json_reads_it() {
        let cases = [
            r#""""#,
            r#""plain""#,
            r#""{\"k\":\"a \\\" b\"}""#,
            r#""ends with \\""#,
            r#""\u00e9 and \n""#,
            r#""\\u0041""#,
        ];
        for literal in cases {
            let mut out = b"kept".to_vec();
            unescape_into(&mut out, literal).unwrap();
            let theirs: String = serde_json::from_str(literal).unwrap();
            assert_eq!(out, format!("kept{theirs}").as_bytes(), "{literal}");
        }
        for not_a_literal in [r#""\""#, r#""a"b""#, "plain", r#""\x""#, r#""a"#] {
            let mut out = b"kept".to_vec();
            assert!(
                unescape_into(&mut out, not_a_literal).is_err(),
                "{not_a_literal}"
            );
        }
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
