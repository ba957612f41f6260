//! The figures of one soak run, what counts as a failure, and the table `BENCHMARKS.md` shows.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// The figures of one run.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub published: usize,
    pub transcripts: usize,
    pub objects: usize,
    pub objects_identical: usize,
    pub objects_missing: usize,
    pub objects_extra: usize,
    pub permanent: usize,
    pub expected_rows: usize,
    pub rows: usize,
    pub distinct_rows: usize,
    pub duplicate_rows: usize,
    /// Rows of `event_telemetry_once` (one per event).
    pub view_rows: usize,
    pub rows_missing: usize,
    pub rows_unexpected: usize,
    pub rows_wrong_handler: usize,
    pub dead_letters_expected: usize,
    pub dead_letters_found: usize,
    pub dead_letters_missing: usize,
    pub dead_letters_unexpected: usize,
    pub policy_dead_letters: usize,
    pub leaks_bigquery: usize,
    pub leaks_logs: usize,
    /// Planted strings the same detector finds in the bucket (where they belong): proves it works.
    pub secrets_in_bucket: usize,
    pub pushes: u64,
    pub nacks: u64,
    pub unreachable: u64,
    pub faults: BTreeMap<String, u64>,
    pub events_done_after: Duration,
    pub total_time: Duration,
    pub notes: Vec<String>,
}

impl Report {
    pub fn rate(&self) -> f64 {
        self.published as f64 / self.events_done_after.as_secs_f64().max(0.001)
    }

    /// What is wrong; empty when nothing was lost, duplicated in the bucket, or leaked.
    pub fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        let mut check = |ok: bool, what: String| {
            if !ok {
                f.push(what);
            }
        };
        check(
            self.objects_identical == self.transcripts
                && self.objects_missing == 0
                && self.objects_extra == 0
                && self.objects == self.transcripts,
            format!(
                "bucket: {} objects, {} identical, {} missing, {} extra, for {} transcript events",
                self.objects,
                self.objects_identical,
                self.objects_missing,
                self.objects_extra,
                self.transcripts
            ),
        );
        check(
            self.view_rows == self.distinct_rows,
            format!(
                "event_telemetry_once: {} rows for {} distinct event ids",
                self.view_rows, self.distinct_rows
            ),
        );
        check(
            self.distinct_rows == self.expected_rows
                && self.rows_missing == 0
                && self.rows_unexpected == 0,
            format!(
                "BigQuery: {} distinct event ids, expected {}; {} missing, {} unexpected",
                self.distinct_rows, self.expected_rows, self.rows_missing, self.rows_unexpected
            ),
        );
        check(
            self.rows_wrong_handler == 0,
            format!("{} rows by the wrong handler", self.rows_wrong_handler),
        );
        check(
            self.dead_letters_found == self.dead_letters_expected
                && self.dead_letters_missing == 0
                && self.dead_letters_unexpected == 0
                && self.policy_dead_letters == 0,
            format!(
                "dead letters: {} of {} found, {} missing, {} unexpected, {} moved by the \
                 delivery-attempt policy",
                self.dead_letters_found,
                self.dead_letters_expected,
                self.dead_letters_missing,
                self.dead_letters_unexpected,
                self.policy_dead_letters
            ),
        );
        check(
            self.transcripts == 0 || self.secrets_in_bucket > 0,
            "the leak detector found no planted string even in the bucket".into(),
        );
        check(
            self.leaks_bigquery == 0 && self.leaks_logs == 0,
            format!(
                "transcript text leaked: {} in BigQuery, {} in logs",
                self.leaks_bigquery, self.leaks_logs
            ),
        );
        f
    }

    pub fn table(&self) -> String {
        let mut t = String::new();
        let mut row = |k: &str, v: String| {
            let _ = writeln!(t, "| {k:<44} | {v:>14} |");
        };
        row("figure", "value".into());
        row("events published", self.published.to_string());
        row("transcript events", self.transcripts.to_string());
        row("objects in the bucket", self.objects.to_string());
        row(
            "  identical to the published bytes",
            self.objects_identical.to_string(),
        );
        row(
            "  missing / extra",
            format!("{} / {}", self.objects_missing, self.objects_extra),
        );
        row("permanent row faults injected", self.permanent.to_string());
        row("BigQuery rows", self.rows.to_string());
        row(
            "distinct event_id (expected)",
            format!("{} ({})", self.distinct_rows, self.expected_rows),
        );
        row(
            "duplicate rows (at-least-once)",
            self.duplicate_rows.to_string(),
        );
        row(
            "rows in event_telemetry_once (one per event)",
            self.view_rows.to_string(),
        );
        row(
            "event ids missing / unexpected",
            format!("{} / {}", self.rows_missing, self.rows_unexpected),
        );
        row(
            "rows by the wrong handler",
            self.rows_wrong_handler.to_string(),
        );
        row(
            "dead letters with reason (expected)",
            format!(
                "{} ({})",
                self.dead_letters_found, self.dead_letters_expected
            ),
        );
        row(
            "dead letters missing / unexpected",
            format!(
                "{} / {}",
                self.dead_letters_missing, self.dead_letters_unexpected
            ),
        );
        row(
            "dead-lettered by attempt policy",
            self.policy_dead_letters.to_string(),
        );
        row(
            "leaks (BigQuery / logs)",
            format!("{} / {}", self.leaks_bigquery, self.leaks_logs),
        );
        row(
            "planted strings found in the bucket",
            self.secrets_in_bucket.to_string(),
        );
        row(
            "pushes / nacks",
            format!("{} / {}", self.pushes, self.nacks),
        );
        row("  of which unreachable", self.unreachable.to_string());
        for (k, v) in &self.faults {
            row(&format!("fault: {k}"), v.to_string());
        }
        row(
            "all events landed after",
            format!("{:.1} s", self.events_done_after.as_secs_f64()),
        );
        row("rate achieved (events/s)", format!("{:.1}", self.rate()));
        row(
            "total run time",
            format!("{:.1} s", self.total_time.as_secs_f64()),
        );
        t
    }
}
