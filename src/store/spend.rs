//! Spend per source and month: set one month, list them, import many at once (all or
//! nothing), and what a report's range cost per source.

use std::collections::{BTreeMap, HashSet};

use sqlx::Row;

use super::{Store, StoreError, to_u32};
use crate::domain::ids::OrgId;
use crate::domain::source::SourceCode;
use crate::domain::spend::{ImportFile, Month, RefusedLine, SpendEntry, prorated};
use crate::domain::time_zone::{OrgTimeZone, date_of_day};
use crate::domain::widget::WidgetVersion;

/// One month of one source's spend, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendRow {
    pub entry: SpendEntry,
    /// `user:…` or `api_key:…`.
    pub updated_by: String,
    pub updated_at: i64,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpendImport {
    /// Every line was written.
    Imported(usize),
    /// Nothing was written; these lines name sources the organization does not have.
    Refused(Vec<RefusedLine>),
}

const UPSERT: &str = "INSERT INTO source_spend (org_id, widget_version, source_code, month, amount, \
    updated_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
    ON CONFLICT (org_id, widget_version, source_code, month) DO UPDATE SET \
    amount = excluded.amount, updated_by = excluded.updated_by, updated_at = excluded.updated_at";

impl Store {
    /// Sets a month's spend of a source (archived ones included); a source the organization
    /// does not have is not found.
    pub async fn set_spend(
        &self,
        org: &OrgId,
        entry: &SpendEntry,
        actor: &str,
    ) -> Result<SpendRow, StoreError> {
        let now = super::now_ms();
        let mut tx = self.begin_write().await?;
        if !source_keys(&mut tx, org)
            .await?
            .contains(&(entry.widget, entry.source))
        {
            return Err(StoreError::NotFound);
        }
        upsert(&mut tx, org, entry, actor, now).await?;
        tx.commit().await?;
        Ok(SpendRow {
            entry: entry.clone(),
            updated_by: actor.to_owned(),
            updated_at: now,
        })
    }

    /// Removes a month's spend; not found when there was none.
    pub async fn delete_spend(
        &self,
        org: &OrgId,
        widget: WidgetVersion,
        source: SourceCode,
        month: Month,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "DELETE FROM source_spend WHERE org_id = $1 AND widget_version = $2 \
             AND source_code = $3 AND month = $4",
        )
        .bind(org.as_str())
        .bind(i64::from(widget.get()))
        .bind(i64::from(source.get()))
        .bind(month.to_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    /// Writes every line or none: a line that could not be read, or that names a source the
    /// organization does not have (another tenant's included), refuses the whole file, and
    /// every such line is listed.
    pub async fn import_spend(
        &self,
        org: &OrgId,
        file: &ImportFile,
        actor: &str,
    ) -> Result<SpendImport, StoreError> {
        let now = super::now_ms();
        let mut tx = self.begin_write().await?;
        let known = source_keys(&mut tx, org).await?;
        let mut refused = file.refused.clone();
        refused.extend(
            file.lines
                .iter()
                .filter(|l| !known.contains(&(l.entry.widget, l.entry.source)))
                .map(|l| RefusedLine {
                    line: l.line,
                    reason: format!(
                        "widget {} has no source {}",
                        l.entry.widget,
                        l.entry.source.display_code()
                    ),
                }),
        );
        if !refused.is_empty() {
            refused.sort_by_key(|r| r.line);
            return Ok(SpendImport::Refused(refused));
        }
        for line in &file.lines {
            upsert(&mut tx, org, &line.entry, actor, now).await?;
        }
        tx.commit().await?;
        Ok(SpendImport::Imported(file.lines.len()))
    }

    /// Spend rows of the organization (one widget's, or all), months `from..=to`, by widget,
    /// source and month.
    pub async fn spend(
        &self,
        org: &OrgId,
        widget: Option<WidgetVersion>,
        from: Option<Month>,
        to: Option<Month>,
    ) -> Result<Vec<SpendRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT widget_version, source_code, month, amount, updated_by, updated_at \
             FROM source_spend WHERE org_id = $1 AND ($2 IS NULL OR widget_version = $2) \
             AND ($3 IS NULL OR month >= $3) AND ($4 IS NULL OR month <= $4) \
             ORDER BY widget_version, source_code, month",
        )
        .bind(org.as_str())
        .bind(widget.map(|w| i64::from(w.get())))
        .bind(from.map(|m| m.to_string()))
        .bind(to.map(|m| m.to_string()))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(spend_row).collect()
    }

    /// What each (widget version, source code) cost over `[from_ms, to_ms)`: each month's
    /// amount in proportion to the days of it the range covers, in the organization's days.
    /// Sources without any spend entered for those months are left out (their costs are
    /// unknown, not zero).
    pub async fn spend_in_range(
        &self,
        org: &OrgId,
        widget: Option<WidgetVersion>,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
        zone: &OrgTimeZone,
    ) -> Result<BTreeMap<(u32, u32), i64>, StoreError> {
        let from_day = from_ms.map(|ms| zone.day_of(ms));
        // The last day touched, exclusive: a range ending at midnight does not take that day.
        let to_day = to_ms.map(|ms| zone.day_of(ms - 1) + 1);
        if let (Some(f), Some(t)) = (from_day, to_day)
            && t <= f
        {
            return Ok(BTreeMap::new());
        }
        let month = |day: i64| Month::of(date_of_day(day));
        let rows = self
            .spend(
                org,
                widget,
                from_day.map(month),
                to_day.map(|d| month(d - 1)),
            )
            .await?;
        let mut out: BTreeMap<(u32, u32), i64> = BTreeMap::new();
        for row in rows {
            let e = &row.entry;
            *out.entry((e.widget.get(), e.source.get())).or_default() +=
                prorated(e.amount, e.month, from_day, to_day);
        }
        Ok(out)
    }
}

fn spend_row(row: &sqlx::any::AnyRow) -> Result<SpendRow, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(what.to_owned());
    Ok(SpendRow {
        entry: SpendEntry {
            widget: WidgetVersion::new(to_u32(row.try_get("widget_version")?, "widget")?)
                .ok_or_else(|| corrupt("widget version"))?,
            source: SourceCode::new(to_u32(row.try_get("source_code")?, "source")?)
                .ok_or_else(|| corrupt("source code"))?,
            month: Month::parse(&row.try_get::<String, _>("month")?)
                .map_err(|_| corrupt("month"))?,
            amount: row.try_get("amount")?,
        },
        updated_by: row.try_get("updated_by")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Every (widget version, source code) of the organization, archived ones included.
async fn source_keys(
    tx: &mut super::WriteTx,
    org: &OrgId,
) -> Result<HashSet<(WidgetVersion, SourceCode)>, StoreError> {
    let rows = sqlx::query(
        "SELECT w.version, s.code FROM sources s JOIN widgets w ON w.id = s.widget_id \
         WHERE s.org_id = $1",
    )
    .bind(org.as_str())
    .fetch_all(&mut **tx)
    .await?;
    let mut out = HashSet::new();
    for row in rows {
        let widget = WidgetVersion::new(to_u32(row.try_get("version")?, "widget")?);
        let source = SourceCode::new(to_u32(row.try_get("code")?, "source")?);
        if let (Some(w), Some(s)) = (widget, source) {
            out.insert((w, s));
        }
    }
    Ok(out)
}

async fn upsert(
    tx: &mut super::WriteTx,
    org: &OrgId,
    entry: &SpendEntry,
    actor: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(UPSERT)
        .bind(org.as_str())
        .bind(i64::from(entry.widget.get()))
        .bind(i64::from(entry.source.get()))
        .bind(entry.month.to_string())
        .bind(entry.amount)
        .bind(actor)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
