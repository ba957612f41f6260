//! Group commit: rows of concurrent pushes share one call (an append on the Storage Write API, or
//! an `insertAll`).
//!
//! [`GroupCommit`] is a [`RowSink`] in front of the real one. Each push hands over its row and
//! waits; a background task collects rows until a bound is reached ([`BatchSettings`]: rows,
//! encoded bytes, or the linger since the first row of the batch) and sends them as one call, with
//! up to `max_in_flight` calls at once. When no call is in flight there is nothing to wait for, so
//! whatever is queued goes at once: light traffic pays no linger, and under load rows gather while
//! earlier calls are under way (the classic group commit). Each row's verdict goes back to the push
//! that sent it, so one bad row never fails its neighbours (`skipInvalidRows`; and when BigQuery
//! refuses a request as a whole as permanent, the batch is sent again in halves until the row it
//! refuses is alone), and a call that fails transiently fails exactly the pushes in it. A push is
//! answered only after its row's verdict, so nothing is acked before it is durable; on SIGTERM the
//! server waits for in-flight pushes, and so for the flush of their rows.
//!
//! Every push waits at most `timeout` (`SINK_TIMEOUT_SECONDS`) for its verdict, whatever holds
//! it: the queue (bounded), calls in flight, the access token, the call. A batch's calls, the
//! halves of a refused one included, go one after the other in its one in-flight slot and stop at
//! its pushes' deadline (so a hung call frees its slot, and a split never multiplies the calls
//! under way or the time they take). A push that gave up is answered 503 and
//! redelivered; its row, if still queued, is not sent (the redelivery brings it again). A send
//! task that panics fails only its own pushes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use super::{OneRow, RowSink};
use crate::error::CallError;
use crate::row::{PreparedRow, RowForm};
use crate::sink::RowError;

/// When a batch is sent. Read from `BIGQUERY_BATCH_*` (see `config.rs` and the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// At most this many rows per `insertAll` (Google recommends about 500).
    pub max_rows: usize,
    /// At most this many bytes of encoded rows per `insertAll` (BigQuery refuses requests above
    /// 10 MB; the default leaves room for the envelope). A single larger row goes alone.
    pub max_bytes: usize,
    /// How long the first row of a batch waits for company while earlier calls are under way:
    /// the most a push's latency grows (with no call in flight a batch goes at once).
    pub linger: Duration,
    /// How many `insertAll` calls may be in flight at once.
    pub max_in_flight: usize,
    /// The most a push waits for its row's verdict, whatever holds it (a full queue, calls in
    /// flight, the access token, the call itself): `SINK_TIMEOUT_SECONDS`. One call is bounded
    /// by it as well.
    pub timeout: Duration,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            max_rows: 500,
            max_bytes: 5 * 1024 * 1024,
            linger: Duration::from_millis(25),
            max_in_flight: 8,
            timeout: crate::limits::DEFAULT_SINK_TIMEOUT,
        }
    }
}

type RowAnswer = Result<Result<(), RowError>, CallError>;

/// One row waiting for its batch, where its verdict goes with the size of its call, and when its
/// push stops waiting.
struct Pending {
    row: PreparedRow,
    reply: oneshot::Sender<(RowAnswer, usize)>,
    deadline: Instant,
}

/// Coalesces the rows of concurrent pushes into shared `insertAll` calls.
pub struct GroupCommit {
    queue: mpsc::Sender<Pending>,
    timeout: Duration,
    /// The form of the sink behind it.
    form: RowForm,
}

impl GroupCommit {
    /// Starts the batching task (on the current Tokio runtime) in front of `inner`.
    pub fn new(inner: Arc<dyn RowSink>, settings: BatchSettings) -> Self {
        // Room for a full batch behind every call in flight; beyond that a push waits (within
        // its timeout) instead of the queue growing.
        let capacity = settings.max_rows.max(1) * (settings.max_in_flight.max(1) + 1);
        let (queue, rows) = mpsc::channel(capacity);
        let form = inner.row_form();
        tokio::spawn(collect(rows, inner, settings));
        Self {
            queue,
            timeout: settings.timeout,
            form,
        }
    }

    /// Each row's verdict and the number of rows of the call that carried it.
    async fn verdicts(
        &self,
        rows: Vec<PreparedRow>,
        deadline: Instant,
    ) -> Result<Vec<(RowAnswer, usize)>, CallError> {
        let stopped = || CallError::Transient("the BigQuery batcher has stopped".into());
        let mut waiting = Vec::with_capacity(rows.len());
        for row in rows {
            let (reply, verdict) = oneshot::channel();
            self.queue
                .send(Pending {
                    row,
                    reply,
                    deadline,
                })
                .await
                .map_err(|_| stopped())?;
            waiting.push(verdict);
        }
        let mut results = Vec::with_capacity(waiting.len());
        for verdict in waiting {
            results.push(verdict.await.map_err(|_| stopped())?);
        }
        Ok(results)
    }

    /// [`Self::verdicts`] within the push's timeout.
    async fn within_timeout(
        &self,
        rows: Vec<PreparedRow>,
    ) -> Result<Vec<(RowAnswer, usize)>, CallError> {
        let deadline = Instant::now() + self.timeout;
        tokio::time::timeout_at(deadline, self.verdicts(rows, deadline))
            .await
            .unwrap_or_else(|_| {
                Err(CallError::Transient(format!(
                    "no verdict from BigQuery within {:?} (SINK_TIMEOUT_SECONDS)",
                    self.timeout
                )))
            })
    }
}

#[async_trait]
impl RowSink for GroupCommit {
    fn row_form(&self) -> RowForm {
        self.form
    }

    async fn insert(&self, rows: Vec<PreparedRow>) -> Result<Vec<Result<(), RowError>>, CallError> {
        (self.within_timeout(rows).await?)
            .into_iter()
            .map(|(verdict, _)| verdict)
            .collect()
    }

    async fn write_one(&self, row: PreparedRow) -> Result<OneRow, CallError> {
        let Some((verdict, request_rows)) = self.within_timeout(vec![row]).await?.pop() else {
            return Ok(OneRow {
                verdict: None,
                request_rows: 0,
            });
        };
        Ok(OneRow {
            verdict: Some(verdict?),
            request_rows,
        })
    }
}

/// The batching loop: runs until every [`GroupCommit`] handle is gone and the queue is empty,
/// then waits for the calls still in flight.
async fn collect(
    mut queue: mpsc::Receiver<Pending>,
    inner: Arc<dyn RowSink>,
    settings: BatchSettings,
) {
    let in_flight = Arc::new(Semaphore::new(settings.max_in_flight.max(1)));
    let idle = Arc::new(Idle::default());
    let mut carried: Option<Pending> = None;
    loop {
        let first = match carried.take() {
            Some(p) => p,
            None => match queue.recv().await {
                Some(p) => p,
                None => break,
            },
        };
        let (batch, next) = fill(first, &mut queue, &settings, &idle).await;
        carried = next;
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let inner = inner.clone();
        let call = InFlight::start(idle.clone(), permit);
        tokio::spawn(async move {
            send(inner.as_ref(), batch).await;
            drop(call);
        });
    }
    // Let the last calls finish before the task (and the runtime with it) may end.
    let _ = in_flight
        .acquire_many(settings.max_in_flight.max(1) as u32)
        .await;
}

/// How many `insertAll` calls are under way, and a signal when the last one finishes.
#[derive(Default)]
struct Idle {
    calls: AtomicUsize,
    now: Notify,
}

/// One call under way: counted in [`Idle`] and holding its in-flight slot until dropped, which
/// happens however its task ends (a panic included).
struct InFlight {
    idle: Arc<Idle>,
    _slot: OwnedSemaphorePermit,
}

impl InFlight {
    fn start(idle: Arc<Idle>, slot: OwnedSemaphorePermit) -> Self {
        idle.calls.fetch_add(1, Ordering::SeqCst);
        Self { idle, _slot: slot }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.idle.calls.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.now.notify_one();
        }
    }
}

/// A batch starting with `first`, filled until a bound is reached, the linger is over, or no
/// call is in flight with nothing queued; a row that would overflow the byte bound is handed
/// back for the next batch.
async fn fill(
    first: Pending,
    queue: &mut mpsc::Receiver<Pending>,
    settings: &BatchSettings,
    idle: &Idle,
) -> (Vec<Pending>, Option<Pending>) {
    let deadline = Instant::now() + settings.linger;
    let mut bytes = first.row.encoded_len();
    let mut batch = vec![first];
    while batch.len() < settings.max_rows && bytes < settings.max_bytes {
        let next = match queue.try_recv() {
            Ok(p) => Some(p),
            Err(_) if idle.calls.load(Ordering::SeqCst) == 0 => None,
            // Nothing queued: wait for the next row, the end of the calls under way, or the
            // end of the linger, whichever comes first.
            Err(_) => tokio::select! {
                p = queue.recv() => p,
                () = idle.now.notified() => None,
                () = tokio::time::sleep_until(deadline) => None,
            },
        };
        let Some(p) = next else { break };
        let size = p.row.encoded_len();
        if bytes + size > settings.max_bytes {
            return (batch, Some(p));
        }
        bytes += size;
        batch.push(p);
    }
    (batch, None)
}

/// One call for the batch; each row's verdict to its push. Rows whose push has already gone are
/// left out; the calls end by the last deadline of the pushes left (no one waits for more).
async fn send(inner: &dyn RowSink, batch: Vec<Pending>) {
    let live: Vec<Pending> = batch.into_iter().filter(|p| !p.reply.is_closed()).collect();
    let Some(deadline) = live.iter().map(|p| p.deadline).max() else {
        return;
    };
    let (rows, replies): (Vec<PreparedRow>, Vec<oneshot::Sender<(RowAnswer, usize)>>) =
        live.into_iter().map(|p| (p.row, p.reply)).unzip();
    let n = rows.len();
    for (reply, verdict) in replies
        .into_iter()
        .zip(verdicts(inner, rows, deadline).await)
    {
        // A push that gave up (its client went away) no longer listens; nothing to do.
        let _ = reply.send((verdict, n));
    }
}

/// The verdict of each row: one call, whose failure is every row's; but when BigQuery refuses
/// the request as a whole as permanent (a 400 `invalid` that one row caused), the two halves are
/// sent again, until the rows it refuses are alone, so that a bad row never dead-letters its
/// neighbours. The calls go one after the other (in the batch's one in-flight slot: n rows all
/// refused make 2n − 1 calls, never more than one at a time), each bounded by `deadline`; rows
/// not decided by then fail as transient, to come back with Pub/Sub's redelivery.
async fn verdicts(
    inner: &dyn RowSink,
    rows: Vec<PreparedRow>,
    deadline: Instant,
) -> Vec<RowAnswer> {
    let n = rows.len();
    let mut out: Vec<Option<RowAnswer>> = vec![None; n];
    // Parts still to send, by the index of their first row; the next to send is on top.
    let mut parts = vec![(0, rows)];
    while let Some((at, mut part)) = parts.pop() {
        let len = part.len();
        // The rows are shared text (`Arc`): keeping them for a split costs no copy.
        let answer = tokio::time::timeout_at(deadline, inner.insert_by(part.clone(), deadline))
            .await
            .unwrap_or_else(|_| {
                Err(CallError::Transient(
                    "BigQuery did not answer before the pushes' deadline (SINK_TIMEOUT_SECONDS)"
                        .into(),
                ))
            });
        let decided: Vec<RowAnswer> = match answer {
            Ok(verdicts) if verdicts.len() == len => verdicts.into_iter().map(Ok).collect(),
            Ok(verdicts) => {
                let e = CallError::Transient(format!(
                    "BigQuery answered {} verdicts for {len} rows",
                    verdicts.len()
                ));
                vec![Err(e); len]
            }
            Err(CallError::Permanent(_)) if len > 1 && Instant::now() < deadline => {
                let second = part.split_off(len / 2);
                parts.push((at + len / 2, second));
                parts.push((at, part));
                continue;
            }
            Err(CallError::Permanent(why)) if len > 1 => {
                let e = CallError::Transient(format!(
                    "no time left to find the row BigQuery refused (SINK_TIMEOUT_SECONDS): {why}"
                ));
                vec![Err(e); len]
            }
            Err(e) => vec![Err(e); len],
        };
        for (slot, verdict) in out[at..at + len].iter_mut().zip(decided) {
            *slot = Some(verdict);
        }
    }
    out.into_iter()
        .map(|v| v.unwrap_or_else(|| Err(CallError::Transient("no verdict".into()))))
        .collect()
}

#[cfg(test)]
mod tests;
