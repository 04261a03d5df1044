//! The background recount of multi-touch credit after an organization changes its lookback
//! window or half-life (or after the upgrade that brought the models): a chunk of leads per
//! transaction, so captures and steps keep flowing, with the progress kept on the
//! organization for the Reports page. Any node may run it; the store serializes the steps.

use std::time::Duration;

use tokio::sync::watch;

use crate::store::{RecountStep, Store, StoreError};

/// Leads counted per transaction.
pub const CHUNK: i64 = 2_000;
/// How often a node looks for a recount to do when none was running.
const POLL: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct CreditRecount {
    store: Store,
    chunk: i64,
}

impl CreditRecount {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            chunk: CHUNK,
        }
    }

    pub fn with_chunk(mut self, chunk: i64) -> Self {
        self.chunk = chunk.max(1);
        self
    }

    /// Counts one chunk of the organization that has waited longest.
    pub async fn run_once(&self) -> Result<RecountStep, StoreError> {
        self.store.recount_credit_step(self.chunk).await
    }

    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let idle = match self.run_once().await {
                Ok(RecountStep::Idle) => true,
                Ok(RecountStep::Counted {
                    org,
                    leads,
                    finished,
                }) => {
                    if finished {
                        tracing::info!(org = %org, "multi-touch credit recounted");
                    } else {
                        tracing::debug!(org = %org, leads, "multi-touch credit recount step");
                    }
                    false
                }
                Err(e) => {
                    tracing::warn!(error = %e, "multi-touch credit recount step failed");
                    true
                }
            };
            if idle {
                tokio::select! {
                    () = tokio::time::sleep(POLL) => {}
                    _ = stop.changed() => {}
                }
            } else {
                tokio::task::yield_now().await;
            }
        }
    }
}
