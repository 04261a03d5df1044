//! The Widgets tab (status, site URL, embed snippet) and Settings (name, website, brand colour
//! with a live QR preview).

use crate::domain::DomainError;
use crate::domain::privacy::RetentionDays;
use crate::domain::time_zone::OrgTimeZone;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::page::{Chrome, PageError, Tab, humanize, refusal, render, render_status, see_other};
use super::session::{EditorForm, Session, Submitted};
use crate::domain::organization::{BrandColor, OrgName, SiteUrl};
use crate::domain::self_report::SelfReportSetting;
use crate::domain::widget::{WidgetName, WidgetStatus, WidgetVersion};
use crate::http::AppState;
use crate::qr::{Symbol, render_svg};
use crate::store::{OrganizationPatch, StoreError, WidgetPatch};

pub struct WidgetCard {
    pub version: String,
    pub name: String,
    pub site_url: String,
    pub status: &'static str,
    pub status_label: String,
    pub is_primary: bool,
    pub snippet: String,
    pub statuses: Vec<(&'static str, String, bool)>,
    /// "How did you hear about us?": asked in step 3, and its choices, one per line.
    pub ask_self_report: bool,
    pub self_report_choices: String,
    /// Why the last save of this widget was refused; the typed values are shown again.
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "widgets.html")]
pub struct WidgetsPage {
    pub chrome: Chrome,
    pub widgets: Vec<WidgetCard>,
    pub new_name: String,
    pub new_site_url: String,
    pub new_error: Option<String>,
}

/// A refused widget form: which one (None = the new-widget form), what was typed, and why.
struct Refused {
    version: Option<WidgetVersion>,
    name: String,
    site_url: String,
    message: String,
}

pub async fn show_widgets(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, PageError> {
    render(&widgets_page(&state, &session, None).await?)
}

async fn widgets_page(
    state: &AppState,
    session: &Session,
    refused: Option<Refused>,
) -> Result<WidgetsPage, PageError> {
    let org = session.org();
    let organization = state.store.organization(org).await?;
    let widgets = state.store.widgets(org).await?;
    let origin = &state.config.public_base_url;
    let (mut new_name, mut new_site_url, mut new_error) = (String::new(), String::new(), None);
    let mut card_error = None;
    if let Some(r) = refused {
        match r.version {
            None => (new_name, new_site_url, new_error) = (r.name, r.site_url, Some(r.message)),
            Some(v) => card_error = Some((v, r.name, r.site_url, r.message)),
        }
    }
    Ok(WidgetsPage {
        chrome: Chrome::new(session, organization.name, Tab::Widgets),
        widgets: widgets
            .into_iter()
            .map(|w| {
                let typed = card_error.as_ref().filter(|(v, ..)| *v == w.version);
                WidgetCard {
                    snippet: format!(
                        "<script src=\"{origin}/widget.js\" data-key=\"{}\" data-widget=\"{}\" async></script>",
                        organization.public_key, w.version
                    ),
                    version: w.version.to_string(),
                    name: typed.map_or(w.name, |t| t.1.clone()),
                    site_url: typed.map_or(w.site_url, |t| t.2.clone()),
                    status: w.status.id(),
                    status_label: humanize(w.status.id()),
                    is_primary: w.version.is_primary(),
                    statuses: [
                        WidgetStatus::NotConfigured,
                        WidgetStatus::Configured,
                        WidgetStatus::Archived,
                    ]
                    .into_iter()
                    // Primary is always configured: it offers no other status.
                    .filter(|s| !w.version.is_primary() || *s == WidgetStatus::Configured)
                    .map(|s| (s.id(), humanize(s.id()), s == w.status))
                    .collect(),
                    ask_self_report: w.self_report.enabled,
                    self_report_choices: w.self_report.choices.join("\n"),
                    error: typed.map(|t| t.3.clone()),
                }
            })
            .collect(),
        new_name,
        new_site_url,
        new_error,
    })
}

pub async fn create_widget(
    State(state): State<AppState>,
    EditorForm(Submitted { session, form }): EditorForm,
) -> Result<Response, PageError> {
    let (name, site_url) = (form.text("name"), form.text("site_url").trim());
    let result = async {
        let name = WidgetName::parse(name)?;
        let site = match site_url {
            "" => None,
            raw => Some(SiteUrl::parse("site_url", raw)?),
        };
        state
            .store
            .create_widget(session.org(), &name, site.as_ref(), &state.config.tiers)
            .await
    }
    .await;
    match result {
        Ok(widget) => Ok(see_other(
            "/app/widgets",
            &format!(
                "Created widget {} (v{}). Set it to Configured to give it lead sources.",
                widget.name, widget.version
            ),
        )),
        Err(e) => {
            let refused = Refused {
                version: None,
                name: name.to_owned(),
                site_url: site_url.to_owned(),
                message: refusal(e)?,
            };
            let page = widgets_page(&state, &session, Some(refused)).await?;
            render_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
    }
}

pub async fn update_widget(
    State(state): State<AppState>,
    Path(version): Path<String>,
    EditorForm(Submitted { session, form }): EditorForm,
) -> Result<Response, PageError> {
    let version = WidgetVersion::parse(&version).ok_or_else(PageError::not_found)?;
    let (name, site_url) = (form.text("name"), form.text("site_url"));
    let result = async {
        let choices: Vec<String> = form
            .text("self_report_choices")
            .lines()
            .map(str::to_owned)
            .collect();
        let patch = WidgetPatch {
            name: Some(WidgetName::parse(name)?),
            site_url: Some(SiteUrl::parse("site_url", site_url)?),
            status: Some(WidgetStatus::parse(form.text("status"))?),
            self_report: Some(SelfReportSetting::parse(
                form.checked("ask_self_report"),
                &choices,
            )?),
        };
        state
            .store
            .update_widget(session.org(), version, patch, &state.config.tiers)
            .await
    }
    .await;
    match result {
        Ok(widget) => Ok(see_other(
            "/app/widgets",
            &format!("Saved widget {} (v{}).", widget.name, widget.version),
        )),
        Err(StoreError::NotFound) => Err(PageError::not_found()),
        Err(e) => {
            let refused = Refused {
                version: Some(version),
                name: name.to_owned(),
                site_url: site_url.to_owned(),
                message: refusal(e)?,
            };
            let page = widgets_page(&state, &session, Some(refused)).await?;
            render_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
    }
}

/// The zones most of our customers are in, offered first in the time-zone field.
const SUGGESTED_ZONES: [&str; 14] = [
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Toronto",
    "America/Vancouver",
    "America/Puerto_Rico",
    "Europe/London",
    "Australia/Sydney",
    "Asia/Kolkata",
    "UTC",
];

#[derive(Template)]
#[template(path = "settings.html")]
pub struct SettingsPage {
    pub chrome: Chrome,
    pub name: String,
    pub website: String,
    pub brand_color: String,
    pub time_zone: String,
    /// Days raw request data is kept; empty keeps it.
    pub retention: String,
    /// Suggestions for the time-zone field; any IANA name is accepted.
    pub zones: &'static [&'static str],
    pub tier: String,
    pub public_key: String,
    pub error: Option<String>,
}

pub async fn show_settings(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, PageError> {
    render(&settings_page(&state, &session, None).await?)
}

/// `typed`: the refused values and why, shown instead of the stored ones.
async fn settings_page(
    state: &AppState,
    session: &Session,
    typed: Option<([String; 5], String)>,
) -> Result<SettingsPage, PageError> {
    let organization = state.store.organization(session.org()).await?;
    let ([name, website, brand_color, time_zone, retention], error) = match typed {
        Some((values, error)) => (values, Some(error)),
        None => (
            [
                organization.name.clone(),
                organization.website_url,
                organization.brand_color,
                organization.time_zone.name().to_owned(),
                organization
                    .raw_data_retention_days
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
            ],
            None,
        ),
    };
    Ok(SettingsPage {
        tier: humanize(organization.tier.id()),
        name,
        website,
        brand_color,
        time_zone,
        retention,
        zones: &SUGGESTED_ZONES,
        public_key: organization.public_key,
        chrome: Chrome::new(session, organization.name, Tab::Settings),
        error,
    })
}

pub async fn save_settings(
    State(state): State<AppState>,
    EditorForm(Submitted { session, form }): EditorForm,
) -> Result<Response, PageError> {
    let typed = [
        form.text("name").to_owned(),
        form.text("website_url").to_owned(),
        form.text("brand_color").trim().to_owned(),
        form.text("time_zone").trim().to_owned(),
        form.text("raw_data_retention_days").trim().to_owned(),
    ];
    let result = async {
        let patch = OrganizationPatch {
            name: Some(OrgName::parse(&typed[0])?),
            website_url: Some(SiteUrl::parse("website_url", &typed[1])?),
            brand_color: Some(BrandColor::parse(&typed[2])?),
            // A form from before the field existed leaves the zone as it is.
            time_zone: (!typed[3].is_empty())
                .then(|| OrgTimeZone::parse(&typed[3]))
                .transpose()?,
            // Empty keeps raw data; a form from before the field existed changes nothing.
            raw_data_retention: form
                .has("raw_data_retention_days")
                .then(|| {
                    let days = typed[4].as_str();
                    (!days.is_empty())
                        .then(|| {
                            days.parse::<i64>()
                                .map_err(|_| {
                                    DomainError::new(
                                        "raw_data_retention_days",
                                        "raw data retention is a number of days",
                                    )
                                })
                                .and_then(RetentionDays::parse)
                        })
                        .transpose()
                })
                .transpose()?,
        };
        state.store.update_organization(session.org(), patch).await
    }
    .await;
    match result {
        Ok(_) => Ok(see_other(
            "/app/settings",
            "Settings saved. QR codes now render in the new colour.",
        )),
        Err(e) => {
            let page = settings_page(&state, &session, Some((typed, refusal(e)?))).await?;
            render_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
    }
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
