//! Group commit for capture steps. Requests queue here; the writer takes everything waiting
//! (up to a cap), applies it in one transaction, and answers each request only after that
//! transaction committed. Under load many leads share one fsync; alone, a request waits for
//! nobody.
//!
//! The writer runs on a thread of its own with its own small runtime and connection pool. A
//! batch is a handful of sequential statements, and on the shared runtime each of their awaits
//! queued behind dozens of HTTP tasks: measured, a batch took ~3 ms while the database thread
//! was busy for about a third of it.

use tokio::sync::{Notify, mpsc, oneshot};

use crate::store::{
    ArrivalPreparer, CaptureCommand, CaptureReply, CaptureResult, Store, StoreError,
};

/// Most commands in one transaction: bounds how long the write lock is held.
pub const MAX_BATCH: usize = 256;

/// Commands waiting for the writer at most. A full queue is several batches of work (a few
/// hundred milliseconds at the rates measured here): a request that would wait longer is
/// answered 503 with `Retry-After` at once, so waiting requests never pile up in memory.
pub const QUEUE: usize = 8 * MAX_BATCH;

type Job = (
    CaptureCommand,
    oneshot::Sender<Result<CaptureResult, Failure>>,
);

/// Why a command was not written, as its waiter learns it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The database could not be reached: retry in a moment.
    unavailable: bool,
    detail: String,
}

impl From<&StoreError> for Failure {
    fn from(e: &StoreError) -> Self {
        Self {
            unavailable: e.is_unavailable(),
            detail: e.to_string(),
        }
    }
}

#[derive(Clone)]
pub struct CaptureWriter {
    tx: mpsc::Sender<Job>,
    /// Decides new leads on the caller's task, from the catalogs the writer's store keeps.
    preparer: ArrivalPreparer,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the capture writer has stopped")]
    Stopped,
    #[error("the capture queue is full")]
    Busy,
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("storage failed: {0}")]
    Storage(String),
}

impl CaptureWriter {
    /// Starts the writer thread with its own connection to `database_url`; `enrichment` is
    /// woken whenever a lead becomes ready for it, `dispatch` whenever a batch made webhook
    /// deliveries due. The thread ends once every `CaptureWriter` is dropped and the queue is
    /// drained.
    pub async fn start(
        database_url: &str,
        settings: crate::store::DatabaseSettings,
        enrichment: std::sync::Arc<Notify>,
        dispatch: std::sync::Arc<Notify>,
    ) -> Result<(Self, std::thread::JoinHandle<()>), StoreError> {
        let (tx, rx) = mpsc::channel::<Job>(QUEUE);
        let (ready_tx, ready_rx) = oneshot::channel::<Result<ArrivalPreparer, StoreError>>();
        let url = database_url.to_owned();
        let thread = std::thread::Builder::new()
            .name("capture-writer".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ =
                            ready_tx.send(Err(StoreError::Config(format!("writer runtime: {e}"))));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let store = match Store::connect_small(&url, settings).await {
                        Ok(store) => store.waking(dispatch),
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(store.arrival_preparer()));
                    run(store.clone(), rx, enrichment).await;
                    store.close().await;
                });
            })
            .map_err(|e| StoreError::Config(format!("writer thread: {e}")))?;
        let preparer = ready_rx
            .await
            .map_err(|_| StoreError::Config("the capture writer did not start".into()))??;
        Ok((Self { tx, preparer }, thread))
    }

    /// Queues a command and waits until it is committed (or refused); `Busy` at once when
    /// the queue is full.
    pub async fn submit(&self, command: CaptureCommand) -> Result<CaptureResult, WriteError> {
        let command = self.preparer.prepare(command);
        let (done, answer) = oneshot::channel();
        self.tx.try_send((command, done)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                metrics::counter!("capture_busy_total").increment(1);
                WriteError::Busy
            }
            mpsc::error::TrySendError::Closed(_) => WriteError::Stopped,
        })?;
        match answer.await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(e)) if e.unavailable => Err(WriteError::Unavailable(e.detail)),
            Ok(Err(e)) => Err(WriteError::Storage(e.detail)),
            Err(_) => Err(WriteError::Stopped),
        }
    }
}

/// On PostgreSQL, how long a batch that found requests already waiting (the writer is busy)
/// waits for more before it is written. Each batch costs about seven round trips to the database
/// whatever its size, and when several nodes share the captures each node's batches shrink
/// (16 → 6 leads with three nodes in `cargo bench --bench nodes`): a millisecond of gathering
/// writes the same leads in fewer, larger transactions. A request arriving at an idle writer
/// never waits, and SQLite, a local file with one writer, batches well without it.
const GATHER_ON_POSTGRES: std::time::Duration = std::time::Duration::from_millis(1);

/// Batches smaller than this gather on PostgreSQL (see `GATHER_ON_POSTGRES`).
const GATHER_BELOW: usize = 16;

/// Takes up to `MAX_BATCH` jobs into `jobs`, waiting for the first; false once the queue is
/// closed and drained.
async fn next_batch(rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>, gather: bool) -> bool {
    // Requests already waiting: the writer is busy, and more are likely on their way.
    let busy = !rx.is_empty();
    if rx.recv_many(jobs, MAX_BATCH).await == 0 {
        return false;
    }
    if gather && busy && jobs.len() < GATHER_BELOW {
        tokio::time::sleep(GATHER_ON_POSTGRES).await;
        // This writer is the only receiver: what is queued now stays queued until taken.
        if !rx.is_empty() {
            rx.recv_many(jobs, MAX_BATCH - jobs.len()).await;
        }
    }
    true
}

async fn run(store: Store, mut rx: mpsc::Receiver<Job>, enrichment: std::sync::Arc<Notify>) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let gather = store.backend() == crate::store::Backend::Postgres;
    // Ends when every sender is gone (shutdown) and the queue is drained.
    while next_batch(&mut rx, &mut jobs, gather).await {
        let (commands, replies): (Vec<_>, Vec<_>) = jobs.drain(..).unzip();
        let commands: std::sync::Arc<[CaptureCommand]> = commands.into();
        let outcome = match store.apply_capture_batch(commands.clone()).await {
            Ok(results) => results.into_iter().map(Ok).collect(),
            // The database is away: every waiter hears so at once (and retries), instead of
            // each command waiting out its own connection timeout in turn.
            Err(batch_error) if batch_error.is_unavailable() => {
                tracing::warn!(error = %batch_error, size = commands.len(), "capture batch: the database is unavailable");
                vec![Err(Failure::from(&batch_error)); commands.len()]
            }
            Err(batch_error) => retry_one_by_one(&store, &commands, &batch_error).await,
        };
        let wake = outcome
            .iter()
            .any(|r| matches!(r, Ok(Ok(CaptureReply::Step(s))) if s.estimate.is_some()));
        metrics::histogram!("capture_batch_size").record(commands.len() as f64);
        for (reply, result) in replies.into_iter().zip(outcome) {
            let _ = reply.send(result);
        }
        // (Events the batch wrote were fanned out as it committed; the store woke the dispatcher
        // if that made deliveries due.)
        if wake {
            enrichment.notify_one();
        }
    }
}

/// A batch failed as a whole (an unexpected database error): isolate the culprit so the other
/// requests still succeed.
async fn retry_one_by_one(
    store: &Store,
    commands: &[CaptureCommand],
    batch_error: &StoreError,
) -> Vec<Result<CaptureResult, Failure>> {
    tracing::warn!(error = %batch_error, size = commands.len(), "capture batch failed; retrying one by one");
    let mut out = Vec::with_capacity(commands.len());
    for command in commands {
        let result = match store.apply_capture(std::slice::from_ref(command)).await {
            Ok(mut results) => results.pop().ok_or_else(|| Failure {
                unavailable: false,
                detail: "empty batch result".to_owned(),
            }),
            Err(e) => {
                tracing::error!(error = %e, "capture command failed");
                Err(Failure::from(&e))
            }
        };
        out.push(result);
    }
    out
}
