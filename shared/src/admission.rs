//! Admission by bytes in flight: a service holds at most a budget of push-body bytes at once, so a
//! burst of maximum-size pushes cannot exhaust the container's memory and take every push in
//! flight on the instance down with it.
//!
//! A push reserves its declared `Content-Length` (the largest push size when it declares none)
//! before its body is read, and releases it when it has been answered. When the budget is spent
//! it waits up to [`limits::ADMISSION_WAIT`] for room, then is answered 429 (`retry`, reason
//! `over_budget`): Pub/Sub backs off and redelivers it. It is never dropped and never
//! dead-lettered for it. A push larger than the whole budget waits until it can run alone.
//!
//! The budget (`MAX_BODY_BYTES_IN_FLIGHT`) defaults to an eighth of the container's memory limit
//! (cgroup v2 `memory.max`, or v1 `memory.limit_in_bytes`; 512 MiB when there is none), because
//! a push's body is held in a few forms while it is handled (the body, the decoded data, the
//! parsed tree, the row): about four times its size at the peak, measured in `BENCHMARKS.md`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::limits;
use crate::limits::MAX_PUSH_BODY_BYTES;

/// Used when the container reports no memory limit (Terraform's default for the services).
pub const DEFAULT_MEMORY_BYTES: u64 = 512 * 1024 * 1024;

/// Budget accounting is in KiB, so that a budget of gigabytes fits a semaphore's permits.
const UNIT: usize = 1024;

/// The default budget for a container of `memory` bytes: an eighth of it, at least one maximum push.
pub fn default_budget(memory: u64) -> usize {
    ((memory / 8) as usize).max(MAX_PUSH_BODY_BYTES)
}

/// The container's memory limit, from the cgroup files, if it has one.
pub fn container_memory_limit() -> Option<u64> {
    [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|path| std::fs::read_to_string(path).ok())
    .filter_map(|text| text.trim().parse::<u64>().ok())
    // cgroup v1 reports "no limit" as a huge number.
    .find(|&limit| limit < (1 << 50))
}

/// The shared budget of body bytes in flight.
#[derive(Debug, Clone)]
pub struct Admission {
    permits: Arc<Semaphore>,
    budget_units: u32,
    wait: Duration,
}

/// Room reserved for one push; given back when dropped.
#[derive(Debug)]
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
}

impl Admission {
    pub fn new(budget_bytes: usize) -> Self {
        Self::with_wait(budget_bytes, limits::ADMISSION_WAIT)
    }

    pub fn with_wait(budget_bytes: usize, wait: Duration) -> Self {
        let units = (budget_bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        Self {
            permits: Arc::new(Semaphore::new(units)),
            budget_units: units as u32,
            wait,
        }
    }

    /// Reserves room for a body of `declared` bytes (`None`: not declared, so the largest push),
    /// waiting up to the admission wait; `None` when there was no room in time.
    pub async fn admit(&self, declared: Option<usize>) -> Option<Admitted> {
        let bytes = declared.unwrap_or(MAX_PUSH_BODY_BYTES);
        let units = (bytes.div_ceil(UNIT) as u32).clamp(1, self.budget_units);
        let acquire = self.permits.clone().acquire_many_owned(units);
        match tokio::time::timeout(self.wait, acquire).await {
            Ok(Ok(permit)) => Some(Admitted { _permit: permit }),
            _ => None,
        }
    }

    /// Bytes of the budget reserved right now (the log line's `bytesInFlight`).
    pub fn in_use_bytes(&self) -> usize {
        (self.budget_units as usize).saturating_sub(self.permits.available_permits()) * UNIT
    }

    /// Bytes of the budget not reserved right now.
    pub fn available_bytes(&self) -> usize {
        self.permits.available_permits() * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_budget_bounds_the_bytes_in_flight() {
        let admission = Admission::with_wait(10 * UNIT * 1024, Duration::from_millis(50));
        let a = admission.admit(Some(6 * 1024 * 1024)).await.expect("room");
        assert!(
            admission.admit(Some(6 * 1024 * 1024)).await.is_none(),
            "over budget"
        );
        let small = admission.admit(Some(1000)).await.expect("a small one fits");
        drop(a);
        assert!(admission.admit(Some(6 * 1024 * 1024)).await.is_some());
        drop(small);
        // Larger than the whole budget: admitted alone.
        assert!(admission.admit(Some(100 * 1024 * 1024)).await.is_some());
        assert_eq!(admission.available_bytes(), 10 * 1024 * 1024);
        assert_eq!(admission.in_use_bytes(), 0);
        let _one = admission.admit(Some(1000)).await.expect("room");
        assert_eq!(admission.in_use_bytes(), UNIT);
    }

    #[test]
    fn the_default_is_an_eighth_of_memory_and_fits_one_maximum_push() {
        assert_eq!(default_budget(DEFAULT_MEMORY_BYTES), 64 * 1024 * 1024);
        assert_eq!(default_budget(2 << 30), 256 * 1024 * 1024);
        assert_eq!(default_budget(64 << 20), MAX_PUSH_BODY_BYTES);
    }
}
