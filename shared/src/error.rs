//! The one question every failed call answers: can trying the same thing again succeed? Used by
//! the sinks, the dead-letter publisher, the Google layer and the failure a push is answered with;
//! it belongs to none of them.

/// A failed call, by whether retrying it can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Worth retrying: the service was unreachable, slow, overloaded, or misconfigured.
    #[error("{0}")]
    Transient(String),
    /// Retrying the same message cannot succeed.
    #[error("{0}")]
    Permanent(String),
}
