//! What widget.js needs to look like its organization and to ask what its widget asks: the
//! brand colour (with a text colour that reads on it) and the "How did you hear about us?"
//! question. Public, like the embed snippet's key; cached by browsers for five minutes.

use axum::Extension;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::header::CACHE_CONTROL;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::visits::organization;
use crate::domain::organization::BrandColor;
use crate::domain::self_report::SelfReportSetting;
use crate::domain::widget::WidgetVersion;
use crate::http::AppState;
use crate::http::client_ip::ClientIp;
use crate::http::error::ApiError;
use crate::store::StoreError;

#[derive(Deserialize)]
pub struct ConfigQuery {
    public_key: String,
    widget: Option<String>,
}

#[derive(Serialize)]
struct WidgetConfig {
    brand_color: String,
    /// The colour of text on the brand colour (buttons), chosen for contrast.
    on_brand: &'static str,
    self_report: SelfReportSetting,
}

pub async fn widget_config(
    State(state): State<AppState>,
    client: Option<Extension<ClientIp>>,
    Query(q): Query<ConfigQuery>,
) -> Result<Response, ApiError> {
    let org = organization(&state, &q.public_key, client).await?;
    let organization = state.store.organization(&org).await?;
    let color = BrandColor::parse(&organization.brand_color).map_err(ApiError::internal)?;
    // A snippet naming a widget the organization does not have gets Primary's settings, as
    // its leads are credited to Primary.
    let version = q
        .widget
        .as_deref()
        .and_then(WidgetVersion::parse)
        .unwrap_or(WidgetVersion::PRIMARY);
    let widget = match state.store.widget(&org, version).await {
        Ok(w) => w,
        Err(StoreError::NotFound) => state.store.widget(&org, WidgetVersion::PRIMARY).await?,
        Err(e) => return Err(e.into()),
    };
    let body = WidgetConfig {
        brand_color: color.to_string(),
        on_brand: color.text_color(),
        self_report: widget.self_report,
    };
    Ok(([(CACHE_CONTROL, "public, max-age=300")], Json(body)).into_response())
}
