//! Visit beacons are buffered for at most a second and written in batches: a visit is an
//! analytics count, not a promise to a homeowner, so it trades up to one second of exposure on a
//! crash for throughput. Graceful shutdown flushes what is buffered.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};

use crate::store::{NewVisit, Store};

/// Longest a visit waits in memory before it is written.
pub const MAX_DELAY: Duration = Duration::from_secs(1);
const MAX_BATCH: usize = 2_000;

#[derive(Clone)]
pub struct VisitBuffer {
    tx: mpsc::Sender<NewVisit>,
}

impl VisitBuffer {
    pub fn start(store: Store) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(16 * MAX_BATCH);
        (Self { tx }, tokio::spawn(run(store, rx)))
    }

    /// Queues a visit. A full buffer (the writer is tens of thousands of visits behind) refuses
    /// it at once rather than letting waiting requests pile up in memory.
    pub fn record(&self, visit: NewVisit) -> Queued {
        match self.tx.try_send(visit) {
            Ok(()) => Queued::Yes,
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("visits_busy_total").increment(1);
                Queued::Full
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Queued::Stopped,
        }
    }
}

/// Whether a visit was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    Yes,
    /// The buffer is full: retry in a moment.
    Full,
    /// The service is shutting down.
    Stopped,
}

async fn run(store: Store, mut rx: mpsc::Receiver<NewVisit>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        // Wait for the first visit, then gather until the batch is full or a second has passed.
        let Some(first) = rx.recv().await else {
            break;
        };
        batch.push(first);
        let deadline = Instant::now() + MAX_DELAY;
        let mut closed = false;
        while batch.len() < MAX_BATCH {
            match timeout_at(deadline, rx.recv()).await {
                Ok(Some(visit)) => batch.push(visit),
                Ok(None) => {
                    closed = true;
                    break;
                }
                Err(_) => break,
            }
        }
        write(&store, &mut batch).await;
        if closed {
            break;
        }
    }
    write(&store, &mut batch).await;
}

async fn write(store: &Store, batch: &mut Vec<NewVisit>) {
    if batch.is_empty() {
        return;
    }
    let visits = std::mem::take(batch);
    let count = visits.len() as u64;
    match store.insert_visit_batch(visits).await {
        Ok(()) => metrics::counter!("visits_recorded_total").increment(count),
        Err(e) => {
            tracing::error!(error = %e, count, "visit batch lost");
            metrics::counter!("visits_lost_total").increment(count);
        }
    }
}
