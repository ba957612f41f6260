//! Why a push was not handled: a [`Failure`] knows its HTTP status (the ack), whether it is worth
//! a dead letter, and carries a stable code plus a detail that never contains payload text.

use axum::http::StatusCode;

use crate::decode::DecodeError;
use crate::error::CallError;
use crate::event::EventError;
use crate::push_auth::AuthError;

/// The kinds of failure, each with its own answer to Pub/Sub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The request or message is not what Pub/Sub and the gateway send: 400, never retried into
    /// success; dead-lettered (or collected by the subscription's dead-letter policy).
    Malformed,
    /// The destination refused the data itself (BigQuery `invalid`): 422, dead-lettered as well.
    Rejected,
    /// The destination failed or was unreachable: 503, Pub/Sub redelivers.
    Transient,
    /// The body is larger than any push: 413, before it is read, so there is nothing to keep.
    BodyTooLarge,
    /// The headers are larger than any push: 431.
    HeadersTooLarge,
    /// The body trickled in for too long: 408, Pub/Sub redelivers.
    BodyTimeout,
    /// Push authentication failed: 401, nothing of the push was processed.
    Unauthorized,
    /// The budget of body bytes in flight is spent: 429, Pub/Sub backs off and redelivers.
    Overloaded,
}

impl FailureKind {
    pub fn status(self) -> StatusCode {
        match self {
            FailureKind::Malformed => StatusCode::BAD_REQUEST,
            FailureKind::Rejected => StatusCode::UNPROCESSABLE_ENTITY,
            FailureKind::Transient => StatusCode::SERVICE_UNAVAILABLE,
            FailureKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            FailureKind::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            FailureKind::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            FailureKind::Unauthorized => StatusCode::UNAUTHORIZED,
            FailureKind::Overloaded => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// Retrying the same message cannot help: publish it to the dead-letter topic (when there is
    /// a message to keep).
    pub fn is_permanent(self) -> bool {
        matches!(self, FailureKind::Malformed | FailureKind::Rejected)
    }

    /// Pub/Sub should redeliver: the cause is outside the message.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            FailureKind::Transient
                | FailureKind::BodyTimeout
                | FailureKind::Unauthorized
                | FailureKind::Overloaded
        )
    }
}

/// A failure: its kind, a stable code (`invalid_json`, `sink_unavailable`, …) and a detail
/// without payload text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub code: &'static str,
    pub detail: String,
}

impl Failure {
    pub fn new(kind: FailureKind, code: &'static str, detail: impl ToString) -> Self {
        Self {
            kind,
            code,
            detail: detail.to_string(),
        }
    }

    pub fn malformed(code: &'static str, detail: impl ToString) -> Self {
        Self::new(FailureKind::Malformed, code, detail)
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }
}

impl From<DecodeError> for Failure {
    fn from(e: DecodeError) -> Self {
        let kind = match e {
            DecodeError::TooLarge { .. } => FailureKind::BodyTooLarge,
            _ => FailureKind::Malformed,
        };
        Self::new(kind, e.code(), e)
    }
}

impl From<EventError> for Failure {
    fn from(e: EventError) -> Self {
        Self::malformed(e.code(), e)
    }
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Transient(detail) => {
                Self::new(FailureKind::Transient, "sink_unavailable", detail)
            }
            CallError::Permanent(detail) => {
                Self::new(FailureKind::Rejected, "sink_rejected", detail)
            }
        }
    }
}

impl From<AuthError> for Failure {
    fn from(e: AuthError) -> Self {
        let kind = match e {
            // The keys cannot be had: the token may be fine, so Pub/Sub should retry (503).
            AuthError::Jwks(_) => FailureKind::Transient,
            _ => FailureKind::Unauthorized,
        };
        Self::new(kind, e.code(), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_the_ack_contract() {
        use FailureKind::*;
        let table = [
            (Malformed, 400, true),
            (Rejected, 422, true),
            (Transient, 503, false),
            (BodyTooLarge, 413, false),
            (HeadersTooLarge, 431, false),
            (BodyTimeout, 408, false),
            (Unauthorized, 401, false),
            (Overloaded, 429, false),
        ];
        for (kind, status, permanent) in table {
            assert_eq!(kind.status().as_u16(), status, "{kind:?}");
            assert_eq!(kind.is_permanent(), permanent, "{kind:?}");
        }
        let too_large: Failure = DecodeError::TooLarge { limit: 1 }.into();
        assert_eq!(too_large.status().as_u16(), 413);
        let no_id: Failure = DecodeError::NoMessageId.into();
        assert_eq!(no_id.status().as_u16(), 400);
    }
}
