//! The webhook dispatcher: fans new outbox events out to subscribed endpoints, then sends due
//! deliveries — signed, over the SSRF-guarded client, concurrently across leads and endpoints
//! but in order within one lead and endpoint. Any number of dispatchers (one per node) can run
//! against one database: deliveries are claimed with a lease, so none is sent twice at once,
//! and a dispatcher that dies mid-flight leaves its deliveries to be retried, with the same
//! `webhook-id`, when the lease ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use rand::Rng;
use tokio::sync::{Notify, watch};

use crate::store::{Attempt, DueDelivery, Store, StoreError, Verdict, now_ms};
use crate::webhooks::signing::{Secret, signature_header};
use crate::webhooks::target::{check_url, http_client};

const FAN_OUT_BATCH: i64 = 500;
const SEND_BATCH: i64 = 256;
/// Longer than the 15 s request timeout, so a live attempt never loses its lease.
const LEASE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(500);
/// Pause after a round that only fanned events out, so events gather into bigger batches.
const FAN_OUT_PAUSE: Duration = Duration::from_millis(20);
/// A 429's `Retry-After` is honoured up to this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
const EXCERPT_BYTES: usize = 4096;

#[derive(Clone)]
pub struct Dispatcher {
    store: Store,
    client: reqwest::Client,
    allow_private: bool,
    schedule: Arc<Vec<Duration>>,
    disable_after: Duration,
    lease: Duration,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// Events fanned out, and delivery attempts made.
    Worked {
        fanned: usize,
        sent: usize,
    },
    Idle,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        allow_private: bool,
        schedule: Vec<Duration>,
        disable_after: Duration,
    ) -> reqwest::Result<Self> {
        Ok(Self {
            store,
            client: http_client(allow_private)?,
            allow_private,
            schedule: Arc::new(schedule),
            disable_after,
            lease: LEASE,
        })
    }

    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// One round: fan out, claim what is due, send it all, record the outcomes.
    pub async fn run_once(&self) -> Result<Progress, StoreError> {
        let fanned = self.store.fan_out(FAN_OUT_BATCH).await?;
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        let due = self.store.claim_deliveries(SEND_BATCH, lease_ms).await?;
        let sent = due.len();
        let outcomes = join_all(due.iter().map(|d| self.attempt(d))).await;
        let disable_ms = i64::try_from(self.disable_after.as_millis()).unwrap_or(i64::MAX);
        let outcomes: Vec<_> = due
            .iter()
            .zip(outcomes)
            .map(|(delivery, (attempt, verdict))| (delivery, attempt, verdict))
            .collect();
        self.store.record_attempts(&outcomes, disable_ms).await?;
        for (_, _, verdict) in &outcomes {
            let outcome = match verdict {
                Verdict::Delivered => "delivered",
                Verdict::RetryAt(_) => "retry",
                Verdict::Exhausted => "exhausted",
                Verdict::Gone => "gone",
            };
            metrics::counter!("webhook_attempts_total", "outcome" => outcome).increment(1);
        }
        Ok(if fanned + sent == 0 {
            Progress::Idle
        } else {
            Progress::Worked { fanned, sent }
        })
    }

    async fn attempt(&self, delivery: &DueDelivery) -> (Attempt, Verdict) {
        let started = Instant::now();
        let attempted_at = now_ms();
        let result = self.send(delivery).await;
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (status_code, error_class, excerpt, retry_after) = match result {
            Ok((status, body, retry_after)) => (Some(status), None, body, retry_after),
            Err(class) => (None, Some(class), String::new(), None),
        };
        let verdict = match status_code {
            Some(s) if (200..300).contains(&s) => Verdict::Delivered,
            Some(410) => Verdict::Gone,
            _ => self.next_attempt(delivery.attempts + 1, retry_after),
        };
        let error_class = error_class.or_else(|| match status_code {
            Some(s) if (300..400).contains(&s) => Some("redirect_not_followed".to_owned()),
            Some(s) if !(200..300).contains(&s) => Some(format!("http_{s}")),
            _ => None,
        });
        let attempt = Attempt {
            attempted_at,
            status_code,
            duration_ms,
            error_class,
            response_excerpt: excerpt,
        };
        (attempt, verdict)
    }

    /// The delay after the `made`-th failed attempt, with jitter that only ever adds (up to a
    /// tenth), so retries from many deliveries spread out but never come early.
    fn next_attempt(&self, made: i64, retry_after: Option<Duration>) -> Verdict {
        let index = usize::try_from(made - 1).unwrap_or(usize::MAX);
        let Some(base) = self.schedule.get(index).copied() else {
            return Verdict::Exhausted;
        };
        let base = retry_after.map_or(base, |ra| base.max(ra.min(MAX_RETRY_AFTER)));
        let jitter_ms = u64::try_from(base.as_millis() / 10).unwrap_or(0);
        let jitter = Duration::from_millis(if jitter_ms == 0 {
            0
        } else {
            rand::rng().random_range(0..=jitter_ms)
        });
        let at = now_ms() + i64::try_from((base + jitter).as_millis()).unwrap_or(i64::MAX / 2);
        Verdict::RetryAt(at)
    }

    /// Sends one delivery; the URL is vetted again, since DNS and settings may have changed.
    async fn send(
        &self,
        delivery: &DueDelivery,
    ) -> Result<(u16, String, Option<Duration>), String> {
        let url = check_url(&delivery.url, self.allow_private)
            .map_err(|_| "target_refused".to_owned())?;
        let secret = Secret::parse(&delivery.secret).map_err(|_| "bad_secret".to_owned())?;
        let previous = delivery
            .previous_secret
            .as_deref()
            .and_then(|p| Secret::parse(p).ok());
        let mut secrets = vec![&secret];
        secrets.extend(previous.as_ref());
        let timestamp = now_ms() / 1000;
        let signature =
            signature_header(&secrets, &delivery.id, timestamp, delivery.body.as_bytes());
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &delivery.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(delivery.body.clone())
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "timeout".to_owned()
                } else if e.is_connect() {
                    "connect".to_owned()
                } else {
                    "network".to_owned()
                }
            })?;
        let status = response.status().as_u16();
        let retry_after = (status == 429)
            .then(|| {
                response
                    .headers()
                    .get("retry-after")?
                    .to_str()
                    .ok()?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .flatten()
            .map(Duration::from_secs);
        let body = response.bytes().await.unwrap_or_default();
        let excerpt = String::from_utf8_lossy(&body[..body.len().min(EXCERPT_BYTES)]).into_owned();
        Ok((status, excerpt, retry_after))
    }

    /// Runs until `stop` turns true, finishing the round in hand first.
    pub async fn run(self, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                break;
            }
            match self.run_once().await {
                Ok(Progress::Worked { sent: 0, .. }) => {
                    // Only fan-out happened (nobody subscribed, or nothing due yet). Fan-out is a
                    // write transaction; under a capture burst, running it back to back would
                    // compete with the capture writer for SQLite's single write lock (measured:
                    // lead captures halved). A short pause lets events gather into one batch.
                    tokio::select! {
                        () = tokio::time::sleep(FAN_OUT_PAUSE) => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
                Ok(Progress::Worked { .. }) => continue,
                Ok(Progress::Idle) => {}
                Err(e) => tracing::error!(error = %e, "webhook dispatch round failed"),
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => {}
            }
        }
    }
}
