//! The Widgets tab (status, site URL, embed snippet) and Settings (name, website, brand colour
//! with a live QR preview).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::page::{Chrome, PageError, Tab, humanize, render, see_other};
use super::session::{Session, Submitted};
use crate::domain::organization::{BrandColor, OrgName, SiteUrl};
use crate::domain::widget::{WidgetName, WidgetStatus, WidgetVersion};
use crate::http::AppState;
use crate::qr::{Symbol, render_svg};
use crate::store::{OrganizationPatch, WidgetPatch};

pub struct WidgetCard {
    pub version: String,
    pub name: String,
    pub site_url: String,
    pub status: &'static str,
    pub status_label: String,
    pub is_primary: bool,
    pub snippet: String,
    pub statuses: Vec<(&'static str, String, bool)>,
}

#[derive(Template)]
#[template(path = "widgets.html")]
pub struct WidgetsPage {
    pub chrome: Chrome,
    pub widgets: Vec<WidgetCard>,
}

/// Where this dashboard was reached, so the embed snippet points at the same service.
fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

pub async fn show_widgets(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let org = session.org();
    let organization = state.store.organization(org).await?;
    let widgets = state.store.widgets(org).await?;
    let origin = origin(&headers);
    let page = WidgetsPage {
        chrome: Chrome::new(&session, organization.name, Tab::Widgets),
        widgets: widgets
            .into_iter()
            .map(|w| WidgetCard {
                snippet: format!(
                    "<script src=\"{origin}/widget.js\" data-key=\"{}\" data-widget=\"{}\" async></script>",
                    organization.public_key, w.version
                ),
                version: w.version.to_string(),
                name: w.name,
                site_url: w.site_url,
                status: w.status.id(),
                status_label: humanize(w.status.id()),
                is_primary: w.version.is_primary(),
                statuses: [
                    WidgetStatus::NotConfigured,
                    WidgetStatus::Configured,
                    WidgetStatus::Archived,
                ]
                .into_iter()
                .filter(|s| !(w.version.is_primary() && *s == WidgetStatus::Archived))
                .map(|s| (s.id(), humanize(s.id()), s == w.status))
                .collect(),
            })
            .collect(),
    };
    render(&page)
}

pub async fn create_widget(
    State(state): State<AppState>,
    Submitted { session, form }: Submitted,
) -> Result<Response, PageError> {
    session.require_editor()?;
    let name = WidgetName::parse(form.text("name"))?;
    let site = match form.text("site_url").trim() {
        "" => None,
        raw => Some(SiteUrl::parse("site_url", raw)?),
    };
    let widget = state
        .store
        .create_widget(session.org(), &name, site.as_ref(), &state.config.tiers)
        .await?;
    Ok(see_other(
        "/app/widgets",
        &format!(
            "Created widget {} (v{}). Set it to Configured to give it lead sources.",
            widget.name, widget.version
        ),
    ))
}

pub async fn update_widget(
    State(state): State<AppState>,
    Path(version): Path<String>,
    Submitted { session, form }: Submitted,
) -> Result<Response, PageError> {
    session.require_editor()?;
    let version = WidgetVersion::parse(&version).ok_or_else(PageError::not_found)?;
    let patch = WidgetPatch {
        name: Some(WidgetName::parse(form.text("name"))?),
        site_url: Some(SiteUrl::parse("site_url", form.text("site_url"))?),
        status: Some(WidgetStatus::parse(form.text("status"))?),
    };
    let widget = state
        .store
        .update_widget(session.org(), version, patch, &state.config.tiers)
        .await?;
    Ok(see_other(
        "/app/widgets",
        &format!("Saved widget {} (v{}).", widget.name, widget.version),
    ))
}

#[derive(Template)]
#[template(path = "settings.html")]
pub struct SettingsPage {
    pub chrome: Chrome,
    pub name: String,
    pub website: String,
    pub brand_color: String,
    pub tier: String,
    pub public_key: String,
}

pub async fn show_settings(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, PageError> {
    let organization = state.store.organization(session.org()).await?;
    render(&SettingsPage {
        tier: humanize(organization.tier.id()),
        name: organization.name.clone(),
        website: organization.website_url,
        brand_color: organization.brand_color,
        public_key: organization.public_key,
        chrome: Chrome::new(&session, organization.name, Tab::Settings),
    })
}

pub async fn save_settings(
    State(state): State<AppState>,
    Submitted { session, form }: Submitted,
) -> Result<Response, PageError> {
    session.require_editor()?;
    let patch = OrganizationPatch {
        name: Some(OrgName::parse(form.text("name"))?),
        website_url: Some(SiteUrl::parse("website_url", form.text("website_url"))?),
        brand_color: Some(BrandColor::parse(form.text("brand_color"))?),
    };
    state
        .store
        .update_organization(session.org(), patch)
        .await?;
    Ok(see_other(
        "/app/settings",
        "Settings saved. QR codes now render in the new colour.",
    ))
}

#[derive(Deserialize)]
pub struct PreviewQuery {
    color: String,
}

/// A sample QR code (the organization's website) in a candidate colour; a colour that would
/// not scan is answered with the reason as plain text, which the page shows beside the field.
pub async fn qr_preview(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<PreviewQuery>,
) -> Result<Response, PageError> {
    let color = match BrandColor::parse(&q.color) {
        Ok(c) => c,
        Err(e) => return Ok((StatusCode::UNPROCESSABLE_ENTITY, e.message).into_response()),
    };
    let organization = state.store.organization(session.org()).await?;
    let symbol = Symbol::encode(&organization.website_url).map_err(PageError::internal)?;
    Ok((
        [
            (CONTENT_TYPE, "image/svg+xml"),
            (CACHE_CONTROL, "private, max-age=60"),
        ],
        render_svg(&symbol, color),
    )
        .into_response())
}
