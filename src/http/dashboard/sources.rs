//! The Lead Sources tab: one widget's sources, the Add and Edit slide-overs, the row actions and
//! the QR codes.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use url::Url;

use std::collections::HashMap;

use super::page::{Chrome, PageError, Tab, money_minor, refusal, render, render_status, see_other};
use super::session::{EditorForm, Session, Submitted};
use super::spend::{ImportPanel, SpendPanel, SpendRequest};
use crate::domain::DomainError;
use crate::domain::channel::ChannelCategory;
use crate::domain::source::{MAX_ACTIVE_SOURCES, SourceCode, SourceName, SourceStatus};
use crate::domain::spend::Month;
use crate::domain::tracking_url::tracking_url;
use crate::domain::widget::{WidgetStatus, WidgetVersion};
use crate::http::AppState;
use crate::http::api::qr::{Format, download};
use crate::store::{NewSource, Source, SourceFilter, SourcePatch, StoreError, Widget, now_ms};

#[derive(Deserialize, Default)]
pub struct SourcesQuery {
    widget: Option<String>,
    view: Option<String>,
    panel: Option<String>,
    code: Option<String>,
}

pub struct WidgetOption {
    pub version: String,
    pub label: String,
    pub selected: bool,
}

pub struct SourceRow {
    pub code: String,
    pub display_code: String,
    pub name: String,
    pub category: &'static str,
    pub tracking_url: String,
    pub is_system: bool,
    pub archived: bool,
    pub qr_generated: bool,
    pub lead_count: u64,
    /// What the source cost this month, or `—` when not entered.
    pub spend: String,
}

pub struct CategoryOption {
    pub id: &'static str,
    pub name: &'static str,
    pub selected: bool,
}

/// The slide-over's form: what was typed is kept when the server refuses it.
pub struct Panel {
    pub editing: Option<SourceRow>,
    pub name: String,
    pub categories: Vec<CategoryOption>,
    pub generate_qr: bool,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "sources.html")]
pub struct SourcesPage {
    pub chrome: Chrome,
    pub widgets: Vec<WidgetOption>,
    pub widget: String,
    pub widget_name: String,
    pub site_url: String,
    pub archived_view: bool,
    pub rows: Vec<SourceRow>,
    pub active_count: usize,
    pub archived_count: usize,
    pub limit: u32,
    pub at_limit: bool,
    pub panel: Option<Panel>,
    pub spend_panel: Option<SpendPanel>,
    pub import_panel: Option<ImportPanel>,
    /// The month the Spend column shows (`2026-11`), in the organization's zone.
    pub month: String,
    pub base: String,
}

fn row(source: &Source, state: &AppState) -> SourceRow {
    let url = Url::parse(&source.site_url)
        .map(|site| {
            tracking_url(
                &site,
                &state.config.open_parameter,
                source.widget_version,
                source.code,
            )
            .to_string()
        })
        .unwrap_or_default();
    SourceRow {
        code: source.code.to_string(),
        display_code: source.code.display_code(),
        name: source.name.clone(),
        category: source.channel_category.display_name(),
        tracking_url: url,
        is_system: source.is_system,
        archived: source.status == SourceStatus::Archived,
        qr_generated: source.qr_generated,
        lead_count: source.lead_count,
        spend: "—".to_owned(),
    }
}

fn categories(selected: Option<ChannelCategory>) -> Vec<CategoryOption> {
    ChannelCategory::custom_ids()
        .filter_map(ChannelCategory::from_id)
        .map(|c| CategoryOption {
            id: c.id(),
            name: c.display_name(),
            selected: Some(c) == selected,
        })
        .collect()
}

/// The widget the page is for: the one asked for (configured, this organization's), else Primary.
fn pick_widget(widgets: &[Widget], asked: Option<&str>) -> Result<WidgetVersion, PageError> {
    match asked {
        None | Some("") => Ok(WidgetVersion::PRIMARY),
        Some(raw) => WidgetVersion::parse(raw)
            .filter(|v| {
                widgets
                    .iter()
                    .any(|w| w.version == *v && w.status == WidgetStatus::Configured)
            })
            .ok_or_else(PageError::not_found),
    }
}

pub(super) struct Rendered {
    pub widget: WidgetVersion,
    pub archived_view: bool,
    pub panel: Option<PanelRequest>,
}

pub(super) enum PanelRequest {
    Add {
        name: String,
        category: Option<ChannelCategory>,
        generate_qr: bool,
        error: Option<String>,
    },
    Edit {
        code: SourceCode,
        name: Option<String>,
        category: Option<ChannelCategory>,
        error: Option<String>,
    },
    Spend(SpendRequest),
    Import(ImportPanel),
}

pub(super) async fn page(
    state: &AppState,
    session: &Session,
    r: Rendered,
) -> Result<SourcesPage, PageError> {
    let org = session.org();
    let organization = state.store.organization(org).await?;
    let month = Month::of(organization.time_zone.date_of(now_ms()));
    let spent: HashMap<SourceCode, i64> = state
        .store
        .spend(org, Some(r.widget), Some(month), Some(month))
        .await?
        .into_iter()
        .map(|row| (row.entry.source, row.entry.amount))
        .collect();
    let widgets = state.store.widgets(org).await?;
    let current = widgets
        .iter()
        .find(|w| w.version == r.widget)
        .ok_or_else(PageError::not_found)?;
    let all = state
        .store
        .sources(org, r.widget, SourceFilter::All)
        .await?;
    let active_count = all
        .iter()
        .filter(|s| s.status == SourceStatus::Active)
        .count();
    // The system source first, then custom sources newest first: a new source appears near
    // the top, where the person who just added it is looking.
    let mut ordered: Vec<&Source> = all.iter().collect();
    ordered.sort_by_key(|s| (!s.is_system, std::cmp::Reverse(s.code)));
    let rows: Vec<SourceRow> = ordered
        .into_iter()
        .map(|s| SourceRow {
            spend: spent
                .get(&s.code)
                .map_or("—".to_owned(), |a| money_minor(*a)),
            ..row(s, state)
        })
        .filter(|s| s.archived == r.archived_view)
        .collect();
    let archived_count = all.len() - active_count;
    let (mut spend_panel, mut import_panel) = (None, None);
    let panel = match r.panel {
        None => None,
        Some(PanelRequest::Spend(request)) => {
            let source = all
                .iter()
                .find(|s| s.code == request.code)
                .ok_or_else(PageError::not_found)?;
            spend_panel = Some(SpendPanel::load(state, org, source, month, request).await?);
            None
        }
        Some(PanelRequest::Import(panel)) => {
            import_panel = Some(panel);
            None
        }
        Some(PanelRequest::Add {
            name,
            category,
            generate_qr,
            error,
        }) => Some(Panel {
            editing: None,
            name,
            categories: categories(category),
            generate_qr,
            error,
        }),
        Some(PanelRequest::Edit {
            code,
            name,
            category,
            error,
        }) => {
            let source = all
                .iter()
                .find(|s| s.code == code && !s.is_system)
                .ok_or_else(PageError::not_found)?;
            Some(Panel {
                name: name.unwrap_or_else(|| source.name.clone()),
                categories: categories(Some(category.unwrap_or(source.channel_category))),
                generate_qr: source.qr_generated,
                editing: Some(row(source, state)),
                error,
            })
        }
    };
    let widget = r.widget.to_string();
    Ok(SourcesPage {
        chrome: Chrome::new(session, organization.name, Tab::Sources),
        widgets: widgets
            .iter()
            .filter(|w| w.status == WidgetStatus::Configured)
            .map(|w| WidgetOption {
                version: w.version.to_string(),
                label: format!("{} (v{})", w.name, w.version),
                selected: w.version == r.widget,
            })
            .collect(),
        base: format!(
            "/app/sources?widget={widget}{}",
            if r.archived_view {
                "&view=archived"
            } else {
                ""
            }
        ),
        widget,
        widget_name: current.name.clone(),
        site_url: current.site_url.clone(),
        archived_view: r.archived_view,
        rows,
        active_count,
        archived_count,
        limit: MAX_ACTIVE_SOURCES,
        at_limit: active_count >= MAX_ACTIVE_SOURCES as usize,
        panel,
        spend_panel,
        import_panel,
        month: month.to_string(),
    })
}

pub async fn show(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<SourcesQuery>,
) -> Result<Response, PageError> {
    let widgets = state.store.widgets(session.org()).await?;
    let widget = pick_widget(&widgets, q.widget.as_deref())?;
    let panel = match (q.panel.as_deref(), session.role().can_edit()) {
        (Some("add"), true) => Some(PanelRequest::Add {
            name: String::new(),
            category: None,
            // An option the person chooses, not a default they must notice and undo.
            generate_qr: false,
            error: None,
        }),
        (Some("edit"), true) => Some(PanelRequest::Edit {
            code: q
                .code
                .as_deref()
                .and_then(SourceCode::parse)
                .ok_or_else(PageError::not_found)?,
            name: None,
            category: None,
            error: None,
        }),
        (Some("spend"), true) => Some(PanelRequest::Spend(SpendRequest::blank(
            q.code
                .as_deref()
                .and_then(SourceCode::parse)
                .ok_or_else(PageError::not_found)?,
        ))),
        (Some("import"), true) => Some(PanelRequest::Import(ImportPanel::default())),
        _ => None,
    };
    let r = Rendered {
        widget,
        archived_view: q.view.as_deref() == Some("archived"),
        panel,
    };
    render(&page(&state, &session, r).await?)
}

pub(super) fn version(raw: &str) -> Result<WidgetVersion, PageError> {
    WidgetVersion::parse(raw).ok_or_else(PageError::not_found)
}

pub(super) fn code(raw: &str) -> Result<SourceCode, PageError> {
    SourceCode::parse(raw).ok_or_else(PageError::not_found)
}

pub(super) fn sources_path(widget: WidgetVersion, archived: bool) -> String {
    format!(
        "/app/sources?widget={widget}{}",
        if archived { "&view=archived" } else { "" }
    )
}

fn parse_category(raw: &str) -> Result<ChannelCategory, DomainError> {
    if raw.is_empty() {
        return Err(DomainError::new(
            "channel_category",
            "choose a channel category",
        ));
    }
    ChannelCategory::parse_custom(raw)
}

pub async fn create(
    State(state): State<AppState>,
    Path(widget): Path<String>,
    EditorForm(Submitted { session, form }): EditorForm,
) -> Result<Response, PageError> {
    let widget = version(&widget)?;
    let (name, category_raw) = (form.text("name"), form.text("channel_category"));
    let generate_qr = form.checked("generate_qr");
    let result = async {
        let new = NewSource {
            name: SourceName::parse(name)?,
            channel_category: parse_category(category_raw)?,
            generate_qr,
        };
        state.store.create_source(session.org(), widget, new).await
    }
    .await;
    match result {
        Ok(source) => Ok(see_other(
            &sources_path(widget, false),
            &format!("Added {} {}.", source.code.display_code(), source.name),
        )),
        Err(e) => {
            let panel = PanelRequest::Add {
                name: name.to_owned(),
                category: ChannelCategory::from_id(category_raw),
                generate_qr,
                error: Some(refusal(e)?),
            };
            refused(&state, &session, widget, panel).await
        }
    }
}

pub async fn update(
    State(state): State<AppState>,
    Path((widget, source)): Path<(String, String)>,
    EditorForm(Submitted { session, form }): EditorForm,
) -> Result<Response, PageError> {
    let (widget, code) = (version(&widget)?, code(&source)?);
    let (name, category_raw) = (form.text("name"), form.text("channel_category"));
    let result = async {
        let patch = SourcePatch {
            name: Some(SourceName::parse(name)?),
            channel_category: Some(parse_category(category_raw)?),
        };
        state
            .store
            .update_source(session.org(), widget, code, patch)
            .await
    }
    .await;
    match result {
        Ok(source) => Ok(see_other(
            &sources_path(widget, false),
            &format!("Saved {} {}.", source.code.display_code(), source.name),
        )),
        Err(e) => {
            let panel = PanelRequest::Edit {
                code,
                name: Some(name.to_owned()),
                category: ChannelCategory::from_id(category_raw),
                error: Some(refusal(e)?),
            };
            refused(&state, &session, widget, panel).await
        }
    }
}

/// The page again with the slide-over open, the refusal in it and what was typed kept.
pub(super) async fn refused(
    state: &AppState,
    session: &Session,
    widget: WidgetVersion,
    panel: PanelRequest,
) -> Result<Response, PageError> {
    let r = Rendered {
        widget,
        archived_view: false,
        panel: Some(panel),
    };
    render_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &page(state, session, r).await?,
    )
}

pub async fn archive(
    State(state): State<AppState>,
    Path((widget, source)): Path<(String, String)>,
    EditorForm(Submitted { session, .. }): EditorForm,
) -> Result<Response, PageError> {
    let (widget, code) = (version(&widget)?, code(&source)?);
    let source = state
        .store
        .archive_source(session.org(), widget, code)
        .await?;
    Ok(see_other(
        &sources_path(widget, false),
        &format!(
            "Archived {} {}. Its leads keep their attribution.",
            source.code.display_code(),
            source.name
        ),
    ))
}

pub async fn restore(
    State(state): State<AppState>,
    Path((widget, source)): Path<(String, String)>,
    EditorForm(Submitted { session, .. }): EditorForm,
) -> Result<Response, PageError> {
    let (widget, code) = (version(&widget)?, code(&source)?);
    match state
        .store
        .restore_source(session.org(), widget, code)
        .await
    {
        Ok(source) => Ok(see_other(
            &sources_path(widget, false),
            &format!("Restored {} {}.", source.code.display_code(), source.name),
        )),
        Err(StoreError::Conflict(c)) => Ok(see_other(&sources_path(widget, true), &c.to_string())),
        Err(e) => Err(e.into()),
    }
}

pub async fn generate_qr(
    State(state): State<AppState>,
    Path((widget, source)): Path<(String, String)>,
    EditorForm(Submitted { session, form }): EditorForm,
) -> Result<Response, PageError> {
    let (widget, code) = (version(&widget)?, code(&source)?);
    if code.is_system() {
        return Err(PageError::new(
            StatusCode::CONFLICT,
            "The system source SRC-01 catches untagged traffic and has no QR code.",
        ));
    }
    let source = state
        .store
        .mark_qr_generated(session.org(), widget, code)
        .await?;
    // Back to where the button was: the table, or the Edit slide-over.
    let back = match form.get("back") {
        Some("edit") => format!("/app/sources?widget={widget}&panel=edit&code={code}"),
        _ => sources_path(widget, false),
    };
    Ok(see_other(
        &back,
        &format!("QR code ready for {}.", source.name),
    ))
}

pub async fn qr_png(
    State(state): State<AppState>,
    session: Session,
    Path((widget, source)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    qr_file(
        &state,
        &session,
        &widget,
        &source,
        Format::Png(1024),
        &headers,
    )
    .await
}

pub async fn qr_svg(
    State(state): State<AppState>,
    session: Session,
    Path((widget, source)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    qr_file(&state, &session, &widget, &source, Format::Svg, &headers).await
}

async fn qr_file(
    state: &AppState,
    session: &Session,
    widget: &str,
    source: &str,
    format: Format,
    headers: &HeaderMap,
) -> Result<Response, PageError> {
    let (widget, code) = (version(widget)?, code(source)?);
    download(state, session.org(), widget, code, format, headers)
        .await
        .map_err(|e| PageError::new(e.status, e.message))
}
