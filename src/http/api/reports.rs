//! Reports: leads and visits by source, by channel, by period; the source report as CSV.

use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::leads::parse_time;
use crate::domain::ids::OrgId;
use crate::http::AppState;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiQuery, OrgAuth, widget_version};
use crate::reports::{
    ChannelRow, SelfReportedCell, SourceRow, channel_rows, self_reported_cells, source_rows,
    sources_csv,
};
use crate::store::{Interval, ReportFilter, SourceFilter, Touch};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/reports/sources", get(sources_report))
        .route("/reports/sources.csv", get(sources_csv_report))
        .route("/reports/channels", get(channels_report))
        .route("/reports/timeseries", get(timeseries_report))
        .route("/reports/self-reported", get(self_reported_report))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// Widget version; all widgets when absent.
    widget: Option<String>,
    /// RFC 3339 time or `YYYY-MM-DD` (inclusive).
    from: Option<String>,
    /// RFC 3339 time or `YYYY-MM-DD` (exclusive).
    to: Option<String>,
    /// `last` (default) or `first`.
    touch: Option<String>,
    /// Timeseries only: `day` (default) or `week`.
    interval: Option<String>,
}

impl ReportQuery {
    fn filter(&self) -> Result<ReportFilter, ApiError> {
        let touch = match self.touch.as_deref() {
            None | Some("last") => Touch::Last,
            Some("first") => Touch::First,
            Some(other) => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("touch {other:?}: use last or first"),
                ));
            }
        };
        Ok(ReportFilter {
            widget: self.widget.as_deref().map(widget_version).transpose()?,
            from_ms: self
                .from
                .as_deref()
                .map(|t| parse_time("from", t))
                .transpose()?,
            to_ms: self
                .to
                .as_deref()
                .map(|t| parse_time("to", t))
                .transpose()?,
            touch,
        })
    }
}

/// The sources a report covers: every source of one widget or of all.
async fn report_sources(
    state: &AppState,
    org: &OrgId,
    filter: &ReportFilter,
) -> Result<Vec<crate::store::Source>, ApiError> {
    let mut sources = Vec::new();
    for widget in state.store.widgets(org).await? {
        if filter.widget.is_none_or(|w| w == widget.version) {
            sources.extend(
                state
                    .store
                    .sources(org, widget.version, SourceFilter::All)
                    .await?,
            );
        }
    }
    if let Some(w) = filter.widget
        && sources.is_empty()
    {
        return Err(ApiError::not_found(&format!("widget {w}")));
    }
    Ok(sources)
}

async fn rows(state: &AppState, org: &OrgId, q: &ReportQuery) -> Result<Vec<SourceRow>, ApiError> {
    let filter = q.filter()?;
    let sources = report_sources(state, org, &filter).await?;
    let counts = state.store.source_counts(org, &filter).await?;
    Ok(source_rows(&sources, &counts))
}

/// A row per source: visits, leads, enriched, contact requests, conversion
#[utoipa::path(get, path = "/reports/sources", params(ReportQuery),
    responses((status = 200, body = [SourceRow]), (status = 400, body = ErrorBody)))]
pub async fn sources_report(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> ApiResult<Json<Vec<SourceRow>>> {
    Ok(Json(rows(&state, &org, &q).await?))
}

/// The source report as CSV (cells that could run as formulas are neutralised)
#[utoipa::path(get, path = "/reports/sources.csv", params(ReportQuery),
    responses((status = 200, content_type = "text/csv"), (status = 400, body = ErrorBody)))]
pub async fn sources_csv_report(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> ApiResult<impl IntoResponse> {
    let csv = sources_csv(&rows(&state, &org, &q).await?);
    Ok((
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                CONTENT_DISPOSITION,
                "attachment; filename=\"lead-sources.csv\"",
            ),
        ],
        csv,
    ))
}

/// A row per channel category
#[utoipa::path(get, path = "/reports/channels", params(ReportQuery),
    responses((status = 200, body = [ChannelRow]), (status = 400, body = ErrorBody)))]
pub async fn channels_report(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> ApiResult<Json<Vec<ChannelRow>>> {
    Ok(Json(channel_rows(&rows(&state, &org, &q).await?)))
}

/// Tracked source × "How did you hear about us?": leads per (credited source, answer)
#[utoipa::path(get, path = "/reports/self-reported", params(ReportQuery),
    responses((status = 200, body = [SelfReportedCell]), (status = 400, body = ErrorBody)))]
pub async fn self_reported_report(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> ApiResult<Json<Vec<SelfReportedCell>>> {
    let filter = q.filter()?;
    let sources = report_sources(&state, &org, &filter).await?;
    let counts = state.store.self_reported_counts(&org, &filter).await?;
    Ok(Json(self_reported_cells(&sources, &counts)))
}

#[derive(Serialize, ToSchema)]
pub struct PeriodRow {
    /// The day (`2026-11-22`) or the Monday starting the week.
    period: String,
    widget_version: String,
    source_code: String,
    visits: u64,
    leads: u64,
}

/// A row per period and source (last touch)
#[utoipa::path(get, path = "/reports/timeseries", params(ReportQuery),
    responses((status = 200, body = [PeriodRow]), (status = 400, body = ErrorBody)))]
pub async fn timeseries_report(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> ApiResult<Json<Vec<PeriodRow>>> {
    let interval = match q.interval.as_deref() {
        None | Some("day") => Interval::Day,
        Some("week") => Interval::Week,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("interval {other:?}: use day or week"),
            ));
        }
    };
    let filter = q.filter()?;
    let counts = state.store.period_counts(&org, &filter, interval).await?;
    let day = |n: i64| {
        time::Date::from_julian_day(2_440_588 + i32::try_from(n).unwrap_or(0))
            .map(|d| d.to_string())
            .unwrap_or_default()
    };
    let rows = counts
        .into_iter()
        .map(|((period, widget, source), (visits, leads))| PeriodRow {
            period: day(period),
            widget_version: format!("{widget:02}"),
            source_code: format!("{source:02}"),
            visits,
            leads,
        })
        .collect();
    Ok(Json(rows))
}
