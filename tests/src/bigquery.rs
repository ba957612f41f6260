//! A small REST client for the BigQuery emulator: create the dataset and the `event_telemetry`
//! table from the schema file, and read rows back as JSON objects.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};

use crate::emulators::json_answer;
use pipeline::schema::Schema;
use serde_json::{Map, Value, json};

#[derive(Clone)]
pub struct BigQuery {
    http: reqwest::Client,
    base: String,
    pub project: String,
}

impl BigQuery {
    pub fn new(emulator_url: &str, project: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: format!("{emulator_url}/bigquery/v2/projects/{project}"),
            project: project.to_owned(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        let request = self.http.post(format!("{}/{path}", self.base)).json(&body);
        json_answer(request, &format!("BigQuery {path}")).await
    }

    /// Streams `rows` into a table (`insertAll`, no insert ids): how tests plant rows.
    pub async fn insert(&self, dataset: &str, table: &str, rows: &[Value]) -> Result<()> {
        let rows: Vec<Value> = rows.iter().map(|r| json!({"json": r})).collect();
        let answer = self
            .post(
                &format!("datasets/{dataset}/tables/{table}/insertAll"),
                json!({"rows": rows}),
            )
            .await?;
        let errors = answer["insertErrors"].as_array().map_or(0, Vec::len);
        if errors > 0 {
            bail!("insertAll: {answer}");
        }
        Ok(())
    }

    /// Creates the dataset and the table, from `shared/schema/event_telemetry.json`, partitioned
    /// by event day as in production.
    pub async fn create_event_table(&self, dataset: &str, table: &str) -> Result<()> {
        self.post(
            "datasets",
            json!({"datasetReference": {"projectId": self.project, "datasetId": dataset}}),
        )
        .await?;
        self.post(
            &format!("datasets/{dataset}/tables"),
            json!({
                "tableReference": {"projectId": self.project, "datasetId": dataset, "tableId": table},
                "schema": Schema::event_telemetry().to_api_json(),
                "timePartitioning": {"type": "DAY", "field": "event_timestamp"},
            }),
        )
        .await?;
        Ok(())
    }

    /// Runs a query and returns its rows as JSON objects: RECORDs as objects, REPEATED as
    /// arrays, JSON columns decoded, other scalars as BigQuery returns them (strings).
    pub async fn query(&self, sql: &str) -> Result<Vec<Value>> {
        let v = self
            .post(
                "queries",
                json!({"query": sql, "useLegacySql": false, "maxResults": 100000, "timeoutMs": 60000}),
            )
            .await?;
        if v["jobComplete"] != json!(true) {
            bail!("query did not complete: {v}");
        }
        let fields = v["schema"]["fields"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let rows = v["rows"].as_array().cloned().unwrap_or_default();
        let out: Vec<Value> = rows.iter().map(|r| record(&fields, r)).collect();
        if let Some(total) = v["totalRows"]
            .as_str()
            .and_then(|t| t.parse::<usize>().ok())
            && total != out.len()
        {
            bail!(
                "query returned {} of {total} rows (paging is not implemented)",
                out.len()
            );
        }
        Ok(out)
    }

    /// Every row of the table.
    pub async fn all_rows(&self, dataset: &str, table: &str) -> Result<Vec<Value>> {
        self.query(&format!(
            "SELECT * FROM `{}.{dataset}.{table}`",
            self.project
        ))
        .await
    }
}

fn record(fields: &[Value], row: &Value) -> Value {
    let cells = row["f"].as_array().cloned().unwrap_or_default();
    let mut obj = Map::new();
    for (field, cell) in fields.iter().zip(cells.iter()) {
        let name = field["name"].as_str().unwrap_or_default().to_owned();
        obj.insert(name, cell_value(field, &cell["v"]));
    }
    Value::Object(obj)
}

fn cell_value(field: &Value, v: &Value) -> Value {
    if v.is_null() {
        return Value::Null;
    }
    if field["mode"] == "REPEATED" {
        let mut single = field.clone();
        single["mode"] = json!("NULLABLE");
        return Value::Array(
            v.as_array()
                .map(|items| items.iter().map(|i| cell_value(&single, &i["v"])).collect())
                .unwrap_or_default(),
        );
    }
    match field["type"].as_str() {
        Some("RECORD") | Some("STRUCT") => record(
            field["fields"].as_array().map(Vec::as_slice).unwrap_or(&[]),
            v,
        ),
        Some("JSON") => v
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_else(|| v.clone()),
        _ => v.clone(),
    }
}

/// The SQL of the `event_telemetry_once` view as Terraform deploys it (`terraform/audit.tf`), reading
/// `project.dataset.table` instead of Terraform's reference to the table.
pub fn once_view_sql(project: &str, dataset: &str, table: &str) -> Result<String> {
    let tf = std::fs::read_to_string(crate::emulators::repo_root().join("terraform/audit.tf"))?;
    let start = tf
        .find("query          = <<-SQL")
        .context("the view's query in terraform/audit.tf")?;
    let body = &tf[start..];
    let body = &body[body.find('\n').context("heredoc")? + 1..];
    let sql = &body[..body.find("\n    SQL").context("end of the heredoc")?];
    let reference = "${google_bigquery_table.event_telemetry.project}.${google_bigquery_table.event_telemetry.dataset_id}.${google_bigquery_table.event_telemetry.table_id}";
    anyhow::ensure!(sql.contains(reference), "the view reads {reference}: {sql}");
    Ok(sql.replace(reference, &format!("{project}.{dataset}.{table}")))
}

/// What was published once: an event id and the Pub/Sub message id that carried it.
pub type Publication = (String, String);

/// Rows grouped by publication. The Storage Write API's default stream does not deduplicate, so
/// a push Pub/Sub delivers again (an ack lost, a deadline passed after the append succeeded) is
/// a second row with the same message id. Tests count publications and report redeliveries,
/// instead of relying on there being none: only a row of a message nobody published, or a
/// publication without a row, is a defect.
pub fn by_publication(rows: &[Value]) -> BTreeMap<Publication, Vec<&Value>> {
    let mut grouped: BTreeMap<Publication, Vec<&Value>> = BTreeMap::new();
    for row in rows {
        let field = |name: &str| row[name].as_str().unwrap_or_default().to_owned();
        grouped
            .entry((field("event_id"), field("message_id")))
            .or_default()
            .push(row);
    }
    grouped
}

/// The event ids that have more than one row only because one message was delivered more than
/// once (every row of the event has the same message id).
pub fn redelivered_events(rows: &[Value]) -> BTreeSet<String> {
    let grouped = by_publication(rows);
    let mut publications: BTreeMap<&str, usize> = BTreeMap::new();
    for (event_id, _) in grouped.keys() {
        *publications.entry(event_id.as_str()).or_default() += 1;
    }
    grouped
        .iter()
        .filter(|((event_id, _), rows)| rows.len() > 1 && publications[event_id.as_str()] == 1)
        .map(|((event_id, _), _)| event_id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redelivery_is_one_publication_and_a_republish_is_two() {
        let row = |e: &str, m: &str| json!({"event_id": e, "message_id": m});
        let rows = [
            row("a", "1"),
            row("a", "1"), // redelivered
            row("b", "2"),
            row("b", "3"), // published twice
            row("c", "4"),
        ];
        let grouped = by_publication(&rows);
        assert_eq!(grouped.len(), 4);
        assert_eq!(grouped[&("a".into(), "1".into())].len(), 2);
        assert_eq!(redelivered_events(&rows), BTreeSet::from(["a".to_owned()]));
    }
}
