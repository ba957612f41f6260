//! Group commit's tests: sharing, splitting, deadlines and verdicts, on in-process sinks.

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
    async fn insert(&self, rows: Vec<PreparedRow>) -> Result<Vec<Result<(), RowError>>, CallError> {
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
            tokio::spawn(async move { sink.insert(vec![row(&format!("r-{i:02}"), 1000)]).await })
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

/// Records the deadline each call was given.
#[derive(Default)]
struct Deadlines(Mutex<Vec<Instant>>);

#[async_trait]
impl RowSink for Deadlines {
    async fn insert(&self, rows: Vec<PreparedRow>) -> Result<Vec<Result<(), RowError>>, CallError> {
        Ok(vec![Ok(()); rows.len()])
    }

    async fn insert_by(
        &self,
        rows: Vec<PreparedRow>,
        deadline: Instant,
    ) -> Result<Vec<Result<(), RowError>>, CallError> {
        self.0.lock().unwrap().push(deadline);
        self.insert(rows).await
    }
}

/// A sink that sends again within its call (the Storage Write API after refused rows) stops by
/// the pushes' deadline, not by a timeout of its own counted from when the call started.
#[tokio::test]
async fn the_call_is_given_the_pushes_deadline() {
    let sink = Arc::new(Deadlines::default());
    let mut s = settings(500, 1 << 20, 200);
    s.timeout = Duration::from_secs(5);
    let batch = GroupCommit::new(sink.clone(), s);
    let start = Instant::now();
    batch.write_one(row("a", 10)).await.unwrap();
    let given = sink.0.lock().unwrap().clone();
    assert_eq!(given.len(), 1, "{given:?}");
    // The push's deadline, set when it asked: 5 s after it started, not 5 s after the linger.
    let after = given[0] - start;
    assert!(
        after >= Duration::from_secs(5) && after < Duration::from_millis(5_150),
        "{after:?}"
    );
}
