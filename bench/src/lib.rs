//! Fixtures of the load benchmark, `scripts/bench-load.sh` (not a test; nothing here runs in
//! `cargo test`): the bins `floor`, `insertall`, `corpus`, `coldstart` and `freeport`, and the few
//! helpers they share.

use std::net::{Ipv4Addr, SocketAddr};

/// The benchmark listens on loopback only.
pub const HOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// `127.0.0.1:$PORT`; exits with a message when `PORT` is missing or not a port.
pub fn address_from_env() -> SocketAddr {
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| {
            eprintln!("PORT must be set to a port number");
            std::process::exit(2);
        });
    SocketAddr::from((HOST, port))
}

/// A `u64` from the environment, `default` when unset; exits with a message when malformed.
pub fn u64_from_env(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Err(_) => default,
        Ok(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("{name} must be a non-negative integer, got {v:?}");
            std::process::exit(2);
        }),
    }
}

/// How many times `needle` occurs in `haystack` (non-overlapping). SIMD search (`memchr`): the
/// fixture shares the cores with the service it measures, so it must cost next to nothing.
pub fn count_occurrences(haystack: &[u8], needle: &[u8]) -> usize {
    if needle.is_empty() {
        return 0;
    }
    memchr::memmem::find_iter(haystack, needle).count()
}

/// A `kB` field (`VmRSS`, `VmHWM`, …) of `/proc/PID/status`, in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_insert_ids() {
        let body = br#"{"rows":[{"insertId":"a","json":{}},{"insertId":"b","json":{}}]}"#;
        assert_eq!(count_occurrences(body, br#""insertId":"#), 2);
        assert_eq!(count_occurrences(b"", br#""insertId":"#), 0);
    }
}
