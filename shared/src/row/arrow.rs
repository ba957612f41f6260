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
//! read as `arrow-json` reads the same row's JSON text (a JSON column's literal as its text, read
//! by serde_json, an INTEGER as a number or a decimal string, a TIMESTAMP as RFC 3339, read by
//! chrono); `shared/tests/rows.rs` holds
//! the two batches equal. Measured, it costs less than half of what `arrow-json` did (BENCHMARKS.md).
//! The batch is written in Arrow's IPC stream format, the schema once per connection and each
//! batch without it, as `AppendRowsRequest.arrow_rows` wants: the schema by arrow-ipc, each batch
//! straight from the columns' buffers ([`super::ipc`], which says why).

use std::borrow::Cow;
use std::sync::Arc;

#[cfg(any(test, feature = "test-support"))]
use arrow_array::RecordBatch;
use arrow_buffer::{BooleanBufferBuilder, NullBufferBuilder, ToByteSlice};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Field as ArrowField, Fields, Schema as ArrowSchema, TimeUnit};
use bytes::Bytes;

use super::PreparedRow;
use super::ipc::Body;
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

    /// `rows` as one Arrow IPC record batch message (`ArrowRecordBatch.serialized_record_batch`),
    /// filled from their recorded values.
    ///
    /// Memory: a batch of large rows is held once in the columns and once in the message, which
    /// is allocated once at its exact size; the columns go as soon as it is written.
    pub fn encode(&self, rows: &[PreparedRow]) -> Result<Bytes, Vec<Unfit>> {
        let top = self.columns(rows)?;
        let mut body = Body::default();
        top.lay_out_children(&mut body);
        let message = body.message(rows.len()).map_err(|why| {
            // Not a row's fault, but no row of the batch can go: each is told why.
            (0..rows.len())
                .map(|index| Unfit {
                    index,
                    why: why.clone(),
                })
                .collect::<Vec<_>>()
        })?;
        Ok(Bytes::from(message))
    }

    /// `rows` as the record batch Arrow's own reader reads from [`ArrowRows::encode`]'s message
    /// after the schema, strictly: every buffer aligned for its type, every array validated (the
    /// tests look at it; the services only send the message, so it is built for tests only).
    #[cfg(any(test, feature = "test-support"))]
    pub fn batch(&self, rows: &[PreparedRow]) -> Result<RecordBatch, Vec<Unfit>> {
        let message = self.encode(rows)?;
        let unreadable = |why: String| {
            (0..rows.len())
                .map(|index| Unfit {
                    index,
                    why: format!("the Arrow batch does not read back: {why}"),
                })
                .collect::<Vec<_>>()
        };
        let mut stream = self.serialized_schema.to_vec();
        stream.extend_from_slice(&message);
        // Copied into a buffer on Arrow's alignment, so that only the message's layout counts.
        let mut stream = arrow_buffer::Buffer::from_slice_ref(&stream);
        let mut decoder = arrow_ipc::reader::StreamDecoder::new().with_require_alignment(true);
        while !stream.is_empty() {
            let decoded = decoder
                .decode(&mut stream)
                .map_err(|e| unreadable(e.to_string()))?;
            if let Some(batch) = decoded {
                return match stream.is_empty() {
                    true => Ok(batch),
                    false => Err(unreadable(format!("{} bytes after it", stream.len()))),
                };
            }
        }
        Err(unreadable("no batch".into()))
    }

    /// The filled columns of `rows` (the top-level struct).
    fn columns(&self, rows: &[PreparedRow]) -> Result<Column, Vec<Unfit>> {
        match self.fill(rows) {
            Ok(top) => Ok(top),
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

    fn fill(&self, rows: &[PreparedRow]) -> Result<Column, String> {
        let mut top = Column::record(self.schema.fields(), rows.len());
        for row in rows {
            let tokens = row.tokens().map_err(|e| e.to_string())?;
            top.fill(tokens.root(), Path::TOP)?;
        }
        Ok(top)
    }
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

/// Which values of a column are there (Arrow's validity bitmap), and how many are null.
struct Validity {
    bits: NullBufferBuilder,
    nulls: usize,
}

impl Validity {
    fn new(rows: usize) -> Self {
        Self {
            bits: NullBufferBuilder::new(rows),
            nulls: 0,
        }
    }

    fn valid(&mut self) {
        self.bits.append_non_null();
    }

    fn null(&mut self) {
        self.bits.append_null();
        self.nulls += 1;
    }

    fn len(&self) -> usize {
        self.bits.len()
    }

    /// The bitmap, or no bytes when no value is null (the builder makes none until one is).
    fn bitmap(&self) -> &[u8] {
        self.bits.as_slice().unwrap_or_default()
    }
}

/// One column being filled, row by row, from recorded values: Arrow's buffers for its type.
enum Column {
    Utf8 {
        offsets: Vec<i32>,
        data: Vec<u8>,
        validity: Validity,
    },
    Int64 {
        values: Vec<i64>,
        validity: Validity,
    },
    Timestamp {
        values: Vec<i64>,
        validity: Validity,
    },
    Bool {
        values: BooleanBufferBuilder,
        validity: Validity,
    },
    Struct {
        fields: Fields,
        children: Vec<Column>,
        validity: Validity,
    },
    /// Never null: an absent or null list is an empty one.
    List {
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
            validity: Validity::new(rows),
        }
    }

    fn new(data_type: &DataType, rows: usize) -> Self {
        match data_type {
            DataType::Int64 => Column::Int64 {
                values: Vec::with_capacity(rows),
                validity: Validity::new(rows),
            },
            DataType::Timestamp(..) => Column::Timestamp {
                values: Vec::with_capacity(rows),
                validity: Validity::new(rows),
            },
            DataType::Boolean => Column::Bool {
                values: BooleanBufferBuilder::new(rows),
                validity: Validity::new(rows),
            },
            DataType::Struct(fields) => Column::record(fields, rows),
            DataType::List(item) => Column::List {
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
                    validity: Validity::new(rows),
                }
            }
        }
    }

    /// Adds a null (for a list: an empty list; for a struct: nulls in its columns too).
    fn push_null(&mut self) {
        match self {
            Column::Utf8 {
                offsets, validity, ..
            } => {
                offsets.push(offsets.last().copied().unwrap_or(0));
                validity.null();
            }
            Column::Int64 { values, validity } | Column::Timestamp { values, validity } => {
                values.push(0);
                validity.null();
            }
            Column::Bool { values, validity } => {
                values.append(false);
                validity.null();
            }
            Column::Struct {
                children, validity, ..
            } => {
                children.iter_mut().for_each(Column::push_null);
                validity.null();
            }
            Column::List { offsets, .. } => offsets.push(offsets.last().copied().unwrap_or(0)),
        }
    }

    /// Adds `value`, the value of column `path`, and answers the index of the token after it:
    /// the recording is read once, front to back, never skipped over to find a value's end.
    fn fill(&mut self, value: Node<'_>, path: Path<'_>) -> Result<usize, String> {
        let row = value.row();
        let token = value.token();
        let next = value.index() + 1;
        if token == Token::Null {
            self.push_null();
            return Ok(next);
        }
        let wrong = |want: &str| Err(format!("{path}: not {want}"));
        match self {
            Column::Utf8 {
                offsets,
                data,
                validity,
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
                validity.valid();
            }
            Column::Int64 { values, validity } => {
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
                validity.valid();
            }
            Column::Timestamp { values, validity } => {
                let Token::Str(span) = token else {
                    return wrong("an RFC 3339 timestamp");
                };
                let Some(micros) = timestamp_micros(row.str(span)) else {
                    return wrong("an RFC 3339 timestamp");
                };
                values.push(micros);
                validity.valid();
            }
            Column::Bool { values, validity } => {
                let Token::Bool(b) = token else {
                    return wrong("a boolean");
                };
                values.append(b);
                validity.valid();
            }
            Column::Struct {
                fields,
                children,
                validity,
            } => {
                if token != Token::Object {
                    return wrong("an object");
                }
                let mut present = 0u64;
                // Rows name their columns in the schema's order: look there first.
                let mut expected = 0;
                let mut at = next;
                loop {
                    let key = match row.tokens().get(at) {
                        Some(Token::Field(name)) => *name,
                        Some(Token::Key(span)) => row.str(*span),
                        Some(Token::End) => break,
                        _ => return wrong("an object"),
                    };
                    let i = match fields.get(expected) {
                        Some(f) if f.name() == key => expected,
                        _ => fields
                            .iter()
                            .position(|f| f.name() == key)
                            .ok_or_else(|| format!("{}: no such column", path.child(key)))?,
                    };
                    expected = i + 1;
                    if present & (1 << i) != 0 {
                        return Err(format!("{}: given twice", path.child(key)));
                    }
                    present |= 1 << i;
                    at = children[i].fill(row.node(at + 1), path.child(key))?;
                }
                // The columns the row left out (at most 64: `check_widths`).
                let mut missing =
                    !present & u64::MAX.checked_shr(64 - fields.len() as u32).unwrap_or(0);
                while missing != 0 {
                    let i = missing.trailing_zeros() as usize;
                    missing &= missing - 1;
                    let column = &mut children[i];
                    if !fields[i].is_nullable() && !matches!(column, Column::List { .. }) {
                        return Err(format!(
                            "{}: REQUIRED and missing",
                            path.child(fields[i].name())
                        ));
                    }
                    column.push_null();
                }
                validity.valid();
                return Ok(at + 1);
            }
            Column::List { offsets, values } => {
                if token != Token::Seq {
                    return wrong("an array");
                }
                let mut len = 0usize;
                let mut at = next;
                loop {
                    match row.tokens().get(at) {
                        Some(Token::SeqEnd) => break,
                        Some(Token::Null) => return Err(format!("{path}: a null item")),
                        Some(_) => {}
                        None => return wrong("an array"),
                    }
                    at = values.fill(row.node(at), path)?;
                    len += 1;
                }
                let end = offsets.last().copied().unwrap_or(0) as usize + len;
                offsets.push(i32::try_from(end).map_err(|_| format!("{path}: too many items"))?);
                return Ok(at + 1);
            }
        }
        Ok(next)
    }

    /// The columns of a struct (the top-level one: the batch's columns), laid out in `body`.
    fn lay_out_children<'c>(&'c self, body: &mut Body<'c>) {
        if let Column::Struct { children, .. } = self {
            children.iter().for_each(|c| c.lay_out(body));
        }
    }

    /// The column's field node and buffers (then its children's), in the IPC body's order.
    fn lay_out<'c>(&'c self, body: &mut Body<'c>) {
        match self {
            Column::Utf8 {
                offsets,
                data,
                validity,
            } => {
                body.node(validity.len(), validity.nulls);
                body.buffer(validity.bitmap());
                body.buffer(offsets.to_byte_slice());
                body.buffer(data);
            }
            Column::Int64 { values, validity } | Column::Timestamp { values, validity } => {
                body.node(validity.len(), validity.nulls);
                body.buffer(validity.bitmap());
                body.buffer(values.to_byte_slice());
            }
            Column::Bool { values, validity } => {
                body.node(validity.len(), validity.nulls);
                body.buffer(validity.bitmap());
                body.buffer(values.as_slice());
            }
            Column::Struct { validity, .. } => {
                body.node(validity.len(), validity.nulls);
                body.buffer(validity.bitmap());
                self.lay_out_children(body);
            }
            Column::List { offsets, values } => {
                body.node(offsets.len().saturating_sub(1), 0);
                body.buffer(&[]);
                body.buffer(offsets.to_byte_slice());
                values.lay_out(body);
            }
        }
    }
}

/// An RFC 3339 timestamp in microseconds since the epoch, read by chrono.
fn timestamp_micros(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// Appends the text of the JSON string literal `literal`, read by serde_json (which refuses what
/// is not a JSON string).
fn unescape_into(out: &mut Vec<u8>, literal: &str) -> Result<(), serde_json::Error> {
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
    fn dates_that_do_not_exist_are_refused() {
        for text in [
            "2023-02-29T00:00:00.000000Z",
            "2100-02-29T00:00:00.000000Z",
            "2026-04-31T00:00:00.000000Z",
            "2026-13-01T00:00:00.000000Z",
            "2026-12-01T24:00:00.000000Z",
            "2026-12-00T00:00:00.000000Z",
        ] {
            assert_eq!(timestamp_micros(text), None, "{text}");
        }
        assert_eq!(
            timestamp_micros("2024-02-29T23:59:59.999999Z"),
            timestamp_micros("2024-02-29T23:59:59.999999+00:00")
        );
        assert_eq!(
            timestamp_micros("1970-01-01T00:00:01.000001Z"),
            Some(1_000_001)
        );
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
    fn nulls_and_large_text_read_back_strictly() {
        let rows = ArrowRows::event_telemetry().unwrap();
        let mut big = minimal();
        big["parameters"] = serde_json::json!({"private_metadata": "x".repeat(100_003)});
        big["user"] = serde_json::json!({"user_id": "7"});
        // `batch` reads the message back with every buffer required to be aligned.
        let batch = rows
            .batch(&[row(minimal()), row(big), row(minimal())])
            .unwrap();
        let parameters = batch.column_by_name("parameters").unwrap().as_struct();
        assert_eq!(parameters.null_count(), 2);
        assert!(parameters.is_valid(1));
        let text = parameters
            .column_by_name("private_metadata")
            .unwrap()
            .as_string::<i32>();
        assert_eq!(text.value(1).len(), 100_003);
        assert_eq!(text.null_count(), 2);
        // No nulls: the column is sent without a bitmap, and reads back as all valid.
        let event_id = batch.column_by_name("event_id").unwrap();
        assert_eq!(event_id.null_count(), 0);
        assert_eq!(event_id.as_string::<i32>().value(2), "e");
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
