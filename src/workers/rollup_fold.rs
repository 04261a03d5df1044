//! On PostgreSQL, writers append their report-rollup changes instead of adding to the shared
//! rows (several nodes would queue on those rows' locks); this worker folds the changes into the
//! rollups about once a second, so what reports add up stays small. Every node runs one; an
//! organization is folded by one node at a time. Reports are exact whether or not it has run.

use std::time::Duration;

use tokio::sync::watch;

use crate::store::{FOLD_BATCH, Folded, Store, StoreError};

/// How long changes wait to be folded when there are few.
const EVERY: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct RollupFold {
    store: Store,
}

impl RollupFold {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Folds up to one transaction's worth of every organization's changes.
    pub async fn run_once(&self) -> Result<Folded, StoreError> {
        self.store.fold_rollups(FOLD_BATCH).await
    }

    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            let pause = match self.run_once().await {
                Ok(Folded { more: true, .. }) => Duration::ZERO,
                Ok(_) => EVERY,
                Err(e) => {
                    tracing::warn!(error = %e, "folding report rollup changes failed");
                    EVERY
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
    }
}
