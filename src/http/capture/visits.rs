//! `POST /c/v1/visits`: one beacon per page view.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::parse_body;
use crate::domain::attribution::{Arrival, Utm};
use crate::domain::ids::OrgId;
use crate::domain::widget::WidgetVersion;
use crate::http::AppState;
use crate::http::client_ip::ClientIp;
use crate::http::error::ApiError;
use crate::store::{NewVisit, now_ms};
use crate::workers::visit_buffer::Queued;

/// Where the homeowner came from, as widget.js sends it with a page view and with a lead.
#[derive(Deserialize)]
pub struct ArrivalBody {
    /// The embedding widget's version, from the snippet.
    widget: Option<String>,
    v: Option<String>,
    s: Option<String>,
    page_url: Option<String>,
    referrer: Option<String>,
    #[serde(default)]
    utm: Utm,
    /// The widget's first-party visitor id.
    visitor_id: Option<String>,
}

impl ArrivalBody {
    /// The arrival as stored: control characters dropped, each part cut to its limit.
    pub fn arrival(self) -> Arrival {
        Arrival {
            embedding: self.widget.as_deref().and_then(WidgetVersion::parse),
            v: bounded(self.v, 16),
            s: bounded(self.s, 16),
            page_url: bounded(self.page_url, 2048),
            referrer: bounded(self.referrer, 2048),
            utm: self.utm.bounded(),
            visitor_id: bounded(self.visitor_id, 64),
        }
    }
}

#[derive(Deserialize)]
pub struct VisitBody {
    pub public_key: String,
    #[serde(flatten)]
    pub arrival: ArrivalBody,
}

pub(super) fn bounded(value: Option<String>, max: usize) -> Option<String> {
    value
        .map(|v| {
            v.chars()
                .filter(|c| !c.is_control())
                .take(max)
                .collect::<String>()
        })
        .filter(|v| !v.is_empty())
}

pub async fn record_visit(
    State(state): State<AppState>,
    client: Option<Extension<ClientIp>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (body, _) = parse_body::<VisitBody>(body)?;
    let org = organization(&state, &body.public_key, client).await?;
    let visit = NewVisit {
        org,
        arrival: body.arrival.arrival(),
        at: now_ms(),
    };
    match state.visits.record(visit) {
        Queued::Yes => Ok(StatusCode::NO_CONTENT.into_response()),
        Queued::Full => Err(ApiError::busy(
            "visits_busy",
            "too many visits are waiting to be written; retry in a moment",
        )),
        Queued::Stopped => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the service is shutting down",
        )),
    }
}

/// The organization behind an embed snippet's public key, within its rate limit.
pub(super) async fn organization(
    state: &AppState,
    public_key: &str,
    client: Option<Extension<ClientIp>>,
) -> Result<OrgId, ApiError> {
    let org = state
        .public_keys
        .resolve(&state.store, public_key)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_public_key",
                "no organization has this public key; check the embed snippet",
            )
        })?;
    state.limits.check_org(&org, client.map(|c| c.0.0))?;
    Ok(org)
}
