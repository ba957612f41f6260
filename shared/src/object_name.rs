//! The name of a transcript object, in one place: `to-gcs` writes it, `replay audit` lists it by
//! its hour folder and reads the event id back out of it.
//!
//! `{prefix}/YYYY/MM/DD/HH/{event id}.{content}.json`: the hour from the event's own time (UTC),
//! the event id as one safe name segment ([`crate::event::EventId::for_object_name`]),
//! `{content}` the first 16 hex digits of the SHA-256 of the published bytes. Deterministic, so every redelivery of an
//! event targets the same object and is answered 412 "already stored"; and a different message
//! with the same event id and hour (a gateway bug, a replay of edited data) gets an object of its
//! own instead of vanishing behind the first: both are kept.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::event::Event;

/// The object for `event`, published as `data`, under `prefix` (`""`: the bucket's root).
pub fn for_event(prefix: &str, event: &Event, data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    format!(
        "{}{}.{}.json",
        hour_folder(prefix, event.timestamp),
        event.id.for_object_name(),
        hex::encode(&digest[..8])
    )
}

/// The folder of every object of `hour`'s events: `{prefix}/YYYY/MM/DD/HH/`.
pub fn hour_folder(prefix: &str, hour: DateTime<Utc>) -> String {
    let folder = hour.format("%Y/%m/%d/%H/");
    if prefix.is_empty() {
        folder.to_string()
    } else {
        format!("{prefix}/{folder}")
    }
}

/// The event id segment of an object's name, as written (`{id}.{16 hex digits}.json`; an id
/// written for a name has no dot of its own left to confuse the split).
pub fn event_id_segment(name: &str) -> &str {
    let tail = name.rsplit('/').next().unwrap_or_default();
    let tail = tail.strip_suffix(".json").unwrap_or(tail);
    tail.rsplit_once('.').map_or(tail, |(id, _)| id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::TelemetryPayload;

    #[test]
    fn a_name_is_written_listed_and_read_back_the_same_way() {
        let data = br#"{"event":{"id":"e/1 x","timestamp":"2026-11-27T10:59:59Z","feature":"f.a","action":"b"}}"#;
        let payload = TelemetryPayload::parse(data).expect("an event");
        let name = for_event("transcripts", &payload.event, data);
        let hour = payload.event.timestamp;
        assert!(
            name.starts_with(&hour_folder("transcripts", hour)),
            "{name}"
        );
        assert!(
            name.starts_with("transcripts/2026/11/27/10/e%2F1%20x."),
            "{name}"
        );
        assert_eq!(event_id_segment(&name), "e%2F1%20x");
        assert_eq!(hour_folder("", hour), "2026/11/27/10/");
        assert!(for_event("", &payload.event, data).starts_with("2026/11/27/10/"));
    }
}
