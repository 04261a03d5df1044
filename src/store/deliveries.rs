//! Deliveries: the outbox fanned out to endpoints, claimed per endpoint by dispatchers with a
//! lease, in per-lead order, with every attempt logged. The decisions (who gets how many
//! slots, what an answer means) are made in `crate::webhooks`; this module only persists them.

use std::collections::HashMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::dispatch::{
    EVENT_COLUMNS, EventRow, NewDelivery, RoundInput, Subscriber, deliveries_for_event,
    insert_deliveries, run_round,
};
use super::exec::{Exec, NativeTx};
use super::{Backend, Store, StoreError, now_ms, rfc3339};
use crate::domain::DomainError;
use crate::domain::ids::{DeliveryId, EndpointId, OrgId, prefixed_id};
use crate::webhooks::envelope::envelope;
use crate::webhooks::policy::Verdict;

/// `next_attempt_at` of a delivery that waits for something other than time: a failed
/// delivery (until resent), the successors it holds back, the backlog of a disabled endpoint.
/// It keeps them out of every "due" scan. (9999-12-31, so it still prints as a date.)
pub const PARKED: i64 = 253_402_300_799_000;

/// A delivery ready to send: the exact body, and the endpoint's current URL and secrets.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: DeliveryId,
    pub endpoint_id: EndpointId,
    pub event_type: String,
    pub body: String,
    /// Attempts made so far in the current retry schedule (a manual resend starts it over).
    pub attempts: i64,
    pub lead_id: Option<String>,
    pub sequence: Option<i64>,
    /// `""` for live events; a replay's id for the deliveries of that replay. Order is kept
    /// per lead within a stream.
    pub stream: String,
    pub url: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    /// The endpoint had failed without a success since, when this was claimed: a success then
    /// clears that record. (Any later failure is cleared by a later success, claimed after it.)
    pub endpoint_failing: bool,
    /// The lease this claim holds (the row's `lease_until`). The attempt's outcome moves the
    /// delivery only while the row still carries it: a manual resend made during the attempt,
    /// or another dispatcher's claim after the lease ran out, is not overwritten by it.
    pub lease: i64,
}

/// One HTTP attempt, as the log shows it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub attempted_at: i64,
    pub status_code: Option<u16>,
    pub duration_ms: i64,
    pub error_class: Option<String>,
    pub response_excerpt: String,
}

/// An attempt made, and what it decided.
#[derive(Debug, Clone)]
pub struct Finished {
    pub delivery: DueDelivery,
    pub attempt: Attempt,
    pub verdict: Verdict,
}

/// What a dispatcher asks for when it claims.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest {
    /// Slots this node has free.
    pub free: usize,
    /// Most deliveries one endpoint may have in flight, across all nodes.
    pub per_endpoint: usize,
    pub lease_ms: i64,
    /// Which organization goes first when slots are scarce (see `fairness::allocate`).
    pub rotation: usize,
    /// The periodic look: also move held deliveries out of the due set until their
    /// predecessor's next attempt, and find when the next pending delivery falls due.
    pub sweep: bool,
    /// Claim only if recording this round released a lead's next event (the only reason
    /// there could be anything new to claim).
    pub only_if_released: bool,
}

/// When the next pending delivery falls due, as far as a round looked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NextDue {
    /// This round did not look (nothing it did could have changed it).
    #[default]
    NotLooked,
    Nothing,
    At(i64),
}

#[derive(Debug, Default)]
pub struct Claimed {
    pub due: Vec<DueDelivery>,
    /// Some endpoint had more due than it was granted: claim again when slots free up.
    pub more_due: bool,
    /// Some endpoint with deliveries due was being claimed by another node at that moment
    /// (PostgreSQL): look again in a moment, as that claim commits within milliseconds.
    pub contended: bool,
}

/// What recording a batch of attempts changed beyond the deliveries themselves.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Successors that became due because their predecessor was delivered.
    pub released: u64,
}

/// One turn of a dispatcher, done in one write transaction: record the attempts that finished,
/// fan new events out, claim what is due. One transaction instead of three matters on SQLite,
/// where every write transaction queues for the file behind the capture writer's batches.
#[derive(Debug, Clone, Copy)]
pub struct Round<'a> {
    pub finished: &'a [Finished],
    pub disable_after_ms: i64,
    /// Fan out up to this many new events.
    pub fan_out: Option<i64>,
    pub claim: Option<ClaimRequest>,
}

#[derive(Debug, Default)]
pub struct RoundDone {
    pub recorded: Recorded,
    /// Events fanned out, and the deliveries they made.
    pub fanned: (usize, usize),
    pub claimed: Claimed,
    /// Looked at on a sweep, or when an attempt was scheduled for a retry.
    pub next_due: NextDue,
}

#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub id: DeliveryId,
    pub event_type: String,
    pub lead_id: Option<String>,
    pub sequence: Option<i64>,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    pub held: bool,
    /// The replay this delivery belongs to, if it is one.
    pub replay: Option<String>,
    pub log: Vec<Attempt>,
}

/// An endpoint's queue as its page shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Not yet delivered (waiting for a retry, behind an earlier event, or due now).
    pub pending: i64,
    /// Due now and not yet sent.
    pub due: i64,
    /// When the oldest pending delivery was created.
    pub oldest_pending_at: Option<i64>,
}

/// Deliveries that are due and not yet sent, per endpoint: how far behind dispatch is.
#[derive(Debug, Clone)]
pub struct Lag {
    pub endpoint_id: EndpointId,
    pub org: OrgId,
    pub due: i64,
    /// Since when the longest-waiting one has been due.
    pub oldest_due_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayQueued {
    pub replay_id: String,
    pub deliveries: usize,
}

impl Store {
    /// One dispatcher turn in one transaction (see `Round`). On SQLite it runs on the native
    /// connection (queued for the file like every writer of this process).
    pub async fn dispatch_round(&self, round: Round<'_>) -> Result<RoundDone, StoreError> {
        let input = RoundInput {
            finished: round.finished.to_vec(),
            disable_after_ms: round.disable_after_ms,
            fan_out: round.fan_out,
            claim: round.claim,
        };
        match self.backend {
            Backend::Sqlite => {
                self.native_write("dispatch", move |tx, now| {
                    futures::executor::block_on(run_round(&mut NativeTx { tx }, &input, now))
                })
                .await
            }
            Backend::Postgres => {
                let now = now_ms();
                let mut tx = self.begin_write().await?;
                let done = run_round(&mut tx, &input, now).await?;
                tx.commit().await?;
                Ok(done)
            }
        }
    }

    /// Turns up to `limit` new outbox events into deliveries for the endpoints subscribed now.
    /// Returns how many events were fanned out, and how many deliveries they made.
    pub async fn fan_out(&self, limit: i64) -> Result<(usize, usize), StoreError> {
        let round = Round {
            finished: &[],
            disable_after_ms: i64::MAX,
            fan_out: Some(limit),
            claim: None,
        };
        Ok(self.dispatch_round(round).await?.fanned)
    }

    /// Claims due deliveries for one node: each endpoint gets at most `per_endpoint` in flight
    /// (counting every node's leases), the node at most `free` new ones, shared round-robin
    /// across organizations and endpoints. A lead's delivery is only due once every earlier
    /// event of that lead to the same endpoint was delivered.
    pub async fn claim_deliveries(&self, request: ClaimRequest) -> Result<Claimed, StoreError> {
        let round = Round {
            finished: &[],
            disable_after_ms: i64::MAX,
            fan_out: None,
            claim: Some(request),
        };
        Ok(self.dispatch_round(round).await?.claimed)
    }

    /// Logs attempts and moves each delivery (and its endpoint's health) on. A delivered event
    /// releases the lead's next one at once.
    pub async fn record_attempts(
        &self,
        finished: &[Finished],
        disable_after_ms: i64,
    ) -> Result<Recorded, StoreError> {
        let round = Round {
            finished,
            disable_after_ms,
            fan_out: None,
            claim: None,
        };
        Ok(self.dispatch_round(round).await?.recorded)
    }

    /// Gives up leases this node holds but will not finish (it is stopping): the deliveries are
    /// due again at once, for the next process or another node.
    pub async fn release_leases(&self, ids: &[DeliveryId]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for id in ids {
            sqlx::query(
                "UPDATE deliveries SET lease_until = 0 WHERE id = $1 AND status = 'pending'",
            )
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// On SQLite one process owns the database file, so whatever leases are found at start
    /// belong to a process that is gone: they are taken back at once instead of waiting out
    /// their expiry. (On PostgreSQL other nodes may be alive; their leases must run out.)
    pub async fn take_back_leases_after_restart(&self) -> Result<(), StoreError> {
        if self.backend != Backend::Sqlite {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE deliveries SET lease_until = 0 WHERE lease_until > 0")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE leads SET enrichment_lease_until = 0 WHERE enrichment_lease_until > 0 \
             AND enrichment_state = 'pending'",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Queues a delivery again, now (manual resend). Another tenant's delivery is not found.
    pub async fn resend_delivery(
        &self,
        org: &OrgId,
        endpoint_id: &EndpointId,
        delivery_id: &DeliveryId,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $4, lease_until = 0, \
             resend_base = attempts WHERE org_id = $1 AND endpoint_id = $2 AND id = $3",
        )
        .bind(org.as_str())
        .bind(endpoint_id.as_str())
        .bind(delivery_id.as_str())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.queued_deliveries();
        tx.commit().await?;
        Ok(())
    }

    /// Queues every failed delivery of the endpoint created since `since_ms` again.
    pub async fn resend_failed_since(
        &self,
        org: &OrgId,
        endpoint_id: &EndpointId,
        since_ms: i64,
    ) -> Result<u64, StoreError> {
        self.endpoint(org, endpoint_id).await?;
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $4, lease_until = 0, \
             resend_base = attempts WHERE org_id = $1 AND endpoint_id = $2 AND status = 'failed' \
             AND created_at >= $3",
        )
        .bind(org.as_str())
        .bind(endpoint_id.as_str())
        .bind(since_ms)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.queued_deliveries();
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// A `webhook.test` delivery straight to one endpoint, through the same path as real events.
    pub async fn queue_test_delivery(
        &self,
        org: &OrgId,
        endpoint_id: &EndpointId,
    ) -> Result<DeliveryId, StoreError> {
        self.endpoint(org, endpoint_id).await?;
        let now = now_ms();
        let id = DeliveryId::generate();
        let data = serde_json::json!({"message": "This is a test event from leadtrail."});
        let row = NewDelivery {
            id: id.clone(),
            org: org.as_str().to_owned(),
            endpoint_id: endpoint_id.clone(),
            event_id: None,
            event_type: "webhook.test".to_owned(),
            lead_id: None,
            sequence: None,
            stream: String::new(),
            body: envelope("webhook.test", &rfc3339(now), &data),
        };
        let mut tx = self.begin_write().await?;
        insert_deliveries(&mut tx, std::slice::from_ref(&row), now).await?;
        tx.queued_deliveries();
        tx.commit().await?;
        Ok(id)
    }

    /// Queues the organization's events created in `[since_ms, until_ms)` whose types the
    /// endpoint subscribes to, as fresh deliveries of one replay: in per-lead order within the
    /// replay, each event once. Refused when the period holds more than `max` events.
    pub async fn replay(
        &self,
        org: &OrgId,
        endpoint_id: &EndpointId,
        since_ms: i64,
        until_ms: i64,
        max: usize,
    ) -> Result<ReplayQueued, StoreError> {
        let endpoint = self.endpoint(org, endpoint_id).await?;
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let count: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM events WHERE org_id = $1 AND created_at >= $2 AND created_at < $3",
        )
        .bind(org.as_str())
        .bind(since_ms)
        .bind(until_ms)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if usize::try_from(count).unwrap_or(usize::MAX) > max {
            return Err(DomainError::new(
                "until",
                format!(
                    "that period holds {count} events; a replay sends at most {max}: choose a shorter period"
                ),
            )
            .into());
        }
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE org_id = $1 AND created_at >= $2 \
             AND created_at < $3 ORDER BY created_at, id"
        );
        let events = tx
            .rows(
                &sql,
                vec![org.as_str().into(), since_ms.into(), until_ms.into()],
            )
            .await?;
        let replay_id = prefixed_id("rpl_");
        let subscriber = Subscriber {
            id: endpoint.id,
            events: endpoint.events,
        };
        let mut rows = Vec::new();
        for event in &events {
            let event = EventRow::read(event)?;
            rows.extend(deliveries_for_event(
                &event,
                std::slice::from_ref(&subscriber),
                &replay_id,
            ));
        }
        insert_deliveries(&mut tx, &rows, now).await?;
        tx.queued_deliveries();
        tx.commit().await?;
        Ok(ReplayQueued {
            replay_id,
            deliveries: rows.len(),
        })
    }

    /// The endpoint's deliveries, newest first, each with its attempts.
    pub async fn deliveries(
        &self,
        org: &OrgId,
        endpoint_id: &EndpointId,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.endpoint(org, endpoint_id).await?;
        let rows = sqlx::query(
            "SELECT d.id, d.event_type, d.lead_id, d.sequence, d.status, d.attempts, d.next_attempt_at, \
             d.last_status, d.last_error, d.created_at, d.delivered_at, d.stream, \
             (SELECT COUNT(*) FROM deliveries p WHERE p.endpoint_id = d.endpoint_id AND d.lead_id IS NOT NULL \
                AND p.lead_id = d.lead_id AND p.stream = d.stream AND p.sequence < d.sequence \
                AND p.status <> 'delivered') AS blockers \
             FROM deliveries d WHERE d.org_id = $1 AND d.endpoint_id = $2 \
             ORDER BY d.created_at DESC, d.id DESC LIMIT $3",
        )
        .bind(org.as_str())
        .bind(endpoint_id.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: String = r.try_get("id")?;
            let attempts = sqlx::query(
                "SELECT attempted_at, status_code, duration_ms, error_class, response_excerpt FROM delivery_attempts \
                 WHERE delivery_id = $1 ORDER BY attempted_at, id",
            )
            .bind(&id)
            .fetch_all(&self.pool)
            .await?;
            let log = attempts
                .iter()
                .map(attempt_from_row)
                .collect::<Result<Vec<_>, StoreError>>()?;
            let status: String = r.try_get("status")?;
            let stream: String = r.try_get("stream")?;
            out.push(DeliveryRecord {
                held: status == "pending" && r.try_get::<i64, _>("blockers")? > 0,
                id: DeliveryId::from_stored(id),
                event_type: r.try_get("event_type")?,
                lead_id: r.try_get("lead_id")?,
                sequence: r.try_get("sequence")?,
                status,
                attempts: r.try_get("attempts")?,
                next_attempt_at: r.try_get("next_attempt_at")?,
                last_status: r.try_get("last_status")?,
                last_error: r.try_get("last_error")?,
                created_at: r.try_get("created_at")?,
                delivered_at: r.try_get("delivered_at")?,
                replay: (!stream.is_empty()).then_some(stream),
                log,
            });
        }
        Ok(out)
    }

    /// Each of the organization's endpoints' queues (endpoints with nothing pending are absent).
    pub async fn backlogs(&self, org: &OrgId) -> Result<HashMap<EndpointId, Backlog>, StoreError> {
        let rows = sqlx::query(
            "SELECT endpoint_id, COUNT(*) AS pending, MIN(created_at) AS oldest, \
             SUM(CASE WHEN next_attempt_at <= $2 AND lease_until < $2 THEN 1 ELSE 0 END) AS due \
             FROM deliveries WHERE status = 'pending' \
             AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE org_id = $1) \
             GROUP BY endpoint_id",
        )
        .bind(org.as_str())
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    EndpointId::from_stored(r.try_get("endpoint_id")?),
                    Backlog {
                        pending: r.try_get("pending")?,
                        due: r.try_get::<Option<i64>, _>("due")?.unwrap_or(0),
                        oldest_pending_at: r.try_get("oldest")?,
                    },
                ))
            })
            .collect()
    }

    /// Every endpoint (of every organization) with deliveries due and not yet sent; what the
    /// dispatcher's lag metrics and warnings are made of.
    pub async fn delivery_lag(&self) -> Result<Vec<Lag>, StoreError> {
        let now = now_ms();
        let rows = sqlx::query(
            "SELECT d.endpoint_id, w.org_id, COUNT(*) AS due, MIN(d.next_attempt_at) AS oldest \
             FROM webhook_endpoints w JOIN deliveries d ON d.endpoint_id = w.id \
             WHERE w.enabled = 1 AND d.status = 'pending' AND d.next_attempt_at <= $1 AND d.lease_until < $1 \
             GROUP BY d.endpoint_id, w.org_id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Lag {
                    endpoint_id: EndpointId::from_stored(r.try_get("endpoint_id")?),
                    org: OrgId::from_stored(r.try_get("org_id")?),
                    due: r.try_get("due")?,
                    oldest_due_at: r.try_get("oldest")?,
                })
            })
            .collect()
    }
}

fn attempt_from_row(a: &AnyRow) -> Result<Attempt, StoreError> {
    Ok(Attempt {
        attempted_at: a.try_get("attempted_at")?,
        status_code: a
            .try_get::<Option<i64>, _>("status_code")?
            .and_then(|c| u16::try_from(c).ok()),
        duration_ms: a.try_get("duration_ms")?,
        error_class: a.try_get("error_class")?,
        response_excerpt: a.try_get("response_excerpt")?,
    })
}
