//! Report shapes: a row per source, per channel, per period and source; and the CSV export,
//! which neutralises cells a spreadsheet would run as formulas.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::channel::ChannelCategory;
use crate::domain::ids::OrgId;
use crate::domain::multi_touch::{Credit, Model, UNIT};
use crate::store::{Counts, GroupCounts, ReportFilter, Source, SourceFilter, Store, StoreError};

/// Everything the Reports page shows for a filter; the API's report endpoints serve its parts,
/// so both give the same numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub sources: Vec<SourceRow>,
    pub channels: Vec<ChannelRow>,
    pub derived: Vec<DerivedChannelRow>,
}

impl Report {
    /// `None` when the filter names a widget the organization does not have.
    pub async fn load(
        store: &Store,
        org: &OrgId,
        filter: &ReportFilter,
    ) -> Result<Option<Report>, StoreError> {
        let Some(sources) = report_sources(store, org, filter).await? else {
            return Ok(None);
        };
        let zone = store.organization(org).await?.time_zone;
        let counts = store.source_counts(org, filter).await?;
        let names = store.names_at_arrival(org, filter).await?;
        let spend = store
            .spend_in_range(org, filter.widget, filter.from_ms, filter.to_ms, &zone)
            .await?;
        let rows = source_rows(&sources, &counts, &names, &spend);
        let channels = match filter.model {
            Model::LastTouch => channel_rows(&rows, &store.channel_counts(org, filter).await?),
            // Other touches have no credited category: each counts under its source's today,
            // as visits and spend do.
            _ => channel_rows(&rows, &categories_of(&rows)),
        };
        let derived = derived_rows(&store.derived_channel_counts(org, filter).await?);
        Ok(Some(Report {
            sources: rows,
            channels,
            derived,
        }))
    }

    /// Totals over every source of the report.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        let mut money = Money::default();
        for r in &self.sources {
            t.visits += r.visits;
            t.leads += r.leads;
            t.contact_requested += r.contact_requested;
            t.enriched += r.enriched;
            t.pipeline_value += r.pipeline_value;
            money.add(r.money.won, r.money.revenue, r.money.spend);
        }
        t.conversion_rate = rate(t.leads, t.visits);
        t.money = money.figures(t.leads);
        t
    }
}

/// The sources a report covers: every source, archived ones included, of the filter's widget
/// or of all; `None` when the filter names a widget the organization does not have.
pub async fn report_sources(
    store: &Store,
    org: &OrgId,
    filter: &ReportFilter,
) -> Result<Option<Vec<Source>>, StoreError> {
    let mut sources = Vec::new();
    for widget in store.widgets(org).await? {
        if filter.widget.is_none_or(|w| w == widget.version) {
            sources.extend(
                store
                    .sources(org, widget.version, SourceFilter::All)
                    .await?,
            );
        }
    }
    Ok((filter.widget.is_none() || !sources.is_empty()).then_some(sources))
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub visits: u64,
    pub leads: Credit,
    pub contact_requested: Credit,
    pub enriched: Credit,
    pub pipeline_value: u64,
    pub conversion_rate: f64,
    pub money: MoneyFigures,
}

/// Outcomes and spend of a group of leads, summed.
#[derive(Debug, Clone, Copy, Default)]
struct Money {
    won: Credit,
    revenue: u64,
    /// `None` until some source of the group has spend entered.
    spend: Option<u64>,
}

impl Money {
    fn add(&mut self, won: Credit, revenue: u64, spend: Option<u64>) {
        self.won += won;
        self.revenue += revenue;
        if let Some(s) = spend {
            self.spend = Some(self.spend.unwrap_or(0) + s);
        }
    }

    fn figures(self, leads: Credit) -> MoneyFigures {
        // Spend per (possibly fractional) lead, rounded to the nearest minor unit.
        let per = |n: Credit| match (self.spend, u128::try_from(n.units()).unwrap_or(0)) {
            (Some(spend), units) if units > 0 => {
                u64::try_from((u128::from(spend) * UNIT as u128 + units / 2) / units).ok()
            }
            _ => None,
        };
        MoneyFigures {
            won: self.won,
            close_rate: ratio(self.won, leads),
            revenue: self.revenue,
            spend: self.spend,
            cost_per_lead: per(leads),
            cost_per_won: per(self.won),
            roas: match self.spend {
                Some(spend) if spend > 0 => {
                    Some(((self.revenue as f64 / spend as f64) * 100.0).round() / 100.0)
                }
                _ => None,
            },
        }
    }
}

/// What a group of leads brought and cost. Money is in minor units of the organization's
/// currency (cents). Without spend entered for the period, spend and every cost are `null`,
/// never zero; a cost per nothing (no leads, no won jobs) is `null` too.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct MoneyFigures {
    /// Leads won (credited, under a multi-touch model).
    pub won: Credit,
    /// Won ÷ leads; 0 without leads.
    pub close_rate: f64,
    /// Sum of the won jobs' values.
    pub revenue: u64,
    /// What the period cost: each month's spend in proportion to the days of it covered.
    pub spend: Option<u64>,
    pub cost_per_lead: Option<u64>,
    pub cost_per_won: Option<u64>,
    /// Return on ad spend: revenue ÷ spend (2.5 means 2.5× what was spent came back).
    pub roas: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct SourceRow {
    pub widget_version: String,
    pub source_code: String,
    pub display_code: String,
    /// Today's name.
    pub source_name: String,
    /// The names its leads arrived under, when any differs from today's.
    pub names_at_arrival: Vec<String>,
    pub channel_category: ChannelCategory,
    pub visits: u64,
    /// Leads credited to the source under the report's model (last touch unless asked):
    /// whole under last and first touch, fractional under the multi-touch models.
    pub leads: Credit,
    /// Leads whose first touch was this source, beside `leads`.
    pub first_touch_leads: u64,
    /// The funnel of `leads`: step 1 is every lead; steps 2, 3 and 4 reached.
    pub reached_project: Credit,
    pub reached_personal: Credit,
    pub contact_requested: Credit,
    pub enriched: Credit,
    /// Average score of the enriched leads; `null` without any.
    pub average_score: Option<f64>,
    /// Sum of the estimate midpoints of the enriched leads, whole currency units.
    pub pipeline_value: u64,
    /// Of `leads`, how many a person re-assigned to this source (last touch only).
    pub corrected: u64,
    /// Leads ÷ visits; 0 without visits.
    pub conversion_rate: f64,
    #[serde(flatten)]
    pub money: MoneyFigures,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ChannelRow {
    /// The category each lead was credited with when it arrived (or was corrected), never a
    /// source's category today. Visits count under their source's category today.
    pub channel_category: ChannelCategory,
    pub visits: u64,
    pub leads: Credit,
    pub enriched: Credit,
    pub contact_requested: Credit,
    pub pipeline_value: u64,
    pub conversion_rate: f64,
    /// Spend counts under each source's category today, as visits do.
    #[serde(flatten)]
    pub money: MoneyFigures,
}

/// Website (`SRC-01`) traffic by where it most likely came from.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct DerivedChannelRow {
    /// `direct`, `organic_search`, `paid_search`, `organic_social`, … (GA4's default groups).
    pub derived_channel: String,
    pub visits: u64,
    pub leads: Credit,
    pub enriched: Credit,
    pub contact_requested: Credit,
    pub pipeline_value: u64,
    pub conversion_rate: f64,
    pub won: Credit,
    pub revenue: u64,
}

fn rate(leads: Credit, visits: u64) -> f64 {
    if visits == 0 {
        0.0
    } else {
        // Four decimals is plenty for a percentage and keeps the JSON and CSV tidy.
        ((leads.as_f64() / visits as f64) * 10_000.0).round() / 10_000.0
    }
}

fn ratio(part: Credit, whole: Credit) -> f64 {
    if whole.units() <= 0 {
        0.0
    } else {
        ((part.units() as f64 / whole.units() as f64) * 10_000.0).round() / 10_000.0
    }
}

fn average(sum: u64, n: Credit) -> Option<f64> {
    (n.units() > 0).then(|| ((sum as f64 / n.as_f64()) * 10.0).round() / 10.0)
}

/// Every source of the listed widgets gets a row, even with nothing counted, so a new source
/// shows up as zero rather than missing.
pub fn source_rows(
    sources: &[Source],
    counts: &BTreeMap<(u32, u32), Counts>,
    names: &BTreeMap<(u32, u32), Vec<String>>,
    spend: &BTreeMap<(u32, u32), i64>,
) -> Vec<SourceRow> {
    sources
        .iter()
        .map(|s| {
            let key = (s.widget_version.get(), s.code.get());
            let c = counts.get(&key).copied().unwrap_or_default();
            let names_at_arrival = names
                .get(&key)
                .filter(|n| n.iter().any(|name| *name != s.name))
                .cloned()
                .unwrap_or_default();
            let mut money = Money::default();
            let spent = spend.get(&key).map(|s| u64::try_from(*s).unwrap_or(0));
            money.add(c.won, c.revenue, spent);
            SourceRow {
                widget_version: s.widget_version.to_string(),
                source_code: s.code.to_string(),
                display_code: s.code.display_code(),
                source_name: s.name.clone(),
                names_at_arrival,
                channel_category: s.channel_category,
                visits: c.visits,
                leads: c.leads,
                first_touch_leads: c.first_touch_leads,
                reached_project: c.reached_project,
                reached_personal: c.reached_personal,
                contact_requested: c.contact_requested,
                enriched: c.enriched,
                average_score: average(c.score_sum, c.enriched),
                pipeline_value: c.pipeline_value,
                corrected: c.corrected,
                conversion_rate: rate(c.leads, c.visits),
                money: money.figures(c.leads),
            }
        })
        .collect()
}

/// Leads per credited category; visits and spend per their source's category today (a visit
/// has no snapshot; spend is entered per source). Categories with none of them are left out.
pub fn channel_rows(
    sources: &[SourceRow],
    leads: &BTreeMap<String, GroupCounts>,
) -> Vec<ChannelRow> {
    let mut visits: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut spend: BTreeMap<&'static str, Money> = BTreeMap::new();
    for r in sources {
        *visits.entry(r.channel_category.id()).or_default() += r.visits;
        spend
            .entry(r.channel_category.id())
            .or_default()
            .add(Credit::ZERO, 0, r.money.spend);
    }
    ChannelCategory::ALL
        .iter()
        .filter_map(|category| {
            let l = leads.get(category.id()).copied().unwrap_or_default();
            let v = visits.get(category.id()).copied().unwrap_or_default();
            let mut money = spend.get(category.id()).copied().unwrap_or_default();
            money.add(l.won, l.revenue, None);
            (v > 0 || l.leads > Credit::ZERO || money.spend.is_some()).then(|| ChannelRow {
                channel_category: *category,
                visits: v,
                leads: l.leads,
                enriched: l.enriched,
                contact_requested: l.contact_requested,
                pipeline_value: l.pipeline_value,
                conversion_rate: rate(l.leads, v),
                money: money.figures(l.leads),
            })
        })
        .collect()
}

/// Lead counters of source rows added up per source category (first-touch channels).
fn categories_of(sources: &[SourceRow]) -> BTreeMap<String, GroupCounts> {
    let mut out: BTreeMap<String, GroupCounts> = BTreeMap::new();
    for r in sources {
        let c = out.entry(r.channel_category.id().to_owned()).or_default();
        c.leads += r.leads;
        c.enriched += r.enriched;
        c.contact_requested += r.contact_requested;
        c.pipeline_value += r.pipeline_value;
        c.won += r.money.won;
        c.revenue += r.money.revenue;
    }
    out
}

pub fn derived_rows(counts: &BTreeMap<String, GroupCounts>) -> Vec<DerivedChannelRow> {
    let mut rows: Vec<DerivedChannelRow> = counts
        .iter()
        .map(|(channel, c)| DerivedChannelRow {
            derived_channel: channel.clone(),
            visits: c.visits,
            leads: c.leads,
            enriched: c.enriched,
            contact_requested: c.contact_requested,
            pipeline_value: c.pipeline_value,
            conversion_rate: rate(c.leads, c.visits),
            won: c.won,
            revenue: c.revenue,
        })
        .collect();
    rows.sort_by(|a, b| b.leads.cmp(&a.leads).then(b.visits.cmp(&a.visits)));
    rows
}

/// One source's credit under one model.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ModelCredit {
    /// `last`, `first`, `linear`, `position_based` or `time_decay`.
    pub model: &'static str,
    pub leads: Credit,
    pub won: Credit,
    /// Won jobs' value credited to the source (minor units).
    pub revenue: u64,
    pub cost_per_lead: Option<u64>,
    pub roas: Option<f64>,
}

/// One source under every model, side by side.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ModelRow {
    pub widget_version: String,
    pub source_code: String,
    pub display_code: String,
    pub source_name: String,
    /// In the order last, first, linear, position-based, time decay.
    pub models: Vec<ModelCredit>,
}

/// Every source of the filter under every model; `None` when the filter names a widget the
/// organization does not have.
pub async fn compare_models(
    store: &Store,
    org: &OrgId,
    filter: &ReportFilter,
) -> Result<Option<Vec<ModelRow>>, StoreError> {
    let mut rows: Vec<ModelRow> = Vec::new();
    for (i, model) in Model::ALL.into_iter().enumerate() {
        let of_model = ReportFilter { model, ..*filter };
        let Some(report) = Report::load(store, org, &of_model).await? else {
            return Ok(None);
        };
        if i == 0 {
            rows = report
                .sources
                .iter()
                .map(|r| ModelRow {
                    widget_version: r.widget_version.clone(),
                    source_code: r.source_code.clone(),
                    display_code: r.display_code.clone(),
                    source_name: r.source_name.clone(),
                    models: Vec::with_capacity(Model::ALL.len()),
                })
                .collect();
        }
        for (row, r) in rows.iter_mut().zip(&report.sources) {
            row.models.push(ModelCredit {
                model: model.id(),
                leads: r.leads,
                won: r.money.won,
                revenue: r.money.revenue,
                cost_per_lead: r.money.cost_per_lead,
                roas: r.money.roas,
            });
        }
    }
    Ok(Some(rows))
}

/// One cell of the tracked-source × self-reported matrix.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct SelfReportedCell {
    pub widget_version: String,
    pub source_code: String,
    pub source_name: String,
    /// The homeowner's answer to "How did you hear about us?"; `null` for leads that did not
    /// answer (or whose widget does not ask).
    pub heard_about: Option<String>,
    pub leads: u64,
}

/// The matrix as cells, tracked sources in the order given, answers alphabetical with the
/// unanswered last; cells with no leads are left out.
pub fn self_reported_cells(
    sources: &[Source],
    counts: &BTreeMap<(u32, u32, Option<String>), u64>,
) -> Vec<SelfReportedCell> {
    let mut out = Vec::new();
    for s in sources {
        let key = (s.widget_version.get(), s.code.get());
        let mut answers: Vec<(&Option<String>, u64)> = counts
            .iter()
            .filter(|((w, c, _), _)| (*w, *c) == key)
            .map(|((_, _, answer), n)| (answer, *n))
            .collect();
        answers.sort_by_key(|(answer, _)| (answer.is_none(), (*answer).clone()));
        out.extend(answers.into_iter().map(|(answer, leads)| SelfReportedCell {
            widget_version: s.widget_version.to_string(),
            source_code: s.code.to_string(),
            source_name: s.name.clone(),
            heard_about: answer.clone(),
            leads,
        }));
    }
    out
}

/// A spreadsheet runs a cell that starts with `=`, `+`, `-`, `@` (or a tab or carriage return
/// that hides one) as a formula; a leading apostrophe makes it text.
pub fn neutralise(cell: &str) -> String {
    let text = if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// The source table as the Reports page shows it, one row per source.
pub fn sources_csv(rows: &[SourceRow]) -> String {
    let mut out = String::from(
        "widget_version,source_code,display_code,source_name,names_at_arrival,channel_category,\
         visits,leads,first_touch_leads,conversion_rate,reached_project,reached_personal,\
         contact_requested,enriched,average_score,pipeline_value,corrected,won,close_rate,\
         revenue,spend,cost_per_lead,cost_per_won,roas\n",
    );
    for r in rows {
        let cells = [
            r.widget_version.clone(),
            r.source_code.clone(),
            r.display_code.clone(),
            r.source_name.clone(),
            r.names_at_arrival.join("; "),
            r.channel_category.id().to_owned(),
            r.visits.to_string(),
            r.leads.exact(),
            r.first_touch_leads.to_string(),
            format!("{:.4}", r.conversion_rate),
            r.reached_project.exact(),
            r.reached_personal.exact(),
            r.contact_requested.exact(),
            r.enriched.exact(),
            r.average_score
                .map(|a| format!("{a:.1}"))
                .unwrap_or_default(),
            r.pipeline_value.to_string(),
            r.corrected.to_string(),
            r.money.won.exact(),
            format!("{:.4}", r.money.close_rate),
            minor(Some(r.money.revenue)),
            minor(r.money.spend),
            minor(r.money.cost_per_lead),
            minor(r.money.cost_per_won),
            r.money.roas.map(|x| format!("{x:.2}")).unwrap_or_default(),
        ];
        let line: Vec<String> = cells.iter().map(|c| neutralise(c)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// Minor units as whole units with two decimals (`1250.50`) for a spreadsheet; empty for
/// unknown.
fn minor(amount: Option<u64>) -> String {
    amount
        .map(|a| format!("{}.{:02}", a / 100, a % 100))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_quoted_cells_escaped() {
        assert_eq!(
            neutralise("=HYPERLINK(\"x\")"),
            "\"'=HYPERLINK(\"\"x\"\")\""
        );
        assert_eq!(neutralise("+1"), "'+1");
        assert_eq!(neutralise("-2"), "'-2");
        assert_eq!(neutralise("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(neutralise("Facebook, Inc"), "\"Facebook, Inc\"");
        assert_eq!(neutralise("Yard Signs"), "Yard Signs");
    }

    #[test]
    fn costs_are_unknown_without_spend_and_never_divide_by_zero() {
        let none = Money {
            won: Credit::whole(2),
            revenue: 500_000,
            spend: None,
        }
        .figures(Credit::whole(10));
        assert_eq!(
            (none.spend, none.cost_per_lead, none.cost_per_won, none.roas),
            (None, None, None, None)
        );
        assert_eq!(none.close_rate, 0.2);
        let nothing_won = Money {
            won: Credit::ZERO,
            revenue: 0,
            spend: Some(30_000),
        }
        .figures(Credit::ZERO);
        assert_eq!(nothing_won.cost_per_lead, None);
        assert_eq!(nothing_won.cost_per_won, None);
        assert_eq!(nothing_won.roas, Some(0.0));
        let free = Money {
            won: Credit::whole(1),
            revenue: 100,
            spend: Some(0),
        }
        .figures(Credit::whole(3));
        assert_eq!((free.cost_per_lead, free.roas), (Some(0), None));
        let paid = Money {
            won: Credit::whole(3),
            revenue: 1_000_000,
            spend: Some(250_000),
        }
        .figures(Credit::whole(7));
        // 250,000 / 7 = 35,714.29 → 35,714; / 3 = 83,333.3 → 83,333; 1,000,000 / 250,000 = 4.
        assert_eq!(
            (paid.cost_per_lead, paid.cost_per_won, paid.roas),
            (Some(35_714), Some(83_333), Some(4.0))
        );
        assert_eq!(minor(Some(125_005)), "1250.05");
        assert_eq!(minor(None), "");
    }

    #[test]
    fn conversion_is_zero_without_visits() {
        assert_eq!(rate(Credit::whole(5), 0), 0.0);
        assert_eq!(rate(Credit::whole(1), 3), 0.3333);
        // A third of a lead per visit.
        assert_eq!(rate(Credit::from_units(333_333), 1), 0.3333);
    }
}
