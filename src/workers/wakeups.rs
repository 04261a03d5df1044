//! Cross-node wake-ups on PostgreSQL. A serving node wakes its own workers for its own work;
//! the others are told (`NOTIFY leadtrail_work`) when a writer has no dispatcher of its own
//! (`'deliveries'`, sent in the transaction, so heard only if it commits), or when a node has
//! more due than it can take — a dispatcher whose claim left deliveries waiting, an enrichment
//! worker that took a full batch — so idle nodes help at once instead of at their next poll.
//! Waking every node for every commit would make them all race for the same rows. Every node
//! listens on one dedicated connection; polling stays as the safety net.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::{Notify, watch};

/// The channel every node listens on.
pub const CHANNEL: &str = "leadtrail_work";
/// The payloads.
pub const DELIVERIES: &str = "deliveries";
pub const ENRICHMENT: &str = "enrichment";

/// Waits between attempts to (re)connect the listener.
const RECONNECT: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(10));

/// What the listener wakes.
#[derive(Clone)]
pub struct Wake {
    pub dispatcher: Arc<Notify>,
    pub enrichment: Arc<Notify>,
}

impl Wake {
    fn everything(&self) {
        self.dispatcher.notify_one();
        self.enrichment.notify_one();
    }

    fn by_payload(&self, payload: &str) {
        match payload {
            DELIVERIES => self.dispatcher.notify_one(),
            ENRICHMENT => self.enrichment.notify_one(),
            _ => self.everything(),
        }
    }
}

/// The pause before the next attempt to listen after one failed: doubled, up to the cap, so
/// a database that is down is not asked again and again.
fn after_failure(pause: Duration) -> Duration {
    (pause * 2).min(RECONNECT.1)
}

/// Listens until `stop`, reconnecting by itself with a growing pause. After every (re)connect
/// both workers are woken once: notifications sent while the connection was down are lost, and
/// one look at the database finds what they announced.
pub async fn listen(url: String, wake: Wake, mut stop: watch::Receiver<bool>) {
    let mut pause = RECONNECT.0;
    while !*stop.borrow() {
        let listener = async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = match listener.await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?pause, "cross-node wake-ups: cannot listen");
                tokio::select! {
                    _ = stop.changed() => {}
                    () = tokio::time::sleep(pause) => {}
                }
                pause = after_failure(pause);
                continue;
            }
        };
        tracing::info!(channel = CHANNEL, "cross-node wake-ups: listening");
        metrics::counter!("wakeup_listener_connects_total").increment(1);
        pause = RECONNECT.0;
        wake.everything();
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                received = listener.try_recv() => match received {
                    Ok(Some(notification)) => {
                        metrics::counter!("wakeups_received_total").increment(1);
                        wake.by_payload(notification.payload());
                    }
                    // The connection dropped; `try_recv` reconnects on the next call.
                    Ok(None) => {
                        tracing::warn!("cross-node wake-ups: connection lost, reconnecting");
                        wake.everything();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cross-node wake-ups: listener failed");
                        break;
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_between_failed_attempts_doubles_up_to_ten_seconds() {
        let pauses: Vec<u64> =
            std::iter::successors(Some(RECONNECT.0), |p| Some(after_failure(*p)))
                .take(9)
                .map(|p| p.as_millis() as u64)
                .collect();
        assert_eq!(
            pauses,
            [250, 500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000]
        );
    }
}
