//! `coldstart BINARY LOG_FILE [RUNS]`: cold start of a service. Each run picks a free port, spawns
//! `BINARY` with the caller's environment and `PORT` set, and polls `GET /healthz` with a raw TCP
//! request until it answers 200; the time from spawn to that answer is the cold start, and
//! `VmRSS` right then the idle RSS. The child is killed after each run; its output is appended to
//! `LOG_FILE`. Prints each run on stderr and the medians on stdout:
//! `cold_start_ms=… idle_rss_kib=…`.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// A service that is not up after this long has failed to start.
const DEADLINE: Duration = Duration::from_secs(20);
/// Pause between two polls.
const POLL: Duration = Duration::from_micros(200);

/// Whether `GET /healthz` at `addr` answers 200 now.
fn healthy(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(100)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((bench::HOST, 0))?.local_addr()?.port())
}

/// One cold start: (milliseconds to the first 200, VmRSS in KiB at that moment).
fn run_once(binary: &str, log: &str) -> Result<(f64, u64), String> {
    let port = free_port().map_err(|e| format!("no free port: {e}"))?;
    let addr = SocketAddr::from((bench::HOST, port));
    let open_log = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("{log}: {e}"))
    };
    let started = Instant::now();
    let mut child = Command::new(binary)
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(open_log()?)
        .stderr(open_log()?)
        .spawn()
        .map_err(|e| format!("cannot start {binary}: {e}"))?;
    let result = loop {
        if healthy(addr) {
            let elapsed = started.elapsed().as_secs_f64() * 1000.0;
            let rss = bench::proc_status_kib(child.id(), "VmRSS").unwrap_or(0);
            break Ok((elapsed, rss));
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!(
                "{binary} exited before it was up ({status}); see {log}"
            ));
        }
        if started.elapsed() > DEADLINE {
            break Err(format!("{binary} not up after {DEADLINE:?}; see {log}"));
        }
        std::thread::sleep(POLL);
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn median<T: PartialOrd + Copy>(mut values: Vec<T>) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    values[values.len() / 2]
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (binary, log, runs) = match args.as_slice() {
        [binary, log] => (binary, log, 5),
        [binary, log, runs] => match runs.parse::<usize>() {
            Ok(n) if n > 0 => (binary, log, n),
            _ => {
                eprintln!("RUNS must be a positive integer");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("usage: coldstart BINARY LOG_FILE [RUNS]");
            return ExitCode::from(2);
        }
    };
    let mut times = Vec::with_capacity(runs);
    let mut rss = Vec::with_capacity(runs);
    for run in 1..=runs {
        match run_once(binary, log) {
            Ok((ms, kib)) => {
                eprintln!("coldstart run {run}: {ms:.1} ms, VmRSS {kib} KiB");
                times.push(ms);
                rss.push(kib);
            }
            Err(e) => {
                eprintln!("coldstart: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "cold_start_ms={:.1} idle_rss_kib={}",
        median(times),
        median(rss)
    );
    ExitCode::SUCCESS
}
