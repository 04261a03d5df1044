//! The outbox: events written in the same transaction as the change that causes them.

use sqlx::Row;

use super::dispatch::EventRow;
use super::exec::Exec;
use super::{Store, StoreError, TxParts, WriteTx};
use crate::domain::event::EventType;
use crate::domain::ids::{LeadId, OrgId, prefixed_id};

/// An event as stored in the outbox.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: String,
    pub event_type: String,
    pub lead_id: Option<String>,
    pub sequence: Option<i64>,
    pub payload: serde_json::Value,
    pub created_at: i64,
}

/// Appends an event to the outbox inside the caller's transaction. Like every event, it is
/// fanned out to the subscribed endpoints when that transaction commits (`WriteTx::commit`).
pub(super) async fn insert_event(
    tx: &mut WriteTx,
    org: &OrgId,
    event_type: &str,
    payload: &serde_json::Value,
    now: i64,
) -> Result<(), StoreError> {
    let event = EventRow {
        id: prefixed_id("evt_"),
        org: org.as_str().to_owned(),
        event_type: event_type.to_owned(),
        lead_id: None,
        sequence: None,
        payload: payload.to_string(),
    };
    sqlx::query(
        "INSERT INTO events (id, org_id, event_type, payload, created_at, fanned_out) \
         VALUES ($1, $2, $3, $4, $5, 1)",
    )
    .bind(&event.id)
    .bind(&event.org)
    .bind(&event.event_type)
    .bind(&event.payload)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    tx.outbox.push(event);
    Ok(())
}

/// Appends a lead's event with its per-lead sequence number (fanned out at commit, too).
pub(super) async fn write_lead_event<E: Exec>(
    w: &mut TxParts<'_, E>,
    org: &OrgId,
    event_type: EventType,
    lead_id: &str,
    sequence: i64,
    payload: String,
    now: i64,
) -> Result<(), StoreError> {
    let event = EventRow {
        id: prefixed_id("evt_"),
        org: org.as_str().to_owned(),
        event_type: event_type.id().to_owned(),
        lead_id: Some(lead_id.to_owned()),
        sequence: Some(sequence),
        payload,
    };
    w.db.exec(
        "INSERT INTO events (id, org_id, event_type, lead_id, sequence, payload, created_at, \
         fanned_out) VALUES ($1, $2, $3, $4, $5, $6, $7, 1)",
        vec![
            event.id.as_str().into(),
            event.org.as_str().into(),
            event.event_type.as_str().into(),
            lead_id.into(),
            sequence.into(),
            event.payload.as_str().into(),
            now.into(),
        ],
    )
    .await?;
    w.outbox.push(event);
    Ok(())
}

impl Store {
    /// The organization's events, oldest first.
    pub async fn events(&self, org: &OrgId) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, event_type, lead_id, sequence, payload, created_at FROM events WHERE org_id = $1 \
             ORDER BY created_at, id",
        )
        .bind(org.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// One lead's events, in their order.
    pub async fn lead_events(
        &self,
        org: &OrgId,
        lead: &LeadId,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let lead_id = lead.as_str();
        let rows = sqlx::query(
            "SELECT id, event_type, lead_id, sequence, payload, created_at FROM events \
             WHERE org_id = $1 AND lead_id = $2 ORDER BY sequence, created_at, id",
        )
        .bind(org.as_str())
        .bind(lead_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }
}

fn event_from_row(r: &sqlx::any::AnyRow) -> Result<StoredEvent, StoreError> {
    let payload: String = r.try_get("payload")?;
    Ok(StoredEvent {
        id: r.try_get("id")?,
        event_type: r.try_get("event_type")?,
        lead_id: r.try_get("lead_id")?,
        sequence: r.try_get("sequence")?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("event payload: {e}")))?,
        created_at: r.try_get("created_at")?,
    })
}
