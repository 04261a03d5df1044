//! Widgets: list, create (within the tier), read, edit name, site URL and status.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::organization::SiteUrl;
use crate::domain::self_report::SelfReportSetting;
use crate::domain::widget::{WidgetName, WidgetStatus};
use crate::http::AppState;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, OrgAuth, widget_version};
use crate::store::rfc3339;
use crate::store::{Widget, WidgetPatch};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/widgets", get(list_widgets).post(create_widget))
        .route("/widgets/{version}", get(get_widget).patch(update_widget))
}

#[derive(Serialize, ToSchema)]
pub struct WidgetBody {
    /// Two digits: `01` is the Primary widget.
    version: String,
    name: String,
    site_url: String,
    status: WidgetStatus,
    is_primary: bool,
    /// "How did you hear about us?" in step 3: asked or not, and the choices offered ("Other",
    /// with a text box, always comes last).
    self_report: SelfReportSetting,
    created_at: String,
    updated_at: String,
}

impl From<Widget> for WidgetBody {
    fn from(w: Widget) -> Self {
        Self {
            version: w.version.to_string(),
            is_primary: w.version.is_primary(),
            name: w.name,
            site_url: w.site_url,
            status: w.status,
            self_report: w.self_report,
            created_at: rfc3339(w.created_at),
            updated_at: rfc3339(w.updated_at),
        }
    }
}

/// List the organization's widgets
#[utoipa::path(get, path = "/widgets", responses((status = 200, body = [WidgetBody])))]
pub async fn list_widgets(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
) -> ApiResult<Json<Vec<WidgetBody>>> {
    let widgets = state.store.widgets(&org).await?;
    Ok(Json(widgets.into_iter().map(Into::into).collect()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWidget {
    name: String,
    /// The page the widget is embedded on; defaults to the organization's website.
    site_url: Option<String>,
}

/// Create a widget (status `not_configured`, next version)
#[utoipa::path(post, path = "/widgets", request_body = CreateWidget,
    responses((status = 201, body = WidgetBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_widget(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    ApiJson(body): ApiJson<CreateWidget>,
) -> ApiResult<(StatusCode, Json<WidgetBody>)> {
    let name = WidgetName::parse(&body.name)?;
    let site = body
        .site_url
        .as_deref()
        .map(|u| SiteUrl::parse("site_url", u))
        .transpose()?;
    let widget = state
        .store
        .create_widget(&org, &name, site.as_ref(), &state.config.tiers)
        .await?;
    Ok((StatusCode::CREATED, Json(widget.into())))
}

/// Read one widget
#[utoipa::path(get, path = "/widgets/{version}", params(("version" = String, Path, example = "01")),
    responses((status = 200, body = WidgetBody), (status = 404, body = ErrorBody)))]
pub async fn get_widget(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    Path(version): Path<String>,
) -> ApiResult<Json<WidgetBody>> {
    let version = widget_version(&version)?;
    Ok(Json(state.store.widget(&org, version).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWidget {
    name: Option<String>,
    site_url: Option<String>,
    /// `not_configured`, `configured` or `archived`; the Primary widget is always `configured`.
    status: Option<String>,
    self_report: Option<SelfReportBody>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelfReportBody {
    enabled: bool,
    #[serde(default)]
    choices: Vec<String>,
}

/// Edit a widget; a status change emits `widget.status_changed`
#[utoipa::path(patch, path = "/widgets/{version}", request_body = UpdateWidget,
    params(("version" = String, Path, example = "02")),
    responses((status = 200, body = WidgetBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_widget(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    Path(version): Path<String>,
    ApiJson(body): ApiJson<UpdateWidget>,
) -> ApiResult<Json<WidgetBody>> {
    let version = widget_version(&version)?;
    let patch = WidgetPatch {
        name: body.name.as_deref().map(WidgetName::parse).transpose()?,
        site_url: body
            .site_url
            .as_deref()
            .map(|u| SiteUrl::parse("site_url", u))
            .transpose()?,
        status: body
            .status
            .as_deref()
            .map(WidgetStatus::parse)
            .transpose()?,
        self_report: body
            .self_report
            .map(|r| SelfReportSetting::parse(r.enabled, &r.choices))
            .transpose()?,
    };
    let widget = state
        .store
        .update_widget(&org, version, patch, &state.config.tiers)
        .await?;
    Ok(Json(widget.into()))
}
