//! The Google layer (`pipeline::google`) on the emulators, through the recorders, for what the
//! other end-to-end tests reach only in passing: a query's further pages
//! (`jobs.getQueryResults`), a listing's further pages, and the classes of real error answers.

use std::time::Duration;

use anyhow::{Result, ensure};
use e2e::contract::ledger;
use e2e::stack::{BUCKET, PROJECT, Stack};
use pipeline::google::bigquery::{BigQuery, QUERY_SCOPE, TableRef};
use pipeline::google::storage::{Bucket, READ_ONLY};
use pipeline::google::{Class, calls};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn further_pages_are_read_and_errors_classified() -> Result<()> {
    let stack = Stack::start("google-layer").await?;

    // A query answered one row a page: the first page from jobs.query, the rest by
    // jobs.getQueryResults with the page token.
    let bigquery_url = format!("http://{}", stack.bigquery_host());
    let bq = BigQuery::connect(Some(&bigquery_url), &[QUERY_SCOPE], Duration::from_secs(30))
        .await
        .map_err(anyhow::Error::msg)?;
    let sql = "SELECT x FROM UNNEST(['a', 'b', 'c']) AS x ORDER BY x";
    let rows = bq.query(PROJECT, sql, 1).await?;
    ensure!(rows == [["a"], ["b"], ["c"]], "{rows:?}");
    let pages = ledger()
        .entries()
        .iter()
        .filter(|e| e.call.as_deref() == Some(calls::JOBS_GET_QUERY_RESULTS.id))
        .count();
    ensure!(pages >= 2, "{pages} further pages read");

    // A table that is not there: 404, the deployment's fault, not the message's.
    let missing = TableRef {
        project: PROJECT.into(),
        dataset: "telemetry".into(),
        table: "no_such_table".into(),
    };
    let e = bq.columns(&missing).await.unwrap_err();
    ensure!(
        e.status == Some(404) && e.class() == Class::Misconfigured,
        "{e}"
    );
    // A query BigQuery refuses: the request itself is wrong.
    let e = bq.query(PROJECT, "SELEC nothing", 10).await.unwrap_err();
    ensure!(e.class() == Class::Permanent, "{e:?}");

    // A listing two names a page.
    for i in 0..5 {
        stack
            .gcs
            .upload(BUCKET, &format!("pages/{i}.json"), b"{}")
            .await?;
    }
    let storage_url = format!("http://{}", stack.storage_host());
    let bucket = Bucket::connect(
        BUCKET,
        Some(&storage_url),
        READ_ONLY,
        Duration::from_secs(30),
    )
    .await
    .map_err(anyhow::Error::msg)?;
    let first = bucket
        .list_page("pages/", None, 2, "items(name,metadata),nextPageToken")
        .await?;
    ensure!(
        first.items.len() == 2 && first.next_page_token.is_some(),
        "{first:?}"
    );
    let all = bucket.list("pages/").await?;
    ensure!(all.len() == 5, "{all:?}");
    ensure!(bucket.read("pages/3.json").await?.as_ref() == b"{}");
    let gone = bucket.read("pages/none.json").await.unwrap_err();
    ensure!(gone.status == Some(404), "{gone}");
    Ok(())
}
