//! Enrichment jobs: claimed with a lease (so a crashed worker's job is picked up again), written
//! back once, with `lead.enriched` (and `lead.rental_alert`, and a waiting
//! `lead.contact_requested`) in the same transaction.

use super::rollups::{LEAD_FACTS, LeadFacts};
use sqlx::Row;

use super::capture::{emit_next, from_json, tracking_from_row};
use super::{Backend, Store, StoreError, now_ms, rfc3339};
use crate::domain::estimate::Enrichment;
use crate::domain::event::{self, EnrichedLead, EventType};
use crate::domain::ids::OrgId;
use crate::domain::lead::{Address, ContactPreference, PersonalInfo, ProjectDetails};

/// A lead waiting for enrichment, with what the enricher needs.
#[derive(Debug, Clone)]
pub struct EnrichmentJob {
    pub org: OrgId,
    pub lead_id: String,
    pub project: ProjectDetails,
    pub personal: PersonalInfo,
    pub attempts: i64,
}

impl Store {
    /// Claims up to `limit` pending leads whose lease has run out, for `lease_ms`.
    /// Workers on other nodes skip leads already claimed (`SKIP LOCKED` on PostgreSQL; SQLite
    /// has one writer at a time anyway).
    pub async fn claim_enrichment(
        &self,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<EnrichmentJob>, StoreError> {
        let now = now_ms();
        let sql = match self.backend {
            Backend::Postgres => {
                "UPDATE leads SET enrichment_lease_until = $1, enrichment_attempts = enrichment_attempts + 1 \
                 WHERE id IN (SELECT id FROM leads WHERE enrichment_state = 'pending' \
                   AND enrichment_lease_until < $2 ORDER BY updated_at LIMIT $3 FOR NO KEY UPDATE SKIP LOCKED) \
                 RETURNING id, org_id, project, personal, enrichment_attempts"
            }
            Backend::Sqlite => {
                "UPDATE leads SET enrichment_lease_until = $1, enrichment_attempts = enrichment_attempts + 1 \
                 WHERE id IN (SELECT id FROM leads WHERE enrichment_state = 'pending' \
                   AND enrichment_lease_until < $2 ORDER BY updated_at LIMIT $3) \
                 RETURNING id, org_id, project, personal, enrichment_attempts"
            }
        };
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(sql)
            .bind(now + lease_ms)
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| {
                let project: Option<String> = r.try_get("project")?;
                let personal: Option<String> = r.try_get("personal")?;
                Ok(EnrichmentJob {
                    org: OrgId::from_stored(r.try_get("org_id")?),
                    lead_id: r.try_get("id")?,
                    project: from_json(&project.unwrap_or_default(), "project")?,
                    personal: from_json(&personal.unwrap_or_default(), "personal")?,
                    attempts: r.try_get("enrichment_attempts")?,
                })
            })
            .collect()
    }

    /// Writes the result back once; returns false if another worker already did.
    pub async fn write_enrichment(
        &self,
        job: &EnrichmentJob,
        enrichment: &Enrichment,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE leads SET enrichment = $2, enrichment_state = 'done', enriched_at = $3, updated_at = $3, \
             score = $4, pipeline_value = $5 \
             WHERE id = $1 AND enrichment_state = 'pending' \
             RETURNING address, contact, personal, widget_name, {LEAD_FACTS}",
        )))
        .bind(&job.lead_id)
        .bind(serde_json::to_string(enrichment).map_err(|e| StoreError::Corrupt(e.to_string()))?)
        .bind(now)
        .bind(i64::from(enrichment.score))
        .bind(enrichment.estimate.midpoint())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        // The lead's report row gains its enrichment, score and pipeline value (none for a
        // lead already won or lost before it was enriched).
        let facts = LeadFacts::from_row(&row)?;
        tx.roll_lead(&facts, facts.enrichment()).await?;
        let address: Address = from_json(&row.try_get::<String, _>("address")?, "address")?;
        let contact: Option<String> = row.try_get("contact")?;
        // The lead as it is now, not as the job read it: a lead erased while it was being
        // enriched sends its events without the personal data.
        let personal: PersonalInfo = match row.try_get::<Option<String>, _>("personal")? {
            Some(p) => from_json(&p, "personal")?,
            None => job.personal.clone(),
        };
        let tracking = tracking_from_row(&row)?;
        let created_at = rfc3339(row.try_get("created_at")?);
        let lead = EnrichedLead {
            lead_id: &job.lead_id,
            created_at: &created_at,
            address: &address,
            project: &job.project,
            personal: &personal,
            enrichment,
            tracking: &tracking,
        };
        let (org, id) = (&job.org, job.lead_id.as_str());
        emit_next(
            &mut tx,
            org,
            id,
            EventType::LeadEnriched,
            &event::enriched(&lead),
            now,
        )
        .await?;
        if !personal.owner_occupied {
            emit_next(
                &mut tx,
                org,
                id,
                EventType::LeadRentalAlert,
                &event::rental_alert(&lead),
                now,
            )
            .await?;
        }
        // The homeowner finished the contact step while enrichment ran; its event was held
        // back so it follows `lead.enriched`.
        if let Some(contact) = contact {
            let contact: ContactPreference = from_json(&contact, "contact")?;
            let payload = event::contact_requested(id, &personal, &contact, &tracking);
            emit_next(
                &mut tx,
                org,
                id,
                EventType::LeadContactRequested,
                &payload,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}
