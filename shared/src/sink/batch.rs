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
        let answer = tokio::time::timeout_at(deadline, inner.insert(part.clone()))
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
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Refuses rows whose id starts with `bad` as invalid, fails any call holding a `poison` row,
    /// waits for `gate` before answering when set; records each call's row ids.
    #[derive(Default)]
    struct Table {
        calls: Mutex<Vec<Vec<String>>>,
        gate: Option<tokio::sync::Semaphore>,
        delay: Duration,
        /// Every call is refused as a whole as permanent (a request-level 400 whatever its rows).
        refuse_all: bool,
        /// Calls under way now, and the most ever at once.
        active: AtomicUsize,
        most_active: AtomicUsize,
    }

    #[async_trait]
    impl RowSink for Table {
        async fn insert(
            &self,
            rows: Vec<PreparedRow>,
        ) -> Result<Vec<Result<(), RowError>>, CallError> {
            let ids: Vec<String> = rows.iter().map(|r| r.insert_id.clone()).collect();
            assert!(!ids.iter().any(|i| i == "panic"), "a bug in a send task");
            let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_active.fetch_max(now, Ordering::SeqCst);
            if let Some(gate) = &self.gate {
                let _ = gate.acquire().await;
            }
            tokio::time::sleep(self.delay).await;
            self.active.fetch_sub(1, Ordering::SeqCst);
            self.calls.lock().unwrap().push(ids.clone());
            if self.refuse_all {
                return Err(CallError::Permanent("HTTP 400 invalid".into()));
            }
            if ids.iter().any(|i| i == "poison") {
                return Err(CallError::Transient("HTTP 503".into()));
            }
            if ids.iter().any(|i| i == "refused") {
                // A request-level 400 `invalid`: one row spoils the whole request.
                return Err(CallError::Permanent("HTTP 400 invalid".into()));
            }
            Ok(ids
                .iter()
                .map(|i| {
                    if i.starts_with("bad") {
                        Err(RowError {
                            reason: "invalid".into(),
                            location: "x".into(),
                            message: "no".into(),
                        })
                    } else {
                        Ok(())
                    }
                })
                .collect())
        }
    }

    fn row(id: &str, size: usize) -> PreparedRow {
        PreparedRow::new(id.into(), &serde_json::json!({"pad": "x".repeat(size)})).unwrap()
    }

    fn settings(max_rows: usize, max_bytes: usize, linger_ms: u64) -> BatchSettings {
        BatchSettings {
            max_rows,
            max_bytes,
            linger: Duration::from_millis(linger_ms),
            max_in_flight: 4,
            timeout: Duration::from_secs(30),
        }
    }

    async fn push(sink: &GroupCommit, id: &str) -> Result<Result<(), RowError>, CallError> {
        sink.insert(vec![row(id, 10)])
            .await
            .map(|mut v| v.remove(0))
    }

    #[tokio::test]
    async fn each_push_gets_its_own_rows_verdict_from_a_shared_call() {
        let table = Arc::new(Table::default());
        let sink = Arc::new(GroupCommit::new(table.clone(), settings(500, 1 << 20, 200)));
        let ids: Vec<String> = (0..60)
            .map(|i| {
                if i % 7 == 0 {
                    format!("bad-{i}")
                } else {
                    format!("ok-{i}")
                }
            })
            .collect();
        let tasks: Vec<_> = ids
            .iter()
            .map(|id| {
                let (sink, id) = (sink.clone(), id.clone());
                tokio::spawn(async move { (id.clone(), sink.write_one(row(&id, 10)).await) })
            })
            .collect();
        let mut answers = Vec::new();
        for t in tasks {
            let (id, one) = t.await.unwrap();
            let one = one.expect("the call succeeded");
            let verdict = one.verdict.expect("a verdict");
            assert_eq!(verdict.is_err(), id.starts_with("bad"), "{id}");
            answers.push((id, one.request_rows));
        }
        let calls = table.calls.lock().unwrap().clone();
        assert!(calls.len() < 10, "60 pushes, {} calls", calls.len());
        assert_eq!(calls.iter().map(Vec::len).sum::<usize>(), 60);
        // Each push knows the size of the call that carried its row (the log's callRows).
        for (id, request_rows) in answers {
            let call = calls.iter().find(|c| c.contains(&id)).expect("sent");
            assert_eq!(request_rows, call.len(), "{id}");
        }
    }

    type Answer = tokio::task::JoinHandle<Result<Result<(), RowError>, CallError>>;

    /// A table whose calls take 300 ms, one push (`first`) under way on it, and then `ids`
    /// pushed at once, so that their rows gather into one batch behind that call.
    async fn one_batch_behind_a_call<const N: usize>(
        ids: [&'static str; N],
    ) -> (Arc<Table>, Arc<GroupCommit>, Answer, [Answer; N]) {
        let table = Arc::new(Table {
            delay: Duration::from_millis(300),
            ..Table::default()
        });
        let sink = Arc::new(GroupCommit::new(table.clone(), settings(500, 1 << 20, 100)));
        let first = tokio::spawn({
            let sink = sink.clone();
            async move { push(&sink, "first").await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let together = ids.map(|id| {
            let sink = sink.clone();
            tokio::spawn(async move { push(&sink, id).await })
        });
        (table, sink, first, together)
    }

    #[tokio::test]
    async fn a_failed_call_fails_exactly_the_pushes_in_it() {
        let (table, sink, first, together) = one_batch_behind_a_call(["a", "b", "poison"]).await;
        for t in together {
            assert!(
                t.await.unwrap().is_err(),
                "every push of the failed call fails"
            );
        }
        assert_eq!(
            first.await.unwrap(),
            Ok(Ok(())),
            "an earlier call is unaffected"
        );
        assert_eq!(
            push(&sink, "c").await,
            Ok(Ok(())),
            "a later call is unaffected"
        );
        let calls = table.calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 3, "{calls:?}");
        assert_eq!(calls[1], ["a", "b", "poison"]);
        assert_eq!(calls[2], ["c"]);
    }

    #[tokio::test]
    async fn no_push_is_answered_before_its_rows_verdict() {
        let table = Arc::new(Table {
            gate: Some(tokio::sync::Semaphore::new(0)),
            ..Table::default()
        });
        let sink = Arc::new(GroupCommit::new(table.clone(), settings(500, 1 << 20, 0)));
        let pending = tokio::spawn({
            let sink = sink.clone();
            async move { push(&sink, "ok-1").await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !pending.is_finished(),
            "answered while the call was still open"
        );
        table.gate.as_ref().unwrap().add_permits(1);
        assert_eq!(pending.await.unwrap(), Ok(Ok(())));
    }

    #[tokio::test]
    async fn with_no_call_in_flight_a_row_goes_at_once() {
        let table = Arc::new(Table::default());
        let sink = GroupCommit::new(table.clone(), settings(500, 1 << 20, 1_000));
        let started = std::time::Instant::now();
        assert_eq!(push(&sink, "alone").await, Ok(Ok(())));
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "a lone row must not wait out the linger"
        );
    }

    #[tokio::test]
    async fn batches_respect_the_row_and_byte_bounds() {
        let table = Arc::new(Table::default());
        let one = row("r-00", 1000).encoded_len();
        let sink = Arc::new(GroupCommit::new(table.clone(), settings(4, one * 3, 100)));
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let sink = sink.clone();
                tokio::spawn(
                    async move { sink.insert(vec![row(&format!("r-{i:02}"), 1000)]).await },
                )
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap().is_ok());
        }
        let calls = table.calls.lock().unwrap().clone();
        assert_eq!(calls.iter().map(Vec::len).sum::<usize>(), 20);
        assert!(calls.iter().all(|c| c.len() <= 3), "{calls:?}");
        // A row larger than the byte bound still goes, alone.
        assert!(sink.insert(vec![row("big", one * 10)]).await.is_ok());
        assert_eq!(table.calls.lock().unwrap().last().unwrap(), &["big"]);
    }

    /// A call that never answers (a hung connection, a metadata server that hangs on the token):
    /// the push is answered, as a transient failure, within the timeout.
    #[tokio::test]
    async fn a_hung_call_answers_its_push_within_the_timeout() {
        let table = Arc::new(Table {
            gate: Some(tokio::sync::Semaphore::new(0)),
            ..Table::default()
        });
        let settings = BatchSettings {
            timeout: Duration::from_millis(300),
            ..settings(500, 1 << 20, 0)
        };
        let sink = GroupCommit::new(table.clone(), settings);
        let answer = tokio::time::timeout(Duration::from_secs(10), push(&sink, "ok-1")).await;
        let answer = answer.expect("the push hung past its timeout");
        assert!(
            matches!(&answer, Err(CallError::Transient(m)) if m.contains("within")),
            "{answer:?}"
        );
        // Calls held past the timeout are given up: a later push is not stuck behind them.
        table.gate.as_ref().unwrap().add_permits(1_000);
        assert_eq!(push(&sink, "ok-2").await, Ok(Ok(())));
    }

    /// A send task that panics fails its own pushes and leaves the batcher as it was: a later
    /// lone row still goes at once instead of waiting out the linger.
    #[tokio::test]
    async fn a_panicking_call_does_not_leave_the_batcher_lingering() {
        let table = Arc::new(Table::default());
        let sink = GroupCommit::new(table.clone(), settings(500, 1 << 20, 5_000));
        assert!(push(&sink, "panic").await.is_err());
        let started = std::time::Instant::now();
        assert_eq!(push(&sink, "alone").await, Ok(Ok(())));
        assert!(
            started.elapsed() < Duration::from_millis(2_500),
            "a lone row waited {:?} for a call that had panicked",
            started.elapsed()
        );
    }

    /// The row of a push that gave up (its request timed out or its client went away) is not
    /// sent: it will be delivered again, and the queue does not carry it.
    #[tokio::test]
    async fn rows_of_pushes_that_gave_up_are_not_sent() {
        let table = Arc::new(Table {
            gate: Some(tokio::sync::Semaphore::new(0)),
            ..Table::default()
        });
        let settings = BatchSettings {
            max_in_flight: 1,
            ..settings(500, 1 << 20, 0)
        };
        let sink = Arc::new(GroupCommit::new(table.clone(), settings));
        // One call under way (held), so the next rows queue behind it.
        let first = tokio::spawn({
            let sink = sink.clone();
            async move { push(&sink, "first").await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let gone = tokio::time::timeout(Duration::from_millis(50), push(&sink, "gone")).await;
        assert!(gone.is_err(), "the push gave up");
        let last = tokio::spawn({
            let sink = sink.clone();
            async move { push(&sink, "last").await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        table.gate.as_ref().unwrap().add_permits(1_000);
        assert_eq!(first.await.unwrap(), Ok(Ok(())));
        assert_eq!(last.await.unwrap(), Ok(Ok(())));
        let sent: Vec<String> = table.calls.lock().unwrap().concat();
        assert_eq!(
            sent,
            ["first", "last"],
            "the row of the push that gave up was sent"
        );
    }

    /// BigQuery refuses a request as a whole (400 `invalid`) for one row in it: the batch is sent
    /// again in halves until the row it refuses is alone, so only that push fails permanently
    /// (and is dead-lettered); its neighbours are written.
    /// Eight rows in one batch behind a held call, on a table that refuses every request.
    async fn a_refused_batch_of_eight(
        timeout: Duration,
        delay: Duration,
    ) -> (Arc<Table>, Vec<Result<Result<(), RowError>, CallError>>) {
        let table = Arc::new(Table {
            refuse_all: true,
            delay,
            ..Table::default()
        });
        let settings = BatchSettings {
            max_in_flight: 1,
            timeout,
            ..settings(500, 1 << 20, 1_000)
        };
        let sink = Arc::new(GroupCommit::new(table.clone(), settings));
        let first = tokio::spawn({
            let sink = sink.clone();
            async move { push(&sink, "first").await }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let eight: Vec<_> = (0..8)
            .map(|i| {
                let sink = sink.clone();
                tokio::spawn(async move { push(&sink, &format!("r{i}")).await })
            })
            .collect();
        let mut answers = vec![first.await.unwrap()];
        for t in eight {
            answers.push(t.await.unwrap());
        }
        (table, answers)
    }

    #[tokio::test]
    async fn a_split_stays_inside_the_in_flight_limit() {
        let (table, answers) =
            a_refused_batch_of_eight(Duration::from_secs(30), Duration::from_millis(2)).await;
        let calls = table.calls.lock().unwrap().clone();
        // `first` alone, then the eight: 2n − 1 = 15 calls down to single rows.
        assert_eq!(calls.len(), 1 + 15, "{calls:?}");
        assert_eq!(calls[1].len(), 8, "the eight went as one batch: {calls:?}");
        assert_eq!(
            table.most_active.load(Ordering::SeqCst),
            1,
            "max_in_flight is 1: the halves go one after the other in the batch's slot"
        );
        for answer in answers {
            assert!(
                matches!(answer, Err(CallError::Permanent(_))),
                "each row refused alone, as permanent: {answer:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_split_ends_by_the_pushes_deadline() {
        // 50 ms per call and 400 ms for the pushes: the eight's batch starts about 50 ms in and
        // has room for about seven of its fifteen calls, not fifteen fresh timeouts.
        let started = Instant::now();
        let (table, answers) =
            a_refused_batch_of_eight(Duration::from_millis(400), Duration::from_millis(50)).await;
        let calls = table.calls.lock().unwrap().clone();
        assert!(calls.len() <= 9, "{} calls: {calls:?}", calls.len());
        assert!(started.elapsed() < Duration::from_millis(600));
        // Let any call still running finish: none is started after the deadline.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(table.calls.lock().unwrap().len() <= 9);
        // Rows whose own call refused them are permanent; the rest, undecided, transient.
        let transient = answers[1..]
            .iter()
            .filter(|a| matches!(a, Err(CallError::Transient(_))))
            .count();
        assert!(transient > 0, "{answers:?}");
        assert!(answers.iter().all(Result::is_err), "{answers:?}");
    }

    #[tokio::test]
    async fn a_request_refused_for_one_row_fails_only_that_row() {
        let ids = ["a", "b", "refused", "c"];
        let (table, _sink, first, together) = one_batch_behind_a_call(ids).await;
        for (id, t) in ids.into_iter().zip(together) {
            let verdict = t.await.unwrap();
            if id == "refused" {
                assert!(
                    matches!(verdict, Err(CallError::Permanent(_))),
                    "{verdict:?}"
                );
            } else {
                assert_eq!(verdict, Ok(Ok(())), "{id} failed with its neighbour");
            }
        }
        assert_eq!(first.await.unwrap(), Ok(Ok(())));
        let calls = table.calls.lock().unwrap().clone();
        assert_eq!(calls[1], ["a", "b", "refused", "c"], "{calls:?}");
        assert!(calls.len() <= 6, "{calls:?}");
    }
}
