//! `replay audit`: over a window of UTC hours, hold the bucket and the table to each other, for
//! the people who own the data. Read-only.
//!
//! - completeness (the ML team): transcript objects against the table's transcript rows, both
//!   ways, and events with more than one object or more than one row;
//! - privacy (the privacy owner): rows whose `private_metadata` still holds a key the services
//!   remove (a query that returns ids only), and objects in the bucket that are not transcript
//!   events by the classification rules (each object read back and classified; never printed).
//!
//! It prints one JSON summary on stdout (counts and the first ids of each finding, never any
//! text), progress on stderr, and exits 0 when nothing is off, 1 when something is, 2 when it
//! could not run. Configured like the services: `TRANSCRIPT_BUCKET`, `TRANSCRIPT_PREFIX`,
//! `BIGQUERY_PROJECT`/`BIGQUERY_DATASET`/`BIGQUERY_TABLE`, `GOOGLE_CLOUD_PROJECT` (where the query
//! jobs run), `DOTCOM_URL`, `DOTCOM_INSTANCE_IDS`, `REDACT_KEYS`, and the emulator hosts.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use pipeline::classify::TranscriptChecks;
use pipeline::config::{Env, Rules, Service, SinkConfig, SinkTarget};
use pipeline::event::TelemetryPayload;
use serde_json::{Value, json};

use crate::audit::Window;
use crate::audit::bucket::{AuditBucket, Object};
use crate::audit::queries::{self, Table};
use crate::audit::table::AuditTable;

/// How many ids of each finding the summary lists.
const FIRST: usize = 20;
/// Objects read back at once.
const READERS: usize = 16;

pub async fn run(window: Window) -> Result<ExitCode> {
    let env = Env::process();
    let project = env
        .get("GOOGLE_CLOUD_PROJECT")
        .context("GOOGLE_CLOUD_PROJECT is not set")?;
    let rules = Rules::from_env(&env).map_err(|e| anyhow!("{e}"))?;
    let sources = Sources::from_env(&env, &project).await?;
    let (counts, findings) = audit(&sources, &rules, window).await?;
    let ok = findings.values().all(|ids| ids.is_empty());
    println!("{}", summary(&window, &counts, &findings, ok));
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Where the audit reads, and what it counted there.
struct Sources {
    bucket: Arc<AuditBucket>,
    prefix: String,
    bigquery: AuditTable,
    table: Table,
}

impl Sources {
    async fn from_env(env: &Env<'_>, project: &str) -> Result<Self> {
        let e = |e: pipeline::config::ConfigError| anyhow!("{e}");
        let gcs = SinkConfig::from_env(Service::ToGcs, env, project)
            .map_err(e)?
            .target;
        let bq = SinkConfig::from_env(Service::ToBq, env, project)
            .map_err(e)?
            .target;
        let (
            SinkTarget::Gcs {
                bucket,
                prefix,
                emulator: gcs_emulator,
            },
            SinkTarget::BigQuery {
                table,
                emulator: bq_emulator,
                ..
            },
        ) = (gcs, bq)
        else {
            return Err(anyhow!("unexpected sink configuration"));
        };
        Ok(Self {
            bucket: Arc::new(AuditBucket::connect(&bucket, gcs_emulator.as_deref()).await?),
            prefix,
            bigquery: AuditTable::connect(project, bq_emulator.as_deref()).await?,
            table: Table::new(&table.project, &table.dataset, &table.table)
                .map_err(|e| anyhow!(e))?,
        })
    }
}

impl Sources {
    /// The first column of every row of a query: event ids.
    async fn ids(&self, sql: String) -> Result<BTreeSet<String>> {
        let rows = self.bigquery.rows(&sql).await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect())
    }
}

/// Every finding by name: the event ids (or object names) it concerns, sorted.
type Findings = BTreeMap<&'static str, BTreeSet<String>>;

/// What was looked at, by name.
type Counts = BTreeMap<&'static str, usize>;

async fn audit(sources: &Sources, rules: &Rules, window: Window) -> Result<(Counts, Findings)> {
    let objects = list_window(sources, &window).await?;
    let mut by_event: BTreeMap<String, usize> = BTreeMap::new();
    for o in &objects {
        *by_event.entry(o.event_id()).or_default() += 1;
    }
    let table = &sources.table;
    let transcript_rows = sources
        .ids(queries::transcript_rows(table, &window))
        .await?;
    eprintln!(
        "audit: {} transcript objects, {} transcript events in the table",
        objects.len(),
        transcript_rows.len()
    );
    let mut findings = completeness(&by_event, &transcript_rows);
    let duplicates = sources.ids(queries::duplicate_rows(table, &window)).await?;
    findings.insert("events_with_several_rows", duplicates);
    let keys = rules.redactor.keys();
    let unredacted = sources
        .ids(queries::unredacted_rows(table, &window, keys))
        .await?;
    findings.insert("rows_with_unredacted_keys", unredacted);
    let (not_transcripts, unreadable) = classify_objects(&sources.bucket, rules, &objects).await?;
    findings.insert("objects_not_transcripts", not_transcripts);
    findings.insert("objects_unreadable", unreadable);
    let counts = Counts::from([
        ("transcript_objects", objects.len()),
        ("transcript_events_in_bucket", by_event.len()),
        ("transcript_events_in_table", transcript_rows.len()),
    ]);
    Ok((counts, findings))
}

/// Objects (by event id, with how many each has) against the table's transcript events.
fn completeness(objects: &BTreeMap<String, usize>, rows: &BTreeSet<String>) -> Findings {
    let in_bucket: BTreeSet<String> = objects.keys().cloned().collect();
    let several = objects.iter().filter(|(_, n)| **n > 1);
    Findings::from([
        (
            "transcripts_without_object",
            rows.difference(&in_bucket).cloned().collect(),
        ),
        (
            "objects_without_row",
            in_bucket.difference(rows).cloned().collect(),
        ),
        (
            "events_with_several_objects",
            several.map(|(id, _)| id.clone()).collect(),
        ),
    ])
}

/// The objects of every hour of the window (`{prefix}/YYYY/MM/DD/HH/`), with progress.
async fn list_window(sources: &Sources, window: &Window) -> Result<Vec<Object>> {
    let mut all = Vec::new();
    for hour in window.hours() {
        let prefix = pipeline::object_name::hour_folder(&sources.prefix, hour);
        let found = sources.bucket.list(&prefix).await?;
        eprintln!(
            "audit: listed {prefix}: {} objects ({} so far)",
            found.len(),
            all.len() + found.len()
        );
        all.extend(found);
    }
    Ok(all)
}

/// Reads each object back and classifies it with the services' rules: the event ids of objects
/// that are not transcript events, and the names of objects that are not telemetry payloads.
async fn classify_objects(
    bucket: &Arc<AuditBucket>,
    rules: &Rules,
    objects: &[Object],
) -> Result<(BTreeSet<String>, BTreeSet<String>)> {
    let (mut not_transcripts, mut unreadable) = (BTreeSet::new(), BTreeSet::new());
    for (i, chunk) in objects.chunks(READERS).enumerate() {
        let mut reads = tokio::task::JoinSet::new();
        for o in chunk {
            let (bucket, name) = (bucket.clone(), o.name.clone());
            reads.spawn(async move { (name.clone(), bucket.read(&name).await) });
        }
        while let Some(done) = reads.join_next().await {
            let (name, bytes) = done?;
            // Gone since the listing, or unreadable: counted, the audit goes on.
            let Ok(bytes) = bytes else {
                unreadable.insert(name);
                continue;
            };
            let Ok(payload) = TelemetryPayload::parse(&bytes) else {
                unreadable.insert(name);
                continue;
            };
            let checks =
                TranscriptChecks::evaluate(&payload.event, &payload.metadata, &rules.dotcom);
            if !checks.is_transcript() {
                not_transcripts.insert(payload.event.id.to_string());
            }
        }
        if (i + 1) % 50 == 0 {
            eprintln!(
                "audit: classified {} of {} objects",
                (i + 1) * READERS,
                objects.len()
            );
        }
    }
    Ok((not_transcripts, unreadable))
}

fn summary(window: &Window, counts: &Counts, findings: &Findings, ok: bool) -> Value {
    let report: serde_json::Map<String, Value> = findings
        .iter()
        .map(|(name, ids)| {
            (
                name.to_string(),
                json!({"count": ids.len(), "first": ids.iter().take(FIRST).collect::<Vec<_>>()}),
            )
        })
        .collect();
    json!({
        "window": {"from": window.from.to_rfc3339(), "to": window.to.to_rfc3339()},
        "counts": counts,
        "findings": report,
        "ok": ok,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completeness_compares_both_ways_and_counts_objects_per_event() {
        let objects = BTreeMap::from([
            ("a".to_string(), 1),
            ("b".to_string(), 2),
            ("c".to_string(), 1),
        ]);
        let rows = BTreeSet::from(["a".to_string(), "b".to_string(), "d".to_string()]);
        let f = completeness(&objects, &rows);
        let ids = |name: &str| f[name].iter().cloned().collect::<Vec<_>>();
        assert_eq!(ids("transcripts_without_object"), ["d"]);
        assert_eq!(ids("objects_without_row"), ["c"]);
        assert_eq!(ids("events_with_several_objects"), ["b"]);
    }
}
