//! Webhook endpoints: where an organization's events go, with which secret.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::dispatch::{park_endpoint, unpark_endpoint};
use super::{Conflict, Store, StoreError, now_ms};
use crate::domain::ids::{EndpointId, OrgId};

/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_OVERLAP_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: EndpointId,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<i64>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<i64>,
    /// The latest failed attempt's error class, and when it happened.
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

pub(super) const COLUMNS: &str = "id, url, description, events, secret, previous_secret, previous_secret_expires_at, \
    enabled, disabled_reason, failing_since, last_error, last_error_at, created_at, updated_at";

pub(super) fn endpoint_from_row(row: &AnyRow) -> Result<Endpoint, StoreError> {
    let events: String = row.try_get("events")?;
    Ok(Endpoint {
        id: EndpointId::from_stored(row.try_get("id")?),
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        events: serde_json::from_str(&events).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        secret: row.try_get("secret")?,
        previous_secret: row.try_get("previous_secret")?,
        previous_secret_expires_at: row.try_get("previous_secret_expires_at")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        disabled_reason: row.try_get("disabled_reason")?,
        failing_since: row.try_get("failing_since")?,
        last_error: row.try_get("last_error")?,
        last_error_at: row.try_get("last_error_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn events_json(events: &[String]) -> String {
    serde_json::to_string(events).unwrap_or_else(|_| "[]".to_owned())
}

impl Store {
    /// Saves an endpoint unless the organization already has `max` of them; `url` and
    /// `events` were validated by the caller.
    pub async fn create_endpoint(
        &self,
        org: &OrgId,
        url: &str,
        description: &str,
        events: &[String],
        secret: &str,
        max: u32,
    ) -> Result<Endpoint, StoreError> {
        let id = EndpointId::generate();
        let mut tx = self.begin_write().await?;
        // A no-op UPDATE takes the organization's row lock on PostgreSQL (SQLite's writer lock
        // is already held), so concurrent creates cannot both pass the count below.
        sqlx::query("UPDATE organizations SET updated_at = updated_at WHERE id = $1")
            .bind(org.as_str())
            .execute(&mut *tx)
            .await?;
        let count: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM webhook_endpoints WHERE org_id = $1")
                .bind(org.as_str())
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
        if count >= i64::from(max) {
            return Err(Conflict::EndpointLimitReached { limit: max }.into());
        }
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, org_id, url, description, events, secret, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7)",
        )
        .bind(id.as_str())
        .bind(org.as_str())
        .bind(url)
        .bind(description)
        .bind(events_json(events))
        .bind(secret)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.endpoint(org, &id).await
    }

    pub async fn endpoints(&self, org: &OrgId) -> Result<Vec<Endpoint>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM webhook_endpoints WHERE org_id = $1 ORDER BY created_at, id"
        ));
        let rows = sqlx::query(sql)
            .bind(org.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(endpoint_from_row).collect()
    }

    pub async fn endpoint(&self, org: &OrgId, id: &EndpointId) -> Result<Endpoint, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM webhook_endpoints WHERE org_id = $1 AND id = $2"
        ));
        let row = sqlx::query(sql)
            .bind(org.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        endpoint_from_row(&row)
    }

    /// Re-enabling clears the failure record, so the endpoint starts with a clean slate, and
    /// makes its whole queue due; disabling parks the queue until then.
    pub async fn update_endpoint(
        &self,
        org: &OrgId,
        id: &EndpointId,
        patch: EndpointPatch,
    ) -> Result<Endpoint, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET url = COALESCE($3, url), description = COALESCE($4, description), \
             events = COALESCE($5, events), \
             enabled = COALESCE($6, enabled), \
             disabled_reason = CASE WHEN $6 = 1 THEN NULL ELSE disabled_reason END, \
             failing_since = CASE WHEN $6 = 1 THEN NULL ELSE failing_since END, \
             updated_at = $7 WHERE org_id = $1 AND id = $2",
        )
        .bind(org.as_str())
        .bind(id.as_str())
        .bind(patch.url)
        .bind(patch.description)
        .bind(patch.events.as_deref().map(events_json))
        .bind(patch.enabled.map(i64::from))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        match patch.enabled {
            Some(true) => {
                unpark_endpoint(&mut tx, id, now).await?;
                tx.queued_deliveries();
            }
            Some(false) => park_endpoint(&mut tx, id).await?,
            None => {}
        }
        tx.commit().await?;
        self.endpoint(org, id).await
    }

    /// Replaces the secret; the old one keeps signing (as a second signature) for 24 hours.
    pub async fn rotate_endpoint_secret(
        &self,
        org: &OrgId,
        id: &EndpointId,
        new_secret: &str,
    ) -> Result<Endpoint, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_expires_at = $3, \
             secret = $4, updated_at = $5 WHERE org_id = $1 AND id = $2",
        )
        .bind(org.as_str())
        .bind(id.as_str())
        .bind(now + ROTATION_OVERLAP_MS)
        .bind(new_secret)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        self.endpoint(org, id).await
    }

    pub async fn delete_endpoint(&self, org: &OrgId, id: &EndpointId) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM delivery_attempts WHERE endpoint_id = $1 AND endpoint_id IN \
             (SELECT id FROM webhook_endpoints WHERE org_id = $2)",
        )
        .bind(id.as_str())
        .bind(org.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM deliveries WHERE endpoint_id = $1 AND org_id = $2")
            .bind(id.as_str())
            .bind(org.as_str())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM webhook_endpoints WHERE org_id = $1 AND id = $2")
            .bind(org.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }
}
