//! The transcript bucket for the audit: a window's objects (name and metadata, page by page) and
//! one object read back to classify it, through the shared crate's Cloud Storage client
//! ([`pipeline::google::storage::Bucket`]), read-only.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, anyhow};
use bytes::Bytes;
use pipeline::google::storage::{self, ListedObject};

/// One object of the bucket: its name and its custom metadata (`event-id`, …).
#[derive(Debug, Clone)]
pub struct Object {
    pub name: String,
    pub metadata: BTreeMap<String, String>,
}

impl From<ListedObject> for Object {
    fn from(o: ListedObject) -> Self {
        Self {
            name: o.name,
            metadata: o.metadata,
        }
    }
}

impl Object {
    /// The event id the writer recorded (`event-id`), or the name's own.
    pub fn event_id(&self) -> String {
        if let Some(id) = self.metadata.get("event-id") {
            return id.clone();
        }
        pipeline::object_name::event_id_segment(&self.name).to_string()
    }
}

pub struct AuditBucket(storage::Bucket);

impl AuditBucket {
    pub async fn connect(bucket: &str, emulator: Option<&str>) -> Result<Self> {
        storage::Bucket::connect(
            bucket,
            emulator,
            storage::READ_ONLY,
            Duration::from_secs(120),
        )
        .await
        .map(Self)
        .map_err(anyhow::Error::msg)
    }

    /// Every object whose name starts with `prefix`, page by page.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Object>> {
        let bucket = self.0.name();
        let objects = self
            .0
            .list(prefix)
            .await
            .map_err(|e| anyhow!("listing gs://{bucket}/{prefix}: {e}"))?;
        Ok(objects.into_iter().map(Object::from).collect())
    }

    /// An object's bytes (to classify it; never printed).
    pub async fn read(&self, name: &str) -> Result<Bytes> {
        self.0.read(name).await.map_err(|e| anyhow!("{e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_id_comes_from_the_metadata_or_the_name() {
        let named = |name: &str| Object {
            name: name.into(),
            metadata: BTreeMap::new(),
        };
        assert_eq!(
            named("t/2026/11/27/10/e-1.0123456789abcdef.json").event_id(),
            "e-1"
        );
        assert_eq!(
            named("t/2026/11/27/10/a.b.0123456789abcdef.json").event_id(),
            "a.b"
        );
        let mut o = named("t/x.json");
        o.metadata.insert("event-id".into(), "real".into());
        assert_eq!(o.event_id(), "real");
    }
}
