//! What one run of the tests sent to Google's APIs: the recorded requests of every test process
//! (`target/contract/*.jsonl`), counted by call, against `pipeline::google::CALLS`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use pipeline::google::{CALLS, Call};

use super::Entry;

/// The requests of a run, judged.
#[derive(Debug, Default)]
pub struct Report {
    /// Requests per call id, conforming or not.
    pub counts: BTreeMap<String, usize>,
    /// Every nonconforming request: `api: METHOD /path: problem; problem`.
    pub problems: Vec<String>,
    /// Calls that were made but are not in `CALLS`.
    pub undeclared: Vec<String>,
    /// Calls in `CALLS` that no test made.
    pub unexercised: Vec<&'static str>,
}

/// Every entry recorded under `dir`.
pub fn read(dir: &Path) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let listing = std::fs::read_dir(dir)
        .with_context(|| format!("no recordings in {}: run the tests first", dir.display()))?;
    for file in listing {
        let path = file?.path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            entries.push(
                serde_json::from_str(line)
                    .with_context(|| format!("a line of {}", path.display()))?,
            );
        }
    }
    Ok(entries)
}

/// Counts the entries by call and finds what is wrong, missing or undeclared.
pub fn judge(entries: &[Entry], declared: &[Call]) -> Report {
    let mut report = Report::default();
    for e in entries {
        if let Some(id) = &e.call {
            *report.counts.entry(id.clone()).or_default() += 1;
            if !declared.iter().any(|c| c.id == id) && !report.undeclared.contains(id) {
                report.undeclared.push(id.clone());
            }
        }
        if let Some(refusal) = e.refusal() {
            report
                .problems
                .push(format!("{}: {}: {refusal}", e.api, e.request));
        }
    }
    report.unexercised = declared
        .iter()
        .filter(|c| !report.counts.contains_key(c.id))
        .map(|c| c.id)
        .collect();
    report
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.undeclared.is_empty() && self.unexercised.is_empty()
    }

    /// The table `tests/README.md` shows: each declared call, its client, and how often it was
    /// sent in this run.
    pub fn table(&self) -> String {
        let mut out = String::from("| call | client | sent by | requests |\n|---|---|---|---|\n");
        for c in CALLS {
            let n = self.counts.get(c.id).copied().unwrap_or(0);
            out.push_str(&format!(
                "| `{}` | {} | {} | {n} |\n",
                c.id, c.client, c.sent_by
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::google::calls;

    fn entry(call: Option<&str>, problems: &[&str]) -> Entry {
        Entry {
            api: "storage".into(),
            call: call.map(String::from),
            transport: "http".into(),
            request: "GET /x".into(),
            problems: problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn a_run_fails_on_a_bad_request_an_undeclared_call_or_a_call_never_made() {
        let declared = [calls::OBJECTS_LIST, calls::BUCKETS_GET];
        let good = [
            entry(Some("storage.objects.list"), &[]),
            entry(Some("storage.buckets.get"), &[]),
        ];
        assert!(judge(&good, &declared).ok());
        let r = judge(&good[..1], &declared);
        assert_eq!(r.unexercised, ["storage.buckets.get"]);
        let mut bad = good.to_vec();
        bad.push(entry(Some("storage.objects.list"), &["`fields` is wrong"]));
        bad.push(entry(None, &["GET /x is not a method"]));
        bad.push(entry(Some("storage.objects.delete"), &[]));
        let r = judge(&bad, &declared);
        assert_eq!(r.problems.len(), 2, "{:?}", r.problems);
        assert_eq!(r.undeclared, ["storage.objects.delete"]);
        assert_eq!(r.counts["storage.objects.list"], 2);
        assert!(!r.ok());
    }
}
