//! `cost MEASURED_JSON [PRICES_JSON] [--write FILE]...`: the cost tables of `docs/cost.md` and the
//! billing-mode and quota tables of `docs/deploy.md`, computed from what `scripts/bench-load.sh`
//! measured (`target/bench-load/measured.json`), the list prices and stated assumptions of
//! `bench/cost/prices.json` (the default PRICES_JSON), the sample events of `samples/`, and
//! Terraform's settings and Google's quotas (`terraform/variables.tf`, `terraform/quotas.json`),
//! read at run time relative to the repository. Prints the Markdown; each `--write FILE` replaces
//! what lies between the markers FILE has (`<!-- cost:begin -->`/`<!-- cost:end -->`,
//! `<!-- quotas:begin -->`/`<!-- quotas:end -->`) instead.
//!
//! Where each part lives:
//! - `prices.rs`: the SKUs, list prices and assumptions of prices.json, with their units checked;
//! - `settings.rs`: Terraform's variable defaults, read as HCL;
//! - `measured.rs`: bench-load's scenarios and the CPU, row and log figures taken from them;
//! - `events.rs`: the sample events and what each costs in bytes;
//! - `model.rs`: what an event uses, line by line, and a month's bill in each billing mode;
//! - `quotas.rs`: what the pipeline asks of Google's quotas at the busiest hour;
//! - `render.rs`, `markdown.rs`: the tables; `tests.rs`: the arithmetic on hand-worked figures.
//!
//! The model, in short (docs/cost.md, "The model", says it in prose):
//! - Pub/Sub bills every message once published and once per subscription on the topic, delivered
//!   or dropped by its filter; a push is one request and pays at least 1,000 B, a filtered message
//!   pays its size. The replay window is kept by each push subscription that delivered a message,
//!   or once by the topic (`replay_retention`).
//! - Cloud Run: the instance-seconds of a push are the larger of its CPU time over the CPU the
//!   autoscaler lets it use (vCPUs × 60 %) and its time in flight over the pushes an instance
//!   holds (concurrency × 60 %). Request-based billing pays them at its rates plus a fee per
//!   push, and at low volume the time an instance has any push in flight (each interval at least
//!   100 ms); instance-based billing pays the instances the autoscaler keeps (at least one while
//!   traffic flows) for the whole month at lower rates, no fee. Each service's cheaper mode, and
//!   the volume where it changes, is in the by-volume tables.
//! - CPU per push is measured for sub-v2 writing the plain body and to-bq writing the transcript
//!   body; other sizes lie on the line through those two points (in push-body bytes). `to-gcs` is
//!   not measured: storing costs what writing a row of that size does, skipping what sub-v2's skip
//!   does, scaled the same way.
//! - Logging: the measured bytes of the services' one line per push, plus an estimate of what
//!   Cloud Logging adds to each entry, for the `success_log_sample_percent` kept (the rest are
//!   excluded from ingestion, and an excluded entry is not billed).
//! - BigQuery: the measured bytes per row of each method, moved by how much larger the sample's
//!   redacted event is than the measured one's.
//! - Free tiers are left out of the per-million tables and shown in the by-volume table only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use pipeline::classify::{Route, may_carry_transcript};
use pipeline::decode::PushEnvelope;
use serde_json::{Value, json};

/// The markers of the generated text in docs/cost.md, and in docs/deploy.md.
const COST_MARKERS: (&str, &str) = ("<!-- cost:begin -->", "<!-- cost:end -->");
const QUOTA_MARKERS: (&str, &str) = ("<!-- quotas:begin -->", "<!-- quotas:end -->");
const GIB: f64 = 1_073_741_824.0;
const TIB: f64 = 1_099_511_627_776.0;
const MIB: f64 = 1_048_576.0;
const MILLION: f64 = 1e6;
/// Pub/Sub bills 20 bytes for each message's publish timestamp ("Pub/Sub pricing").
const TIMESTAMP_BYTES: f64 = 20.0;
/// The keys every row loses (`promptText`, `responseText`, any depth, any case).
const REDACTED_KEYS: [&str; 2] = ["prompttext", "responsetext"];
/// Keys a scenario of measured.json must have (a value may be null where it does not apply).
const SCENARIO_KEYS: [&str; 10] = [
    "scenario",
    "server",
    "method",
    "body",
    "body_bytes",
    "conns",
    "latency_ms",
    "cpu_seconds_per_push",
    "log_bytes_per_push",
    "wire_bytes_per_row",
];

mod events;
mod markdown;
mod measured;
mod model;
mod prices;
mod quotas;
mod render;
mod settings;
#[cfg(test)]
mod tests;

use events::*;
use markdown::*;
use measured::*;
use model::*;
use prices::*;
use quotas::*;
use render::*;
use settings::*;

/// `doc` with what lies between the markers replaced by `generated`; `None` without the markers.
fn rewrite(
    doc: &str,
    (begin, end): (&str, &str),
    generated: &str,
) -> Result<Option<String>, String> {
    let Some(at) = doc.find(begin) else {
        return Ok(None);
    };
    let start = at + begin.len();
    let stop = start
        + doc[start..]
            .find(end)
            .ok_or_else(|| format!("no `{end}` marker after `{begin}`"))?;
    Ok(Some(format!(
        "{}\n{}\n{}",
        &doc[..start],
        generated.trim_end(),
        &doc[stop..]
    )))
}

// --- Command line --------------------------------------------------------------------------------

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `path` relative to the repository when it lies inside it (so the generated text is the same
/// wherever it is run from).
fn shown(path: &Path) -> String {
    match (path.canonicalize(), repo_root().canonicalize()) {
        (Ok(p), Ok(root)) => p
            .strip_prefix(&root)
            .map_or_else(|_| p.display().to_string(), |r| r.display().to_string()),
        _ => path.display().to_string(),
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let mut positional = Vec::new();
    let mut write = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--write" => write.push(it.next().ok_or("--write needs a file")?.clone()),
            "-h" | "--help" => return Err(String::new()),
            _ => positional.push(a.clone()),
        }
    }
    let (measured_path, prices_path) = match positional.as_slice() {
        [m] => (PathBuf::from(m), repo_root().join("bench/cost/prices.json")),
        [m, p] => (PathBuf::from(m), PathBuf::from(p)),
        _ => return Err(String::new()),
    };
    let root = repo_root();
    let prices_doc = read_json(&prices_path)?;
    let (prices, assumptions) = load_prices(&prices_doc)?;
    let tf = root.join("terraform/variables.tf");
    let run =
        run_config(&std::fs::read_to_string(&tf).map_err(|e| format!("{}: {e}", tf.display()))?)?;
    let measured = parse_measured(&read_json(&measured_path)?)?;
    let samples = load_samples(&root.join("samples"))?;
    let kinds = kinds(&samples, assumptions.message_id_bytes)?;
    let base = |name: &str| {
        samples
            .iter()
            .find(|s| s.file == name)
            .map(|s| go_json(&redacted(&s.data)).len() as f64)
            .ok_or_else(|| format!("samples/{name} is missing"))
    };
    let (plain_redacted, transcript_redacted) = (
        base("licensed-search-viewed.json")?,
        base("dotcom-chat-prompt-transcript.json")?,
    );
    let write_m = measures(
        &measured,
        "storage_write",
        run.concurrency,
        plain_redacted,
        transcript_redacted,
    )?;
    let insert_m = measures(
        &measured,
        "insert_all",
        run.concurrency,
        plain_redacted,
        transcript_redacted,
    )?;
    let report = Report {
        measured: &measured,
        price_list: price_list(&prices_doc),
        measured_path: shown(&measured_path),
        prices_path: shown(&prices_path),
        kinds,
        write: write_m,
        insert: insert_m,
        ctx: Ctx {
            p: prices,
            a: assumptions,
            run,
        },
        quotas: load_quotas(&read_json(&root.join("terraform/quotas.json"))?)?,
    };
    let text = render(&report);
    if write.is_empty() {
        print!("{}\n{}", text.cost, text.deploy);
    }
    for file in write {
        let doc = std::fs::read_to_string(&file).map_err(|e| format!("{file}: {e}"))?;
        let mut new = doc.clone();
        let mut found = false;
        for (markers, generated) in [(COST_MARKERS, &text.cost), (QUOTA_MARKERS, &text.deploy)] {
            if let Some(changed) =
                rewrite(&new, markers, generated).map_err(|e| format!("{file}: {e}"))?
            {
                new = changed;
                found = true;
            }
        }
        if !found {
            return Err(format!(
                "{file}: neither `{}` nor `{}` is in it",
                COST_MARKERS.0, QUOTA_MARKERS.0
            ));
        }
        std::fs::write(&file, new).map_err(|e| format!("{file}: {e}"))?;
        eprintln!("cost: rewrote the generated text in {file}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_empty() => {
            eprintln!(
                "usage: cost MEASURED_JSON [PRICES_JSON] [--write FILE]\n  \
                 MEASURED_JSON: target/bench-load/measured.json (scripts/bench-load.sh)\n  \
                 PRICES_JSON:   default bench/cost/prices.json\n  \
                 --write FILE:  replace the generated text in FILE (docs/cost.md's {}, \
                 docs/deploy.md's {}); repeatable",
                COST_MARKERS.0, QUOTA_MARKERS.0
            );
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("cost: {e}");
            ExitCode::FAILURE
        }
    }
}
