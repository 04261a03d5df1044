//! Report queries: counts per widget and source, and per period, over a date range.

use std::collections::BTreeMap;

use sqlx::Row;

use super::{Store, StoreError, to_u32};
use crate::domain::ids::OrgId;
use crate::domain::self_report::SelfReported;
use crate::domain::widget::WidgetVersion;

/// Which arrival a lead is counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Touch {
    #[default]
    Last,
    /// The first tracked source the visitor came through; a lead without one counts under
    /// its own arrival, which was then its first touch.
    First,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ReportFilter {
    pub widget: Option<WidgetVersion>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub touch: Touch,
}

/// Counters for one (widget version, source code).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub visits: u64,
    pub leads: u64,
    pub enriched: u64,
    pub contact_requested: u64,
    /// Of `leads`, how many a person re-assigned to this source.
    pub corrected: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Interval {
    Day,
    Week,
}

/// The source a lead is credited to: the one a person corrected it to, else its arrival.
const CREDITED_SOURCE: &str = "COALESCE(corrected_source_code, source_code)";

fn count(row: &sqlx::any::AnyRow, col: &str) -> Result<u64, StoreError> {
    let n: Option<i64> = row.try_get(col)?;
    Ok(u64::try_from(n.unwrap_or(0)).unwrap_or(0))
}

impl Store {
    /// Counts per (widget version, source code), keyed by their numbers.
    pub async fn source_counts(
        &self,
        org: &OrgId,
        filter: &ReportFilter,
    ) -> Result<BTreeMap<(u32, u32), Counts>, StoreError> {
        let mut out: BTreeMap<(u32, u32), Counts> = BTreeMap::new();
        let widget = filter.widget.map(|w| i64::from(w.get()));
        let visits = sqlx::query(
            "SELECT widget_version, source_code, COUNT(*) AS n FROM visits WHERE org_id = $1 \
             AND ($2 IS NULL OR widget_version = $2) AND ($3 IS NULL OR created_at >= $3) \
             AND ($4 IS NULL OR created_at < $4) GROUP BY widget_version, source_code",
        )
        .bind(org.as_str())
        .bind(widget)
        .bind(filter.from_ms)
        .bind(filter.to_ms)
        .fetch_all(&self.pool)
        .await?;
        for row in &visits {
            let key = (
                to_u32(row.try_get("widget_version")?, "widget")?,
                to_u32(row.try_get("source_code")?, "source")?,
            );
            out.entry(key).or_default().visits = count(row, "n")?;
        }
        // Only these two constant expressions differ between the touches. Last touch counts
        // the source a person corrected the lead to; first touch is what tracking saw.
        let (wv, sc) = match filter.touch {
            Touch::Last => ("widget_version", CREDITED_SOURCE),
            Touch::First => (
                "COALESCE(first_touch_widget_version, widget_version)",
                "COALESCE(first_touch_source_code, source_code)",
            ),
        };
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {wv} AS wv, {sc} AS sc, COUNT(*) AS leads, \
             SUM(CASE WHEN enrichment_state = 'done' THEN 1 ELSE 0 END) AS enriched, \
             SUM(CASE WHEN step = 4 THEN 1 ELSE 0 END) AS contact, \
             SUM(CASE WHEN corrected_source_code IS NOT NULL THEN 1 ELSE 0 END) AS corrected \
             FROM leads WHERE org_id = $1 AND ($2 IS NULL OR {wv} = $2) \
             AND ($3 IS NULL OR created_at >= $3) AND ($4 IS NULL OR created_at < $4) \
             GROUP BY {wv}, {sc}"
        ));
        let leads = sqlx::query(sql)
            .bind(org.as_str())
            .bind(widget)
            .bind(filter.from_ms)
            .bind(filter.to_ms)
            .fetch_all(&self.pool)
            .await?;
        for row in &leads {
            let key = (
                to_u32(row.try_get("wv")?, "widget")?,
                to_u32(row.try_get("sc")?, "source")?,
            );
            let entry = out.entry(key).or_default();
            entry.leads = count(row, "leads")?;
            entry.enriched = count(row, "enriched")?;
            entry.contact_requested = count(row, "contact")?;
            if filter.touch == Touch::Last {
                entry.corrected = count(row, "corrected")?;
            }
        }
        Ok(out)
    }

    /// Visits and (last-touch) leads per period and source; periods are UTC days, or weeks
    /// starting Monday, numbered in days since the Unix epoch.
    pub async fn period_counts(
        &self,
        org: &OrgId,
        filter: &ReportFilter,
        interval: Interval,
    ) -> Result<BTreeMap<(i64, u32, u32), (u64, u64)>, StoreError> {
        // Day 0 (1970-01-01) was a Thursday: shifting by 3 makes weeks start on Monday.
        let bucket = match interval {
            Interval::Day => "(created_at / 86400000)",
            Interval::Week => "(((created_at / 86400000) + 3) / 7 * 7 - 3)",
        };
        let mut out: BTreeMap<(i64, u32, u32), (u64, u64)> = BTreeMap::new();
        let widget = filter.widget.map(|w| i64::from(w.get()));
        for (table, source, is_visit) in [
            ("visits", "source_code", true),
            ("leads", CREDITED_SOURCE, false),
        ] {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {bucket} AS period, widget_version, {source} AS source_code, COUNT(*) AS n \
                 FROM {table} WHERE org_id = $1 AND ($2 IS NULL OR widget_version = $2) \
                 AND ($3 IS NULL OR created_at >= $3) AND ($4 IS NULL OR created_at < $4) \
                 GROUP BY {bucket}, widget_version, {source}"
            ));
            let rows = sqlx::query(sql)
                .bind(org.as_str())
                .bind(widget)
                .bind(filter.from_ms)
                .bind(filter.to_ms)
                .fetch_all(&self.pool)
                .await?;
            for row in &rows {
                let key = (
                    row.try_get::<i64, _>("period")?,
                    to_u32(row.try_get("widget_version")?, "widget")?,
                    to_u32(row.try_get("source_code")?, "source")?,
                );
                let entry = out.entry(key).or_default();
                if is_visit {
                    entry.0 = count(row, "n")?;
                } else {
                    entry.1 = count(row, "n")?;
                }
            }
        }
        Ok(out)
    }

    /// Leads per (widget version, credited source, self-reported answer), for the tracked ×
    /// self-reported matrix. Leads without an answer are counted under `None`; "Other" answers
    /// are counted together whatever their text.
    pub async fn self_reported_counts(
        &self,
        org: &OrgId,
        filter: &ReportFilter,
    ) -> Result<BTreeMap<(u32, u32, Option<String>), u64>, StoreError> {
        let widget = filter.widget.map(|w| i64::from(w.get()));
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT widget_version, {CREDITED_SOURCE} AS sc, self_reported, COUNT(*) AS n \
             FROM leads WHERE org_id = $1 AND ($2 IS NULL OR widget_version = $2) \
             AND ($3 IS NULL OR created_at >= $3) AND ($4 IS NULL OR created_at < $4) \
             GROUP BY widget_version, {CREDITED_SOURCE}, self_reported"
        ));
        let rows = sqlx::query(sql)
            .bind(org.as_str())
            .bind(widget)
            .bind(filter.from_ms)
            .bind(filter.to_ms)
            .fetch_all(&self.pool)
            .await?;
        let mut out: BTreeMap<(u32, u32, Option<String>), u64> = BTreeMap::new();
        for row in &rows {
            let answer = row
                .try_get::<Option<String>, _>("self_reported")?
                .and_then(|text| serde_json::from_str::<SelfReported>(&text).ok())
                .map(|answer| answer.choice);
            let key = (
                to_u32(row.try_get("widget_version")?, "widget")?,
                to_u32(row.try_get("sc")?, "source")?,
                answer,
            );
            *out.entry(key).or_default() += count(row, "n")?;
        }
        Ok(out)
    }
}
