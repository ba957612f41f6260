//! The handler answering at `--to`: which service it is (its `/healthz`), pushing one dead letter
//! to it as Pub/Sub would, and judging its answer.
//!
//! Redirects are never followed: a 307 would re-send the message (transcripts included)
//! elsewhere. A letter is acked only on an answer that says it is stored or deliberately
//! skipped ([`judge`]).

use std::time::Duration;

use anyhow::{Context, Result};
use pipeline::outcome::{Label, NOT_FOR_THIS_SUBSCRIPTION, PushAnswer};
use reqwest::StatusCode;
use serde_json::Value;

use crate::id_token::Auth;
use crate::letter::Letter;

/// Refuses to push letters from one world to the other: letters from an emulator (whenever
/// `PUBSUB_EMULATOR_HOST` is set, wherever it points) go only to a handler on this machine, and
/// letters from Pub/Sub only to a deployed one. Otherwise a fake "emulator" could feed forged
/// letters to a real service under the replay identity's ID token, and real dead letters (raw
/// transcripts) could go to an unauthenticated local port.
pub fn check_pairing(emulator: Option<&str>, to: &str) -> Result<()> {
    match (emulator, crate::id_token::is_local(to)?) {
        (Some(host), false) => anyhow::bail!(
            "letters from the Pub/Sub emulator (PUBSUB_EMULATOR_HOST={host}) are pushed only to a \
             handler on this machine (localhost or a loopback address), not to {to}: unset \
             PUBSUB_EMULATOR_HOST to replay from Pub/Sub"
        ),
        (None, true) => anyhow::bail!(
            "letters from Pub/Sub are pushed only to a deployed handler, not to {to} on this \
             machine: set PUBSUB_EMULATOR_HOST to replay from the emulator"
        ),
        _ => Ok(()),
    }
}

/// How long `replay` waits for one re-delivered push: the longest a service may take
/// ([`pipeline::limits::push_worst_case`] of the deployment's `SINK_TIMEOUT_SECONDS`, which the
/// replay job gets from Terraform as the services do), and a margin for the way there and back.
/// Shorter, a push still under way would be given up and its letter kept while it may have
/// written.
pub fn push_timeout(env: &pipeline::config::Env<'_>) -> Result<Duration> {
    let sink = pipeline::config::sink_timeout(env)?;
    Ok(pipeline::limits::push_worst_case(sink) + PUSH_MARGIN)
}

/// The way to the service and back, beyond its own worst case.
const PUSH_MARGIN: Duration = Duration::from_secs(10);

pub struct Target {
    http: reqwest::Client,
    /// How long one push may take ([`push_timeout`]).
    pub timeout: Duration,
    auth: Auth,
    /// Where pushes go: the handler's root, as Pub/Sub pushes to it.
    pub endpoint: String,
    /// The service answering (`to-gcs`, `to-bq`, `sub-v2`), as its `/healthz` names itself.
    pub service: String,
}

impl Target {
    /// Asks `to`'s `/healthz` which of the pipeline's services it is.
    pub async fn find(to: &str, timeout: Duration) -> Result<Self> {
        let auth = Auth::for_url(to)?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let base = to.trim_end_matches('/').to_owned();
        let mut health = http.get(format!("{base}/healthz"));
        if let Some(h) = auth.header().await? {
            health = health.header("authorization", h);
        }
        let answer: Value = health
            .send()
            .await
            .with_context(|| format!("cannot reach {base}/healthz"))?
            .json()
            .await
            .with_context(|| format!("{base}/healthz is not one of the pipeline's services"))?;
        let service = answer["service"]
            .as_str()
            .context("healthz names no service")?
            .to_owned();
        Ok(Self {
            http,
            timeout,
            auth,
            endpoint: format!("{base}/"),
            service,
        })
    }

    /// Pushes the letter's original push, marked as a replay, and judges the answer.
    pub async fn push(&self, letter: &Letter) -> Result<Decision> {
        let mut req = self
            .http
            .post(&self.endpoint)
            .header("content-type", "application/json")
            .header(pipeline::dead_letter::REPLAY_HEADER, "1")
            .body(letter.push_body());
        if let Some(h) = self.auth.header().await? {
            req = req.header("authorization", h);
        }
        Ok(match req.send().await {
            Err(e) => Decision::Keep(format!("unreachable: {}", e.without_url())),
            Ok(resp) => {
                let status = resp.status();
                // Anything that is not the handlers' answer reads as an empty one: kept.
                let body: PushAnswer = resp.json().await.unwrap_or_default();
                judge(status, &body)
            }
        })
    }
}

/// What the handler's answer means for the dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Stored (`written`, `already_stored`) or deliberately skipped (with the skip's reason):
    /// ack the dead letter.
    Ack(Label, String),
    /// Anything else: keep the dead letter; what to report.
    Keep(String),
}

/// What the handler answered, and whether that is a reason to ack the dead letter: only a 2xx
/// whose `outcome` says stored, or skipped for a reason of the handler's own. Not
/// [`Label::is_ack`]: a `dead_lettered` answer is acked by Pub/Sub, but for a replay it would
/// mean the letter is gone from this subscription with nothing stored.
pub fn judge(status: StatusCode, body: &PushAnswer) -> Decision {
    if !status.is_success() {
        let error = body.error.as_deref().unwrap_or("");
        return Decision::Keep(format!("HTTP {} {error}", status.as_u16()));
    }
    let outcome = Label::parse(&body.outcome);
    let reason = body.reason.as_deref().unwrap_or("");
    match outcome {
        Some(label @ (Label::Written | Label::AlreadyStored)) => {
            Decision::Ack(label, String::new())
        }
        // Sent to a handler that does not own it: nothing was stored, keep the dead letter.
        Some(Label::Skipped) if reason == NOT_FOR_THIS_SUBSCRIPTION => {
            Decision::Keep(format!("skipped: {NOT_FOR_THIS_SUBSCRIPTION}"))
        }
        Some(Label::Skipped) if !reason.is_empty() => Decision::Ack(Label::Skipped, reason.into()),
        // A 2xx that is not one of the handler's stored answers (a proxy, a login page, or an
        // outcome such as dead_lettered): keep it.
        _ => Decision::Keep(format!(
            "HTTP {} without a handler outcome",
            status.as_u16()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(body: Value) -> PushAnswer<'static> {
        serde_json::from_value(body).unwrap_or_default()
    }

    fn ok(body: Value) -> Decision {
        judge(StatusCode::OK, &answer(body))
    }

    #[test]
    fn a_push_is_waited_for_as_long_as_the_service_may_take() {
        let env = |v: Option<&'static str>| {
            pipeline::config::Env::from_fn(move |k| {
                (k == "SINK_TIMEOUT_SECONDS")
                    .then_some(v)
                    .flatten()
                    .map(str::to_owned)
            })
        };
        for (sink, seconds) in [(None, 30), (Some("7"), 7), (Some("540"), 540)] {
            let sink_timeout = Duration::from_secs(seconds);
            let waited = push_timeout(&env(sink)).unwrap();
            assert!(
                waited > pipeline::limits::push_worst_case(sink_timeout),
                "{sink:?}"
            );
        }
        assert!(push_timeout(&env(Some("0"))).is_err());
    }

    #[test]
    fn letters_stay_in_their_world() {
        let real = "https://to-bq-abc-uc.a.run.app";
        let local = "http://127.0.0.1:8080";
        assert!(check_pairing(Some("127.0.0.1:8085"), local).is_ok());
        assert!(check_pairing(None, real).is_ok());
        let forged = check_pairing(Some("attacker.example:8085"), real).unwrap_err();
        assert!(
            forged.to_string().contains("PUBSUB_EMULATOR_HOST"),
            "{forged}"
        );
        assert!(check_pairing(Some("127.0.0.1:8085"), real).is_err());
        let leaked = check_pairing(None, local).unwrap_err();
        assert!(leaked.to_string().contains("deployed handler"), "{leaked}");
        assert!(check_pairing(None, "http://[::1]:1").is_err());
    }

    #[test]
    fn acks_only_stored_or_deliberately_skipped() {
        assert_eq!(
            ok(json!({"outcome": "written"})),
            Decision::Ack(Label::Written, String::new())
        );
        assert_eq!(
            ok(json!({"outcome": "already_stored"})),
            Decision::Ack(Label::AlreadyStored, String::new())
        );
        assert_eq!(
            ok(json!({"outcome": "skipped", "reason": "not_a_transcript"})),
            Decision::Ack(Label::Skipped, "not_a_transcript".into())
        );
    }

    #[test]
    fn keeps_everything_else() {
        let bare = Decision::Keep("HTTP 200 without a handler outcome".into());
        assert_eq!(ok(Value::Null), bare);
        assert_eq!(ok(json!({"outcome": "skipped"})), bare);
        assert_eq!(ok(json!({"outcome": "dead_lettered"})), bare);
        assert_eq!(ok(json!({"outcome": "something_else"})), bare);
        assert_eq!(
            ok(json!({"outcome": "skipped", "reason": NOT_FOR_THIS_SUBSCRIPTION})),
            Decision::Keep("skipped: not_for_this_subscription".into())
        );
        assert_eq!(
            judge(
                StatusCode::BAD_REQUEST,
                &answer(json!({"outcome": "rejected", "error": "invalid_payload"}))
            ),
            Decision::Keep("HTTP 400 invalid_payload".into())
        );
        assert_eq!(
            judge(StatusCode::SERVICE_UNAVAILABLE, &answer(Value::Null)),
            Decision::Keep("HTTP 503 ".into())
        );
    }
}
