//! Lead outcomes: a person or a CRM records what happened after the lead (contacted, quoted,
//! won with the job's value, lost with a reason). Every change is kept with who and when,
//! moves the lead's report counters, and emits `lead.outcome_changed` in the lead's order.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::capture::{Idempotency, emit_next, remember, replay, tracking_from_row};
use super::rollups::{LEAD_FACTS, LeadFacts};
use super::{Conflict, Store, StoreError, WriteTx, now_ms, rfc3339};
use crate::domain::event::EventType;
use crate::domain::ids::{LeadId, OrgId, prefixed_id};
use crate::domain::outcome::{Outcome, OutcomeDecision, OutcomeKind, decide_outcome};

/// A lead's outcome as the API answers it (and as an idempotent retry gets it again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutcomeView {
    pub lead_id: String,
    pub outcome: OutcomeKind,
    /// The job's value in minor units of the organization's currency, when won.
    pub value: Option<i64>,
    /// A listed reason (`price`, `competitor`, `no_response`, `timing`, `out_of_area`,
    /// `not_a_fit`) or the business's own words, when lost.
    pub lost_reason: Option<String>,
    /// When the outcome last changed; `null` while it never has.
    pub changed_at: Option<String>,
}

impl OutcomeView {
    fn new(lead_id: &str, outcome: &Outcome, changed_at: Option<i64>) -> Self {
        Self {
            lead_id: lead_id.to_owned(),
            outcome: outcome.kind(),
            value: outcome.value(),
            lost_reason: outcome.lost_reason().map(|r| r.as_str().to_owned()),
            changed_at: changed_at.map(rfc3339),
        }
    }
}

/// One change, as the lead's history shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeChange {
    pub from: OutcomeKind,
    pub to: Outcome,
    /// `user:…` or `api_key:…`.
    pub actor: String,
    pub created_at: i64,
}

impl Store {
    /// Sets the lead's outcome, by `actor`. Asking for the outcome the lead already has
    /// changes nothing; a retry with the same `Idempotency-Key` gets the first answer. Another
    /// tenant's lead is not found.
    pub async fn set_outcome(
        &self,
        org: &OrgId,
        lead: &LeadId,
        to: Outcome,
        actor: &str,
        idempotency: Option<&Idempotency>,
    ) -> Result<OutcomeView, StoreError> {
        let lead_id = lead.as_str();
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        match replay::<OutcomeView, _>(&mut tx, org, idempotency).await? {
            Some(Ok(answer)) => return Ok(answer),
            Some(Err(_)) => return Err(Conflict::IdempotencyKeyReused.into()),
            None => {}
        }
        // Locks the lead (PostgreSQL) while it is read and changed.
        let lead = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE leads SET updated_at = updated_at WHERE org_id = $1 AND id = $2 \
             RETURNING widget_name, outcome_reason, outcome_changed_at, {LEAD_FACTS}"
        )))
        .bind(org.as_str())
        .bind(lead_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let current = Outcome::from_stored(
            &lead.try_get::<String, _>("outcome")?,
            lead.try_get("outcome_value")?,
            lead.try_get::<Option<String>, _>("outcome_reason")?
                .as_deref(),
        )
        .ok_or_else(|| StoreError::Corrupt("outcome".into()))?;
        let view = match decide_outcome(&current, to).map_err(Conflict::from)? {
            OutcomeDecision::Unchanged => {
                OutcomeView::new(lead_id, &current, lead.try_get("outcome_changed_at")?)
            }
            OutcomeDecision::Change { from, to } => {
                change(&mut tx, org, lead_id, &lead, &from, &to, actor, now).await?;
                OutcomeView::new(lead_id, &to, Some(now))
            }
        };
        remember(&mut tx, org, idempotency, &view, now).await?;
        tx.commit().await?;
        Ok(view)
    }

    /// The lead's outcome changes, oldest first. Another tenant's lead has none.
    pub async fn outcome_history(
        &self,
        org: &OrgId,
        lead: &LeadId,
    ) -> Result<Vec<OutcomeChange>, StoreError> {
        let lead_id = lead.as_str();
        let rows = sqlx::query(
            "SELECT from_outcome, to_outcome, value, reason, actor, created_at FROM outcome_changes \
             WHERE org_id = $1 AND lead_id = $2 ORDER BY created_at, id",
        )
        .bind(org.as_str())
        .bind(lead_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let corrupt = || StoreError::Corrupt("outcome change".into());
                Ok(OutcomeChange {
                    from: OutcomeKind::from_id(&r.try_get::<String, _>("from_outcome")?)
                        .ok_or_else(corrupt)?,
                    to: Outcome::from_stored(
                        &r.try_get::<String, _>("to_outcome")?,
                        r.try_get("value")?,
                        r.try_get::<Option<String>, _>("reason")?.as_deref(),
                    )
                    .ok_or_else(corrupt)?,
                    actor: r.try_get("actor")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }
}

/// Writes a change: the history row, the lead's columns, its report counters moved from what
/// it was to what it is, and the event.
#[allow(clippy::too_many_arguments)]
async fn change(
    tx: &mut WriteTx,
    org: &OrgId,
    lead_id: &str,
    lead: &sqlx::any::AnyRow,
    from: &Outcome,
    to: &Outcome,
    actor: &str,
    now: i64,
) -> Result<(), StoreError> {
    let reason = to.lost_reason().map(|r| r.as_str().to_owned());
    sqlx::query(
        "INSERT INTO outcome_changes (id, org_id, lead_id, from_outcome, to_outcome, value, reason, \
         actor, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(prefixed_id("oc_"))
    .bind(org.as_str())
    .bind(lead_id)
    .bind(from.kind().id())
    .bind(to.kind().id())
    .bind(to.value())
    .bind(reason.clone())
    .bind(actor)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let before = LeadFacts::from_row(lead)?;
    let after = LeadFacts::from_row(
        &sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE leads SET outcome = $2, outcome_value = $3, outcome_reason = $4, \
             outcome_changed_at = $5, updated_at = $5 WHERE id = $1 RETURNING {LEAD_FACTS}"
        )))
        .bind(lead_id)
        .bind(to.kind().id())
        .bind(to.value())
        .bind(reason.clone())
        .bind(now)
        .fetch_one(&mut **tx)
        .await?,
    )?;
    tx.move_lead(&before, &after).await?;
    let payload = serde_json::json!({
        "lead_id": lead_id,
        "outcome": to.kind(),
        "previous_outcome": from.kind(),
        "value": to.value(),
        "lost_reason": reason,
        "changed_at": rfc3339(now),
        "source_tracking": tracking_from_row(lead)?,
    });
    emit_next(
        tx,
        org,
        lead_id,
        EventType::LeadOutcomeChanged,
        &payload,
        now,
    )
    .await
}
