//! The local pipeline, end to end, for a person to watch: `scripts/demo.sh` runs this.
//!
//! Starts the three emulators, runs the three service *binaries* (configured only through the
//! environment variables the README documents), creates the topic and the three push
//! subscriptions, publishes the sample events in `samples/`, waits for them to land, and prints
//! what is in Cloud Storage and BigQuery. Then stops the services with SIGTERM and the emulators.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use e2e::emulators::free_port;
use e2e::samples::load_samples;
use e2e::stack::{BUCKET, DATASET, Endpoints, Stack, TABLE, TOPIC, eventually};
use pipeline::Service;
use serde_json::Value;

struct Running {
    service: Service,
    child: Child,
    url: String,
    log: PathBuf,
}

fn spawn_binary(stack: &Stack, service: Service) -> Result<Running> {
    let dir = std::env::current_exe()?
        .parent()
        .context("executable has a directory")?
        .to_path_buf();
    let bin = dir.join(service.name());
    if !bin.exists() {
        bail!(
            "{} not found: build the workspace first (scripts/demo.sh does)",
            bin.display()
        );
    }
    let port = free_port();
    let mut env = stack.service_env(service);
    env.insert("PORT".into(), port.to_string());
    let log = stack.dir.join(format!("{}.log", service.name()));
    let out = std::fs::File::create(&log)?;
    let child = Command::new(&bin)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&env)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok(Running {
        service,
        child,
        url: format!("http://127.0.0.1:{port}"),
        log,
    })
}

/// `replay audit` over the samples' days (2024-05-14 and 15), as on-call would run it: the
/// bucket and the table held to each other. Prints its summary; whether it found nothing.
fn run_audit(stack: &Stack) -> Result<bool> {
    println!(
        "== The audit: replay audit --from 2024-05-14 --to 2024-05-16 (bucket and table held to each other)"
    );
    let dir = std::env::current_exe()?
        .parent()
        .context("executable has a directory")?
        .to_path_buf();
    let mut env = stack.service_env(Service::ToGcs);
    env.extend(stack.service_env(Service::ToBq));
    let out = Command::new(dir.join("replay"))
        .args(["audit", "--from", "2024-05-14", "--to", "2024-05-16"])
        .envs(&env)
        .output()
        .context("replay audit (build the workspace first: scripts/demo.sh does)")?;
    let summary: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("audit summary: {}", String::from_utf8_lossy(&out.stderr)))?;
    println!("   counts:   {}", summary["counts"]);
    for (name, finding) in summary["findings"].as_object().into_iter().flatten() {
        println!("   {name:<28} {}", finding["count"]);
    }
    println!("   ok: {} (exit {:?})", summary["ok"], out.status.code());
    Ok(out.status.success())
}

async fn wait_healthy(r: &Running) -> Result<()> {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(resp) = client.get(format!("{}/healthz", r.url)).send().await
            && resp.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "{} did not become healthy; see {}",
        r.service,
        r.log.display()
    )
}

fn excerpt(s: &str, n: usize) -> String {
    let one_line = s.replace('\n', "⏎");
    let cut: String = one_line.chars().take(n).collect();
    if one_line.chars().count() > n {
        format!("{cut}…")
    } else {
        cut
    }
}

fn transcript_text(v: &Value) -> Option<String> {
    let pm = &v["event"]["parameters"]["privateMetadata"];
    pm.get("promptText")
        .or_else(|| pm.get("responseText"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

#[tokio::main]
async fn main() -> Result<()> {
    println!("== Starting the emulators (Pub/Sub, Cloud Storage, BigQuery) on 127.0.0.1 …");
    let stack = Stack::start("demo").await?;
    println!("   Pub/Sub      {}", stack.pubsub_emulator.url());
    println!(
        "   Storage      {}   bucket `{BUCKET}`",
        stack.gcs_emulator.url()
    );
    println!(
        "   BigQuery     {}   table `{DATASET}.{TABLE}`",
        stack.bigquery_emulator.url()
    );

    println!("== Starting the three services (target/debug/{{to-gcs,to-bq,sub-v2}}) …");
    let mut running = Vec::new();
    for service in Service::ALL {
        let r = spawn_binary(&stack, service)?;
        wait_healthy(&r).await?;
        println!(
            "   {:<7} {}   log: {}",
            service.name(),
            r.url,
            r.log.display()
        );
        running.push(r);
    }

    let url_of = |s: Service| {
        running
            .iter()
            .find(|r| r.service == s)
            .map(|r| r.url.clone())
    };
    let endpoints = Endpoints {
        to_gcs: url_of(Service::ToGcs).context("to-gcs")?,
        to_bq: url_of(Service::ToBq).context("to-bq")?,
        sub_v2: url_of(Service::SubV2).context("sub-v2")?,
    };
    stack.wire_pipeline(TOPIC, &endpoints).await?;
    println!("== Topic `{TOPIC}` with three push subscriptions (filters + dead-letter topics)");

    let samples = load_samples()?;
    println!(
        "== Publishing {} sample events from samples/ …",
        samples.len()
    );
    for m in &samples {
        let id = stack.pubsub.publish(TOPIC, &m.data, &m.attributes).await?;
        println!("   message {id:>3}  {}", m.name);
    }

    let want_objects = samples.iter().filter(|m| m.to_gcs).count();
    let (gcs, bq) = (stack.gcs.clone(), stack.bigquery.clone());
    let want_rows = samples.len();
    eventually("the samples to land", Duration::from_secs(120), || {
        let (gcs, bq) = (gcs.clone(), bq.clone());
        async move {
            let objects = gcs.list(BUCKET, "").await?.len();
            let rows = bq.all_rows(DATASET, TABLE).await?.len();
            Ok(if objects >= want_objects && rows >= want_rows {
                Ok(())
            } else {
                Err(format!("{objects} objects, {rows} rows"))
            })
        }
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    println!();
    println!("== Cloud Storage: gs://{BUCKET} (transcript events only, unredacted)");
    let mut text_in_gcs = Vec::new();
    for o in stack.gcs.list(BUCKET, "").await? {
        let data: Value = serde_json::from_slice(&stack.gcs.download(BUCKET, &o.name).await?)?;
        let text = transcript_text(&data).unwrap_or_default();
        println!("   {}  ({} bytes)", o.name, o.size);
        println!(
            "      {} / {}: \"{}\"",
            data["event"]["feature"].as_str().unwrap_or(""),
            data["event"]["action"].as_str().unwrap_or(""),
            excerpt(&text, 70)
        );
        text_in_gcs.push(text);
    }

    println!();
    println!("== BigQuery: {DATASET}.{TABLE} (one row per event, privateMetadata redacted)");
    let rows = stack.bigquery.all_rows(DATASET, TABLE).await?;
    let mut sorted = rows.clone();
    sorted.sort_by_key(|r| r["event_id"].as_str().unwrap_or("").to_owned());
    for r in &sorted {
        println!(
            "   {}  {:<6} {:<18} {:<10} transcript={:<5} dotcom={:<5} redacted={}",
            r["event_id"].as_str().unwrap_or(""),
            r["handler"].as_str().unwrap_or(""),
            r["feature"].as_str().unwrap_or(""),
            r["action"].as_str().unwrap_or(""),
            r["is_transcript"].as_str().unwrap_or(""),
            r["is_dotcom"].as_str().unwrap_or(""),
            r["redacted_keys"],
        );
        if !r["parameters"]["private_metadata"].is_null() {
            println!(
                "      private_metadata: {}",
                excerpt(&r["parameters"]["private_metadata"].to_string(), 100)
            );
        }
    }

    println!();
    let all_rows = serde_json::to_string(&rows)?;
    let sample_texts: Vec<String> = samples.iter().flat_map(|m| m.secrets.clone()).collect();
    let in_bq = sample_texts
        .iter()
        .filter(|t| all_rows.contains(t.as_str()))
        .count();
    let in_gcs = text_in_gcs.iter().filter(|t| !t.is_empty()).count();
    println!("== Transcript texts in Cloud Storage: {in_gcs} of {want_objects} transcript events");
    println!(
        "== Transcript texts found in BigQuery rows: {in_bq} (of {} planted in the samples)",
        sample_texts.len()
    );

    println!();
    println!("== One outcome log line per push, e.g. from to-gcs:");
    if let Some(r) = running.iter().find(|r| r.service == Service::ToGcs) {
        let log = std::fs::read_to_string(&r.log).unwrap_or_default();
        for line in log.lines().filter(|l| l.contains("\"outcome\"")).take(2) {
            println!("   {line}");
        }
    }

    println!();
    let audit = run_audit(&stack)?;

    println!();
    println!("== Stopping the services (SIGTERM: graceful) and the emulators");
    for r in &mut running {
        // SAFETY: kill(2) with a pid we own.
        unsafe {
            libc::kill(r.child.id() as i32, libc::SIGTERM);
        }
        let status = r.child.wait()?;
        println!("   {:<7} exited: {status}", r.service.name());
    }
    drop(stack);
    if !audit {
        bail!("the audit found discrepancies");
    }
    if in_bq > 0 {
        bail!("transcript text reached BigQuery");
    }
    Ok(())
}
