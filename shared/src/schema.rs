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
        "JSON" => v
            .as_str()
            .is_some_and(|s| serde_json::from_str::<Value>(s).is_ok()),
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
