//! The `event_telemetry` table schema: one JSON file in BigQuery's schema format,
//! `shared/schema/event_telemetry.json`, compiled in here.
//!
//! The same file is what `terraform/` loads into the table, what the end-to-end tests create the
//! emulator's table from, and what [`Schema::check_row`] holds every produced row against (names,
//! types, modes, nesting), so the row mapper and the table cannot drift apart unnoticed.

use serde::Deserialize;
use serde_json::Value;

/// The schema file, verbatim.
pub const EVENT_TELEMETRY_SCHEMA_JSON: &str = include_str!("../schema/event_telemetry.json");

#[derive(Debug, Clone, Deserialize)]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: String,
    #[serde(default = "nullable")]
    pub mode: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub fields: Vec<Field>,
}

fn nullable() -> String {
    "NULLABLE".into()
}

#[derive(Debug, Clone)]
pub struct Schema {
    pub fields: Vec<Field>,
}

impl Schema {
    /// The `event_telemetry` schema.
    pub fn event_telemetry() -> Self {
        Self::parse(EVENT_TELEMETRY_SCHEMA_JSON).expect("schema/event_telemetry.json is valid")
    }

    pub fn parse(json: &str) -> Result<Self, serde_json::Error> {
        Ok(Self {
            fields: serde_json::from_str(json)?,
        })
    }

    /// The schema as the BigQuery REST API wants it in `tables.insert`: `{"fields": [...]}`.
    pub fn to_api_json(&self) -> Value {
        let fields: Value =
            serde_json::from_str(EVENT_TELEMETRY_SCHEMA_JSON).unwrap_or(Value::Array(vec![]));
        serde_json::json!({ "fields": fields })
    }

    /// Checks one row, as sent to `insertAll`, against the schema: every key is a column, every
    /// REQUIRED column is present and not null, REPEATED columns are arrays, RECORDs are objects
    /// checked recursively, and each value has the JSON form BigQuery accepts for its type (JSON
    /// columns as strings holding valid JSON). Returns every problem found.
    pub fn check_row(&self, row: &Value) -> Vec<String> {
        let mut problems = Vec::new();
        check_record(&self.fields, row, "", &mut problems);
        problems
    }
}

impl Schema {
    /// Start-up check of a live table: every column a row can carry must be a column of `table`
    /// (the `fields` of `tables.get`'s `schema`) of the same type, and repeated where ours is; the
    /// table may have more columns. Returns each mismatch, named by column.
    pub fn missing_from(&self, table: &[Field]) -> Vec<String> {
        let mut out = Vec::new();
        compare(&self.fields, table, "", &mut out);
        out
    }
}

fn compare(ours: &[Field], theirs: &[Field], path: &str, out: &mut Vec<String>) {
    for field in ours {
        let name = format!("{path}{}", field.name);
        let Some(column) = theirs
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(&field.name))
        else {
            out.push(format!("{name}: no such column"));
            continue;
        };
        if canonical(&column.field_type) != canonical(&field.field_type) {
            out.push(format!(
                "{name}: {} in the table, {} in the schema",
                column.field_type, field.field_type
            ));
        } else if (column.mode == "REPEATED") != (field.mode == "REPEATED") {
            out.push(format!(
                "{name}: {} in the table, {} in the schema",
                column.mode, field.mode
            ));
        } else if !field.fields.is_empty() {
            compare(&field.fields, &column.fields, &format!("{name}."), out);
        }
    }
}

/// BigQuery answers the legacy type names; the schema file may use either.
fn canonical(t: &str) -> &str {
    match t {
        "INT64" => "INTEGER",
        "FLOAT64" => "FLOAT",
        "BOOL" => "BOOLEAN",
        "STRUCT" => "RECORD",
        other => other,
    }
}

fn check_record(fields: &[Field], value: &Value, path: &str, out: &mut Vec<String>) {
    let Some(obj) = value.as_object() else {
        out.push(format!("{path}: expected an object"));
        return;
    };
    for key in obj.keys() {
        if !fields.iter().any(|f| &f.name == key) {
            out.push(format!("{path}{key}: not a column of the schema"));
        }
    }
    for field in fields {
        let p = format!("{path}{}", field.name);
        match (obj.get(&field.name), field.mode.as_str()) {
            (None | Some(Value::Null), "REQUIRED") => {
                out.push(format!("{p}: REQUIRED but missing"))
            }
            (None | Some(Value::Null), _) => {}
            (Some(Value::Array(items)), "REPEATED") => {
                for (i, item) in items.iter().enumerate() {
                    check_value(field, item, &format!("{p}[{i}]"), out);
                }
            }
            (Some(_), "REPEATED") => out.push(format!("{p}: REPEATED but not an array")),
            (Some(v), _) => check_value(field, v, &p, out),
        }
    }
}

/// Valid JSON text at any depth (a JSON column may nest up to 500 levels; serde_json's default
/// limit is 128). Skipping a value is iterative in serde_json, so the stack is safe.
fn is_json(text: &str) -> bool {
    use serde::Deserialize as _;
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    serde::de::IgnoredAny::deserialize(&mut de).is_ok() && de.end().is_ok()
}

fn check_value(field: &Field, v: &Value, p: &str, out: &mut Vec<String>) {
    let ok = match field.field_type.as_str() {
        "STRING" => v.is_string(),
        "INTEGER" | "INT64" => {
            v.is_i64() || v.is_u64() || v.as_str().is_some_and(|s| s.parse::<i64>().is_ok())
        }
        "FLOAT" | "FLOAT64" => v.is_number(),
        "BOOLEAN" | "BOOL" => v.is_boolean(),
        "TIMESTAMP" => v
            .as_str()
            .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
        "JSON" => v.as_str().is_some_and(is_json),
        "RECORD" | "STRUCT" => {
            check_record(&field.fields, v, &format!("{p}."), out);
            true
        }
        other => {
            out.push(format!("{p}: type {other} is not handled by the checker"));
            true
        }
    };
    if !ok {
        out.push(format!("{p}: not a valid {} value", field.field_type));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_table_matches_when_it_has_every_column_of_the_schema() {
        let ours = Schema::event_telemetry();
        assert!(ours.missing_from(&ours.fields).is_empty());
        // A table with an extra column is fine; one without a column, or with another type, is not.
        let mut theirs = ours.fields.clone();
        theirs.push(Field {
            name: "extra".into(),
            field_type: "STRING".into(),
            mode: "NULLABLE".into(),
            description: None,
            fields: vec![],
        });
        assert!(ours.missing_from(&theirs).is_empty());
        theirs.retain(|f| f.name != "dropped_columns");
        if let Some(f) = theirs.iter_mut().find(|f| f.name == "event_timestamp") {
            f.field_type = "STRING".into();
        }
        let problems = ours.missing_from(&theirs);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("dropped_columns: no such column"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("event_timestamp: STRING in the table"))
        );
    }

    #[test]
    fn schema_file_parses_and_has_the_dedup_key() {
        let s = Schema::event_telemetry();
        let id = s.fields.iter().find(|f| f.name == "event_id").unwrap();
        assert_eq!(
            (id.field_type.as_str(), id.mode.as_str()),
            ("STRING", "REQUIRED")
        );
        assert!(s.fields.iter().all(|f| f.description.is_some()));
    }

    #[test]
    fn checker_finds_each_kind_of_problem() {
        let s = Schema::parse(
            r#"[{"name":"a","type":"STRING","mode":"REQUIRED"},
                {"name":"j","type":"JSON"},
                {"name":"r","type":"RECORD","fields":[{"name":"n","type":"INTEGER"}]},
                {"name":"t","type":"STRING","mode":"REPEATED"},
                {"name":"ts","type":"TIMESTAMP"}]"#,
        )
        .unwrap();
        assert!(
            s.check_row(
                &json!({"a":"x","j":"{}","r":{"n":"5"},"t":["x"],"ts":"2024-05-14T21:12:07Z"})
            )
            .is_empty()
        );
        let problems =
            s.check_row(&json!({"j":{"k":1},"r":{"n":"x","z":1},"t":"x","ts":"now","extra":1}));
        let text = problems.join("\n");
        for expected in [
            "a: REQUIRED but missing",
            "j: not a valid JSON value",
            "r.n: not a valid INTEGER value",
            "r.z: not a column",
            "t: REPEATED but not an array",
            "ts: not a valid TIMESTAMP value",
            "extra: not a column",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }
}
