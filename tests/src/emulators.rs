//! Starts and stops the three emulators as child processes on free loopback ports.
//!
//! Paths come from `.emulators/env`, written by `scripts/emulators/install.sh` (the README's
//! commands run it first). Each emulator is one process, killed when its handle drops, and asked
//! by the kernel to die with the test process too (`PR_SET_PDEATHSIG`), so no emulator outlives
//! a test run even when a test panics or is killed. Output goes to a log file per emulator under
//! `target/e2e-logs/`, named in every readiness error.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Reads a path the install script exported, or explains how to get it.
fn tool(var: &str) -> Result<String> {
    if let Ok(v) = std::env::var(var) {
        return Ok(v);
    }
    let env_file = repo_root().join(".emulators/env");
    let text = std::fs::read_to_string(&env_file).with_context(|| {
        format!(
            "{var} is not set and {} does not exist: run scripts/emulators/install.sh \
             (scripts/test.sh and scripts/demo.sh do)",
            env_file.display()
        )
    })?;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(&format!("export {var}=")) {
            return Ok(rest.trim_matches('"').to_owned());
        }
    }
    bail!("{var} is missing from {}", env_file.display())
}

/// The workspace root (the parent of `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("the loopback interface has free ports")
}

/// A directory for logs and data of one run: `target/e2e-logs/<label>-<pid>-<n>`.
pub fn scratch_dir(label: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = repo_root().join("target/e2e-logs").join(format!(
        "{label}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("can create target/e2e-logs");
    dir
}

/// Sends one request of the harness's own to an emulator: the answer's JSON (`Null` when it has
/// none), or an error naming `what`, the status and the answer.
pub async fn json_answer(
    request: reqwest::RequestBuilder,
    what: &str,
) -> Result<serde_json::Value> {
    let r = request.send().await.with_context(|| what.to_string())?;
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{what}: HTTP {status}: {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

/// One running emulator process.
pub struct Emulator {
    pub name: &'static str,
    pub port: u16,
    /// A second, gRPC port (BigQuery's Storage Read/Write API), where the emulator has one.
    pub grpc_port: Option<u16>,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Emulator {
    fn spawn(name: &'static str, port: u16, mut cmd: Command, dir: &Path) -> Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log)?;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start the {name} emulator"))?;
        Ok(Self {
            name,
            port,
            grpc_port: None,
            log,
            child: Some(child),
        })
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:GRPC_PORT`, where the emulator has a gRPC port.
    pub fn grpc_url(&self) -> Option<String> {
        self.grpc_port.map(|p| format!("http://127.0.0.1:{p}"))
    }

    /// Polls `path` until it answers 2xx, or fails with the emulator's log.
    async fn wait_ready(&mut self, path: &str, timeout: Duration) -> Result<()> {
        let client = reqwest::Client::new();
        let url = format!("{}{path}", self.url());
        let started = Instant::now();
        loop {
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!(
                    "the {} emulator exited ({status}); log: {}\n{}",
                    self.name,
                    self.log.display(),
                    tail(&self.log)
                );
            }
            if started.elapsed() > timeout {
                bail!(
                    "the {} emulator was not ready after {timeout:?}; log: {}\n{}",
                    self.name,
                    self.log.display(),
                    tail(&self.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the process and waits for it (the port is free afterwards).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Google's Pub/Sub emulator (the gcloud component's jar, run directly: one process).
pub async fn start_pubsub(dir: &Path) -> Result<Emulator> {
    let jar = tool("PIPELINE_PUBSUB_EMULATOR_JAR")?;
    let port = free_port();
    let mut cmd = Command::new("java");
    cmd.arg("-jar")
        .arg(&jar)
        .arg("--host=127.0.0.1")
        .arg(format!("--port={port}"));
    let mut e = Emulator::spawn("pubsub", port, cmd, dir)?;
    e.wait_ready("/", Duration::from_secs(60)).await?;
    Ok(e)
}

/// fake-gcs-server on the filesystem backend rooted at `root`, so that what it stored survives a
/// restart; `port` lets a restart come back on the same address.
pub async fn start_gcs(dir: &Path, root: &Path, port: Option<u16>) -> Result<Emulator> {
    let bin = tool("PIPELINE_FAKE_GCS_BIN")?;
    let port = port.unwrap_or_else(free_port);
    std::fs::create_dir_all(root)?;
    let mut cmd = Command::new(bin);
    cmd.args(["-scheme", "http", "-host", "127.0.0.1", "-port"])
        .arg(port.to_string())
        .args(["-backend", "filesystem", "-filesystem-root"])
        .arg(root)
        .arg("-external-url")
        .arg(format!("http://127.0.0.1:{port}"))
        .args(["-log-level", "warn"]);
    let mut e = Emulator::spawn("gcs", port, cmd, dir)?;
    e.wait_ready("/storage/v1/b", Duration::from_secs(30))
        .await?;
    Ok(e)
}

/// bqemulator (DuckDB-backed, in memory), with the private HOME that holds its DuckDB extensions.
pub async fn start_bigquery(dir: &Path, project: &str) -> Result<Emulator> {
    let bin = tool("PIPELINE_BQEMULATOR_BIN")?;
    let home = tool("PIPELINE_BQEMULATOR_HOME")?;
    let port = free_port();
    let grpc = free_port();
    let mut cmd = Command::new(bin);
    cmd.env("HOME", home)
        .args(["start", "--rest-host", "127.0.0.1", "--rest-port"])
        .arg(port.to_string())
        .args(["--grpc-host", "127.0.0.1", "--grpc-port"])
        .arg(grpc.to_string())
        .args(["--project", project, "--log-level", "warning"]);
    let mut e = Emulator::spawn("bigquery", port, cmd, dir)?;
    e.grpc_port = Some(grpc);
    e.wait_ready("/healthz", Duration::from_secs(90)).await?;
    Ok(e)
}

/// The child is killed by the kernel when this process dies, so nothing outlives a test.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}
