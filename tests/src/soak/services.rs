//! The three real service binaries as child processes on fixed ports, so that they can be
//! SIGKILLed or SIGTERMed and started again on the same address. Their stdout and stderr go to
//! one log file per service (appended across restarts), searched for leaks afterwards.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use pipeline::Service;

/// The directory holding the service binaries: `$SOAK_BIN_DIR`, or the nearest ancestor of this
/// executable that has `to-gcs` in it (`target/debug` for both the test and the `soak` binary).
pub fn bin_dir() -> Result<PathBuf> {
    if let Ok(d) = std::env::var("SOAK_BIN_DIR") {
        return Ok(PathBuf::from(d));
    }
    let exe = std::env::current_exe()?;
    for dir in exe.ancestors().skip(1).take(4) {
        if dir.join(Service::ToGcs.name()).is_file() {
            return Ok(dir.to_path_buf());
        }
    }
    bail!(
        "the service binaries are not next to {}: run `cargo build -p to-gcs -p to-bq -p sub-v2` \
         first (scripts/soak.sh does), or set SOAK_BIN_DIR",
        exe.display()
    )
}

pub struct ServiceProc {
    pub service: Service,
    pub port: u16,
    pub log: PathBuf,
    pub starts: u32,
    bin: PathBuf,
    env: BTreeMap<String, String>,
    child: Option<Child>,
}

impl ServiceProc {
    pub fn new(
        service: Service,
        bin_dir: &Path,
        dir: &Path,
        port: u16,
        env: BTreeMap<String, String>,
    ) -> Self {
        Self {
            service,
            port,
            log: dir.join(format!("{}.log", service.name())),
            starts: 0,
            bin: bin_dir.join(service.name()),
            env,
            child: None,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Starts the binary and waits (at most 30 s) until `/healthz` answers.
    pub async fn start(&mut self) -> Result<()> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut cmd = Command::new(&self.bin);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&self.env)
            .env("PORT", self.port.to_string())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        crate::emulators::die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        self.child = Some(child);
        self.starts += 1;
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = http
                .get(format!("http://127.0.0.1:{}/healthz", self.port))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                bail!(
                    "{} exited at start ({status}); log: {}",
                    self.service,
                    self.log.display()
                );
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("{} not healthy after 30 s", self.service);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `signal`; waits (at most `wait`) for the exit, then SIGKILLs. Returns whether the
    /// process exited by itself within `wait`.
    pub async fn signal(&mut self, signal: libc::c_int, wait: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid, signal);
            }
        }
        let started = Instant::now();
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            if started.elapsed() > wait {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServiceProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
