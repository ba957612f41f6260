//! The `to-gcs` binary as Cloud Run runs it: configuration only from the environment (refusing to
//! start, naming the variable, when it is wrong), JSON logs on stdout, and a graceful SIGTERM that
//! lets an in-flight push finish. Uses the real Cloud Storage emulator.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use e2e::contract::Recorder;
use e2e::emulators::{free_port, scratch_dir, start_gcs};
use e2e::gcs::Gcs;
use e2e::pubsub::push_body;

const BIN: &str = env!("CARGO_BIN_EXE_to-gcs");

#[test]
fn refuses_to_start_and_names_the_missing_variable() {
    let out = Command::new(BIN)
        .env_clear()
        .env("GOOGLE_CLOUD_PROJECT", "p")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TRANSCRIPT_BUCKET: not set"), "{stderr}");

    let out = Command::new(BIN)
        .env_clear()
        .env("GOOGLE_CLOUD_PROJECT", "p")
        .env("TRANSCRIPT_BUCKET", "b-1")
        .env("PORT", "http")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PORT: `http` is not a port number"),
        "{stderr}"
    );
    // The same error is logged as JSON for Cloud Logging.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line: serde_json::Value =
        serde_json::from_str(stdout.lines().next().unwrap_or("")).expect("a JSON log line");
    assert_eq!(line["severity"], "ERROR");
    assert_eq!(line["variable"], "PORT");
}

fn transcript(id: &str) -> Vec<u8> {
    serde_json::json!({"event": {"id": id, "timestamp": "2024-05-14T21:12:07.903Z",
        "feature": "cody.chat-question", "action": "submitted",
        "parameters": {"metadata": {"recordsPrivateMetadataTranscript": 1},
        "privateMetadata": {"promptText": "hello"}}},
        "metadata": {"identifier": {"licensedInstance": {"externalUrl": "https://sourcegraph.com"}}}})
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_in_flight_push_then_exits() -> Result<()> {
    let dir = scratch_dir("sigterm");
    let gcs_emulator = start_gcs(&dir, &dir.join("gcs"), None).await?;
    let gcs = Gcs::new(&gcs_emulator.url());
    gcs.create_bucket("p", "bucket-1").await?;
    // The binary's requests are held to Google's API description on the way.
    let recorder = Recorder::start("storage", &gcs_emulator.url()).await?;

    let port = free_port();
    let mut child = Command::new(BIN)
        .env_clear()
        .env("GOOGLE_CLOUD_PROJECT", "p")
        .env("TRANSCRIPT_BUCKET", "bucket-1")
        .env("STORAGE_EMULATOR_HOST", recorder.host())
        .env("HOST", "127.0.0.1")
        .env("PUSH_AUTH", "off")
        .env("PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        ensure!(
            started.elapsed() < Duration::from_secs(20),
            "to-gcs did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Start a push: headers and half of the body.
    let body = push_body(
        "m-1",
        &transcript("in-flight-1"),
        &Default::default(),
        "projects/p/subscriptions/s",
    )
    .to_string();
    let (head, tail) = body.as_bytes().split_at(body.len() / 2);
    let mut conn = TcpStream::connect(("127.0.0.1", port))?;
    write!(
        conn,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    conn.write_all(head)?;
    conn.flush()?;
    std::thread::sleep(Duration::from_millis(300));

    // SIGTERM while the request is in flight.
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    std::thread::sleep(Duration::from_millis(500));
    ensure!(
        child.try_wait()?.is_none(),
        "exited with a request in flight"
    );
    ensure!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still accepting new connections after SIGTERM"
    );

    // Finish the request: it is handled and acked.
    conn.write_all(tail)?;
    let mut response = String::new();
    conn.read_to_string(&mut response)?;
    ensure!(response.starts_with("HTTP/1.1 200"), "response: {response}");
    ensure!(response.contains("\"written\""), "response: {response}");

    let status = child.wait()?;
    ensure!(status.success(), "exit status {status}");
    let mut logs = String::new();
    child
        .stdout
        .take()
        .context("stdout")?
        .read_to_string(&mut logs)?;
    ensure!(logs.contains("SIGTERM"), "{logs}");
    ensure!(
        logs.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "non-JSON log line in {logs}"
    );
    ensure!(!logs.contains("hello"), "transcript text in the logs");

    let objects = gcs.list("bucket-1", "").await?;
    ensure!(
        objects.len() == 1
            && objects[0].metadata["event-id"] == "in-flight-1"
            && objects[0].name.contains("/in-flight-1."),
        "{objects:?}"
    );
    Ok(())
}
