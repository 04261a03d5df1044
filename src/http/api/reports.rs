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
use crate::domain::multi_touch::{CreditSettings, Model};
use crate::domain::time_zone::{OrgTimeZone, date_of_day};
use crate::http::AppState;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery, OrgAuth, widget_version};
use crate::reports::{
    ChannelRow, DerivedChannelRow, ModelRow, Report, SelfReportedCell, SourceRow, compare_models,
    self_reported_cells, sources_csv,
};
use crate::store::{Interval, ReportFilter};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/reports/sources", get(sources_report))
        .route("/reports/sources.csv", get(sources_csv_report))
        .route("/reports/channels", get(channels_report))
        .route("/reports/timeseries", get(timeseries_report))
        .route("/reports/self-reported", get(self_reported_report))
        .route("/reports/derived-channels", get(derived_channels_report))
        .route("/reports/models", get(models_report))
        .route(
            "/reports/attribution",
            get(attribution_settings).put(change_attribution_settings),
        )
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
    /// How leads are credited: `last` (default), `first`, `linear`, `position_based` or
    /// `time_decay`.
    model: Option<String>,
    /// The older name of `model`, for `last` or `first`.
    touch: Option<String>,
    /// Timeseries only: `day` (default) or `week`.
    interval: Option<String>,
}

/// A `from`/`to` value: an RFC 3339 instant, or a date meaning its first instant in the
/// organization's time zone.
fn instant(tz: &OrgTimeZone, field: &'static str, raw: &str) -> Result<i64, ApiError> {
    if let Ok(date) = raw.parse::<jiff::civil::Date>()
        && raw.len() == 10
    {
        return Ok(tz.start_of(date));
    }
    parse_time(field, raw)
}

impl ReportQuery {
    fn filter(&self, tz: &OrgTimeZone) -> Result<ReportFilter, ApiError> {
        let model = match (self.model.as_deref(), self.touch.as_deref()) {
            (Some(model), _) => Model::parse(model)
                .map_err(|e| ApiError::bad_request("invalid_query", e.message))?,
            (None, None | Some("last")) => Model::LastTouch,
            (None, Some("first")) => Model::FirstTouch,
            (None, Some(other)) => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("touch {other:?}: use last or first (or model=…)"),
                ));
            }
        };
        Ok(ReportFilter {
            widget: self.widget.as_deref().map(widget_version).transpose()?,
            from_ms: self
                .from
                .as_deref()
                .map(|t| instant(tz, "from", t))
                .transpose()?,
            to_ms: self
                .to
                .as_deref()
                .map(|t| instant(tz, "to", t))
                .transpose()?,
            model,
            raw_rows: false,
        })
    }
}

async fn report(state: &AppState, org: &OrgId, q: &ReportQuery) -> Result<Report, ApiError> {
    let tz = state.store.organization(org).await?.time_zone;
    let filter = q.filter(&tz)?;
    Report::load(&state.store, org, &filter)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(&format!("widget {}", q.widget.as_deref().unwrap_or("")))
        })
}

/// A row per source: visits, last- and first-touch leads, the step funnel, enriched, average
/// score, pipeline value, corrections, conversion. Dates are the organization's time zone.
#[utoipa::path(get, path = "/reports/sources", params(ReportQuery),
    responses((status = 200, body = [SourceRow]), (status = 400, body = ErrorBody)))]
pub async fn sources_report(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> ApiResult<Json<Vec<SourceRow>>> {
    Ok(Json(report(&state, &org, &q).await?.sources))
}

/// The source report as CSV (cells that could run as formulas are neutralised)
#[utoipa::path(get, path = "/reports/sources.csv", params(ReportQuery),
    responses((status = 200, content_type = "text/csv"), (status = 400, body = ErrorBody)))]
pub async fn sources_csv_report(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> ApiResult<impl IntoResponse> {
    let csv = sources_csv(&report(&state, &org, &q).await?.sources);
    Ok(csv_response(csv))
}

pub fn csv_response(csv: String) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                CONTENT_DISPOSITION,
                "attachment; filename=\"lead-sources.csv\"",
            ),
        ],
        csv,
    )
}

/// A row per channel category, each lead under the category it was credited with at the time
#[utoipa::path(get, path = "/reports/channels", params(ReportQuery),
    responses((status = 200, body = [ChannelRow]), (status = 400, body = ErrorBody)))]
pub async fn channels_report(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> ApiResult<Json<Vec<ChannelRow>>> {
    Ok(Json(report(&state, &org, &q).await?.channels))
}

/// Website (`SRC-01`) visits and leads by derived channel (direct, organic search, …)
#[utoipa::path(get, path = "/reports/derived-channels", params(ReportQuery),
    responses((status = 200, body = [DerivedChannelRow]), (status = 400, body = ErrorBody)))]
pub async fn derived_channels_report(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> ApiResult<Json<Vec<DerivedChannelRow>>> {
    Ok(Json(report(&state, &org, &q).await?.derived))
}

/// Every source under every attribution model side by side: credited leads, won jobs,
/// revenue, cost per lead and ROAS under last touch, first touch, linear, position-based and
/// time decay (the `model` parameter is ignored)
#[utoipa::path(get, path = "/reports/models", params(ReportQuery),
    responses((status = 200, body = [ModelRow]), (status = 400, body = ErrorBody)))]
pub async fn models_report(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> ApiResult<Json<Vec<ModelRow>>> {
    let tz = state.store.organization(&org).await?.time_zone;
    let filter = q.filter(&tz)?;
    let rows = compare_models(&state.store, &org, &filter)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(&format!("widget {}", q.widget.as_deref().unwrap_or("")))
        })?;
    Ok(Json(rows))
}

/// How the multi-touch models read a lead's touches.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributionSettings {
    /// Visits up to this many days before a lead are its touches (1–365; 90 by default).
    lookback_days: i64,
    /// Time decay: a touch this many days older weighs half as much (1–90; 7 by default).
    half_life_days: i64,
    /// While the model reports are recounted after a change: leads counted so far, and of
    /// how many. Read-only.
    #[serde(default, skip_deserializing)]
    recount: Option<RecountBody>,
}

#[derive(Serialize, ToSchema)]
pub struct RecountBody {
    done: u64,
    total: u64,
}

async fn settings_body(state: &AppState, org: &OrgId) -> Result<AttributionSettings, ApiError> {
    let settings = state.store.credit_settings(org).await?;
    let recount = state.store.credit_recount(org).await?;
    Ok(AttributionSettings {
        lookback_days: i64::from(settings.lookback_days()),
        half_life_days: i64::from(settings.half_life_days()),
        recount: recount.map(|r| RecountBody {
            done: r.done,
            total: r.total,
        }),
    })
}

/// The lookback window and time-decay half-life of the multi-touch models
#[utoipa::path(get, path = "/reports/attribution",
    responses((status = 200, body = AttributionSettings), (status = 401, body = ErrorBody)))]
pub async fn attribution_settings(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
) -> ApiResult<Json<AttributionSettings>> {
    Ok(Json(settings_body(&state, &org).await?))
}

/// Change the lookback window or half-life; the model reports are recounted in the
/// background (`recount` shows how far)
#[utoipa::path(put, path = "/reports/attribution", request_body = AttributionSettings,
    responses((status = 200, body = AttributionSettings), (status = 422, body = ErrorBody)))]
pub async fn change_attribution_settings(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    ApiJson(body): ApiJson<AttributionSettings>,
) -> ApiResult<Json<AttributionSettings>> {
    let settings = CreditSettings::new(body.lookback_days, body.half_life_days)?;
    state.store.update_credit_settings(&org, settings).await?;
    Ok(Json(settings_body(&state, &org).await?))
}

/// Tracked source × "How did you hear about us?": leads per (credited source, answer)
#[utoipa::path(get, path = "/reports/self-reported", params(ReportQuery),
    responses((status = 200, body = [SelfReportedCell]), (status = 400, body = ErrorBody)))]
pub async fn self_reported_report(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> ApiResult<Json<Vec<SelfReportedCell>>> {
    let tz = state.store.organization(&org).await?.time_zone;
    let filter = q.filter(&tz)?;
    let sources = crate::reports::report_sources(&state.store, &org, &filter)
        .await?
        .ok_or_else(|| {
            let widget = filter.widget.map(|w| w.to_string()).unwrap_or_default();
            ApiError::not_found(&format!("widget {widget}"))
        })?;
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

/// A row per local day (or week from Monday) of the organization's time zone and source
/// (each lead once, under the source it arrived through, whatever `model` says)
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
    let tz = state.store.organization(&org).await?.time_zone;
    let filter = q.filter(&tz)?;
    let counts = state
        .store
        .period_counts(&org, &filter, interval, &tz)
        .await?;
    let day = |n: i64| date_of_day(n).to_string();
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
