//! Group commit on the BigQuery emulator: rows of concurrent pushes share calls, each push is
//! answered only with its own row's verdict, and every row lands once; with each write method
//! (`BIGQUERY_WRITE_METHOD`: Storage Write `AppendRows`, `insertAll`) and each `insertAll` client
//! (`BIGQUERY_INSERT_CLIENT`), so that all of them meet the emulator and the contract check.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use e2e::pubsub::push_body;
use e2e::samples::{Message, generate};
use e2e::stack::{DATASET, PROJECT, Stack, TABLE};
use pipeline::config::Service;
use pipeline::error::CallError;
use pipeline::google::bigquery::TableRef;
use pipeline::handler::Destination;
use pipeline::row::PreparedRow;
use pipeline::sink::RowError;
use pipeline::sink::RowSink;
use pipeline::sink::batch::{BatchSettings, GroupCommit};
use pipeline::sink::bigquery::{BigQuerySink, InsertClient};
use pipeline::sink::storage_write::StorageWriteSink;
use pipeline::startup::Application;
use serde_json::Value;

/// Counts the calls that reach the real client.
struct Counted {
    inner: Arc<dyn RowSink>,
    calls: AtomicUsize,
}

/// A way rows reach BigQuery.
#[derive(Debug, Clone, Copy)]
enum Writer {
    StorageWrite,
    InsertAll(InsertClient),
}

const WRITERS: [Writer; 3] = [
    Writer::StorageWrite,
    Writer::InsertAll(InsertClient::Direct),
    Writer::InsertAll(InsertClient::Crate),
];

impl Writer {
    async fn connect(self, stack: &Stack) -> Result<Arc<dyn RowSink>> {
        let table = TableRef {
            project: PROJECT.into(),
            dataset: DATASET.into(),
            table: TABLE.into(),
        };
        let rest = format!("http://{}", stack.bigquery_host());
        let timeout = Duration::from_secs(10);
        Ok(match self {
            Writer::StorageWrite => {
                let grpc = format!("http://{}", stack.bigquery_storage_host());
                let sink = StorageWriteSink::connect(table, Some(&rest), Some(&grpc), timeout)
                    .await
                    .map_err(anyhow::Error::msg)?;
                sink.check().await?;
                Arc::new(sink)
            }
            Writer::InsertAll(client) => Arc::new(
                BigQuerySink::connect(table, Some(&rest), timeout, client)
                    .await
                    .map_err(anyhow::Error::msg)?,
            ),
        })
    }
}

#[async_trait]
impl RowSink for Counted {
    async fn insert(&self, rows: Vec<PreparedRow>) -> Result<Vec<Result<(), RowError>>, CallError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.insert(rows).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pushes_share_insert_all_calls_on_the_emulator() -> Result<()> {
    let stack = Stack::start("group-commit").await?;
    // sub-v2's own messages: those without the transcript attribute; 80 for each way of writing.
    let messages: Vec<_> = generate(240 * WRITERS.len(), 5)
        .into_iter()
        .filter(|m| m.bq_handler == "sub-v2")
        .take(80 * WRITERS.len())
        .collect();
    assert_eq!(messages.len(), 80 * WRITERS.len());
    for (writer, messages) in WRITERS.into_iter().zip(messages.chunks(80)) {
        let calls = push_concurrently(&stack, writer, messages).await?;
        assert!(
            calls <= 8,
            "{writer:?}: 80 concurrent pushes took {calls} calls"
        );
    }

    let expected = messages.len();
    let rows = stack.wait_rows(expected, Duration::from_secs(20)).await?;
    let mut ids: Vec<&str> = rows.iter().filter_map(|r| r["event_id"].as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), expected, "every row once");
    Ok(())
}

/// Pushes `messages` at once to sub-v2 writing through `writer` under group commit; every push is
/// answered with its own row. Returns the number of calls.
async fn push_concurrently(stack: &Stack, writer: Writer, messages: &[Message]) -> Result<usize> {
    let config = stack.config(Service::SubV2, &[])?;
    let sink = Arc::new(Counted {
        inner: writer.connect(stack).await?,
        calls: AtomicUsize::new(0),
    });
    let settings = BatchSettings {
        linger: Duration::from_millis(300),
        ..BatchSettings::default()
    };
    let batched = GroupCommit::new(sink.clone(), settings);
    let app = Application::build_with(&config, Destination::Rows(Arc::new(batched)), None)
        .await
        .map_err(anyhow::Error::msg)?
        .spawn();

    let http = reqwest::Client::new();
    let pushes: Vec<_> = messages
        .iter()
        .map(|m| {
            let body = push_body(
                &format!("m-{}", m.event_id),
                &m.data,
                &m.attributes,
                "projects/p/subscriptions/s",
            );
            let request = http.post(format!("{}/", app.url)).json(&body).send();
            let id = m.event_id.clone();
            tokio::spawn(async move {
                let response = request.await?;
                let status = response.status().as_u16();
                let v: Value = response.json().await?;
                anyhow::Ok((id, status, v))
            })
        })
        .collect();
    for push in pushes {
        let (id, status, v) = push.await??;
        assert_eq!(
            (status, v["outcome"].as_str()),
            (200, Some("written")),
            "{writer:?} {id}: {v}"
        );
        assert_eq!(
            v["target"],
            id.as_str(),
            "each push is answered with its own row"
        );
    }
    app.stop().await?;
    Ok(sink.calls.load(Ordering::SeqCst))
}
