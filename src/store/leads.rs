//! Reading leads: one by id, or a filtered page, newest first, by keyset cursor.

use super::rollups::{LEAD_FACTS, LeadFacts};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::capture::{FirstTouch, StoredContext, from_json};
use super::exec::Named;
use super::{Store, StoreError, to_u32};
use crate::domain::attribution::{Attribution, AttributionNote, DerivedChannel};
use crate::domain::channel::ChannelCategory;
use crate::domain::estimate::Enrichment;
use crate::domain::event::CorrectedSource;
use crate::domain::ids::{LeadId, OrgId};
use crate::domain::lead::{
    Address, ContactPreference, LeadStatus, PersonalInfo, ProjectDetails, RecordSource,
};
use crate::domain::multi_touch::TouchPoint;
use crate::domain::outcome::{Outcome, OutcomeKind};
use crate::domain::self_report::SelfReported;
use crate::domain::source::SourceCode;
use crate::domain::widget::WidgetVersion;

#[derive(Debug, Clone)]
pub struct LeadRecord {
    pub id: LeadId,
    pub status: LeadStatus,
    pub widget_version: WidgetVersion,
    pub widget_name: String,
    pub source_code: SourceCode,
    pub source_name: String,
    pub source_category: ChannelCategory,
    pub derived_channel: Option<DerivedChannel>,
    pub first_touch: Option<FirstTouch>,
    pub first_touch_widget_version: Option<WidgetVersion>,
    pub first_touch_source_code: Option<SourceCode>,
    pub raw_params: serde_json::Value,
    pub address: Address,
    pub project: Option<ProjectDetails>,
    pub personal: Option<PersonalInfo>,
    pub contact: Option<ContactPreference>,
    pub enrichment: Option<Enrichment>,
    /// Landing page, referrer, campaign tags, click ids and first touch, frozen at arrival.
    pub attribution: Attribution,
    pub attribution_note: Option<AttributionNote>,
    pub record_source: RecordSource,
    pub self_reported: Option<SelfReported>,
    /// A person's re-assignment of the lead to another source of its widget.
    pub corrected: Option<CorrectedSource>,
    /// What happened after the lead arrived.
    pub outcome: Outcome,
    pub outcome_changed_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub enriched_at: Option<i64>,
    /// The visitor's touches gathered when the lead arrived, oldest first, the arrival last
    /// (empty for leads from before touches were kept).
    pub touches: Vec<TouchPoint>,
    /// When the lead's personal data was erased on request (its attribution and counts stay).
    pub erased_at: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct LeadFilter {
    pub widget: Option<WidgetVersion>,
    pub source: Option<SourceCode>,
    pub status: Option<LeadStatus>,
    pub outcome: Option<OutcomeKind>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Continue after this (created_at, id): the last lead of the previous page.
    pub after: Option<(i64, String)>,
    pub limit: i64,
}

const LEAD_COLUMNS: &str = "id, status, widget_version, widget_name, source_code, source_name, \
    source_category, derived_channel, first_touch, first_touch_widget_version, first_touch_source_code, \
    raw_params, address, project, personal, contact, enrichment, attribution, attribution_note, \
    record_source, self_reported, corrected_source, outcome, outcome_value, outcome_reason, \
    outcome_changed_at, created_at, updated_at, enriched_at, touches, erased_at";

fn lead_from_row(row: &AnyRow) -> Result<LeadRecord, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(what.to_owned());
    let status: String = row.try_get("status")?;
    let category: String = row.try_get("source_category")?;
    let derived: Option<String> = row.try_get("derived_channel")?;
    let ft_widget: Option<i64> = row.try_get("first_touch_widget_version")?;
    let ft_source: Option<i64> = row.try_get("first_touch_source_code")?;
    let raw: String = row.try_get("raw_params")?;
    let context = StoredContext::from_row(row)?;
    let note: Option<String> = row.try_get("attribution_note")?;
    let outcome = Outcome::from_stored(
        &row.try_get::<String, _>("outcome")?,
        row.try_get("outcome_value")?,
        row.try_get::<Option<String>, _>("outcome_reason")?
            .as_deref(),
    )
    .ok_or_else(|| corrupt("outcome"))?;
    Ok(LeadRecord {
        outcome,
        outcome_changed_at: row.try_get("outcome_changed_at")?,
        attribution: context.attribution,
        attribution_note: note.as_deref().and_then(AttributionNote::from_id),
        record_source: context.record_source,
        self_reported: context.self_reported,
        corrected: context.corrected,
        id: LeadId::from_stored(row.try_get("id")?),
        status: LeadStatus::from_id(&status).ok_or_else(|| corrupt("lead status"))?,
        widget_version: WidgetVersion::new(to_u32(row.try_get("widget_version")?, "widget")?)
            .ok_or_else(|| corrupt("widget version"))?,
        widget_name: row.try_get("widget_name")?,
        source_code: SourceCode::new(to_u32(row.try_get("source_code")?, "source")?)
            .ok_or_else(|| corrupt("source code"))?,
        source_name: row.try_get("source_name")?,
        source_category: ChannelCategory::from_id(&category).ok_or_else(|| corrupt("category"))?,
        derived_channel: derived.as_deref().and_then(DerivedChannel::from_id),
        first_touch: row.named_json("first_touch")?,
        first_touch_widget_version: ft_widget
            .and_then(|v| u32::try_from(v).ok())
            .and_then(WidgetVersion::new),
        first_touch_source_code: ft_source
            .and_then(|v| u32::try_from(v).ok())
            .and_then(SourceCode::new),
        raw_params: from_json(&raw, "raw_params")?,
        address: from_json(&row.try_get::<String, _>("address")?, "address")?,
        project: row.named_json("project")?,
        personal: row.named_json("personal")?,
        contact: row.named_json("contact")?,
        enrichment: row.named_json("enrichment")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        enriched_at: row.try_get("enriched_at")?,
        touches: row.named_json("touches")?.unwrap_or_default(),
        erased_at: row.try_get("erased_at")?,
    })
}

impl Store {
    pub async fn lead(&self, org: &OrgId, id: &LeadId) -> Result<LeadRecord, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {LEAD_COLUMNS} FROM leads WHERE org_id = $1 AND id = $2"
        ));
        let row = sqlx::query(sql)
            .bind(org.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        lead_from_row(&row)
    }

    /// A page of leads, newest first. Only the filters given become conditions, so each
    /// combination is its own statement and the planner can pick the index that matches it
    /// (`x IS NULL OR …` conditions would hide every index but one from SQLite).
    pub async fn leads(
        &self,
        org: &OrgId,
        filter: &LeadFilter,
    ) -> Result<Vec<LeadRecord>, StoreError> {
        let mut conditions = vec!["org_id = $1".to_owned()];
        let mut next = 2;
        let mut placeholder = |conditions: &mut Vec<String>, template: &str| {
            conditions.push(template.replace('?', &format!("${next}")));
            next += 1;
        };
        if filter.widget.is_some() {
            placeholder(&mut conditions, "widget_version = ?");
        }
        if filter.source.is_some() {
            placeholder(&mut conditions, "source_code = ?");
        }
        if filter.status.is_some() {
            placeholder(&mut conditions, "status = ?");
        }
        if filter.outcome.is_some() {
            placeholder(&mut conditions, "outcome = ?");
        }
        if filter.from_ms.is_some() {
            placeholder(&mut conditions, "created_at >= ?");
        }
        if filter.to_ms.is_some() {
            placeholder(&mut conditions, "created_at < ?");
        }
        if filter.after.is_some() {
            let (at, id) = (next, next + 1);
            conditions.push(format!(
                "(created_at < ${at} OR (created_at = ${at} AND id < ${id}))"
            ));
            next += 2;
        }
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {LEAD_COLUMNS} FROM leads WHERE {} ORDER BY created_at DESC, id DESC LIMIT ${next}",
            conditions.join(" AND ")
        ));
        let mut query = sqlx::query(sql).bind(org.as_str());
        if let Some(w) = filter.widget {
            query = query.bind(i64::from(w.get()));
        }
        if let Some(s) = filter.source {
            query = query.bind(i64::from(s.get()));
        }
        if let Some(status) = filter.status {
            query = query.bind(status.id());
        }
        if let Some(outcome) = filter.outcome {
            query = query.bind(outcome.id());
        }
        if let Some(from) = filter.from_ms {
            query = query.bind(from);
        }
        if let Some(to) = filter.to_ms {
            query = query.bind(to);
        }
        if let Some((at, id)) = &filter.after {
            query = query.bind(*at).bind(id.clone());
        }
        let rows = query.bind(filter.limit).fetch_all(&self.pool).await?;
        rows.iter().map(lead_from_row).collect()
    }

    /// Moves leads and their events into the past, as if they had arrived at the given times,
    /// and marks those events as already dispatched (they predate any endpoint). Only the demo
    /// seeding uses this: real history is never rewritten.
    pub async fn backdate_leads(
        &self,
        org: &OrgId,
        leads: &[(LeadId, i64)],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for (lead, at) in leads {
            let id = lead.as_str();
            let Some(was) = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {LEAD_FACTS} FROM leads WHERE org_id = $1 AND id = $2"
            )))
            .bind(org.as_str())
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            else {
                continue;
            };
            let moved = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE leads SET created_at = $1, updated_at = $1 + 600000, \
                 enriched_at = CASE WHEN enriched_at IS NULL THEN NULL ELSE $1 + 660000 END \
                 WHERE org_id = $2 AND id = $3 RETURNING {LEAD_FACTS}"
            )))
            .bind(*at)
            .bind(org.as_str())
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            // The lead's report counters move to its new day.
            tx.move_lead(&LeadFacts::from_row(&was)?, &LeadFacts::from_row(&moved)?)
                .await?;
            sqlx::query(
                "UPDATE events SET created_at = $1 + COALESCE(sequence, 0) * 60000, fanned_out = 1 \
                 WHERE org_id = $2 AND lead_id = $3",
            )
            .bind(*at)
            .bind(org.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
