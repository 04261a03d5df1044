//! Privacy requests: erase one lead's personal data everywhere it was stored, find everything
//! held about one e-mail address, and drop raw request data past the organization's retention.

use sqlx::Row;

use super::capture::{from_json, json_text};
use super::leads::LeadRecord;
use super::{Store, StoreError, WriteTx, now_ms};
use crate::domain::DomainError;
use crate::domain::attribution::Utm;
use crate::domain::ids::{LeadId, OrgId};
use crate::domain::lead::{Address, PersonalInfo};
use crate::domain::privacy::{Scrubber, erased_address, erased_personal};
use crate::domain::self_report::SelfReported;

/// Rows changed per statement by the retention sweep, so one pass never holds the writer long.
pub const RETENTION_BATCH: i64 = 2_000;

/// What an erasure changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erasure {
    /// False when the lead had been erased before (nothing more to do).
    pub erased_now: bool,
    pub events: u64,
    pub deliveries: u64,
    pub attempts: u64,
    pub saved_replies: u64,
    pub visits: u64,
}

impl Store {
    /// Erases the lead's personal data (name, e-mail, phone, street, free-text answer, raw
    /// request parameters, the visitor link) from the lead and from every stored copy: its
    /// event payloads, its delivery bodies and the replies logged for them, the saved answers
    /// of idempotent requests, and its visitor's visits (page, referrer, visitor id). Its
    /// attribution, steps, enrichment, outcome and every count stay, so reports do not change.
    /// The capture token stops working. Erasing an erased lead changes nothing. One
    /// transaction; another tenant's lead is not found.
    pub async fn erase_lead(
        &self,
        org: &OrgId,
        lead: &LeadId,
        actor: &str,
    ) -> Result<Erasure, StoreError> {
        let lead_id = lead.as_str();
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        // Locks the lead (PostgreSQL) while it is read and changed.
        let row = sqlx::query(
            "UPDATE leads SET updated_at = updated_at WHERE org_id = $1 AND id = $2 \
             RETURNING personal, address, self_reported, visitor_id, erased_at",
        )
        .bind(org.as_str())
        .bind(lead_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        if row.try_get::<Option<i64>, _>("erased_at")?.is_some() {
            return Ok(Erasure::default());
        }
        let personal: Option<PersonalInfo> = row
            .try_get::<Option<String>, _>("personal")?
            .map(|p| from_json(&p, "personal"))
            .transpose()?;
        let address: Address = from_json(&row.try_get::<String, _>("address")?, "address")?;
        let said: Option<SelfReported> = row
            .try_get::<Option<String>, _>("self_reported")?
            .map(|s| from_json(&s, "self_reported"))
            .transpose()?;
        let visitor: Option<String> = row.try_get("visitor_id")?;
        let scrubber = Scrubber::for_lead(personal.as_ref(), &address, said.as_ref());

        let mut done = Erasure {
            erased_now: true,
            ..Erasure::default()
        };
        scrub_lead_documents(&mut tx, org, lead_id, &scrubber).await?;
        let personal = personal.as_ref().map(erased_personal);
        let said = said.map(|s| SelfReported { other: None, ..s });
        sqlx::query(
            "UPDATE leads SET personal = $3, address = $4, self_reported = $5, raw_params = '{}', \
             visitor_id = NULL, capture_token_digest = '', erased_at = $6, erased_by = $7, \
             updated_at = $6 WHERE org_id = $1 AND id = $2",
        )
        .bind(org.as_str())
        .bind(lead_id)
        .bind(personal.as_ref().map(json_text).transpose()?)
        .bind(json_text(&erased_address(&address))?)
        .bind(said.as_ref().map(json_text).transpose()?)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        if !scrubber.is_empty() {
            done.events = scrub_column(
                &mut tx,
                &scrubber,
                "SELECT id AS k, payload AS doc FROM events WHERE org_id = $1 AND lead_id = $2",
                "UPDATE events SET payload = $2 WHERE id = $1 AND org_id = $3",
                org,
                lead_id,
            )
            .await?;
            done.deliveries = scrub_column(
                &mut tx,
                &scrubber,
                "SELECT id AS k, body AS doc FROM deliveries WHERE org_id = $1 AND lead_id = $2",
                "UPDATE deliveries SET body = $2 WHERE id = $1 AND org_id = $3",
                org,
                lead_id,
            )
            .await?;
            done.attempts = scrub_attempts(&mut tx, &scrubber, org, lead_id).await?;
            // Saved answers name their lead; only those of this lead are read.
            done.saved_replies = scrub_column(
                &mut tx,
                &scrubber,
                "SELECT key AS k, response AS doc FROM idempotency_keys \
                 WHERE org_id = $1 AND response LIKE '%' || $2 || '%'",
                "UPDATE idempotency_keys SET response = $2 WHERE key = $1 AND org_id = $3",
                org,
                lead_id,
            )
            .await?;
        }
        if let Some(visitor) = visitor {
            done.visits = sqlx::query(
                "UPDATE visits SET visitor_id = NULL, page_url = NULL, referrer = NULL \
                 WHERE org_id = $1 AND visitor_id = $2",
            )
            .bind(org.as_str())
            .bind(&visitor)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        self.drop_old_page_images().await;
        Ok(done)
    }

    /// SQLite keeps old page images in the write-ahead log until it is reset: after an
    /// erasure the log is checkpointed and truncated, so the erased values leave the files on
    /// disk too (freed space inside the database is zeroed: `secure_delete`). Best effort: a
    /// long reader can keep the log, and the next checkpoint takes care of it.
    async fn drop_old_page_images(&self) {
        if self.sqlite_path.is_some()
            && let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await
        {
            tracing::warn!(error = %e, "checkpoint after an erasure failed; the next one will do");
        }
    }

    /// The leads whose personal e-mail is `email` (any case), newest first, with everything
    /// held about them: for a homeowner's request to see their data.
    pub async fn leads_by_email(
        &self,
        org: &OrgId,
        email: &str,
    ) -> Result<Vec<LeadRecord>, StoreError> {
        let email = email.trim().to_lowercase();
        if email.is_empty() || !email.contains('@') {
            return Err(DomainError::new("email", "give the e-mail address to look for").into());
        }
        // The stored e-mail is normalised to lower case when the step is taken, and `personal`
        // is the JSON the store wrote, so the field reads exactly `"email":"…"`.
        let needle = serde_json::to_string(&email)
            .map_err(|e| StoreError::Corrupt(format!("serialize: {e}")))?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM leads WHERE org_id = $1 AND personal IS NOT NULL \
             AND lower(personal) LIKE '%\"email\":' || $2 || '%' ORDER BY created_at DESC, id DESC",
        )
        .bind(org.as_str())
        .bind(&needle)
        .fetch_all(&self.pool)
        .await?;
        let mut leads = Vec::with_capacity(ids.len());
        for id in ids {
            let lead = self.lead(org, &LeadId::from_stored(id)).await?;
            if lead
                .personal
                .as_ref()
                .is_some_and(|p| p.email.eq_ignore_ascii_case(&email))
            {
                leads.push(lead);
            }
        }
        Ok(leads)
    }

    /// The visits of one visitor (oldest first): when, through which widget and source, from
    /// which page and referrer, with which tracking parameters.
    pub async fn visitor_visits(
        &self,
        org: &OrgId,
        visitor_id: &str,
    ) -> Result<Vec<VisitRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT widget_version, source_code, page_url, referrer, utm, created_at FROM visits \
             WHERE org_id = $1 AND visitor_id = $2 ORDER BY created_at, id",
        )
        .bind(org.as_str())
        .bind(visitor_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(VisitRecord {
                    widget_version: r.try_get("widget_version")?,
                    source_code: r.try_get("source_code")?,
                    page_url: r.try_get("page_url")?,
                    referrer: r.try_get("referrer")?,
                    // A visit without tracking parameters stores none (not an empty object).
                    utm: match r.try_get::<Option<String>, _>("utm")? {
                        Some(text) => from_json(&text, "visit utm")?,
                        None => Utm::default(),
                    },
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// The lead's visitor id, while it is kept (until erasure or the retention window).
    pub async fn lead_visitor(
        &self,
        org: &OrgId,
        lead: &LeadId,
    ) -> Result<Option<String>, StoreError> {
        let lead_id = lead.as_str();
        let visitor: Option<Option<String>> =
            sqlx::query_scalar("SELECT visitor_id FROM leads WHERE org_id = $1 AND id = $2")
                .bind(org.as_str())
                .bind(lead_id)
                .fetch_optional(&self.pool)
                .await?;
        visitor.ok_or(StoreError::NotFound)
    }

    /// Drops raw request data older than each organization's retention setting: a lead's raw
    /// arrival parameters and visitor id, a visit's page, referrer and visitor id. Counts,
    /// attribution and touches stay. A batch per statement; returns the rows changed.
    pub async fn drop_expired_raw_data(&self) -> Result<u64, StoreError> {
        let now = now_ms();
        let orgs = sqlx::query(
            "SELECT id, raw_data_retention_days FROM organizations \
             WHERE raw_data_retention_days IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut changed = 0;
        for row in orgs {
            let org: String = row.try_get("id")?;
            let days: i64 = row.try_get("raw_data_retention_days")?;
            let cutoff = now - days * crate::domain::time_zone::DAY_MS;
            for (table, clear, kept) in [
                (
                    "leads",
                    "raw_params = '{}', visitor_id = NULL",
                    "(raw_params <> '{}' OR visitor_id IS NOT NULL)",
                ),
                (
                    "visits",
                    "page_url = NULL, referrer = NULL, visitor_id = NULL",
                    "(page_url IS NOT NULL OR referrer IS NOT NULL OR visitor_id IS NOT NULL)",
                ),
            ] {
                loop {
                    let sql = format!(
                        "UPDATE {table} SET {clear} WHERE id IN (SELECT id FROM {table} \
                         WHERE org_id = $1 AND created_at < $2 AND {kept} LIMIT $3)"
                    );
                    let mut tx = self.begin_write().await?;
                    let n = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(&org)
                        .bind(cutoff)
                        .bind(RETENTION_BATCH)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    tx.commit().await?;
                    changed += n;
                    if n < u64::try_from(RETENTION_BATCH).unwrap_or(u64::MAX) {
                        break;
                    }
                }
            }
        }
        Ok(changed)
    }
}

/// One visit as a privacy export shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitRecord {
    pub widget_version: i64,
    pub source_code: i64,
    pub page_url: Option<String>,
    pub referrer: Option<String>,
    pub utm: Utm,
    pub created_at: i64,
}

/// Scrubs the lead row's own documents that keep their shape after erasure: enrichment,
/// attribution and the first touch as the browser sent it (a landing page with the e-mail in
/// its query string, say).
async fn scrub_lead_documents(
    tx: &mut WriteTx,
    org: &OrgId,
    lead_id: &str,
    scrubber: &Scrubber,
) -> Result<(), StoreError> {
    for column in ["enrichment", "attribution", "first_touch"] {
        let doc: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT {column} FROM leads WHERE org_id = $1 AND id = $2"
        )))
        .bind(org.as_str())
        .bind(lead_id)
        .fetch_one(&mut **tx)
        .await?;
        if let Some(scrubbed) = doc.and_then(|d| scrubber.json(&d)) {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE leads SET {column} = $3 WHERE org_id = $1 AND id = $2"
            )))
            .bind(org.as_str())
            .bind(lead_id)
            .bind(scrubbed)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// The receivers' replies logged for the lead's deliveries.
async fn scrub_attempts(
    tx: &mut WriteTx,
    scrubber: &Scrubber,
    org: &OrgId,
    lead_id: &str,
) -> Result<u64, StoreError> {
    let rows = sqlx::query(
        "SELECT a.id, a.response_excerpt FROM delivery_attempts a \
         JOIN deliveries d ON d.id = a.delivery_id WHERE d.org_id = $1 AND d.lead_id = $2",
    )
    .bind(org.as_str())
    .bind(lead_id)
    .fetch_all(&mut **tx)
    .await?;
    let mut changed = 0;
    for row in rows {
        let excerpt: String = row.try_get("response_excerpt")?;
        if let Some(scrubbed) = scrubber.text(&excerpt) {
            sqlx::query("UPDATE delivery_attempts SET response_excerpt = $2 WHERE id = $1")
                .bind(row.try_get::<i64, _>("id")?)
                .bind(scrubbed)
                .execute(&mut **tx)
                .await?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// Reads `(k, doc)` rows with `select` (bound: org, lead), scrubs each document, and writes
/// back the changed ones with `update` (bound: k, doc, org). Returns how many changed.
async fn scrub_column(
    tx: &mut WriteTx,
    scrubber: &Scrubber,
    select: &'static str,
    update: &'static str,
    org: &OrgId,
    lead_id: &str,
) -> Result<u64, StoreError> {
    let rows = sqlx::query(select)
        .bind(org.as_str())
        .bind(lead_id)
        .fetch_all(&mut **tx)
        .await?;
    let mut changed = 0;
    for row in rows {
        let key: String = row.try_get("k")?;
        let doc: String = row.try_get("doc")?;
        if let Some(scrubbed) = scrubber.json(&doc) {
            sqlx::query(update)
                .bind(&key)
                .bind(scrubbed)
                .bind(org.as_str())
                .execute(&mut **tx)
                .await?;
            changed += 1;
        }
    }
    Ok(changed)
}
