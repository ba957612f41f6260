//! Every query `replay audit` runs, in one file. Each returns event ids (and counts) only, never a
//! column's content: no transcript text leaves BigQuery, even when a row holds some.
//!
//! Values are written into the text, not passed as parameters: the table name is made of checked
//! identifiers and the window of formatted timestamps, so nothing from outside reaches the SQL.
//! The BigQuery emulator runs all three (checked by the audit's end-to-end test); the key search
//! allows for the emulator storing JSON columns as strings (quotes then come escaped).

use super::Window;

/// `project.dataset.table`, each part checked to be a BigQuery identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table(String);

impl Table {
    pub fn new(project: &str, dataset: &str, table: &str) -> Result<Self, String> {
        let ok = |s: &str, extra: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(c))
        };
        if !ok(project, "-.:") || !ok(dataset, "") || !ok(table, "") {
            return Err(format!("not a BigQuery table: {project}.{dataset}.{table}"));
        }
        Ok(Self(format!("`{project}.{dataset}.{table}`")))
    }
}

fn window(w: &Window) -> String {
    let f = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    format!(
        "event_timestamp >= TIMESTAMP('{}') AND event_timestamp < TIMESTAMP('{}')",
        f(w.from),
        f(w.to)
    )
}

/// Transcript rows by event id, with how many rows each has.
pub fn transcript_rows(table: &Table, w: &Window) -> String {
    format!(
        "SELECT event_id, COUNT(*) AS n FROM {} WHERE is_transcript AND {} GROUP BY event_id",
        table.0,
        window(w)
    )
}

/// Events with more than one row (`insertId` deduplication is best effort).
pub fn duplicate_rows(table: &Table, w: &Window) -> String {
    format!(
        "SELECT event_id, COUNT(*) AS n FROM {} WHERE {} GROUP BY event_id HAVING COUNT(*) > 1",
        table.0,
        window(w)
    )
}

/// Rows whose `private_metadata` still has a key the services remove (`keys`: lower case), in
/// any letter case, at any depth: a search of the column's JSON text for `"key":`.
pub fn unredacted_rows(table: &Table, w: &Window, keys: &[String]) -> String {
    let alternatives: Vec<String> = keys.iter().map(|k| regex_escape(k)).collect();
    format!(
        "SELECT DISTINCT event_id FROM {} WHERE {} AND REGEXP_CONTAINS(LOWER(TO_JSON_STRING(parameters.private_metadata)), r'\\\\?\"({})\\\\?\"\\s*:')",
        table.0,
        window(w),
        alternatives.join("|")
    )
}

/// A key as a literal inside the regular expression (and the raw string around it).
fn regex_escape(key: &str) -> String {
    let mut out = String::new();
    for c in key.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            out.push(c);
        } else if c.is_ascii() {
            // Quotes and backslashes cannot be written into r'…'; match any character there.
            if c == '\'' || c == '\\' || c == '"' {
                out.push('.');
            } else {
                out.push('\\');
                out.push(c);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table::new("p-1", "telemetry", "event_telemetry").unwrap()
    }

    fn w() -> Window {
        Window::parse("2026-11-27", "2026-11-28").unwrap()
    }

    #[test]
    fn every_query_returns_ids_only_from_the_table_in_the_window() {
        let keys = vec!["prompttext".to_string(), "responsetext".to_string()];
        for sql in [
            transcript_rows(&table(), &w()),
            duplicate_rows(&table(), &w()),
            unredacted_rows(&table(), &w(), &keys),
        ] {
            let select = sql.split(" FROM ").next().unwrap();
            assert!(
                select.starts_with("SELECT ") && select.contains("event_id"),
                "{sql}"
            );
            let columns = select
                .trim_start_matches("SELECT ")
                .trim_start_matches("DISTINCT ");
            assert!(
                columns
                    .split(", ")
                    .all(|c| c == "event_id" || c == "COUNT(*) AS n"),
                "selects more than ids and counts: {sql}"
            );
            assert!(
                sql.contains("FROM `p-1.telemetry.event_telemetry` WHERE"),
                "{sql}"
            );
            assert!(sql.contains("event_timestamp >= TIMESTAMP('2026-11-27T00:00:00Z') AND event_timestamp < TIMESTAMP('2026-11-28T00:00:00Z')"), "{sql}");
        }
        assert!(transcript_rows(&table(), &w()).contains("WHERE is_transcript AND"));
        assert!(duplicate_rows(&table(), &w()).ends_with("HAVING COUNT(*) > 1"));
    }

    #[test]
    fn the_key_search_names_every_key_and_nothing_can_break_out_of_it() {
        let keys = vec![
            "prompttext".into(),
            "responsetext".into(),
            "a'b\\c".into(),
            "x.y".into(),
        ];
        let sql = unredacted_rows(&table(), &w(), &keys);
        assert!(sql.contains(r#"REGEXP_CONTAINS(LOWER(TO_JSON_STRING(parameters.private_metadata)), r'\\?"(prompttext|responsetext|a.b.c|x\.y)\\?"\s*:')"#), "{sql}");
        assert_eq!(
            sql.matches('\'').count(),
            6,
            "only the quotes of the three literals: {sql}"
        );
        assert!(Table::new("p", "d; DROP", "t").is_err());
        assert!(Table::new("p", "d", "t`").is_err());
    }
}
