//! Deliveries: the outbox fanned out to endpoints, claimed by dispatchers with a lease, in
//! per-lead order, with every attempt logged.

use std::collections::HashMap;

use sqlx::Row;

use super::bulk::insert_rows;
use super::webhooks::{COLUMNS as ENDPOINT_COLUMNS, Endpoint, endpoint_from_row};
use super::{Backend, Store, StoreError, now_ms, rfc3339};
use crate::domain::ids::{OrgId, prefixed_id};

/// A delivery ready to send: the exact body, and the endpoint's current URL and secrets.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: String,
    pub endpoint_id: String,
    pub event_type: String,
    pub body: String,
    pub attempts: i64,
    pub url: String,
    pub secret: String,
    pub previous_secret: Option<String>,
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

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    RetryAt(i64),
    /// The retry schedule is used up; successors of the same lead stay held.
    Exhausted,
    /// The endpoint answered 410 Gone: it is disabled.
    Gone,
}

#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub id: String,
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
    pub log: Vec<Attempt>,
}

struct NewDelivery {
    id: String,
    org: String,
    endpoint_id: String,
    event_id: Option<String>,
    event_type: String,
    lead_id: Option<String>,
    sequence: Option<i64>,
    body: String,
}

/// The Standard Webhooks envelope.
pub fn envelope(event_type: &str, timestamp: &str, data: &serde_json::Value) -> String {
    serde_json::json!({"type": event_type, "timestamp": timestamp, "data": data}).to_string()
}

impl Store {
    /// Turns up to `limit` new outbox events into deliveries for the endpoints subscribed now.
    /// Returns how many events were fanned out.
    pub async fn fan_out(&self, limit: i64) -> Result<usize, StoreError> {
        let claim = match self.backend {
            Backend::Postgres => {
                "UPDATE events SET fanned_out = 1 WHERE id IN (SELECT id FROM events WHERE fanned_out = 0 \
                 ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, org_id, event_type, lead_id, sequence, payload, created_at"
            }
            Backend::Sqlite => {
                "UPDATE events SET fanned_out = 1 WHERE id IN (SELECT id FROM events WHERE fanned_out = 0 \
                 ORDER BY created_at, id LIMIT $1) \
                 RETURNING id, org_id, event_type, lead_id, sequence, payload, created_at"
            }
        };
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let events = sqlx::query(claim).bind(limit).fetch_all(&mut *tx).await?;
        if events.is_empty() {
            return Ok(0);
        }
        let mut endpoints: HashMap<String, Vec<Endpoint>> = HashMap::new();
        let mut rows = Vec::new();
        for event in &events {
            let org: String = event.try_get("org_id")?;
            if !endpoints.contains_key(&org) {
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE org_id = $1 AND enabled = 1"
                ));
                let found = sqlx::query(sql).bind(&org).fetch_all(&mut *tx).await?;
                let found = found
                    .iter()
                    .map(endpoint_from_row)
                    .collect::<Result<Vec<_>, _>>()?;
                endpoints.insert(org.clone(), found);
            }
            let event_type: String = event.try_get("event_type")?;
            let payload: String = event.try_get("payload")?;
            let data: serde_json::Value =
                serde_json::from_str(&payload).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let body = envelope(&event_type, &rfc3339(event.try_get("created_at")?), &data);
            for endpoint in endpoints.get(&org).map(Vec::as_slice).unwrap_or_default() {
                if endpoint.events.contains(&event_type) {
                    rows.push(NewDelivery {
                        id: prefixed_id("msg_"),
                        org: org.clone(),
                        endpoint_id: endpoint.id.clone(),
                        event_id: Some(event.try_get("id")?),
                        event_type: event_type.clone(),
                        lead_id: event.try_get("lead_id")?,
                        sequence: event.try_get("sequence")?,
                        body: body.clone(),
                    });
                }
            }
        }
        insert_deliveries(self.backend, &mut tx, &rows, now).await?;
        tx.commit().await?;
        Ok(events.len())
    }

    /// Claims up to `limit` due deliveries for `lease_ms`. A lead's delivery is only due once
    /// every earlier event of that lead to the same endpoint was delivered.
    pub async fn claim_deliveries(
        &self,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let lock = match self.backend {
            Backend::Postgres => "FOR UPDATE OF d SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = sqlx::AssertSqlSafe(format!(
            "UPDATE deliveries SET lease_until = $1 WHERE id IN (\
               SELECT d.id FROM deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id \
               WHERE d.status = 'pending' AND d.next_attempt_at <= $2 AND d.lease_until < $2 AND w.enabled = 1 \
               AND (d.lead_id IS NULL OR NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.endpoint_id = d.endpoint_id \
                    AND p.lead_id = d.lead_id AND p.sequence < d.sequence AND p.status <> 'delivered')) \
               ORDER BY d.next_attempt_at, d.created_at LIMIT $3 {lock}) \
             RETURNING id, endpoint_id, event_type, body, attempts"
        ));
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(sql)
            .bind(now + lease_ms)
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        let mut endpoints: HashMap<String, (String, String, Option<String>)> = HashMap::new();
        let mut due = Vec::with_capacity(rows.len());
        for row in &rows {
            let endpoint_id: String = row.try_get("endpoint_id")?;
            if !endpoints.contains_key(&endpoint_id) {
                let e = sqlx::query(
                    "SELECT url, secret, previous_secret, previous_secret_expires_at FROM webhook_endpoints WHERE id = $1",
                )
                .bind(&endpoint_id)
                .fetch_one(&mut *tx)
                .await?;
                let expires: Option<i64> = e.try_get("previous_secret_expires_at")?;
                let previous: Option<String> = e.try_get("previous_secret")?;
                endpoints.insert(
                    endpoint_id.clone(),
                    (
                        e.try_get("url")?,
                        e.try_get("secret")?,
                        previous.filter(|_| expires.is_some_and(|t| t > now)),
                    ),
                );
            }
            let (url, secret, previous_secret) = endpoints[&endpoint_id].clone();
            due.push(DueDelivery {
                id: row.try_get("id")?,
                endpoint_id,
                event_type: row.try_get("event_type")?,
                body: row.try_get("body")?,
                attempts: row.try_get("attempts")?,
                url,
                secret,
                previous_secret,
            });
        }
        tx.commit().await?;
        Ok(due)
    }

    /// Logs a round of attempts and moves each delivery (and its endpoint's health) on, in one
    /// transaction.
    pub async fn record_attempts(
        &self,
        outcomes: &[(&DueDelivery, Attempt, Verdict)],
        disable_after_ms: i64,
    ) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        for (delivery, attempt, verdict) in outcomes {
            record_one(&mut tx, delivery, attempt, verdict, disable_after_ms, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Queues a delivery again, now (manual resend). Another tenant's delivery is not found.
    pub async fn resend_delivery(
        &self,
        org: &OrgId,
        endpoint_id: &str,
        delivery_id: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $4, lease_until = 0 \
             WHERE org_id = $1 AND endpoint_id = $2 AND id = $3",
        )
        .bind(org.as_str())
        .bind(endpoint_id)
        .bind(delivery_id)
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
        endpoint_id: &str,
        since_ms: i64,
    ) -> Result<u64, StoreError> {
        self.endpoint(org, endpoint_id).await?;
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $4, lease_until = 0 \
             WHERE org_id = $1 AND endpoint_id = $2 AND status = 'failed' AND created_at >= $3",
        )
        .bind(org.as_str())
        .bind(endpoint_id)
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
        endpoint_id: &str,
    ) -> Result<String, StoreError> {
        self.endpoint(org, endpoint_id).await?;
        let now = now_ms();
        let id = prefixed_id("msg_");
        let data = serde_json::json!({"message": "This is a test event from leadtrail."});
        let row = NewDelivery {
            id: id.clone(),
            org: org.as_str().to_owned(),
            endpoint_id: endpoint_id.to_owned(),
            event_id: None,
            event_type: "webhook.test".to_owned(),
            lead_id: None,
            sequence: None,
            body: envelope("webhook.test", &rfc3339(now), &data),
        };
        let mut tx = self.begin_write().await?;
        insert_deliveries(self.backend, &mut tx, std::slice::from_ref(&row), now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The endpoint's deliveries, newest first, each with its attempts.
    pub async fn deliveries(
        &self,
        org: &OrgId,
        endpoint_id: &str,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.endpoint(org, endpoint_id).await?;
        let rows = sqlx::query(
            "SELECT d.id, d.event_type, d.lead_id, d.sequence, d.status, d.attempts, d.next_attempt_at, \
             d.last_status, d.last_error, d.created_at, d.delivered_at, \
             (SELECT COUNT(*) FROM deliveries p WHERE p.endpoint_id = d.endpoint_id AND d.lead_id IS NOT NULL \
                AND p.lead_id = d.lead_id AND p.sequence < d.sequence AND p.status <> 'delivered') AS blockers \
             FROM deliveries d WHERE d.org_id = $1 AND d.endpoint_id = $2 \
             ORDER BY d.created_at DESC, d.id DESC LIMIT $3",
        )
        .bind(org.as_str())
        .bind(endpoint_id)
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
                .map(|a| {
                    Ok(Attempt {
                        attempted_at: a.try_get("attempted_at")?,
                        status_code: a
                            .try_get::<Option<i64>, _>("status_code")?
                            .and_then(|c| u16::try_from(c).ok()),
                        duration_ms: a.try_get("duration_ms")?,
                        error_class: a.try_get("error_class")?,
                        response_excerpt: a.try_get("response_excerpt")?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let status: String = r.try_get("status")?;
            out.push(DeliveryRecord {
                held: status == "pending" && r.try_get::<i64, _>("blockers")? > 0,
                id,
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
                log,
            });
        }
        Ok(out)
    }
}

async fn record_one(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    delivery: &DueDelivery,
    attempt: &Attempt,
    verdict: &Verdict,
    disable_after_ms: i64,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO delivery_attempts (delivery_id, endpoint_id, attempted_at, status_code, duration_ms, \
         error_class, response_excerpt) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&delivery.id)
    .bind(&delivery.endpoint_id)
    .bind(attempt.attempted_at)
    .bind(attempt.status_code.map(i64::from))
    .bind(attempt.duration_ms)
    .bind(attempt.error_class.as_deref())
    .bind(&attempt.response_excerpt)
    .execute(&mut **tx)
    .await?;
    let (status, next) = match verdict {
        Verdict::Delivered => ("delivered", now),
        Verdict::RetryAt(at) => ("pending", *at),
        Verdict::Exhausted | Verdict::Gone => ("failed", now),
    };
    sqlx::query(
        "UPDATE deliveries SET status = $2, attempts = attempts + 1, next_attempt_at = $3, lease_until = 0, \
         last_status = $4, last_error = $5, delivered_at = CASE WHEN $2 = 'delivered' THEN $6 ELSE delivered_at END \
         WHERE id = $1",
    )
    .bind(&delivery.id)
    .bind(status)
    .bind(next)
    .bind(attempt.status_code.map(i64::from))
    .bind(attempt.error_class.as_deref())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    match verdict {
        Verdict::Delivered => {
            sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1")
                .bind(&delivery.endpoint_id)
                .execute(&mut **tx)
                .await?;
        }
        Verdict::Gone => {
            disable(
                tx,
                &delivery.endpoint_id,
                "the endpoint answered 410 Gone",
                now,
            )
            .await?;
        }
        Verdict::RetryAt(_) | Verdict::Exhausted => {
            let since: Option<i64> = sqlx::query(
                "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2) WHERE id = $1 \
                 RETURNING failing_since",
            )
            .bind(&delivery.endpoint_id)
            .bind(now)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get("failing_since"))
            .transpose()?
            .flatten();
            if *verdict == Verdict::Exhausted && since.is_some_and(|s| now - s >= disable_after_ms)
            {
                let reason = "deliveries kept failing past the retry window with no success";
                disable(tx, &delivery.endpoint_id, reason, now).await?;
            }
        }
    }
    Ok(())
}

async fn disable(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    endpoint_id: &str,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE webhook_endpoints SET enabled = 0, disabled_reason = $2, updated_at = $3 WHERE id = $1")
        .bind(endpoint_id)
        .bind(reason)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_deliveries(
    backend: Backend,
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
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
            .bind(d.body.as_str())
            .bind("pending")
            .bind(0_i64)
            .bind(now)
            .bind(0_i64)
            .bind(now)
    })
    .await
}
