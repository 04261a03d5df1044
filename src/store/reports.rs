//! Report queries over raw rows: counts per widget and source (last touch with the corrected
//! source, first touch beside it), per channel category as credited at the time, per derived
//! channel of the Website source, per local day or week of the organization's time zone.

use std::collections::BTreeMap;

use sqlx::Row;

use super::rollups::{Delta, Kind, LEAD_FACTS, LeadFacts};
use super::{Store, StoreError, to_u32};
use crate::domain::ids::OrgId;
use crate::domain::multi_touch::{Credit, Model, TouchKey};
use crate::domain::self_report::SelfReported;
use crate::domain::time_zone::{DAY_MS, OrgTimeZone, date_of_day};
use crate::domain::widget::WidgetVersion;

#[derive(Debug, Clone, Copy, Default)]
pub struct ReportFilter {
    pub widget: Option<WidgetVersion>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// How leads are credited. Under first touch, a lead without a remembered first touch
    /// counts under its own arrival, which was then its first touch; under the multi-touch
    /// models, the widget filter applies to the touches' widgets.
    pub model: Model,
    /// Count from the raw leads and visits even over whole days, never the rollups (audits,
    /// and the benchmark's naive baseline).
    pub raw_rows: bool,
}

/// Counters for one (widget version, source code).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub visits: u64,
    /// Leads credited to the source under the filter's model.
    pub leads: Credit,
    /// Leads whose first touch was this source, whatever the filter's model.
    pub first_touch_leads: u64,
    /// Of `leads`: how far they got (step 2, 3 and 4 reached).
    pub reached_project: Credit,
    pub reached_personal: Credit,
    pub contact_requested: Credit,
    pub enriched: Credit,
    /// Sum of the scores of the enriched leads (under a multi-touch model, each score split
    /// with the lead's credit).
    pub score_sum: u64,
    /// Sum of the estimate midpoints, whole currency units.
    pub pipeline_value: u64,
    /// Of `leads`, how many a person re-assigned to this source (last touch only).
    pub corrected: u64,
    /// Of `leads`, how many are won, and the sum of their job values (minor units).
    pub won: Credit,
    pub revenue: u64,
}

impl Counts {
    /// The lead counters of a row of whole-lead sums (raw leads, or last-touch rollups).
    fn set_leads(&mut self, row: &sqlx::any::AnyRow) -> Result<(), StoreError> {
        let whole =
            |col: &str| -> Result<Credit, StoreError> { Ok(Credit::whole(count(row, col)?)) };
        self.leads = whole("n")?;
        self.reached_project = whole("project")?;
        self.reached_personal = whole("personal")?;
        self.contact_requested = whole("contact")?;
        self.enriched = whole("enriched")?;
        self.won = whole("won")?;
        self.score_sum = count(row, "score")?;
        self.pipeline_value = count(row, "pipeline")?;
        self.revenue = count(row, "revenue")?;
        self.corrected = count(row, "corrected")?;
        Ok(())
    }

    /// Adds a model row's counters (credit units, amounts already apportioned).
    fn add_credit(&mut self, d: &Delta) {
        let units = |n: i64| Credit::from_units(n.max(0));
        let amount = |n: i64| u64::try_from(n).unwrap_or(0);
        self.leads += units(d.n);
        self.reached_project += units(d.project);
        self.reached_personal += units(d.personal);
        self.contact_requested += units(d.contact);
        self.enriched += units(d.enriched);
        self.won += units(d.won);
        self.score_sum += amount(d.score);
        self.pipeline_value += amount(d.pipeline);
        self.revenue += amount(d.revenue);
    }

    fn group(&self) -> GroupCounts {
        GroupCounts {
            visits: self.visits,
            leads: self.leads,
            enriched: self.enriched,
            contact_requested: self.contact_requested,
            pipeline_value: self.pipeline_value,
            won: self.won,
            revenue: self.revenue,
        }
    }
}

/// Lead counters of a group that is not a source (a channel category, a derived channel).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCounts {
    pub visits: u64,
    pub leads: Credit,
    pub enriched: Credit,
    pub contact_requested: Credit,
    pub pipeline_value: u64,
    pub won: Credit,
    pub revenue: u64,
}

impl GroupCounts {
    fn add(&mut self, other: &GroupCounts) {
        self.visits += other.visits;
        self.leads += other.leads;
        self.enriched += other.enriched;
        self.contact_requested += other.contact_requested;
        self.pipeline_value += other.pipeline_value;
        self.won += other.won;
        self.revenue += other.revenue;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Interval {
    Day,
    Week,
}

/// The source a lead is credited to: the one a person corrected it to, else its arrival.
const CREDITED_SOURCE: &str = "COALESCE(corrected_source_code, source_code)";
/// The channel category it was credited with: the corrected source's at the correction, else
/// the arrival snapshot's. Never a source's category today.
const CREDITED_CATEGORY: &str = "COALESCE(corrected_source_category, source_category)";
/// Filters shared by every lead and visit query: organization, widget, time range.
const WHERE_RANGE: &str = "org_id = $1 AND ($2 IS NULL OR widget_version = $2) \
    AND ($3 IS NULL OR created_at >= $3) AND ($4 IS NULL OR created_at < $4)";

fn count(row: &sqlx::any::AnyRow, col: &str) -> Result<u64, StoreError> {
    let n: Option<i64> = row.try_get(col)?;
    Ok(u64::try_from(n.unwrap_or(0)).unwrap_or(0))
}

/// `CAST(SUM(…) AS BIGINT)`: PostgreSQL sums BIGINT columns as NUMERIC otherwise.
fn sum(expr: &str) -> String {
    format!("CAST(SUM({expr}) AS BIGINT)")
}

/// Pipeline value: the estimate midpoints of leads not yet won or lost.
const OPEN_PIPELINE: &str =
    "CASE WHEN outcome IN ('won', 'lost') THEN 0 ELSE COALESCE(pipeline_value, 0) END";
const WON: &str = "CASE WHEN outcome = 'won' THEN 1 ELSE 0 END";
const REVENUE: &str = "CASE WHEN outcome = 'won' THEN COALESCE(outcome_value, 0) ELSE 0 END";

/// The columns `group_rows` reads, counted from raw lead rows.
fn raw_group_columns() -> String {
    format!(
        "COUNT(*) AS leads, {} AS enriched, {} AS contact, {} AS pipeline, {} AS won, \
         {} AS revenue",
        sum("CASE WHEN enrichment_state = 'done' THEN 1 ELSE 0 END"),
        sum("CASE WHEN step = 4 THEN 1 ELSE 0 END"),
        sum(OPEN_PIPELINE),
        sum(WON),
        sum(REVENUE),
    )
}

/// The columns `group_rows` reads, summed from rollup rows.
fn rolled_group_columns() -> String {
    format!(
        "{} AS leads, {} AS enriched, {} AS contact, {} AS pipeline, {} AS won, {} AS revenue",
        sum("n"),
        sum("enriched"),
        sum("contact"),
        sum("pipeline_value"),
        sum("won"),
        sum("revenue"),
    )
}

/// A lead row's counters summed from rollup rows, under the names `set_leads` and the model
/// counts read.
fn rolled_lead_columns() -> String {
    format!(
        "{} AS n, {} AS project, {} AS personal, {} AS contact, {} AS enriched, {} AS score, \
         {} AS pipeline, {} AS corrected, {} AS won, {} AS revenue",
        sum("n"),
        sum("project"),
        sum("personal"),
        sum("contact"),
        sum("enriched"),
        sum("score_sum"),
        sum("pipeline_value"),
        sum("corrected"),
        sum("won"),
        sum("revenue"),
    )
}

/// A row's (widget version, source code) from the named columns.
fn source_key(
    row: &sqlx::any::AnyRow,
    widget: &str,
    source: &str,
) -> Result<(u32, u32), StoreError> {
    Ok((
        to_u32(row.try_get(widget)?, "widget")?,
        to_u32(row.try_get(source)?, "source")?,
    ))
}

/// Filters of a rollup query: organization, kind, widget, local days `[$4, $5)`.
const ROLLUP_RANGE: &str = "org_id = $1 AND kind = $5 AND ($2 IS NULL OR widget_version = $2) \
    AND ($3 IS NULL OR day >= $3) AND ($4 IS NULL OR day < $4)";

/// Local days `[from, to)` of a filter whose bounds are local midnights, for the rollups.
#[derive(Debug, Clone)]
struct Days {
    from: Option<i64>,
    to: Option<i64>,
    /// The zone the days are of (the organization's).
    zone: OrgTimeZone,
}

impl Store {
    /// The filter as whole local days of the organization's zone, when it is one (reports of
    /// the dashboard always are; the API's RFC 3339 instants may fall inside a day).
    async fn whole_days(
        &self,
        org: &OrgId,
        filter: &ReportFilter,
    ) -> Result<Option<Days>, StoreError> {
        if filter.raw_rows {
            return Ok(None);
        }
        let name: Option<String> = sqlx::query("SELECT time_zone FROM organizations WHERE id = $1")
            .bind(org.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(|row| row.try_get("time_zone"))
            .transpose()?;
        let Some(zone) = name.and_then(|n| OrgTimeZone::parse(&n).ok()) else {
            return Ok(None);
        };
        let day = |ms: i64| {
            let d = zone.day_of(ms);
            (zone.start_of(date_of_day(d)) == ms).then_some(d)
        };
        Ok(match (filter.from_ms.map(day), filter.to_ms.map(day)) {
            (Some(None), _) | (_, Some(None)) => None,
            (from, to) => Some(Days {
                from: from.flatten(),
                to: to.flatten(),
                zone: zone.clone(),
            }),
        })
    }

    async fn rolled(
        &self,
        sql: String,
        org: &OrgId,
        filter: &ReportFilter,
        days: &Days,
        kind: Kind,
    ) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org.as_str())
            .bind(filter.widget.map(|w| i64::from(w.get())))
            .bind(days.from)
            .bind(days.to)
            .bind(kind.id())
            .fetch_all(&self.pool)
            .await?)
    }

    async fn grouped(
        &self,
        sql: String,
        org: &OrgId,
        widget: Option<i64>,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
    ) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org.as_str())
            .bind(widget)
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Counts per (widget version, source code), keyed by their numbers.
    pub async fn source_counts(
        &self,
        org: &OrgId,
        filter: &ReportFilter,
    ) -> Result<BTreeMap<(u32, u32), Counts>, StoreError> {
        let days = self.whole_days(org, filter).await?;
        if !filter.model.is_multi_touch() {
            return match days {
                Some(days) if filter.model == Model::LastTouch => {
                    self.rolled_source_counts(org, filter, days).await
                }
                _ => self.raw_source_counts(org, filter).await,
            };
        }
        let (mut out, credited) = match days {
            Some(days) => (
                self.rolled_visits_and_firsts(org, filter, &days).await?,
                self.rolled_model_counts(org, filter, &days).await?,
            ),
            None => (
                self.raw_source_counts(org, filter).await?,
                self.raw_model_counts(org, filter).await?,
            ),
        };
        for (key, delta) in credited {
            out.entry((key.widget, key.source))
                .or_default()
                .add_credit(&delta);
        }
        out.retain(|_, c| *c != Counts::default());
        Ok(out)
    }

    /// Visits and first touches from the rollups, lead counters left at zero.
    async fn rolled_visits_and_firsts(
        &self,
        org: &OrgId,
        filter: &ReportFilter,
        days: &Days,
    ) -> Result<BTreeMap<(u32, u32), Counts>, StoreError> {
        let mut out: BTreeMap<(u32, u32), Counts> = BTreeMap::new();
        let sql = format!(
            "SELECT widget_version, source_code, {n} AS n FROM rollup_totals \
             WHERE {ROLLUP_RANGE} GROUP BY widget_version, source_code",
            n = sum("n"),
        );
        for kind in [Kind::Visit, Kind::First] {
            for row in &self.rolled(sql.clone(), org, filter, days, kind).await? {
                let entry = out
                    .entry(source_key(row, "widget_version", "source_code")?)
                    .or_default();
                match kind {
                    Kind::Visit => entry.visits = count(row, "n")?,
                    _ => entry.first_touch_leads = count(row, "n")?,
                }
            }
        }
        Ok(out)
    }

    /// Under a multi-touch model: the credit per touch key (widget, source, derived channel)
    /// summed from the model's rollup rows.
    async fn rolled_model_counts(
        &self,
        org: &OrgId,
        filter: &ReportFilter,
        days: &Days,
    ) -> Result<BTreeMap<TouchKey, Delta>, StoreError> {
        let sql = format!(
            "SELECT widget_version, source_code, derived_channel, {} FROM rollup_totals \
             WHERE {ROLLUP_RANGE} GROUP BY widget_version, source_code, derived_channel",
            rolled_lead_columns()
        );
        let rows = self
            .rolled(sql, org, filter, days, Kind::Model(filter.model))
            .await?;
        let mut out = BTreeMap::new();
        for row in &rows {
            let (widget, source) = source_key(row, "widget_version", "source_code")?;
            let channel: String = row.try_get("derived_channel")?;
            let get = |col: &str| -> Result<i64, StoreError> {
                Ok(row.try_get::<Option<i64>, _>(col)?.unwrap_or(0))
            };
            let delta = Delta {
                n: get("n")?,
                project: get("project")?,
                personal: get("personal")?,
                contact: get("contact")?,
                enriched: get("enriched")?,
                score: get("score")?,
                pipeline: get("pipeline")?,
                corrected: 0,
                won: get("won")?,
                revenue: get("revenue")?,
            };
            if delta == Delta::default() {
                continue;
            }
            let key = TouchKey {
                widget,
                source,
                channel: crate::domain::attribution::DerivedChannel::from_id(&channel),
            };
            out.insert(key, delta);
        }
        Ok(out)
    }

    /// Under a multi-touch model: the credit per touch key recounted from the leads' own
    /// touches (what the rollups must equal; and the answer for ranges that are not whole
    /// days).
    pub(crate) async fn raw_model_counts(
        &self,
        org: &OrgId,
        filter: &ReportFilter,
    ) -> Result<BTreeMap<TouchKey, Delta>, StoreError> {
        let settings = self.credit_settings(org).await?;
        let sql = format!(
            "SELECT {LEAD_FACTS} FROM leads WHERE org_id = $1 \
             AND ($2 IS NULL OR created_at >= $2) AND ($3 IS NULL OR created_at < $3)"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org.as_str())
            .bind(filter.from_ms)
            .bind(filter.to_ms)
            .fetch_all(&self.pool)
            .await?;
        let mut out: BTreeMap<TouchKey, Delta> = BTreeMap::new();
        for row in &rows {
            let lead = LeadFacts::from_row(row)?;
            for (key, delta) in lead.credit_of(filter.model, settings) {
                if filter.widget.is_none_or(|w| w.get() == key.widget) {
                    out.entry(key).or_default().add(delta);
                }
            }
        }
        Ok(out)
    }

    /// Visits, and leads under last or first touch, counted from the raw rows.
    async fn raw_source_counts(
        &self,
        org: &OrgId,
        filter: &ReportFilter,
    ) -> Result<BTreeMap<(u32, u32), Counts>, StoreError> {
        let mut out: BTreeMap<(u32, u32), Counts> = BTreeMap::new();
        let widget = filter.widget.map(|w| i64::from(w.get()));
        let (from, to) = (filter.from_ms, filter.to_ms);
        let visits = format!(
            "SELECT widget_version, source_code, COUNT(*) AS n FROM visits WHERE {WHERE_RANGE} \
             GROUP BY widget_version, source_code"
        );
        for row in &self.grouped(visits, org, widget, from, to).await? {
            let key = source_key(row, "widget_version", "source_code")?;
            out.entry(key).or_default().visits = count(row, "n")?;
        }
        let first = (
            "COALESCE(first_touch_widget_version, widget_version)",
            "COALESCE(first_touch_source_code, source_code)",
        );
        let (wv, sc) = match filter.model {
            Model::FirstTouch => first,
            _ => ("widget_version", CREDITED_SOURCE),
        };
        if !filter.model.is_multi_touch() {
            let leads = format!(
                "SELECT {wv} AS wv, {sc} AS sc, COUNT(*) AS n, \
                 {project} AS project, {personal} AS personal, {contact} AS contact, \
                 {enriched} AS enriched, {score} AS score, {pipeline} AS pipeline, \
                 {corrected} AS corrected, {won} AS won, {revenue} AS revenue \
                 FROM leads WHERE {range} GROUP BY {wv}, {sc}",
                project = sum("CASE WHEN step >= 2 THEN 1 ELSE 0 END"),
                personal = sum("CASE WHEN step >= 3 THEN 1 ELSE 0 END"),
                contact = sum("CASE WHEN step = 4 THEN 1 ELSE 0 END"),
                enriched = sum("CASE WHEN enrichment_state = 'done' THEN 1 ELSE 0 END"),
                score = sum("COALESCE(score, 0)"),
                pipeline = sum(OPEN_PIPELINE),
                corrected = sum("CASE WHEN corrected_source_code IS NOT NULL THEN 1 ELSE 0 END"),
                won = sum(WON),
                revenue = sum(REVENUE),
                range = WHERE_RANGE.replace("widget_version", wv),
            );
            for row in &self.grouped(leads, org, widget, from, to).await? {
                let key = source_key(row, "wv", "sc")?;
                out.entry(key).or_default().set_leads(row)?;
                if filter.model != Model::LastTouch
                    && let Some(entry) = out.get_mut(&key)
                {
                    entry.corrected = 0;
                }
            }
        }
        let firsts = format!(
            "SELECT {wv} AS wv, {sc} AS sc, COUNT(*) AS n FROM leads WHERE {range} \
             GROUP BY {wv}, {sc}",
            wv = first.0,
            sc = first.1,
            range = WHERE_RANGE.replace("widget_version", first.0),
        );
        for row in &self.grouped(firsts, org, widget, from, to).await? {
            let key = source_key(row, "wv", "sc")?;
            out.entry(key).or_default().first_touch_leads = count(row, "n")?;
        }
        Ok(out)
    }

    async fn rolled_source_counts(
        &self,
        org: &OrgId,
        filter: &ReportFilter,
        days: Days,
    ) -> Result<BTreeMap<(u32, u32), Counts>, StoreError> {
        let mut out = self.rolled_visits_and_firsts(org, filter, &days).await?;
        let sql = format!(
            "SELECT widget_version, source_code, {} FROM rollup_totals \
             WHERE {ROLLUP_RANGE} GROUP BY widget_version, source_code",
            rolled_lead_columns()
        );
        for row in &self.rolled(sql, org, filter, &days, Kind::Lead).await? {
            let key = source_key(row, "widget_version", "source_code")?;
            out.entry(key).or_default().set_leads(row)?;
        }
        // Rows whose counters went back to zero (a lead corrected away) are not rows.
        out.retain(|_, c| *c != Counts::default());
        Ok(out)
    }

    /// Leads per channel category they were credited with (the arrival snapshot's, or the
    /// corrected source's at the correction), last touch.
    pub async fn channel_counts(
        &self,
        org: &OrgId,
        filter: &ReportFilter,
    ) -> Result<BTreeMap<String, GroupCounts>, StoreError> {
        if let Some(days) = self.whole_days(org, filter).await? {
            let sql = format!(
                "SELECT category, {} FROM rollup_totals WHERE {ROLLUP_RANGE} GROUP BY category",
                rolled_group_columns()
            );
            let rows = self.rolled(sql, org, filter, &days, Kind::Lead).await?;
            let mut out = group_rows(&rows, "category")?;
            out.retain(|_, c| *c != GroupCounts::default());
            return Ok(out);
        }
        let widget = filter.widget.map(|w| i64::from(w.get()));
        let sql = format!(
            "SELECT {CREDITED_CATEGORY} AS category, {} FROM leads WHERE {WHERE_RANGE} \
             GROUP BY {CREDITED_CATEGORY}",
            raw_group_columns()
        );
        let rows = self
            .grouped(sql, org, widget, filter.from_ms, filter.to_ms)
            .await?;
        group_rows(&rows, "category")
    }

    /// Visits and leads of the Website source (`SRC-01`) of each widget, per derived channel
    /// (direct, organic search, …). Leads corrected away from it are not counted.
    pub async fn derived_channel_counts(
        &self,
        org: &OrgId,
        filter: &ReportFilter,
    ) -> Result<BTreeMap<String, GroupCounts>, StoreError> {
        if filter.model.is_multi_touch() {
            return self.derived_model_counts(org, filter).await;
        }
        if let Some(days) = self.whole_days(org, filter).await? {
            let channel = "CASE WHEN derived_channel = '' THEN 'direct' ELSE derived_channel END";
            let sql = format!(
                "SELECT {channel} AS channel, {} FROM rollup_totals \
                 WHERE {ROLLUP_RANGE} AND source_code = 1 GROUP BY {channel}",
                rolled_group_columns()
            );
            let mut out = group_rows(
                &self
                    .rolled(sql.clone(), org, filter, &days, Kind::Lead)
                    .await?,
                "channel",
            )?;
            for (channel, visits) in group_rows(
                &self.rolled(sql, org, filter, &days, Kind::Visit).await?,
                "channel",
            )? {
                out.entry(channel).or_default().visits =
                    u64::try_from(visits.leads.units() / crate::domain::multi_touch::UNIT)
                        .unwrap_or(0);
            }
            out.retain(|_, c| *c != GroupCounts::default());
            return Ok(out);
        }
        let widget = filter.widget.map(|w| i64::from(w.get()));
        let (from, to) = (filter.from_ms, filter.to_ms);
        let leads = format!(
            "SELECT COALESCE(derived_channel, 'direct') AS channel, {} FROM leads \
             WHERE {WHERE_RANGE} AND {CREDITED_SOURCE} = 1 \
             GROUP BY COALESCE(derived_channel, 'direct')",
            raw_group_columns()
        );
        let mut out = group_rows(
            &self.grouped(leads, org, widget, from, to).await?,
            "channel",
        )?;
        let visits = format!(
            "SELECT COALESCE(derived_channel, 'direct') AS channel, COUNT(*) AS n FROM visits \
             WHERE {WHERE_RANGE} AND source_code = 1 GROUP BY COALESCE(derived_channel, 'direct')"
        );
        for row in &self.grouped(visits, org, widget, from, to).await? {
            out.entry(row.try_get("channel")?).or_default().visits = count(row, "n")?;
        }
        Ok(out)
    }

    /// The Website's derived channels under a multi-touch model: the credit of its touches,
    /// with the visits through each channel.
    async fn derived_model_counts(
        &self,
        org: &OrgId,
        filter: &ReportFilter,
    ) -> Result<BTreeMap<String, GroupCounts>, StoreError> {
        let last = ReportFilter {
            model: Model::LastTouch,
            ..*filter
        };
        let credited = match self.whole_days(org, filter).await? {
            Some(days) => self.rolled_model_counts(org, filter, &days).await?,
            None => self.raw_model_counts(org, filter).await?,
        };
        let mut out: BTreeMap<String, GroupCounts> = BTreeMap::new();
        for (key, delta) in credited.iter().filter(|(k, _)| k.source == 1) {
            let channel = key.channel.map_or("direct", |c| c.id()).to_owned();
            let mut c = Counts::default();
            c.add_credit(delta);
            out.entry(channel).or_default().add(&c.group());
        }
        for (channel, counts) in Box::pin(self.derived_channel_counts(org, &last)).await? {
            out.entry(channel).or_default().visits = counts.visits;
        }
        out.retain(|_, c| *c != GroupCounts::default());
        Ok(out)
    }

    /// The first instant with a lead or a visit, for a range left open at its start.
    async fn first_activity(&self, org: &OrgId) -> Result<Option<i64>, StoreError> {
        let mut first: Option<i64> = None;
        for table in ["leads", "visits"] {
            let sql = format!("SELECT MIN(created_at) AS at FROM {table} WHERE org_id = $1");
            let at: Option<i64> = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(org.as_str())
                .fetch_one(&self.pool)
                .await?
                .try_get("at")?;
            first = match (first, at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(first)
    }

    /// Visits and (last-touch) leads per local period of `tz` and source. Periods are local
    /// days, or weeks starting Monday, numbered in days since 1970-01-01. Each stretch of the
    /// range with one UTC offset is grouped in SQL with that offset, so days are exact across
    /// daylight-saving changes and for half-hour zones.
    pub async fn period_counts(
        &self,
        org: &OrgId,
        filter: &ReportFilter,
        interval: Interval,
        tz: &OrgTimeZone,
    ) -> Result<BTreeMap<(i64, u32, u32), (u64, u64)>, StoreError> {
        let mut out: BTreeMap<(i64, u32, u32), (u64, u64)> = BTreeMap::new();
        if let Some(days) = self.whole_days(org, filter).await?
            && days.zone == *tz
        {
            let bucket = match interval {
                Interval::Day => "day",
                Interval::Week => "((day + 3) / 7 * 7 - 3)",
            };
            let sql = format!(
                "SELECT {bucket} AS period, widget_version, source_code, {n} AS n \
                 FROM rollup_totals WHERE {ROLLUP_RANGE} \
                 GROUP BY {bucket}, widget_version, source_code",
                n = sum("n"),
            );
            for kind in [Kind::Visit, Kind::Lead] {
                for row in &self.rolled(sql.clone(), org, filter, &days, kind).await? {
                    let key = (
                        row.try_get::<i64, _>("period")?,
                        to_u32(row.try_get("widget_version")?, "widget")?,
                        to_u32(row.try_get("source_code")?, "source")?,
                    );
                    let entry = out.entry(key).or_default();
                    match kind {
                        Kind::Visit => entry.0 += count(row, "n")?,
                        _ => entry.1 += count(row, "n")?,
                    }
                }
            }
            out.retain(|_, c| *c != (0, 0));
            return Ok(out);
        }
        let from = match filter.from_ms {
            Some(from) => from,
            None => match self.first_activity(org).await? {
                Some(first) => first,
                None => return Ok(out),
            },
        };
        let to = filter.to_ms.unwrap_or(i64::MAX / 2);
        let widget = filter.widget.map(|w| i64::from(w.get()));
        for span in tz.offset_spans(from, to) {
            // The offset is a number this code computed, never user text.
            let day = format!("((created_at + ({})) / {DAY_MS})", span.offset_ms);
            let bucket = match interval {
                Interval::Day => day,
                // Day 0 (1970-01-01) was a Thursday: shifting by 3 makes weeks start on Monday.
                Interval::Week => format!("((({day}) + 3) / 7 * 7 - 3)"),
            };
            for (table, source, is_visit) in [
                ("visits", "source_code", true),
                ("leads", CREDITED_SOURCE, false),
            ] {
                let sql = format!(
                    "SELECT {bucket} AS period, widget_version, {source} AS source_code, \
                     COUNT(*) AS n FROM {table} WHERE {WHERE_RANGE} \
                     GROUP BY {bucket}, widget_version, {source}"
                );
                let rows = self
                    .grouped(sql, org, widget, Some(span.start_ms), Some(span.end_ms))
                    .await?;
                for row in &rows {
                    let key = (
                        row.try_get::<i64, _>("period")?,
                        to_u32(row.try_get("widget_version")?, "widget")?,
                        to_u32(row.try_get("source_code")?, "source")?,
                    );
                    let entry = out.entry(key).or_default();
                    if is_visit {
                        entry.0 += count(row, "n")?;
                    } else {
                        entry.1 += count(row, "n")?;
                    }
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
        let sql = format!(
            "SELECT widget_version, {CREDITED_SOURCE} AS sc, self_reported, COUNT(*) AS n \
             FROM leads WHERE {WHERE_RANGE} \
             GROUP BY widget_version, {CREDITED_SOURCE}, self_reported"
        );
        let rows = self
            .grouped(sql, org, widget, filter.from_ms, filter.to_ms)
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

    /// The names each source had when its leads arrived (or were corrected to it), per
    /// (widget version, credited source), for the report to list beside today's name.
    pub async fn names_at_arrival(
        &self,
        org: &OrgId,
        filter: &ReportFilter,
    ) -> Result<BTreeMap<(u32, u32), Vec<String>>, StoreError> {
        let rows = match self.whole_days(org, filter).await? {
            Some(days) => {
                let sql = format!(
                    "SELECT DISTINCT widget_version, source_code, source_name FROM rollup_totals \
                     WHERE {ROLLUP_RANGE} AND n > 0"
                );
                self.rolled(sql, org, filter, &days, Kind::Lead).await?
            }
            None => {
                let label = match self.backend {
                    super::Backend::Sqlite => "json_extract(corrected_source, '$.source_label')",
                    super::Backend::Postgres => "(corrected_source::json ->> 'source_label')",
                };
                let sql = format!(
                    "SELECT DISTINCT widget_version, {CREDITED_SOURCE} AS source_code, \
                     CASE WHEN corrected_source IS NULL THEN source_name ELSE {label} END \
                     AS source_name FROM leads WHERE {WHERE_RANGE}"
                );
                let widget = filter.widget.map(|w| i64::from(w.get()));
                self.grouped(sql, org, widget, filter.from_ms, filter.to_ms)
                    .await?
            }
        };
        let mut out: BTreeMap<(u32, u32), Vec<String>> = BTreeMap::new();
        for row in &rows {
            let key = source_key(row, "widget_version", "source_code")?;
            out.entry(key)
                .or_default()
                .push(row.try_get("source_name")?);
        }
        out.values_mut().for_each(|names| {
            names.sort();
            names.dedup();
        });
        Ok(out)
    }
}

fn group_rows(
    rows: &[sqlx::any::AnyRow],
    column: &str,
) -> Result<BTreeMap<String, GroupCounts>, StoreError> {
    let mut out = BTreeMap::new();
    for row in rows {
        out.insert(
            row.try_get::<String, _>(column)?,
            GroupCounts {
                visits: 0,
                leads: Credit::whole(count(row, "leads")?),
                enriched: Credit::whole(count(row, "enriched")?),
                contact_requested: Credit::whole(count(row, "contact")?),
                pipeline_value: count(row, "pipeline")?,
                won: Credit::whole(count(row, "won")?),
                revenue: count(row, "revenue")?,
            },
        );
    }
    Ok(out)
}
