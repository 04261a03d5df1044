//! Lead sources of one widget: list, create, edit, archive, restore.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use url::Url;
use utoipa::{IntoParams, ToSchema};

use crate::domain::DomainError;
use crate::domain::channel::ChannelCategory;
use crate::domain::source::{SourceName, SourceStatus};
use crate::domain::tracking_url::{OpenParameter, tracking_url};
use crate::http::AppState;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery, OrgAuth, source_code, widget_version};
use crate::store::rfc3339;
use crate::store::{NewSource, Source, SourceFilter, SourcePatch};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/widgets/{version}/sources",
            get(list_sources).post(create_source),
        )
        .route("/widgets/{version}/sources/{code}", patch(update_source))
        .route(
            "/widgets/{version}/sources/{code}/archive",
            post(archive_source),
        )
        .route(
            "/widgets/{version}/sources/{code}/restore",
            post(restore_source),
        )
}

#[derive(Serialize, ToSchema)]
pub struct SourceBody {
    widget_version: String,
    /// As sent in URLs and payloads: `"02"`.
    code: String,
    /// As shown in the dashboard: `"SRC-02"`.
    display_code: String,
    name: String,
    channel_category: ChannelCategory,
    channel_category_name: &'static str,
    status: SourceStatus,
    is_system: bool,
    tracking_url: String,
    qr_generated: bool,
    lead_count: u64,
    created_at: String,
    updated_at: String,
}

impl SourceBody {
    pub fn new(source: Source, open: &OpenParameter) -> Self {
        // The site URL was validated when stored; if it somehow no longer parses, show no
        // tracking URL rather than a wrong one.
        let tracking = Url::parse(&source.site_url)
            .map(|site| tracking_url(&site, open, source.widget_version, source.code).to_string())
            .unwrap_or_default();
        Self {
            widget_version: source.widget_version.to_string(),
            code: source.code.to_string(),
            display_code: source.code.display_code(),
            name: source.name,
            channel_category: source.channel_category,
            channel_category_name: source.channel_category.display_name(),
            status: source.status,
            is_system: source.is_system,
            tracking_url: tracking,
            qr_generated: source.qr_generated,
            lead_count: source.lead_count,
            created_at: rfc3339(source.created_at),
            updated_at: rfc3339(source.updated_at),
        }
    }
}

impl SourceBody {
    pub fn tracking_url(&self) -> &str {
        &self.tracking_url
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `active` (default), `archived` or `all`.
    status: Option<String>,
}

fn parse_filter(raw: Option<&str>) -> Result<SourceFilter, ApiError> {
    match raw {
        None | Some("active") => Ok(SourceFilter::Active),
        Some("archived") => Ok(SourceFilter::Archived),
        Some("all") => Ok(SourceFilter::All),
        Some(other) => Err(ApiError::bad_request(
            "invalid_query",
            format!("status {other:?}: expected active, archived or all"),
        )),
    }
}

/// List a widget's sources
#[utoipa::path(get, path = "/widgets/{version}/sources",
    params(("version" = String, Path, example = "01"), ListQuery),
    responses((status = 200, body = [SourceBody]), (status = 404, body = ErrorBody)))]
pub async fn list_sources(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    Path(version): Path<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<SourceBody>>> {
    let version = widget_version(&version)?;
    let filter = parse_filter(query.status.as_deref())?;
    let sources = state.store.sources(&org, version, filter).await?;
    let open = &state.config.open_parameter;
    Ok(Json(
        sources
            .into_iter()
            .map(|s| SourceBody::new(s, open))
            .collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSource {
    /// 1–50 characters, unique among the widget's active sources ignoring case.
    name: String,
    /// One of the channel categories (`website` is reserved for the system source).
    channel_category: String,
    /// Generate the QR code now ("Generate QR Code automatically").
    #[serde(default)]
    generate_qr: bool,
}

/// Create a custom source with the next code
#[utoipa::path(post, path = "/widgets/{version}/sources", request_body = CreateSource,
    params(("version" = String, Path, example = "01")),
    responses((status = 201, body = SourceBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`source_limit_reached` or `duplicate_source_name`"),
        (status = 422, body = ErrorBody)))]
pub async fn create_source(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    Path(version): Path<String>,
    ApiJson(body): ApiJson<CreateSource>,
) -> ApiResult<(StatusCode, Json<SourceBody>)> {
    let version = widget_version(&version)?;
    let new = NewSource {
        name: SourceName::parse(&body.name)?,
        channel_category: ChannelCategory::parse_custom(&body.channel_category)?,
        generate_qr: body.generate_qr,
    };
    let source = state.store.create_source(&org, version, new).await?;
    Ok((
        StatusCode::CREATED,
        Json(SourceBody::new(source, &state.config.open_parameter)),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSource {
    name: Option<String>,
    channel_category: Option<String>,
}

/// Edit a custom source's name and category (the code never changes)
#[utoipa::path(patch, path = "/widgets/{version}/sources/{code}", request_body = UpdateSource,
    params(("version" = String, Path, example = "01"), ("code" = String, Path, example = "02")),
    responses((status = 200, body = SourceBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_source(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    Path((version, code)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateSource>,
) -> ApiResult<Json<SourceBody>> {
    let (version, code) = (widget_version(&version)?, source_code(&code)?);
    if body.name.is_none() && body.channel_category.is_none() {
        return Err(DomainError::new("name", "send name, channel_category or both").into());
    }
    let patch = SourcePatch {
        name: body.name.as_deref().map(SourceName::parse).transpose()?,
        channel_category: body
            .channel_category
            .as_deref()
            .map(ChannelCategory::parse_custom)
            .transpose()?,
    };
    let source = state
        .store
        .update_source(&org, version, code, patch)
        .await?;
    Ok(Json(SourceBody::new(source, &state.config.open_parameter)))
}

/// Move a custom source to the archived list
#[utoipa::path(post, path = "/widgets/{version}/sources/{code}/archive",
    params(("version" = String, Path, example = "01"), ("code" = String, Path, example = "02")),
    responses((status = 200, body = SourceBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn archive_source(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    Path((version, code)): Path<(String, String)>,
) -> ApiResult<Json<SourceBody>> {
    let (version, code) = (widget_version(&version)?, source_code(&code)?);
    let source = state.store.archive_source(&org, version, code).await?;
    Ok(Json(SourceBody::new(source, &state.config.open_parameter)))
}

/// Bring an archived source back (refused when 10 are already active)
#[utoipa::path(post, path = "/widgets/{version}/sources/{code}/restore",
    params(("version" = String, Path, example = "01"), ("code" = String, Path, example = "02")),
    responses((status = 200, body = SourceBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn restore_source(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    Path((version, code)): Path<(String, String)>,
) -> ApiResult<Json<SourceBody>> {
    let (version, code) = (widget_version(&version)?, source_code(&code)?);
    let source = state.store.restore_source(&org, version, code).await?;
    Ok(Json(SourceBody::new(source, &state.config.open_parameter)))
}
