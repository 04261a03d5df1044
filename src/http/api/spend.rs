//! Spend per source and month: set or remove one month, list them, import many from CSV.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::spend::{Month, RefusedLine, SpendEntry, parse_amount, parse_import};
use crate::http::AppState;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery, KeyAuth, OrgAuth, source_code, widget_version};
use crate::store::{SpendImport, SpendRow, rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/widgets/{version}/sources/{code}/spend/{month}",
            put(set_spend).delete(delete_spend),
        )
        .route("/spend", get(list_spend))
        .route("/spend/import", post(import_spend))
}

#[derive(Serialize, ToSchema)]
pub struct SpendBody {
    widget_version: String,
    source_code: String,
    /// `2026-11`.
    month: String,
    /// Minor units of the organization's currency (cents).
    amount: i64,
    /// `user:…` or `api_key:…`.
    updated_by: String,
    updated_at: String,
}

impl From<SpendRow> for SpendBody {
    fn from(r: SpendRow) -> Self {
        Self {
            widget_version: r.entry.widget.to_string(),
            source_code: r.entry.source.to_string(),
            month: r.entry.month.to_string(),
            amount: r.entry.amount,
            updated_by: r.updated_by,
            updated_at: rfc3339(r.updated_at),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSpend {
    /// What the source cost that month, minor units (cents); 0 to 1,000,000,000.
    amount: i64,
}

fn month(raw: &str) -> Result<Month, ApiError> {
    Month::parse(raw).map_err(Into::into)
}

/// Set what a source cost in a month (replacing what was there); archived sources included
#[utoipa::path(put, path = "/widgets/{version}/sources/{code}/spend/{month}",
    request_body = SetSpend,
    params(("version" = String, Path), ("code" = String, Path), ("month" = String, Path, description = "yyyy-mm")),
    responses((status = 200, body = SpendBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn set_spend(
    State(state): State<AppState>,
    key: KeyAuth,
    Path((version, code, raw_month)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<SetSpend>,
) -> ApiResult<Json<SpendBody>> {
    let entry = SpendEntry {
        widget: widget_version(&version)?,
        source: source_code(&code)?,
        month: month(&raw_month)?,
        amount: parse_amount(body.amount)?,
    };
    let row = state
        .store
        .set_spend(&key.org, &entry, &key.actor())
        .await?;
    Ok(Json(row.into()))
}

/// Remove a month's spend (the report shows its costs as unknown again)
#[utoipa::path(delete, path = "/widgets/{version}/sources/{code}/spend/{month}",
    params(("version" = String, Path), ("code" = String, Path), ("month" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_spend(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    Path((version, code, raw_month)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    state
        .store
        .delete_spend(
            &org,
            widget_version(&version)?,
            source_code(&code)?,
            month(&raw_month)?,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SpendQuery {
    /// Widget version, e.g. `02`.
    widget: Option<String>,
    /// First month, `yyyy-mm`.
    from: Option<String>,
    /// Last month (inclusive), `yyyy-mm`.
    to: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SpendList {
    spend: Vec<SpendBody>,
}

/// Spend entered, by widget, source and month
#[utoipa::path(get, path = "/spend", params(SpendQuery),
    responses((status = 200, body = SpendList), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn list_spend(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    ApiQuery(q): ApiQuery<SpendQuery>,
) -> ApiResult<Json<SpendList>> {
    let rows = state
        .store
        .spend(
            &org,
            q.widget.as_deref().map(widget_version).transpose()?,
            q.from.as_deref().map(month).transpose()?,
            q.to.as_deref().map(month).transpose()?,
        )
        .await?;
    Ok(Json(SpendList {
        spend: rows.into_iter().map(Into::into).collect(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct SpendImported {
    /// Rows written.
    imported: usize,
}

/// The error shape, with every refused line of the file.
#[derive(Serialize, ToSchema)]
pub struct ImportRefused {
    error: ImportRefusedDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ImportRefusedDetail {
    /// `spend_import_refused` or `lead_import_refused`.
    code: &'static str,
    message: String,
    lines: Vec<RefusedLine>,
}

/// An import's answer: 200 with the rows written, or 422 with every refused line.
pub struct ImportAnswer(SpendImport);

impl IntoResponse for ImportAnswer {
    fn into_response(self) -> Response {
        match self.0 {
            SpendImport::Imported(imported) => Json(SpendImported { imported }).into_response(),
            SpendImport::Refused(lines) => refused_import("spend_import_refused", lines),
        }
    }
}

/// 422 with the error shape and every refused line of an import file.
pub(super) fn refused_import(code: &'static str, lines: Vec<RefusedLine>) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(ImportRefused {
            error: ImportRefusedDetail {
                code,
                message: format!(
                    "{} line(s) cannot be imported; nothing was written",
                    lines.len()
                ),
                lines,
            },
        }),
    )
        .into_response()
}

/// Import many months of spend from CSV (`Content-Type: text/csv`): a header
/// `widget_version,source_code,month,amount`, then a row per source and month, the amount in
/// whole units with up to two decimals (`1250.50`). Every line is written, or none: a bad
/// line (unreadable, a source the organization does not have, the same source and month
/// twice) refuses the file, and every such line is listed with its reason. A month already
/// entered is replaced
#[utoipa::path(post, path = "/spend/import", request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = SpendImported), (status = 422, body = ImportRefused)))]
pub async fn import_spend(
    State(state): State<AppState>,
    key: KeyAuth,
    body: axum::body::Bytes,
) -> ApiResult<ImportAnswer> {
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "the file is not UTF-8 text",
        )
    })?;
    let file = parse_import(text);
    let done = state
        .store
        .import_spend(&key.org, &file, &key.actor())
        .await?;
    Ok(ImportAnswer(done))
}
