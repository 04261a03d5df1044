//! A homeowner's privacy requests, answered by the business: erase one lead's personal data,
//! and export everything held about one e-mail address.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::leads::LeadBody;
use crate::domain::attribution::Utm;
use crate::http::AppState;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::extract::{self, ApiQuery, KeyAuth, OrgAuth};
use crate::store::{Erasure, rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/leads/{id}/erase", post(erase_lead))
        .route("/privacy/export", get(export_person))
}

#[derive(Serialize, ToSchema)]
pub struct ErasedBody {
    /// The lead as it is now: personal fields blank, `erased_at` set.
    lead: LeadBody,
    /// False when the lead had already been erased.
    erased_now: bool,
    /// How many stored copies were scrubbed, by kind.
    scrubbed: ScrubbedBody,
}

#[derive(Serialize, ToSchema)]
pub struct ScrubbedBody {
    events: u64,
    deliveries: u64,
    delivery_attempts: u64,
    saved_replies: u64,
    visits: u64,
}

impl From<Erasure> for ScrubbedBody {
    fn from(e: Erasure) -> Self {
        Self {
            events: e.events,
            deliveries: e.deliveries,
            delivery_attempts: e.attempts,
            saved_replies: e.saved_replies,
            visits: e.visits,
        }
    }
}

/// Erase the lead's personal data on the homeowner's request: name, e-mail, phone, street,
/// free-text answer, raw request parameters and the visitor link, from the lead and from its
/// event payloads, delivery bodies and logged replies, saved request answers and visits. Its
/// source, attribution, steps, enrichment and outcome stay, so reports do not change; the
/// lead keeps when and by which key it was erased. Erasing it again changes nothing
#[utoipa::path(post, path = "/leads/{id}/erase", params(("id" = String, Path)),
    responses((status = 200, body = ErasedBody), (status = 404, body = ErrorBody)))]
pub async fn erase_lead(
    State(state): State<AppState>,
    key: KeyAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<ErasedBody>> {
    let id = extract::lead_id(&id)?;
    let erasure = state.store.erase_lead(&key.org, &id, &key.actor()).await?;
    let lead = state.store.lead(&key.org, &id).await?;
    tracing::info!(org = %key.org, lead = %id, by = %key.actor(), "lead personal data erased");
    Ok(Json(ErasedBody {
        lead: lead.into(),
        erased_now: erasure.erased_now,
        scrubbed: erasure.into(),
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PersonQuery {
    /// The homeowner's e-mail address (any case).
    email: String,
}

/// A visit of the homeowner's browser (while its visitor id is kept).
#[derive(Serialize, ToSchema)]
pub struct VisitBody {
    at: String,
    widget_version: String,
    source_code: String,
    page_url: Option<String>,
    referrer: Option<String>,
    /// The tracking parameters of the page (empty when it had none).
    utm: Utm,
}

/// An event sent about one of the homeowner's leads, as it was stored.
#[derive(Serialize, ToSchema)]
pub struct EventBody {
    id: String,
    r#type: String,
    created_at: String,
    #[schema(value_type = Object)]
    payload: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct PersonLead {
    /// The lead with its outcome history, as `GET /leads/{id}` answers.
    #[serde(flatten)]
    lead: LeadBody,
    visits: Vec<VisitBody>,
    events: Vec<EventBody>,
}

#[derive(Serialize, ToSchema)]
pub struct PersonExport {
    email: String,
    generated_at: String,
    /// Every lead with this e-mail, newest first, with its outcome history, its visitor's
    /// visits and its events.
    leads: Vec<PersonLead>,
}

/// Everything held about one e-mail address, for a homeowner who asks to see their data:
/// each lead with that e-mail, its outcome history, the visits of its browser and the events
/// sent about it
#[utoipa::path(get, path = "/privacy/export", params(PersonQuery),
    responses((status = 200, body = PersonExport), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn export_person(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    ApiQuery(q): ApiQuery<PersonQuery>,
) -> ApiResult<Json<PersonExport>> {
    let store = &state.store;
    let mut leads = Vec::new();
    for lead in store.leads_by_email(&org, &q.email).await? {
        let id = lead.id.clone();
        let visits = match store.lead_visitor(&org, &id).await? {
            Some(visitor) => store
                .visitor_visits(&org, &visitor)
                .await?
                .into_iter()
                .map(|v| VisitBody {
                    at: rfc3339(v.created_at),
                    widget_version: format!("{:02}", v.widget_version),
                    source_code: format!("{:02}", v.source_code),
                    page_url: v.page_url,
                    referrer: v.referrer,
                    utm: v.utm,
                })
                .collect(),
            None => Vec::new(),
        };
        let events = store
            .lead_events(&org, &id)
            .await?
            .into_iter()
            .map(|e| EventBody {
                id: e.id,
                r#type: e.event_type,
                created_at: rfc3339(e.created_at),
                payload: e.payload,
            })
            .collect();
        let history = store.outcome_history(&org, &id).await?;
        leads.push(PersonLead {
            lead: LeadBody::from(lead).with_outcome_history(history),
            visits,
            events,
        });
    }
    Ok(Json(PersonExport {
        email: q.email.trim().to_lowercase(),
        generated_at: rfc3339(crate::store::now_ms()),
        leads,
    }))
}
