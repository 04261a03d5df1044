//! Source corrections: a person re-assigns a lead to another source of its widget, with a
//! reason. The arrival snapshot is never touched; reports count the corrected source; every
//! correction is kept with who and when, and emits `lead.source_corrected`.

use super::rollups::{LEAD_FACTS, LeadFacts};
use sqlx::Row;

use super::capture::{emit_next, json_text, tracking_from_row};
use super::leads::LeadRecord;
use super::{Store, StoreError, now_ms, rfc3339, to_u32};
use crate::domain::DomainError;
use crate::domain::event::{CorrectedSource, EventType};
use crate::domain::ids::{LeadId, OrgId, prefixed_id};
use crate::domain::source::SourceCode;

const REASON_MAX: usize = 200;

/// One correction, as the lead's history shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correction {
    pub from_code: SourceCode,
    pub to_code: SourceCode,
    pub reason: String,
    /// `user:…` or `api_key:…`.
    pub actor: String,
    pub created_at: i64,
}

impl Store {
    /// Credits the lead to `to` (a source of the lead's own widget, archived ones included),
    /// for `reason`, by `actor`. Another tenant's lead is not found.
    pub async fn correct_source(
        &self,
        org: &OrgId,
        id: &LeadId,
        to: SourceCode,
        reason: &str,
        actor: &str,
    ) -> Result<LeadRecord, StoreError> {
        let lead_id = id.as_str();
        let reason = reason.trim();
        if reason.is_empty()
            || reason.chars().count() > REASON_MAX
            || reason.chars().any(char::is_control)
        {
            return Err(DomainError::new(
                "reason",
                format!("say why, in 1 to {REASON_MAX} characters"),
            )
            .into());
        }
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        // Locks the lead (PostgreSQL) while it is read and changed.
        let lead = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE leads SET updated_at = $3 WHERE org_id = $1 AND id = $2 \
             RETURNING widget_name, {LEAD_FACTS}"
        )))
        .bind(org.as_str())
        .bind(lead_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let widget = lead.try_get::<i64, _>("widget_version")?;
        let arrived: i64 = lead.try_get("source_code")?;
        let corrected: Option<i64> = lead.try_get("corrected_source_code")?;
        let current = corrected.unwrap_or(arrived);
        let target = sqlx::query(
            "SELECT s.name, s.channel_category FROM sources s JOIN widgets w ON w.id = s.widget_id \
             WHERE s.org_id = $1 AND w.version = $2 AND s.code = $3",
        )
        .bind(org.as_str())
        .bind(widget)
        .bind(i64::from(to.get()))
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| {
            DomainError::new(
                "source",
                format!("the lead's widget ({widget:02}) has no source {to}"),
            )
        })?;
        if i64::from(to.get()) == current {
            return Err(DomainError::new(
                "source",
                format!("the lead is already credited to {to}"),
            )
            .into());
        }
        let correction = CorrectedSource {
            source_code: to.to_string(),
            source_label: target.try_get("name")?,
            reason: reason.to_owned(),
            corrected_at: rfc3339(now),
        };
        sqlx::query(
            "INSERT INTO source_corrections (id, org_id, lead_id, from_code, to_code, reason, actor, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(prefixed_id("cor_"))
        .bind(org.as_str())
        .bind(lead_id)
        .bind(current)
        .bind(i64::from(to.get()))
        .bind(reason)
        .bind(actor)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // The lead's whole contribution moves from its old report row to its new one.
        let before = LeadFacts::from_row(&lead)?;
        tx.roll_lead(&before, before.whole().negated()).await?;
        let after = LeadFacts::from_row(
            &sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE leads SET corrected_source_code = $2, corrected_source = $3, \
                 corrected_source_category = $4 WHERE id = $1 RETURNING {LEAD_FACTS}"
            )))
            .bind(lead_id)
            .bind(i64::from(to.get()))
            .bind(json_text(&correction)?)
            .bind(target.try_get::<String, _>("channel_category")?)
            .fetch_one(&mut *tx)
            .await?,
        )?;
        tx.roll_lead(&after, after.whole()).await?;
        let from = SourceCode::new(to_u32(current, "source code")?)
            .ok_or_else(|| StoreError::Corrupt("source code".into()))?;
        let payload = serde_json::json!({
            "lead_id": lead_id,
            "previous_source_code": from.to_string(),
            "source_tracking": tracking_from_row(&lead)?,
        });
        emit_next(
            &mut tx,
            org,
            lead_id,
            EventType::LeadSourceCorrected,
            &payload,
            now,
        )
        .await?;
        tx.commit().await?;
        self.lead(org, id).await
    }

    /// The lead's corrections, oldest first. Another tenant's lead has none.
    pub async fn corrections(
        &self,
        org: &OrgId,
        lead: &LeadId,
    ) -> Result<Vec<Correction>, StoreError> {
        let lead_id = lead.as_str();
        let rows = sqlx::query(
            "SELECT from_code, to_code, reason, actor, created_at FROM source_corrections \
             WHERE org_id = $1 AND lead_id = $2 ORDER BY created_at, id",
        )
        .bind(org.as_str())
        .bind(lead_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let code = |col: &str| -> Result<SourceCode, StoreError> {
                    SourceCode::new(to_u32(r.try_get(col)?, "source code")?)
                        .ok_or_else(|| StoreError::Corrupt("source code".into()))
                };
                Ok(Correction {
                    from_code: code("from_code")?,
                    to_code: code("to_code")?,
                    reason: r.try_get("reason")?,
                    actor: r.try_get("actor")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }
}
