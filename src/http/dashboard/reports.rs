//! The Reports tab: which sources bring leads over a period of the organization's own days,
//! as a stacked chart (server-rendered SVG with a table for screen readers), the source table
//! with first and last touch side by side, the channel table and the Website's derived
//! channels; a CSV of the source table as shown. A model selector credits leads by last or
//! first touch or over all their touches (linear, position-based, time decay), and a table
//! puts every source under every model side by side.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use jiff::civil::Date;
use serde::Deserialize;

use super::page::{
    Chrome, PageError, Tab, encode, humanize, money, money_minor, render, see_other,
};
use super::session::{EditorForm, Session, Submitted};
use crate::domain::multi_touch::{CreditSettings, Model};
use crate::domain::time_zone::{OrgTimeZone, date_of_day, day_number};
use crate::domain::widget::WidgetVersion;
use crate::http::AppState;
use crate::http::api::reports::csv_response;
use crate::reports::{ModelRow, compare_models};
use crate::reports::{Report, Totals, sources_csv};
use crate::store::{Interval, RecountProgress, ReportFilter};

#[derive(Deserialize, Default, Clone)]
pub struct ReportsQuery {
    widget: Option<String>,
    preset: Option<String>,
    from: Option<String>,
    to: Option<String>,
    model: Option<String>,
    /// The older name of `model` (`last` or `first`), from links made before models.
    touch: Option<String>,
}

/// Which model the page credits leads with; an unknown one shows last touch.
fn model_of(q: &ReportsQuery) -> Model {
    q.model
        .as_deref()
        .or(q.touch.as_deref())
        .and_then(|m| Model::parse(m).ok())
        .unwrap_or_default()
}

/// The date presets, in the order the page offers them.
const PRESETS: [(&str, &str); 6] = [
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("90d", "Last 90 days"),
    ("this_month", "This month"),
    ("last_month", "Last month"),
    ("custom", "Custom"),
];

/// The local dates a preset covers, both included, given today's date. A custom range needs
/// `from` ≤ `to`, at most 366 days.
pub fn date_range(
    preset: &str,
    today: Date,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(Date, Date), String> {
    let days_back = |n: i64| {
        today
            .checked_sub(jiff::Span::new().days(n))
            .unwrap_or(today)
    };
    let first_of_month = today.first_of_month();
    Ok(match preset {
        "7d" => (days_back(6), today),
        "30d" => (days_back(29), today),
        "90d" => (days_back(89), today),
        "this_month" => (first_of_month, today),
        "last_month" => {
            let last = first_of_month.yesterday().unwrap_or(first_of_month);
            (last.first_of_month(), last)
        }
        "custom" => {
            let parse = |raw: Option<&str>, name: &str| {
                raw.and_then(|r| r.parse::<Date>().ok())
                    .ok_or_else(|| format!("Choose a {name} date."))
            };
            let (from, to) = (parse(from, "start")?, parse(to, "end")?);
            if from > to {
                return Err("The start date is after the end date.".into());
            }
            if day_number(to) - day_number(from) > 366 {
                return Err("Choose at most a year.".into());
            }
            (from, to)
        }
        other => return Err(format!("Unknown period {other:?}.")),
    })
}

pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// One bar segment of the chart: a source's leads in one period.
pub struct Segment {
    pub y: f64,
    pub height: f64,
    pub class: String,
    pub title: String,
}

pub struct Bar {
    pub x: f64,
    pub width: f64,
    pub segments: Vec<Segment>,
}

pub struct Series {
    pub name: String,
    pub class: String,
}

/// The chart as numbers the template places; the same data as a table for screen readers.
pub struct Chart {
    pub bars: Vec<Bar>,
    pub series: Vec<Series>,
    pub max: u64,
    /// A few period labels, evenly spread under the bars (HTML, so they stay legible when
    /// the chart is squeezed to a phone's width).
    pub ticks: Vec<String>,
    pub table_head: Vec<String>,
    pub table_rows: Vec<(String, Vec<u64>)>,
}

const CHART_WIDTH: f64 = 640.0;
const CHART_HEIGHT: f64 = 200.0;
/// Sources beyond these many get one "Other sources" series, so colours stay tellable apart.
const MAX_SERIES: usize = 6;
const MAX_TICKS: usize = 6;

/// Stacks each period's leads by source: the sources with most leads get their own colour.
fn chart(
    periods: &[i64],
    counts: &BTreeMap<(i64, u32, u32), (u64, u64)>,
    names: &BTreeMap<(u32, u32), String>,
    interval: Interval,
) -> Chart {
    let mut by_source: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    for (&(_, w, s), &(_, leads)) in counts {
        *by_source.entry((w, s)).or_default() += leads;
    }
    let mut ranked: Vec<((u32, u32), u64)> =
        by_source.into_iter().filter(|(_, n)| *n > 0).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut series_of: BTreeMap<(u32, u32), usize> = BTreeMap::new();
    let mut series = Vec::new();
    for (i, (key, _)) in ranked.iter().enumerate() {
        let index = i.min(MAX_SERIES);
        if index == series.len() {
            series.push(Series {
                name: if i < MAX_SERIES {
                    names
                        .get(key)
                        .cloned()
                        .unwrap_or_else(|| format!("{:02}/{:02}", key.0, key.1))
                } else {
                    "Other sources".into()
                },
                class: format!("s{index}"),
            });
        }
        series_of.insert(*key, index);
    }
    let mut matrix: Vec<Vec<u64>> = vec![vec![0; series.len()]; periods.len()];
    for (&(period, w, s), &(_, leads)) in counts {
        if let (Ok(p), Some(&k)) = (periods.binary_search(&period), series_of.get(&(w, s))) {
            matrix[p][k] += leads;
        }
    }
    let max = matrix
        .iter()
        .map(|r| r.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = CHART_WIDTH / periods.len().max(1) as f64;
    let label = |day: i64| {
        let d = date_of_day(day);
        match interval {
            Interval::Day => d.strftime("%b %-d").to_string(),
            Interval::Week => format!("wk {}", d.strftime("%b %-d")),
        }
    };
    let bars = periods
        .iter()
        .enumerate()
        .map(|(i, &day)| {
            let mut y = CHART_HEIGHT;
            let segments = matrix[i]
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(k, &n)| {
                    let height = n as f64 / max as f64 * CHART_HEIGHT;
                    y -= height;
                    Segment {
                        y,
                        height,
                        class: series[k].class.clone(),
                        title: format!("{}: {} · {n} leads", label(day), series[k].name),
                    }
                })
                .collect();
            Bar {
                x: i as f64 * slot + slot * 0.1,
                width: slot * 0.8,
                segments,
            }
        })
        .collect();
    let ticks = match periods.len() {
        0 => Vec::new(),
        1 => vec![label(periods[0])],
        n => {
            let count = n.min(MAX_TICKS);
            (0..count)
                .map(|i| label(periods[i * (n - 1) / (count - 1)]))
                .collect()
        }
    };
    Chart {
        ticks,
        table_head: series.iter().map(|s| s.name.clone()).collect(),
        table_rows: periods
            .iter()
            .zip(&matrix)
            .map(|(&day, row)| (label(day), row.clone()))
            .collect(),
        bars,
        series,
        max,
    }
}

#[derive(Template)]
#[template(path = "reports.html")]
pub struct ReportsPage {
    pub chrome: Chrome,
    pub time_zone: String,
    pub widgets: Vec<Choice>,
    pub presets: Vec<Choice>,
    pub custom: bool,
    pub from: String,
    pub to: String,
    pub error: Option<String>,
    pub period_label: String,
    pub totals: Totals,
    pub report: Report,
    pub chart: Chart,
    pub csv_href: String,
    /// How leads are credited, and the models to choose from.
    pub model: Model,
    pub models: Vec<Choice>,
    /// Every source under every model, side by side.
    pub comparison: Vec<ModelRow>,
    pub settings: CreditSettings,
    /// While the model rows are recounted after a settings change.
    pub recount: Option<RecountProgress>,
}

impl ReportsPage {
    pub fn percent(&self, rate: &f64) -> String {
        format!("{:.1}%", rate * 100.0)
    }

    pub fn money(&self, n: &u64) -> String {
        money(*n)
    }

    /// Minor units (cents) as money.
    pub fn cash(&self, n: &u64) -> String {
        money_minor(i64::try_from(*n).unwrap_or(i64::MAX))
    }

    /// Minor units, or `—` when unknown (no spend entered, nothing to divide by).
    pub fn cents(&self, n: &Option<u64>) -> String {
        n.map_or("—".to_owned(), |n| {
            money_minor(i64::try_from(n).unwrap_or(i64::MAX))
        })
    }

    pub fn roas(&self, r: &Option<f64>) -> String {
        r.map_or("—".to_owned(), |r| format!("{r:.2}×"))
    }

    pub fn channel(&self, id: &str) -> String {
        humanize(id)
    }

    pub fn first_touch(&self) -> bool {
        self.model == Model::FirstTouch
    }

    pub fn multi_touch(&self) -> bool {
        self.model.is_multi_touch()
    }

    pub fn percent_done(&self, r: &RecountProgress) -> u64 {
        (r.done * 100).checked_div(r.total).unwrap_or(0).min(100)
    }
}

/// What a query asks for, resolved: widget, dates, and an error to show instead of guessing.
struct Resolved {
    widget: Option<WidgetVersion>,
    preset: String,
    from: Date,
    to: Date,
    error: Option<String>,
}

fn resolve(q: &ReportsQuery, tz: &OrgTimeZone) -> Resolved {
    let today = tz.date_of(crate::store::now_ms());
    let preset = q.preset.clone().unwrap_or_else(|| "30d".into());
    let widget = q
        .widget
        .as_deref()
        .filter(|w| !w.is_empty())
        .and_then(WidgetVersion::parse);
    match date_range(&preset, today, q.from.as_deref(), q.to.as_deref()) {
        Ok((from, to)) => Resolved {
            widget,
            preset,
            from,
            to,
            error: None,
        },
        Err(error) => {
            let (from, to) = date_range("30d", today, None, None).unwrap_or((today, today));
            Resolved {
                widget,
                preset,
                from,
                to,
                error: Some(error),
            }
        }
    }
}

fn filter_of(r: &Resolved, tz: &OrgTimeZone, model: Model) -> ReportFilter {
    ReportFilter {
        widget: r.widget,
        model,
        from_ms: Some(tz.start_of(r.from)),
        to_ms: Some(tz.start_of(r.to.tomorrow().unwrap_or(r.to))),
        ..ReportFilter::default()
    }
}

fn query_string(q: &ReportsQuery) -> String {
    let mut out = Vec::new();
    for (k, v) in [
        ("widget", &q.widget),
        ("preset", &q.preset),
        ("from", &q.from),
        ("to", &q.to),
        ("model", &q.model),
        ("touch", &q.touch),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            out.push(format!("{k}={}", encode(v)));
        }
    }
    out.join("&")
}

pub async fn show(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<ReportsQuery>,
) -> Result<Response, PageError> {
    let org = session.org();
    let organization = state.store.organization(org).await?;
    let tz = organization.time_zone.clone();
    let resolved = resolve(&q, &tz);
    let filter = filter_of(&resolved, &tz, model_of(&q));
    let report = Report::load(&state.store, org, &filter)
        .await?
        .ok_or_else(PageError::not_found)?;
    let comparison = compare_models(&state.store, org, &filter)
        .await?
        .unwrap_or_default();
    let days = day_number(resolved.to) - day_number(resolved.from) + 1;
    let interval = if days > 62 {
        Interval::Week
    } else {
        Interval::Day
    };
    let counts = state
        .store
        .period_counts(org, &filter, interval, &tz)
        .await?;
    let first = day_number(resolved.from);
    let periods: Vec<i64> = (first..first + days)
        .map(|d| match interval {
            Interval::Day => d,
            Interval::Week => (d + 3).div_euclid(7) * 7 - 3,
        })
        .fold(Vec::new(), |mut acc, p| {
            if acc.last() != Some(&p) {
                acc.push(p);
            }
            acc
        });
    let names: BTreeMap<(u32, u32), String> = report
        .sources
        .iter()
        .filter_map(|r| {
            let w = WidgetVersion::parse(&r.widget_version)?.get();
            let s = crate::domain::source::SourceCode::parse(&r.source_code)?.get();
            let name = if filter.widget.is_some() {
                format!("{} {}", r.display_code, r.source_name)
            } else {
                format!("{}/{} {}", r.widget_version, r.display_code, r.source_name)
            };
            Some(((w, s), name))
        })
        .collect();
    let widgets = state.store.widgets(org).await?;
    let page = ReportsPage {
        time_zone: tz.name().to_owned(),
        widgets: widgets
            .iter()
            .map(|w| Choice {
                value: w.version.to_string(),
                label: format!("{} (v{})", w.name, w.version),
                selected: Some(w.version) == resolved.widget,
            })
            .collect(),
        presets: PRESETS
            .iter()
            .map(|(value, label)| Choice {
                value: (*value).to_owned(),
                label: (*label).to_owned(),
                selected: *value == resolved.preset,
            })
            .collect(),
        custom: resolved.preset == "custom",
        from: resolved.from.to_string(),
        to: resolved.to.to_string(),
        period_label: format!(
            "{} – {}",
            resolved.from.strftime("%b %-d, %Y"),
            resolved.to.strftime("%b %-d, %Y")
        ),
        error: resolved.error,
        totals: report.totals(),
        chart: chart(&periods, &counts, &names, interval),
        report,
        csv_href: format!("/app/reports.csv?{}", query_string(&q)),
        model: filter.model,
        models: Model::ALL
            .iter()
            .map(|m| Choice {
                value: m.id().to_owned(),
                label: m.label().to_owned(),
                selected: *m == filter.model,
            })
            .collect(),
        comparison,
        settings: state.store.credit_settings(org).await?,
        recount: state.store.credit_recount(org).await?,
        chrome: Chrome::new(&session, organization.name, Tab::Reports),
    };
    render(&page)
}

/// An editor changes the lookback window or the half-life; the model reports are then
/// recounted in the background.
pub async fn save_attribution(
    State(state): State<AppState>,
    EditorForm(Submitted { session, form }): EditorForm,
) -> Result<Response, PageError> {
    let number = |field: &str| form.text(field).trim().parse::<i64>().unwrap_or(-1);
    match CreditSettings::new(number("lookback_days"), number("half_life_days")) {
        Ok(settings) => {
            state
                .store
                .update_credit_settings(session.org(), settings)
                .await?;
            Ok(see_other(
                "/app/reports?model=linear",
                &format!(
                    "Multi-touch credit now looks back {} days with a {}-day half-life; the \
                     reports are being recounted.",
                    settings.lookback_days(),
                    settings.half_life_days()
                ),
            ))
        }
        Err(e) => Ok(see_other(
            "/app/reports",
            &format!("Not saved: {}.", e.message),
        )),
    }
}

/// The source table of the page with the same query, as CSV.
pub async fn csv(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<ReportsQuery>,
) -> Result<Response, PageError> {
    let org = session.org();
    let tz = state.store.organization(org).await?.time_zone;
    let filter = filter_of(&resolve(&q, &tz), &tz, model_of(&q));
    let report = Report::load(&state.store, org, &filter)
        .await?
        .ok_or_else(PageError::not_found)?;
    Ok(csv_response(sources_csv(&report.sources)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_cover_whole_local_days() {
        let today = Date::constant(2026, 3, 10);
        assert_eq!(
            date_range("7d", today, None, None),
            Ok((Date::constant(2026, 3, 4), today))
        );
        assert_eq!(
            date_range("this_month", today, None, None),
            Ok((Date::constant(2026, 3, 1), today))
        );
        assert_eq!(
            date_range("last_month", today, None, None),
            Ok((Date::constant(2026, 2, 1), Date::constant(2026, 2, 28)))
        );
        assert_eq!(
            date_range("custom", today, Some("2026-01-05"), Some("2026-01-05")),
            Ok((Date::constant(2026, 1, 5), Date::constant(2026, 1, 5)))
        );
        assert!(date_range("custom", today, Some("2026-01-06"), Some("2026-01-05")).is_err());
        assert!(date_range("custom", today, Some("2024-01-01"), Some("2026-01-05")).is_err());
        assert!(date_range("custom", today, None, Some("2026-01-05")).is_err());
        assert!(date_range("forever", today, None, None).is_err());
    }

    #[test]
    fn the_chart_stacks_sources_and_folds_the_tail_into_other() {
        let periods = [100, 101];
        let mut counts = BTreeMap::new();
        for s in 1..=8u32 {
            counts.insert((100, 1, s), (0, u64::from(s)));
        }
        counts.insert((101, 1, 8), (0, 4));
        let names = (1..=8u32).map(|s| ((1, s), format!("S{s}"))).collect();
        let c = chart(&periods, &counts, &names, Interval::Day);
        assert_eq!(c.series.len(), MAX_SERIES + 1);
        assert_eq!(c.series[0].name, "S8");
        assert_eq!(c.series[MAX_SERIES].name, "Other sources");
        // Day 100: 1 + 2 + … + 8 = 36 leads, the tallest bar, filling the height.
        assert_eq!(c.max, 36);
        let total: f64 = c.bars[0].segments.iter().map(|s| s.height).sum();
        assert!((total - CHART_HEIGHT).abs() < 1e-6);
        assert_eq!(c.table_rows[1].1[0], 4, "S8 on day 101");
        assert_eq!(c.table_rows[0].1[MAX_SERIES], 3, "S1 and S2 are the tail");
    }
}
