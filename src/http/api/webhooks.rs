//! Webhook endpoints, their delivery log, resends and test events.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::DomainError;
use crate::domain::event::EventType;
use crate::domain::ids::OrgId;
use crate::http::AppState;
use crate::http::capture::limits::TooManyRequests;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery, OrgAuth, delivery_id, endpoint_id};
use crate::store::{Backlog, DeliveryRecord, Endpoint, EndpointPatch, rfc3339};
use crate::webhooks::signing::Secret;
use crate::webhooks::target::check_url;

/// Most events one replay may send; a longer period is refused with a request to narrow it.
pub const MAX_REPLAY_EVENTS: usize = 50_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks", get(list_endpoints).post(create_endpoint))
        .route(
            "/webhooks/{id}",
            get(get_endpoint)
                .patch(update_endpoint)
                .delete(delete_endpoint),
        )
        .route("/webhooks/{id}/rotate-secret", post(rotate_secret))
        .route("/webhooks/{id}/deliveries", get(list_deliveries))
        .route(
            "/webhooks/{id}/deliveries/{delivery}/resend",
            post(resend_delivery),
        )
        .route(
            "/webhooks/{id}/deliveries/resend-failed",
            post(resend_failed),
        )
        .route("/webhooks/{id}/test", post(send_test))
        .route("/webhooks/{id}/replay", post(replay))
}

#[derive(Serialize, ToSchema)]
pub struct EndpointBody {
    id: String,
    url: String,
    description: String,
    /// Subscribed event types; `lead.enriched` is always among them.
    events: Vec<String>,
    enabled: bool,
    /// Why the endpoint was disabled, when it was.
    disabled_reason: Option<String>,
    /// Since when deliveries have been failing without a success.
    failing_since: Option<String>,
    /// The latest failed attempt's error class (`timeout`, `http_503`, …) and its time.
    last_error: Option<String>,
    last_error_at: Option<String>,
    backlog: BacklogBody,
    /// Only on create and rotate: the signing secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    created_at: String,
    updated_at: String,
}

/// What is waiting to be delivered to an endpoint.
#[derive(Serialize, ToSchema, Default)]
pub struct BacklogBody {
    /// Not delivered yet: due now, waiting for a retry, or held behind an earlier event.
    pending: i64,
    /// Due now and not yet sent.
    due: i64,
    /// When the oldest pending delivery was created.
    oldest_pending_at: Option<String>,
}

impl From<Backlog> for BacklogBody {
    fn from(b: Backlog) -> Self {
        Self {
            pending: b.pending,
            due: b.due,
            oldest_pending_at: b.oldest_pending_at.map(rfc3339),
        }
    }
}

impl EndpointBody {
    fn new(e: Endpoint, backlog: Backlog, reveal: bool) -> Self {
        Self {
            secret: reveal.then_some(e.secret),
            id: e.id.to_string(),
            url: e.url,
            description: e.description,
            events: e.events,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            failing_since: e.failing_since.map(rfc3339),
            last_error: e.last_error,
            last_error_at: e.last_error_at.map(rfc3339),
            backlog: backlog.into(),
            created_at: rfc3339(e.created_at),
            updated_at: rfc3339(e.updated_at),
        }
    }
}

/// The endpoint as the API shows it, with its backlog.
async fn endpoint_body(
    state: &AppState,
    org: &OrgId,
    endpoint: Endpoint,
    reveal: bool,
) -> ApiResult<EndpointBody> {
    let backlog = state
        .store
        .backlogs(org)
        .await?
        .remove(&endpoint.id)
        .unwrap_or_default();
    Ok(EndpointBody::new(endpoint, backlog, reveal))
}

/// Takes one hand-started send (test, resend, replay) from the organization's budget.
fn manual_send(state: &AppState, org: &OrgId) -> ApiResult<()> {
    state
        .manual_sends
        .check(org)
        .map_err(|wait| TooManyRequests(wait).into())
}

/// Known event types only, duplicates dropped, and `lead.enriched` always included.
pub(crate) fn subscription(events: &[String]) -> Result<Vec<String>, ApiError> {
    let mut out = vec![EventType::LeadEnriched.id().to_owned()];
    for raw in events {
        let event = EventType::from_id(raw).ok_or_else(|| {
            DomainError::new(
                "events",
                format!(
                    "unknown event {raw:?}; expected some of: {}",
                    EventType::ALL.map(EventType::id).join(", ")
                ),
            )
        })?;
        if !out.iter().any(|e| e == event.id()) {
            out.push(event.id().to_owned());
        }
    }
    Ok(out)
}

pub(crate) fn target(state: &AppState, url: &str) -> Result<String, ApiError> {
    check_url(url, &state.config.webhook_targets())
        .map(|u| u.to_string())
        .map_err(|e| DomainError::new("url", e.to_string()).into())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    url: String,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    description: String,
}

/// Add a webhook endpoint; the answer carries its signing secret
#[utoipa::path(post, path = "/webhooks", request_body = CreateEndpoint,
    responses((status = 201, body = EndpointBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_endpoint(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    ApiJson(body): ApiJson<CreateEndpoint>,
) -> ApiResult<(StatusCode, Json<EndpointBody>)> {
    let url = target(&state, &body.url)?;
    let events = subscription(&body.events)?;
    let description = body
        .description
        .trim()
        .chars()
        .take(200)
        .collect::<String>();
    let (_, secret) = Secret::generate();
    let endpoint = state
        .store
        .create_endpoint(
            &org,
            &url,
            &description,
            &events,
            &secret,
            state.config.webhook_max_endpoints,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(EndpointBody::new(endpoint, Backlog::default(), true)),
    ))
}

/// List webhook endpoints
#[utoipa::path(get, path = "/webhooks", responses((status = 200, body = [EndpointBody])))]
pub async fn list_endpoints(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
) -> ApiResult<Json<Vec<EndpointBody>>> {
    let endpoints = state.store.endpoints(&org).await?;
    let mut backlogs = state.store.backlogs(&org).await?;
    Ok(Json(
        endpoints
            .into_iter()
            .map(|e| {
                let backlog = backlogs.remove(&e.id).unwrap_or_default();
                EndpointBody::new(e, backlog, false)
            })
            .collect(),
    ))
}

/// Read one endpoint
#[utoipa::path(get, path = "/webhooks/{id}", params(("id" = String, Path)),
    responses((status = 200, body = EndpointBody), (status = 404, body = ErrorBody)))]
pub async fn get_endpoint(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<EndpointBody>> {
    let endpoint = state.store.endpoint(&org, &endpoint_id(&id)?).await?;
    Ok(Json(endpoint_body(&state, &org, endpoint, false).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpoint {
    url: Option<String>,
    events: Option<Vec<String>>,
    description: Option<String>,
    enabled: Option<bool>,
}

/// Edit an endpoint: URL, events (lead.enriched stays), description, enabled
#[utoipa::path(patch, path = "/webhooks/{id}", request_body = UpdateEndpoint, params(("id" = String, Path)),
    responses((status = 200, body = EndpointBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_endpoint(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateEndpoint>,
) -> ApiResult<Json<EndpointBody>> {
    let id = endpoint_id(&id)?;
    let patch = EndpointPatch {
        url: body.url.as_deref().map(|u| target(&state, u)).transpose()?,
        events: body.events.as_deref().map(subscription).transpose()?,
        description: body
            .description
            .map(|d| d.trim().chars().take(200).collect()),
        enabled: body.enabled,
    };
    let endpoint = state.store.update_endpoint(&org, &id, patch).await?;
    Ok(Json(endpoint_body(&state, &org, endpoint, false).await?))
}

/// Delete an endpoint and its delivery log
#[utoipa::path(delete, path = "/webhooks/{id}", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_endpoint(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .store
        .delete_endpoint(&org, &endpoint_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate the signing secret; the old one keeps signing for 24 hours
#[utoipa::path(post, path = "/webhooks/{id}/rotate-secret", params(("id" = String, Path)),
    responses((status = 200, body = EndpointBody), (status = 404, body = ErrorBody)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<EndpointBody>> {
    let (_, secret) = Secret::generate();
    let endpoint = state
        .store
        .rotate_endpoint_secret(&org, &endpoint_id(&id)?, &secret)
        .await?;
    Ok(Json(endpoint_body(&state, &org, endpoint, true).await?))
}

#[derive(Serialize, ToSchema)]
pub struct AttemptBody {
    attempted_at: String,
    status_code: Option<u16>,
    duration_ms: i64,
    error_class: Option<String>,
    /// The first 4 KiB of the response body.
    response_excerpt: String,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryBody {
    /// Also the `webhook-id` header, the same on every attempt.
    id: String,
    event_type: String,
    lead_id: Option<String>,
    sequence: Option<i64>,
    /// `pending`, `delivered` or `failed` (retries used up).
    status: String,
    /// Waiting for an earlier event of the same lead to be delivered first.
    held: bool,
    /// The replay (`rpl_…`) this delivery was sent by, if it is one.
    replay: Option<String>,
    attempts: i64,
    next_attempt_at: Option<String>,
    last_status: Option<i64>,
    last_error: Option<String>,
    created_at: String,
    delivered_at: Option<String>,
    log: Vec<AttemptBody>,
}

impl From<DeliveryRecord> for DeliveryBody {
    fn from(d: DeliveryRecord) -> Self {
        Self {
            // A held delivery waits for its predecessor, not for a time.
            next_attempt_at: (d.status == "pending" && !d.held).then(|| rfc3339(d.next_attempt_at)),
            id: d.id.to_string(),
            replay: d.replay,
            event_type: d.event_type,
            lead_id: d.lead_id,
            sequence: d.sequence,
            status: d.status,
            held: d.held,
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error,
            created_at: rfc3339(d.created_at),
            delivered_at: d.delivered_at.map(rfc3339),
            log: d
                .log
                .into_iter()
                .map(|a| AttemptBody {
                    attempted_at: rfc3339(a.attempted_at),
                    status_code: a.status_code,
                    duration_ms: a.duration_ms,
                    error_class: a.error_class,
                    response_excerpt: a.response_excerpt,
                })
                .collect(),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// 1–200, default 50.
    limit: Option<i64>,
}

/// The endpoint's delivery log, newest first, with every attempt
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", params(("id" = String, Path), DeliveryQuery),
    responses((status = 200, body = [DeliveryBody]), (status = 404, body = ErrorBody)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> ApiResult<Json<Vec<DeliveryBody>>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(DomainError::new("limit", "limit must be 1 to 200").into());
    }
    let deliveries = state
        .store
        .deliveries(&org, &endpoint_id(&id)?, limit)
        .await?;
    Ok(Json(deliveries.into_iter().map(Into::into).collect()))
}

/// Send a delivery again now
#[utoipa::path(post, path = "/webhooks/{id}/deliveries/{delivery}/resend",
    params(("id" = String, Path), ("delivery" = String, Path)),
    responses((status = 202), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn resend_delivery(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    Path((id, delivery)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (id, delivery) = (endpoint_id(&id)?, delivery_id(&delivery)?);
    manual_send(&state, &org)?;
    state.store.resend_delivery(&org, &id, &delivery).await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendFailed {
    /// RFC 3339: failed deliveries created at or after this time are sent again.
    since: String,
}

#[derive(Serialize, ToSchema)]
pub struct Requeued {
    requeued: u64,
}

/// Send every failed delivery since a time again
#[utoipa::path(post, path = "/webhooks/{id}/deliveries/resend-failed", request_body = ResendFailed,
    params(("id" = String, Path)),
    responses((status = 202, body = Requeued), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn resend_failed(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ResendFailed>,
) -> ApiResult<(StatusCode, Json<Requeued>)> {
    let id = endpoint_id(&id)?;
    let since_ms = body_time("since", &body.since)?;
    manual_send(&state, &org)?;
    let requeued = state.store.resend_failed_since(&org, &id, since_ms).await?;
    Ok((StatusCode::ACCEPTED, Json(Requeued { requeued })))
}

#[derive(Serialize, ToSchema)]
pub struct TestQueued {
    delivery_id: String,
}

/// Send a `webhook.test` event through the same signing and network path
#[utoipa::path(post, path = "/webhooks/{id}/test", params(("id" = String, Path)),
    responses((status = 202, body = TestQueued), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn send_test(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<TestQueued>)> {
    let id = endpoint_id(&id)?;
    state.store.endpoint(&org, &id).await?;
    manual_send(&state, &org)?;
    let delivery_id = state.store.queue_test_delivery(&org, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TestQueued {
            delivery_id: delivery_id.to_string(),
        }),
    ))
}

/// An RFC 3339 time in a request body, in Unix milliseconds.
fn body_time(field: &'static str, raw: &str) -> ApiResult<i64> {
    let parsed =
        time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
            .map_err(|_| DomainError::new(field, format!("{field} must be an RFC 3339 time")))?;
    Ok(i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// RFC 3339: events created at or after this time…
    since: String,
    /// …and before this one.
    until: String,
}

#[derive(Serialize, ToSchema)]
pub struct ReplayQueuedBody {
    /// Marks this replay's deliveries in the log.
    replay_id: String,
    /// Deliveries queued: the period's events of the types the endpoint subscribes to.
    deliveries: usize,
}

/// Send the endpoint the events of a period again (a new or repaired endpoint): the types it
/// subscribes to, each once, in per-lead order, marked as a replay in the log
#[utoipa::path(post, path = "/webhooks/{id}/replay", request_body = ReplayRequest,
    params(("id" = String, Path)),
    responses((status = 202, body = ReplayQueuedBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn replay(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReplayRequest>,
) -> ApiResult<(StatusCode, Json<ReplayQueuedBody>)> {
    let id = endpoint_id(&id)?;
    let queued = queue_replay(&state, &org, &id, &body.since, &body.until).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ReplayQueuedBody {
            replay_id: queued.replay_id,
            deliveries: queued.deliveries,
        }),
    ))
}

/// Validates a replay's period, takes it from the hand-started budget and queues it; shared
/// by the API and the dashboard.
pub(crate) async fn queue_replay(
    state: &AppState,
    org: &OrgId,
    id: &crate::domain::ids::EndpointId,
    since: &str,
    until: &str,
) -> ApiResult<crate::store::ReplayQueued> {
    let (since, until) = (body_time("since", since)?, body_time("until", until)?);
    if since >= until {
        return Err(DomainError::new("until", "until must be after since").into());
    }
    state.store.endpoint(org, id).await?;
    manual_send(state, org)?;
    let queued = state
        .store
        .replay(org, id, since, until, MAX_REPLAY_EVENTS)
        .await?;
    Ok(queued)
}
