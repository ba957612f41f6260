//! `replay inspect`: what each handler would do with a dead letter now, without doing it.
//!
//! The real handlers run, against sinks that only record what they were given: the decision is
//! the production code's, and nothing is written anywhere. For the BigQuery handlers the row they
//! would write is shown (already redacted); for `to-gcs` only the object name. The message data is
//! never printed.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pipeline::config::{Rules, Service};
use pipeline::handler::{Destination, FailureKind, Handler, Outcome};
use pipeline::sink::{NewObject, ObjectStore, PreparedRow, RowError, RowSink, SinkError, Stored};
use serde_json::{Value, json};

use crate::letter::Letter;

/// Accepts everything, keeps the last row.
#[derive(Default)]
struct Recorder {
    row: Mutex<Option<Value>>,
}

#[async_trait]
impl ObjectStore for Recorder {
    async fn create_once(&self, _: NewObject) -> Result<Stored, SinkError> {
        Ok(Stored::Created)
    }
}

#[async_trait]
impl RowSink for Recorder {
    async fn insert(&self, rows: Vec<PreparedRow>) -> Result<Vec<Result<(), RowError>>, SinkError> {
        let n = rows.len();
        *self.row.lock().unwrap_or_else(|e| e.into_inner()) =
            rows.into_iter().last().map(|r| r.json);
        Ok(vec![Ok(()); n])
    }
}

/// What `service` would do with the letter now: `write`, `skip` or `dead-letter`.
async fn decide(rules: &Rules, service: Service, letter: &Letter) -> Value {
    let recorder = Arc::new(Recorder::default());
    let destination = match service {
        Service::ToGcs => Destination::Objects {
            store: recorder.clone(),
            prefix: "transcripts".into(),
        },
        _ => Destination::Rows(recorder.clone()),
    };
    let handler = match Handler::new(service, rules.clone(), destination) {
        Ok(h) => h,
        Err(e) => return json!({"action": "error", "reason": e}),
    };
    let message = match letter.decoded() {
        Ok(m) => m,
        Err(e) => {
            return json!({"action": "dead-letter", "reason": e.code(), "detail": e.to_string()});
        }
    };
    match handler.handle(&message).await.result {
        Ok(Outcome::Skipped { reason }) => json!({"action": "skip", "reason": reason}),
        Ok(Outcome::Written { target } | Outcome::AlreadyStored { target }) => {
            let mut v = json!({"action": "write", "target": target});
            if service != Service::ToGcs {
                v["row"] = recorder
                    .row
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
                    .unwrap_or(Value::Null);
            }
            v
        }
        Err(f) if f.kind == FailureKind::Transient => {
            json!({"action": "retry", "reason": f.code, "detail": f.detail})
        }
        Err(f) => json!({"action": "dead-letter", "reason": f.code, "detail": f.detail}),
    }
}

/// One JSON object per letter: where it came from, why it failed, and each handler's decision.
pub async fn inspect(rules: &Rules, letter: &Letter) -> Value {
    let mut v = letter.describe();
    let mut now = serde_json::Map::new();
    for service in Service::ALL {
        now.insert(service.name().into(), decide(rules, service, letter).await);
    }
    v["now"] = Value::Object(now);
    v
}
