//! The Webhooks tab: endpoints, their event subscriptions (`lead.enriched` always on), the
//! signing secret, each endpoint's backlog and last error, the delivery log, resends, test
//! events and replays.

use crate::domain::time_zone::OrgTimeZone;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::page::{Chrome, PageError, Tab, render, render_status, see_other};
use super::session::{EditorForm, FormFields, Session, Submitted};
use crate::domain::event::EventType;
use crate::domain::ids::{DeliveryId, EndpointId, OrgId};
use crate::http::AppState;
use crate::http::api::webhooks::{queue_replay, subscription, target};
use crate::http::error::ApiError;
use crate::store::{EndpointPatch, StoreError};
use crate::webhooks::signing::Secret;

const LOG_SIZE: i64 = 25;

#[derive(Deserialize, Default)]
pub struct WebhooksQuery {
    endpoint: Option<String>,
    reveal: Option<String>,
}

pub struct EventBox {
    pub id: &'static str,
    pub label: &'static str,
    pub checked: bool,
    /// `lead.enriched` carries the estimate every integration needs: it cannot be unticked.
    pub locked: bool,
}

pub struct DeliveryRow {
    pub id: String,
    pub event_type: String,
    pub lead_id: String,
    pub status: String,
    pub replay: bool,
    pub attempts: i64,
    pub last_status: String,
    pub excerpt: String,
    pub created: String,
}

pub struct EndpointCard {
    pub id: String,
    pub url: String,
    pub description: String,
    pub enabled: bool,
    pub disabled_reason: String,
    pub events: Vec<EventBox>,
    pub secret: Option<String>,
    pub selected: bool,
    /// "3 waiting (1 due now), oldest from 2026-11-30 10:02", or empty when nothing waits.
    pub backlog: String,
    /// "timeout at 2026-11-30 10:04", or empty.
    pub last_error: String,
}

#[derive(Template)]
#[template(path = "webhooks.html")]
pub struct WebhooksPage {
    pub chrome: Chrome,
    /// The organization's zone, in which the page's times are shown.
    pub time_zone: String,
    pub endpoints: Vec<EndpointCard>,
    pub new_events: Vec<EventBox>,
    pub new_url: String,
    pub new_description: String,
    pub error: Option<String>,
    pub log_for: Option<String>,
    pub log: Vec<DeliveryRow>,
}

fn label(event: EventType) -> &'static str {
    match event {
        EventType::LeadAddressPreview => "Address entered (step 1)",
        EventType::LeadEnriched => "Lead enriched with estimate and score",
        EventType::LeadRentalAlert => "Rental property alert",
        EventType::LeadContactRequested => "Contact requested (step 4)",
        EventType::LeadSourceCorrected => "Lead's source corrected by a person",
        EventType::LeadOutcomeChanged => "Lead's outcome changed (contacted, quoted, won, lost)",
        EventType::WidgetStatusChanged => "Widget status changed",
    }
}

fn event_boxes(subscribed: &[String]) -> Vec<EventBox> {
    EventType::ALL
        .into_iter()
        .map(|e| EventBox {
            id: e.id(),
            label: label(e),
            locked: e == EventType::LeadEnriched,
            checked: e == EventType::LeadEnriched || subscribed.iter().any(|s| s == e.id()),
        })
        .collect()
}

struct Draft {
    url: String,
    description: String,
    events: Vec<String>,
    error: String,
}

async fn page(
    state: &AppState,
    session: &Session,
    q: &WebhooksQuery,
    draft: Option<Draft>,
) -> Result<WebhooksPage, PageError> {
    let org = session.org();
    let organization = state.store.organization(org).await?;
    let tz = &organization.time_zone;
    let endpoints = state.store.endpoints(org).await?;
    let mut backlogs = state.store.backlogs(org).await?;
    let log_for = q
        .endpoint
        .as_deref()
        .and_then(EndpointId::parse)
        .filter(|id| endpoints.iter().any(|e| &e.id == id))
        .or_else(|| endpoints.first().map(|e| e.id.clone()));
    let log = match &log_for {
        Some(id) => state
            .store
            .deliveries(org, id, LOG_SIZE)
            .await?
            .into_iter()
            .map(|d| DeliveryRow {
                excerpt: d
                    .log
                    .last()
                    .map(|a| {
                        let text = if a.response_excerpt.is_empty() {
                            a.error_class.clone().unwrap_or_default()
                        } else {
                            a.response_excerpt.clone()
                        };
                        text.chars().take(120).collect()
                    })
                    .or_else(|| d.last_error.clone())
                    .unwrap_or_default(),
                id: d.id.to_string(),
                event_type: d.event_type,
                lead_id: d.lead_id.unwrap_or_default(),
                status: if d.held { "held".into() } else { d.status },
                replay: d.replay.is_some(),
                attempts: d.attempts,
                last_status: d.last_status.map(|s| s.to_string()).unwrap_or_default(),
                created: tz.format(d.created_at),
            })
            .collect(),
        None => Vec::new(),
    };
    let can_reveal = session.role().can_edit();
    let (new_url, new_description, new_events, error) = match draft {
        Some(d) => (d.url, d.description, d.events, Some(d.error)),
        None => Default::default(),
    };
    Ok(WebhooksPage {
        time_zone: tz.name().to_owned(),
        chrome: Chrome::new(session, organization.name, Tab::Webhooks),
        endpoints: endpoints
            .into_iter()
            .map(|e| EndpointCard {
                secret: (can_reveal && q.reveal.as_deref() == Some(e.id.as_str()))
                    .then(|| e.secret.clone()),
                selected: log_for.as_ref() == Some(&e.id),
                events: event_boxes(&e.events),
                backlog: backlogs
                    .remove(&e.id)
                    .filter(|b| b.pending > 0)
                    .map(|b| {
                        let oldest = b
                            .oldest_pending_at
                            .map(|at| format!(", oldest from {}", tz.format(at)))
                            .unwrap_or_default();
                        format!("{} waiting ({} due now){oldest}", b.pending, b.due)
                    })
                    .unwrap_or_default(),
                last_error: match (&e.last_error, e.last_error_at) {
                    (Some(error), Some(at)) => format!("{error} at {}", tz.format(at)),
                    _ => String::new(),
                },
                id: e.id.to_string(),
                url: e.url,
                description: e.description,
                enabled: e.enabled,
                disabled_reason: e.disabled_reason.unwrap_or_default(),
            })
            .collect(),
        new_events: event_boxes(&new_events),
        new_url,
        new_description,
        error,
        log_for: log_for.map(|id| id.to_string()),
        log,
    })
}

pub async fn show(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<WebhooksQuery>,
) -> Result<Response, PageError> {
    render(&page(&state, &session, &q, None).await?)
}

fn chosen_events(form: &FormFields) -> Vec<String> {
    form.all("events").into_iter().map(str::to_owned).collect()
}

fn here(id: &EndpointId) -> String {
    format!("/app/webhooks?endpoint={id}")
}

fn endpoint_id(raw: &str) -> Result<EndpointId, PageError> {
    EndpointId::parse(raw).ok_or_else(PageError::not_found)
}

fn page_error(e: ApiError) -> PageError {
    PageError::new(e.status, e.message)
}

/// Takes one hand-started send from the organization's budget; past it, a 429 page that says
/// when to try again.
fn manual_send(state: &AppState, org: &OrgId) -> Result<(), PageError> {
    state.manual_sends.check(org).map_err(|wait| {
        PageError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many test events, resends and replays in the last minute; try again in {} s.",
                wait.as_secs().max(1)
            ),
        )
    })
}

/// A `datetime-local` value (in the organization's zone, as the form says) or an RFC 3339
/// time, as RFC 3339; anything else is passed on for the replay's own validation to refuse.
fn form_time(tz: &OrgTimeZone, raw: &str) -> String {
    match tz.parse_local(raw) {
        Some(ms) => crate::store::rfc3339(ms),
        None => raw.trim().to_owned(),
    }
}

pub async fn replay(
    State(state): State<AppState>,
    Path(id): Path<String>,
    EditorForm(Submitted { session, form }): EditorForm,
) -> Result<Response, PageError> {
    let id = endpoint_id(&id)?;
    let tz = state.store.organization(session.org()).await?.time_zone;
    let (since, until) = (
        form_time(&tz, form.text("since")),
        form_time(&tz, form.text("until")),
    );
    let queued = queue_replay(&state, session.org(), &id, &since, &until)
        .await
        .map_err(page_error)?;
    Ok(see_other(
        &here(&id),
        &format!(
            "Replay queued: {} events, marked \"replay\" in the log below.",
            queued.deliveries
        ),
    ))
}

pub async fn create(
    State(state): State<AppState>,
    EditorForm(Submitted { session, form }): EditorForm,
) -> Result<Response, PageError> {
    let raw_url = form.text("url").trim().to_owned();
    let description: String = form.text("description").trim().chars().take(200).collect();
    let chosen = chosen_events(&form);
    let checked = target(&state, &raw_url).and_then(|url| Ok((url, subscription(&chosen)?)));
    let (url, events) = match checked {
        Ok(ok) => ok,
        Err(e) => {
            let draft = Draft {
                url: raw_url,
                description,
                events: chosen,
                error: e.message,
            };
            let q = WebhooksQuery::default();
            return render_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                &page(&state, &session, &q, Some(draft)).await?,
            );
        }
    };
    let (_, secret) = Secret::generate();
    let created = state
        .store
        .create_endpoint(
            session.org(),
            &url,
            &description,
            &events,
            &secret,
            state.config.webhook_max_endpoints,
        )
        .await;
    let endpoint = match created {
        Ok(endpoint) => endpoint,
        Err(e) => {
            let draft = Draft {
                url: raw_url,
                description,
                events: chosen,
                error: super::page::refusal(e)?,
            };
            let q = WebhooksQuery::default();
            return render_status(
                StatusCode::CONFLICT,
                &page(&state, &session, &q, Some(draft)).await?,
            );
        }
    };
    Ok(see_other(
        &format!("{}&reveal={}", here(&endpoint.id), endpoint.id),
        "Endpoint added. Copy its signing secret below to verify our signatures.",
    ))
}

pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    EditorForm(Submitted { session, form }): EditorForm,
) -> Result<Response, PageError> {
    let id = endpoint_id(&id)?;
    let events = subscription(&chosen_events(&form)).map_err(page_error)?;
    let enabled = match form.get("enabled") {
        Some("on") => Some(true),
        Some("off") => Some(false),
        _ => None,
    };
    state
        .store
        .update_endpoint(
            session.org(),
            &id,
            EndpointPatch {
                events: Some(events),
                enabled,
                ..EndpointPatch::default()
            },
        )
        .await?;
    Ok(see_other(&here(&id), "Endpoint saved."))
}

pub async fn rotate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    EditorForm(Submitted { session, .. }): EditorForm,
) -> Result<Response, PageError> {
    let id = endpoint_id(&id)?;
    let (_, secret) = Secret::generate();
    state
        .store
        .rotate_endpoint_secret(session.org(), &id, &secret)
        .await?;
    Ok(see_other(
        &format!("{}&reveal={id}", here(&id)),
        "Secret rotated. The previous one keeps signing for 24 hours alongside it.",
    ))
}

pub async fn test(
    State(state): State<AppState>,
    Path(id): Path<String>,
    EditorForm(Submitted { session, .. }): EditorForm,
) -> Result<Response, PageError> {
    let id = endpoint_id(&id)?;
    state.store.endpoint(session.org(), &id).await?;
    manual_send(&state, session.org())?;
    state.store.queue_test_delivery(session.org(), &id).await?;
    Ok(see_other(
        &here(&id),
        "Test event queued; it appears in the log below.",
    ))
}

pub async fn resend(
    State(state): State<AppState>,
    Path((id, delivery)): Path<(String, String)>,
    EditorForm(Submitted { session, .. }): EditorForm,
) -> Result<Response, PageError> {
    let id = endpoint_id(&id)?;
    let delivery = DeliveryId::parse(&delivery).ok_or_else(PageError::not_found)?;
    manual_send(&state, session.org())?;
    match state
        .store
        .resend_delivery(session.org(), &id, &delivery)
        .await
    {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(PageError::not_found()),
        Err(e) => return Err(e.into()),
    }
    Ok(see_other(&here(&id), "Delivery queued again."))
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    EditorForm(Submitted { session, .. }): EditorForm,
) -> Result<Response, PageError> {
    let id = endpoint_id(&id)?;
    state.store.delete_endpoint(session.org(), &id).await?;
    Ok(see_other("/app/webhooks", "Endpoint deleted."))
}
