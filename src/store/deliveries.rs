//! Deliveries: the outbox fanned out to endpoints, claimed per endpoint by dispatchers with a
//! lease, in per-lead order, with every attempt logged. The decisions (who gets how many
//! slots, what an answer means) are made in `crate::webhooks`; this module only persists them.

use std::collections::{HashMap, HashSet};

use sqlx::Row;
use sqlx::any::AnyRow;

use super::WriteTx;
use super::bulk::{insert_rows, param, tuples};
use super::webhooks::{COLUMNS as ENDPOINT_COLUMNS, Endpoint, endpoint_from_row};
use super::{Backend, Store, StoreError, now_ms, rfc3339};
use crate::domain::DomainError;
use crate::domain::ids::{DeliveryId, EndpointId, OrgId, prefixed_id};
use crate::webhooks::envelope::envelope;
use crate::webhooks::fairness::{Demand, allocate};
use crate::webhooks::policy::Verdict;

/// `next_attempt_at` of a delivery that waits for something other than time: a failed
/// delivery (until resent), the successors it holds back, the backlog of a disabled endpoint.
/// It keeps them out of every "due" scan. (9999-12-31, so it still prints as a date.)
pub const PARKED: i64 = 253_402_300_799_000;

/// Ids per `IN (…)` list: well inside either database's parameter limit.
const IN_LIST_CHUNK: usize = 900;

/// A delivery ready to send: the exact body, and the endpoint's current URL and secrets.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: DeliveryId,
    pub endpoint_id: EndpointId,
    pub event_type: String,
    pub body: String,
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

struct NewDelivery {
    id: DeliveryId,
    org: String,
    endpoint_id: EndpointId,
    event_id: Option<String>,
    event_type: String,
    lead_id: Option<String>,
    sequence: Option<i64>,
    stream: String,
    body: String,
}

/// A pending delivery is held while an earlier event of the same lead, in the same stream, to
/// the same endpoint is undelivered — or not even fanned out yet (another node may be fanning
/// it out right now; its delivery row appears when that commits).
const NOT_HELD: &str = "(d.lead_id IS NULL OR (\
      NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.endpoint_id = d.endpoint_id AND p.lead_id = d.lead_id \
                  AND p.stream = d.stream AND p.sequence < d.sequence AND p.status <> 'delivered') \
      AND NOT EXISTS (SELECT 1 FROM events e WHERE e.lead_id = d.lead_id AND e.sequence < d.sequence \
                  AND e.fanned_out = 0)))";

impl Store {
    /// One dispatcher turn in one transaction (see `Round`).
    pub async fn dispatch_round(&self, round: Round<'_>) -> Result<RoundDone, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let recorded = self
            .record_in(&mut tx, round.finished, round.disable_after_ms, now)
            .await?;
        let fanned = match round.fan_out {
            Some(limit) => self.fan_out_in(&mut tx, limit, now).await?,
            None => (0, 0),
        };
        let claimed = match round.claim {
            Some(request) => self.claim_in(&mut tx, request, now).await?,
            None => Claimed::default(),
        };
        let retried = round
            .finished
            .iter()
            .any(|f| matches!(f.verdict, Verdict::RetryAt(_)));
        let next_due = if retried || round.claim.is_some_and(|c| c.sweep) {
            next_due(&mut tx, now).await?
        } else {
            NextDue::NotLooked
        };
        tx.commit().await?;
        Ok(RoundDone {
            recorded,
            fanned,
            claimed,
            next_due,
        })
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

    async fn fan_out_in(
        &self,
        tx: &mut WriteTx,
        limit: i64,
        now: i64,
    ) -> Result<(usize, usize), StoreError> {
        let lock = self.skip_locked("");
        let claim = sqlx::AssertSqlSafe(format!(
            "UPDATE events SET fanned_out = 1 WHERE id IN (SELECT id FROM events WHERE fanned_out = 0 \
             ORDER BY created_at, id LIMIT $1 {lock}) \
             RETURNING id, org_id, event_type, lead_id, sequence, payload, created_at"
        ));
        let events = sqlx::query(claim).bind(limit).fetch_all(&mut **tx).await?;
        if events.is_empty() {
            return Ok((0, 0));
        }
        let mut endpoints: HashMap<String, Vec<Endpoint>> = HashMap::new();
        let mut rows = Vec::new();
        for event in &events {
            let org: String = event.try_get("org_id")?;
            if !endpoints.contains_key(&org) {
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE org_id = $1 AND enabled = 1"
                ));
                let found = sqlx::query(sql).bind(&org).fetch_all(&mut **tx).await?;
                let found = found
                    .iter()
                    .map(endpoint_from_row)
                    .collect::<Result<Vec<_>, _>>()?;
                endpoints.insert(org.clone(), found);
            }
            let subscribed = endpoints.get(&org).map(Vec::as_slice).unwrap_or_default();
            rows.extend(deliveries_for_event(event, &org, subscribed, "")?);
        }
        insert_deliveries(self.backend, tx, &rows, now).await?;
        Ok((events.len(), rows.len()))
    }

    async fn claim_in(
        &self,
        tx: &mut WriteTx,
        request: ClaimRequest,
        now: i64,
    ) -> Result<Claimed, StoreError> {
        if request.sweep {
            self.park_held(tx, now).await?;
        }
        // Counted one past the bound, so "more is due than was granted" can be told.
        let found = self.demands(tx, now, request.per_endpoint + 1).await?;
        let (demands, targets): (Vec<_>, Vec<_>) = found.into_iter().unzip();
        let granted = allocate(
            &demands,
            request.per_endpoint,
            request.free,
            request.rotation,
        );
        let mut claimed = Claimed::default();
        for ((demand, target), n) in demands.iter().zip(&targets).zip(granted) {
            if n < demand.due {
                claimed.more_due = true;
            }
            if n == 0 {
                continue;
            }
            let rows = self
                .claim_for_endpoint(tx, &demand.key, n, now, request.lease_ms)
                .await?;
            for row in &rows {
                claimed.due.push(due_from_row(row, target)?);
            }
        }
        Ok(claimed)
    }

    /// Held deliveries that came due are set to wait until the earliest their predecessor can
    /// be delivered, so claims stop looking at them in the meantime.
    async fn park_held(&self, tx: &mut WriteTx, now: i64) -> Result<(), StoreError> {
        let lock = self.skip_locked("");
        let sql = sqlx::AssertSqlSafe(format!(
            "UPDATE deliveries SET next_attempt_at = (SELECT MAX(p.next_attempt_at) FROM deliveries p \
               WHERE p.endpoint_id = deliveries.endpoint_id AND p.lead_id = deliveries.lead_id \
               AND p.stream = deliveries.stream AND p.sequence < deliveries.sequence AND p.status <> 'delivered') \
             WHERE id IN (SELECT d.id FROM deliveries d WHERE d.status = 'pending' AND d.next_attempt_at <= $1 \
               AND d.lease_until < $1 AND d.lead_id IS NOT NULL \
               AND EXISTS (SELECT 1 FROM deliveries p WHERE p.endpoint_id = d.endpoint_id AND p.lead_id = d.lead_id \
                 AND p.stream = d.stream AND p.sequence < d.sequence AND p.status <> 'delivered' \
                 AND p.next_attempt_at > $1) {lock})"
        ));
        sqlx::query(sql).bind(now).execute(&mut **tx).await?;
        Ok(())
    }

    /// Enabled endpoints with deliveries due now: how many (counted up to `cap`), how many in
    /// flight on any node, and where and how to send. One probe per enabled endpoint, so the
    /// cost follows the number of endpoints, not the length of a slow endpoint's backlog. On
    /// PostgreSQL each endpoint row is locked first for the rest of the claim, so two nodes
    /// never count and claim the same endpoint at once (one skips it this round): that keeps
    /// the in-flight bound across nodes.
    async fn demands(
        &self,
        tx: &mut WriteTx,
        now: i64,
        cap: usize,
    ) -> Result<Vec<(Demand<EndpointId>, Target)>, StoreError> {
        const HAS_DUE: &str = "EXISTS (SELECT 1 FROM deliveries e WHERE e.endpoint_id = w.id \
            AND e.status = 'pending' AND e.next_attempt_at <= $1 AND e.lease_until < $1)";
        let locked: Option<HashSet<String>> = match self.backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT w.id FROM webhook_endpoints w WHERE w.enabled = 1 AND {HAS_DUE} \
                     FOR UPDATE SKIP LOCKED"
                ));
                let rows = sqlx::query(sql).bind(now).fetch_all(&mut **tx).await?;
                Some(
                    rows.iter()
                        .map(|r| r.try_get("id"))
                        .collect::<Result<_, _>>()?,
                )
            }
        };
        if locked.as_ref().is_some_and(HashSet::is_empty) {
            return Ok(Vec::new());
        }
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT w.id, w.org_id, w.url, w.secret, w.previous_secret, w.previous_secret_expires_at, \
             w.failing_since, \
             (SELECT COUNT(*) FROM (SELECT 1 FROM deliveries d WHERE d.endpoint_id = w.id \
                AND d.status = 'pending' AND d.next_attempt_at <= $1 AND d.lease_until < $1 LIMIT $2) AS due_rows) AS due, \
             (SELECT COUNT(*) FROM deliveries l WHERE l.endpoint_id = w.id AND l.lease_until > 0 \
                AND l.lease_until >= $1 AND l.status = 'pending') AS in_flight \
             FROM webhook_endpoints w WHERE w.enabled = 1 AND {HAS_DUE}"
        ));
        let rows = sqlx::query(sql)
            .bind(now)
            .bind(i64::try_from(cap).unwrap_or(i64::MAX))
            .fetch_all(&mut **tx)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: String = r.try_get("id")?;
            if locked.as_ref().is_some_and(|l| !l.contains(&id)) {
                continue;
            }
            let count = |column: &str| -> Result<usize, StoreError> {
                Ok(usize::try_from(r.try_get::<i64, _>(column)?).unwrap_or(0))
            };
            let expires: Option<i64> = r.try_get("previous_secret_expires_at")?;
            let previous: Option<String> = r.try_get("previous_secret")?;
            let demand = Demand {
                key: EndpointId::from_stored(id),
                org: r.try_get("org_id")?,
                due: count("due")?,
                in_flight: count("in_flight")?,
            };
            let target = Target {
                url: r.try_get("url")?,
                secret: r.try_get("secret")?,
                previous_secret: previous.filter(|_| expires.is_some_and(|t| t > now)),
                failing: r.try_get::<Option<i64>, _>("failing_since")?.is_some(),
            };
            out.push((demand, target));
        }
        Ok(out)
    }

    async fn claim_for_endpoint(
        &self,
        tx: &mut WriteTx,
        endpoint: &EndpointId,
        limit: usize,
        now: i64,
        lease_ms: i64,
    ) -> Result<Vec<AnyRow>, StoreError> {
        let lock = self.skip_locked("OF d");
        // In index order (`deliveries_endpoint_due`), so the scan stops at the LIMIT: the held
        // check runs on the rows looked at, not on the endpoint's whole backlog before a sort.
        let sql = sqlx::AssertSqlSafe(format!(
            "UPDATE deliveries SET lease_until = $1 WHERE id IN (\
               SELECT d.id FROM deliveries d WHERE d.endpoint_id = $2 AND d.status = 'pending' \
               AND d.next_attempt_at <= $3 AND d.lease_until < $3 AND {NOT_HELD} \
               ORDER BY d.next_attempt_at LIMIT $4 {lock}) \
             RETURNING id, endpoint_id, event_type, body, attempts, lead_id, sequence, stream"
        ));
        let rows = sqlx::query(sql)
            .bind(now.saturating_add(lease_ms))
            .bind(endpoint.as_str())
            .bind(now)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut **tx)
            .await?;
        Ok(rows)
    }

    async fn record_in(
        &self,
        tx: &mut WriteTx,
        finished: &[Finished],
        disable_after_ms: i64,
        now: i64,
    ) -> Result<Recorded, StoreError> {
        if finished.is_empty() {
            return Ok(Recorded::default());
        }
        insert_attempts(self.backend, tx, finished).await?;
        let delivered: Vec<&Finished> = finished
            .iter()
            .filter(|f| f.verdict == Verdict::Delivered)
            .collect();
        let recorded = Recorded {
            released: record_delivered(self.backend, tx, &delivered, now).await?,
        };
        let mut healthy: Vec<&EndpointId> =
            delivered.iter().map(|f| &f.delivery.endpoint_id).collect();
        healthy.sort_unstable();
        healthy.dedup();
        for endpoint in healthy {
            sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1")
                .bind(endpoint.as_str())
                .execute(&mut **tx)
                .await?;
        }
        for f in finished.iter().filter(|f| f.verdict != Verdict::Delivered) {
            record_failure(tx, f, disable_after_ms, now).await?;
        }
        Ok(recorded)
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
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $4, lease_until = 0 \
             WHERE org_id = $1 AND endpoint_id = $2 AND id = $3",
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
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $4, lease_until = 0 \
             WHERE org_id = $1 AND endpoint_id = $2 AND status = 'failed' AND created_at >= $3",
        )
        .bind(org.as_str())
        .bind(endpoint_id.as_str())
        .bind(since_ms)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
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
        insert_deliveries(self.backend, &mut tx, std::slice::from_ref(&row), now).await?;
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
        let events = sqlx::query(
            "SELECT id, org_id, event_type, lead_id, sequence, payload, created_at FROM events \
             WHERE org_id = $1 AND created_at >= $2 AND created_at < $3 ORDER BY created_at, id",
        )
        .bind(org.as_str())
        .bind(since_ms)
        .bind(until_ms)
        .fetch_all(&mut *tx)
        .await?;
        let replay_id = prefixed_id("rpl_");
        let mut rows = Vec::new();
        for event in &events {
            rows.extend(deliveries_for_event(
                event,
                org.as_str(),
                std::slice::from_ref(&endpoint),
                &replay_id,
            )?);
        }
        insert_deliveries(self.backend, &mut tx, &rows, now).await?;
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
             FROM deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id \
             WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND d.lease_until < $1 AND w.enabled = 1 \
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

    /// `FOR UPDATE SKIP LOCKED` (optionally `OF` a table) on PostgreSQL; nothing on SQLite,
    /// where the write transaction already excludes every other writer.
    fn skip_locked(&self, of: &str) -> String {
        match self.backend {
            Backend::Postgres => format!("FOR UPDATE {of} SKIP LOCKED"),
            Backend::Sqlite => String::new(),
        }
    }
}

/// The deliveries one event makes: one per endpoint subscribed to its type.
fn deliveries_for_event(
    event: &AnyRow,
    org: &str,
    endpoints: &[Endpoint],
    stream: &str,
) -> Result<Vec<NewDelivery>, StoreError> {
    let event_type: String = event.try_get("event_type")?;
    let subscribed: Vec<&Endpoint> = endpoints
        .iter()
        .filter(|e| e.events.contains(&event_type))
        .collect();
    if subscribed.is_empty() {
        return Ok(Vec::new());
    }
    let payload: String = event.try_get("payload")?;
    let data: serde_json::Value =
        serde_json::from_str(&payload).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let body = envelope(&event_type, &rfc3339(event.try_get("created_at")?), &data);
    let event_id: String = event.try_get("id")?;
    let lead_id: Option<String> = event.try_get("lead_id")?;
    let sequence: Option<i64> = event.try_get("sequence")?;
    Ok(subscribed
        .into_iter()
        .map(|endpoint| NewDelivery {
            id: DeliveryId::generate(),
            org: org.to_owned(),
            endpoint_id: endpoint.id.clone(),
            event_id: Some(event_id.clone()),
            event_type: event_type.clone(),
            lead_id: lead_id.clone(),
            sequence,
            stream: stream.to_owned(),
            body: body.clone(),
        })
        .collect())
}

async fn next_due(tx: &mut WriteTx, now: i64) -> Result<NextDue, StoreError> {
    let at: Option<i64> = sqlx::query(
        "SELECT MIN(next_attempt_at) AS next FROM deliveries WHERE status = 'pending' AND next_attempt_at > $1",
    )
    .bind(now)
    .fetch_one(&mut **tx)
    .await?
    .try_get("next")?;
    Ok(at.map_or(NextDue::Nothing, NextDue::At))
}

/// An endpoint's URL and the secrets that sign for it now.
struct Target {
    url: String,
    secret: String,
    previous_secret: Option<String>,
    /// It had a failure without a success since, when claimed.
    failing: bool,
}

fn due_from_row(row: &AnyRow, target: &Target) -> Result<DueDelivery, StoreError> {
    Ok(DueDelivery {
        id: DeliveryId::from_stored(row.try_get("id")?),
        endpoint_id: EndpointId::from_stored(row.try_get("endpoint_id")?),
        event_type: row.try_get("event_type")?,
        body: row.try_get("body")?,
        attempts: row.try_get("attempts")?,
        lead_id: row.try_get("lead_id")?,
        sequence: row.try_get("sequence")?,
        stream: row.try_get("stream")?,
        url: target.url.clone(),
        secret: target.secret.clone(),
        previous_secret: target.previous_secret.clone(),
        endpoint_failing: target.failing,
    })
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

/// Marks delivered deliveries so (a statement per distinct status code, not per delivery), and
/// releases the held successors of their leads at once; returns how many were released.
async fn record_delivered(
    backend: Backend,
    tx: &mut WriteTx,
    delivered: &[&Finished],
    now: i64,
) -> Result<u64, StoreError> {
    let mut by_status: HashMap<Option<u16>, Vec<&str>> = HashMap::new();
    for f in delivered {
        by_status
            .entry(f.attempt.status_code)
            .or_default()
            .push(f.delivery.id.as_str());
    }
    for (status, ids) in by_status {
        for chunk in ids.chunks(IN_LIST_CHUNK) {
            let sql = sqlx::AssertSqlSafe(format!(
                "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, next_attempt_at = {now_p}, \
                 lease_until = 0, last_status = {status_p}, last_error = NULL, delivered_at = {now_p2} \
                 WHERE id IN {ids}",
                now_p = param(backend, 1),
                status_p = param(backend, 2),
                now_p2 = param(backend, 3),
                ids = tuples(backend, 4, 1, chunk.len()),
            ));
            let mut query = sqlx::query(sql)
                .bind(now)
                .bind(status.map(i64::from))
                .bind(now);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(&mut **tx).await?;
        }
    }
    // Successors: every pending delivery of the same endpoint, lead and stream that waits for
    // a time (parked behind its predecessor) becomes due now.
    let mut leads: Vec<(&str, &str, &str)> = delivered
        .iter()
        .filter_map(|f| {
            let d = &f.delivery;
            d.lead_id
                .as_deref()
                .map(|lead| (d.endpoint_id.as_str(), lead, d.stream.as_str()))
        })
        .collect();
    leads.sort_unstable();
    leads.dedup();
    let mut released = 0;
    for chunk in leads.chunks(IN_LIST_CHUNK / 3) {
        let sql = sqlx::AssertSqlSafe(format!(
            "UPDATE deliveries SET next_attempt_at = {now_p} WHERE status = 'pending' \
             AND next_attempt_at > {now_p2} AND (endpoint_id, lead_id, stream) IN (VALUES {keys})",
            now_p = param(backend, 1),
            now_p2 = param(backend, 2),
            keys = tuples(backend, 3, chunk.len(), 3),
        ));
        let mut query = sqlx::query(sql).bind(now).bind(now);
        for (endpoint, lead, stream) in chunk {
            query = query.bind(*endpoint).bind(*lead).bind(*stream);
        }
        released += query.execute(&mut **tx).await?.rows_affected();
    }
    Ok(released)
}

/// A failed attempt: the delivery waits for its retry (or, exhausted, for a person), and the
/// endpoint's health moves on — disabled after 410 Gone or after failing long enough.
async fn record_failure(
    tx: &mut WriteTx,
    f: &Finished,
    disable_after_ms: i64,
    now: i64,
) -> Result<(), StoreError> {
    let (status, next) = match f.verdict {
        Verdict::RetryAt(at) => ("pending", at),
        Verdict::Delivered | Verdict::Exhausted | Verdict::Gone => ("failed", PARKED),
    };
    sqlx::query(
        "UPDATE deliveries SET status = $2, attempts = attempts + 1, next_attempt_at = $3, lease_until = 0, \
         last_status = $4, last_error = $5 WHERE id = $1",
    )
    .bind(f.delivery.id.as_str())
    .bind(status)
    .bind(next)
    .bind(f.attempt.status_code.map(i64::from))
    .bind(f.attempt.error_class.as_deref())
    .execute(&mut **tx)
    .await?;
    let endpoint = &f.delivery.endpoint_id;
    if f.verdict == Verdict::Gone {
        return disable(tx, endpoint, "the endpoint answered 410 Gone", now).await;
    }
    let error = f.attempt.error_class.as_deref().unwrap_or("failed");
    let since = note_failure(tx, endpoint, error, now).await?;
    if f.verdict == Verdict::Exhausted && since.is_some_and(|s| now - s >= disable_after_ms) {
        let reason = "deliveries kept failing past the retry window with no success";
        disable(tx, endpoint, reason, now).await?;
    }
    Ok(())
}

/// Remembers the endpoint's latest error and since when it has been failing; returns that.
async fn note_failure(
    tx: &mut WriteTx,
    endpoint: &EndpointId,
    error: &str,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let since = sqlx::query(
        "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2), last_error = $3, \
         last_error_at = $2 WHERE id = $1 RETURNING failing_since",
    )
    .bind(endpoint.as_str())
    .bind(now)
    .bind(error)
    .fetch_optional(&mut **tx)
    .await?
    .map(|r| r.try_get("failing_since"))
    .transpose()?
    .flatten();
    Ok(since)
}

/// Disables an endpoint and parks its queue, so no claim looks at it until it is enabled.
pub(super) async fn disable(
    tx: &mut WriteTx,
    endpoint: &EndpointId,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE webhook_endpoints SET enabled = 0, disabled_reason = $2, updated_at = $3 WHERE id = $1")
        .bind(endpoint.as_str())
        .bind(reason)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    park_endpoint(tx, endpoint).await
}

/// Parks every pending delivery of a (disabled) endpoint.
pub(super) async fn park_endpoint(
    tx: &mut WriteTx,
    endpoint: &EndpointId,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE deliveries SET next_attempt_at = $2 WHERE endpoint_id = $1 AND status = 'pending' \
         AND next_attempt_at < $2",
    )
    .bind(endpoint.as_str())
    .bind(PARKED)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Makes an (enabled again) endpoint's whole queue due now; held order still applies.
pub(super) async fn unpark_endpoint(
    tx: &mut WriteTx,
    endpoint: &EndpointId,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE deliveries SET next_attempt_at = $2 WHERE endpoint_id = $1 AND status = 'pending' \
         AND next_attempt_at > $2",
    )
    .bind(endpoint.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_attempts(
    backend: Backend,
    tx: &mut WriteTx,
    finished: &[Finished],
) -> Result<(), StoreError> {
    const COLUMNS: &[&str] = &[
        "delivery_id",
        "endpoint_id",
        "attempted_at",
        "status_code",
        "duration_ms",
        "error_class",
        "response_excerpt",
    ];
    insert_rows(
        backend,
        tx,
        "delivery_attempts",
        COLUMNS,
        finished,
        |q, f| {
            q.bind(f.delivery.id.as_str())
                .bind(f.delivery.endpoint_id.as_str())
                .bind(f.attempt.attempted_at)
                .bind(f.attempt.status_code.map(i64::from))
                .bind(f.attempt.duration_ms)
                .bind(f.attempt.error_class.as_deref())
                .bind(f.attempt.response_excerpt.as_str())
        },
    )
    .await
}

async fn insert_deliveries(
    backend: Backend,
    tx: &mut WriteTx,
    rows: &[NewDelivery],
    now: i64,
) -> Result<(), StoreError> {
    const COLUMNS: &[&str] = &[
        "id",
        "org_id",
        "endpoint_id",
        "event_id",
        "event_type",
        "lead_id",
        "sequence",
        "stream",
        "body",
        "status",
        "attempts",
        "next_attempt_at",
        "lease_until",
        "created_at",
    ];
    insert_rows(backend, tx, "deliveries", COLUMNS, rows, |q, d| {
        q.bind(d.id.as_str())
            .bind(d.org.as_str())
            .bind(d.endpoint_id.as_str())
            .bind(d.event_id.as_deref())
            .bind(d.event_type.as_str())
            .bind(d.lead_id.as_deref())
            .bind(d.sequence)
            .bind(d.stream.as_str())
            .bind(d.body.as_str())
            .bind("pending")
            .bind(0_i64)
            .bind(now)
            .bind(0_i64)
            .bind(now)
    })
    .await
}
