//! Leads: the list with filters and cursor pagination, and one lead with everything known.

use crate::domain::attribution::Arrival;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::DomainError;
use crate::domain::attribution::{Attribution, AttributionNote, DerivedChannel};
use crate::domain::estimate::Enrichment;
use crate::domain::event::{CorrectedSource, SourceTracking};
use crate::domain::lead::Step;
use crate::domain::lead::{
    Address, ContactPreference, LeadStatus, PersonalInfo, ProjectDetails, RecordSource,
};
use crate::domain::outcome::{Outcome, OutcomeKind};
use crate::domain::self_report::SelfReported;
use crate::domain::source::SourceCode;
use crate::http::AppState;
use crate::http::capture::leads::{
    AddressBody, ContactBody, PersonalBody, ProjectBody, idempotency, refusal, write_failed,
};
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{
    self, ApiJson, ApiQuery, KeyAuth, OrgAuth, source_code, widget_version,
};
use crate::store::{CaptureCommand, CaptureReply, NewLead, StepUpdate};
use crate::store::{FirstTouch, LeadFilter, LeadRecord};
use crate::store::{OutcomeChange, OutcomeView, StoreError, rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/leads", get(list_leads).post(create_lead))
        .route("/leads/export.csv", get(super::lead_export::export_csv))
        .route("/leads/export.jsonl", get(super::lead_export::export_jsonl))
        .route(
            "/leads/import",
            post(super::lead_import::import_leads)
                .layer(DefaultBodyLimit::max(super::lead_import::IMPORT_BODY_LIMIT)),
        )
        .route("/leads/{id}", get(get_lead))
        .route("/leads/{id}/source", post(correct_source))
        .route("/leads/{id}/outcome", patch(set_outcome))
}

#[derive(Serialize, ToSchema)]
pub struct FirstTouchBody {
    widget_version: Option<String>,
    source_code: Option<String>,
    /// What widget.js remembered, as sent.
    #[schema(value_type = Object)]
    raw: FirstTouch,
}

/// One touch of the lead's journey.
#[derive(Serialize, ToSchema)]
pub struct TouchBody {
    at: String,
    widget_version: String,
    source_code: String,
    /// For the Website source (`01`): the channel read from referrer, UTM and click ids.
    derived_channel: Option<DerivedChannel>,
}

#[derive(Serialize, ToSchema)]
pub struct LeadBody {
    id: String,
    status: LeadStatus,
    /// Which widget and source produced the lead, as they were when it arrived.
    source_tracking: SourceTracking,
    source_category: String,
    /// For leads on the system source: the channel read from referrer, UTM and click ids.
    derived_channel: Option<DerivedChannel>,
    first_touch: Option<FirstTouchBody>,
    #[schema(value_type = Object)]
    address: Address,
    #[schema(value_type = Option<Object>)]
    project: Option<ProjectDetails>,
    #[schema(value_type = Option<Object>)]
    personal: Option<PersonalInfo>,
    #[schema(value_type = Option<Object>)]
    contact_preference: Option<ContactPreference>,
    enrichment: Option<Enrichment>,
    /// What a CRM needs to send a conversion back to an ad platform: landing page, referrer,
    /// campaign tags, click ids and the derived channel, of the arrival and of the first touch.
    attribution: Attribution,
    /// Why a tracking parameter could not be applied (`unknown_widget`, `unknown_source`,
    /// `unknown_embedding_widget`), if one could not.
    attribution_note: Option<AttributionNote>,
    /// How the lead entered: `widget`, `api` or `import`.
    record_source: RecordSource,
    /// The answer to "How did you hear about us?", when the widget asked and it was given.
    self_reported: Option<SelfReported>,
    /// A person's re-assignment of the lead to another source of its widget (reports count
    /// this source; `source_tracking` keeps the arrival).
    corrected_source: Option<CorrectedSource>,
    /// What happened after the lead arrived (`open` until someone says).
    outcome: OutcomeKind,
    /// The job's value in minor units of the organization's currency, when won.
    outcome_value: Option<i64>,
    /// When lost: a listed reason or the business's own words.
    lost_reason: Option<String>,
    outcome_changed_at: Option<String>,
    /// Every outcome change, oldest first (on `GET /leads/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome_history: Option<Vec<OutcomeChangeBody>>,
    /// The visitor's tracked visits in the year before the lead, oldest first, ending with the
    /// arrival: what the multi-touch models split the lead's credit over (within the
    /// organization's lookback). Empty for leads from before touches were kept.
    touches: Vec<TouchBody>,
    /// The raw arrival parameters, kept for audit.
    #[schema(value_type = Object)]
    raw_params: serde_json::Value,
    created_at: String,
    updated_at: String,
    enriched_at: Option<String>,
    /// When the lead's personal data (name, e-mail, phone, street, free text, raw request data)
    /// was erased on request; its attribution, steps and outcome stay.
    erased_at: Option<String>,
}

impl LeadBody {
    /// The lead with its outcome changes, as `GET /leads/{id}` answers.
    pub(super) fn with_outcome_history(mut self, history: Vec<OutcomeChange>) -> Self {
        self.outcome_history = Some(history.into_iter().map(Into::into).collect());
        self
    }
}

impl From<LeadRecord> for LeadBody {
    fn from(l: LeadRecord) -> Self {
        Self {
            source_tracking: SourceTracking {
                widget_version: l.widget_version.to_string(),
                widget_name: l.widget_name,
                source_code: l.source_code.to_string(),
                source_label: l.source_name,
            },
            attribution: l.attribution,
            attribution_note: l.attribution_note,
            record_source: l.record_source,
            self_reported: l.self_reported,
            corrected_source: l.corrected,
            outcome: l.outcome.kind(),
            outcome_value: l.outcome.value(),
            lost_reason: l.outcome.lost_reason().map(|r| r.as_str().to_owned()),
            outcome_changed_at: l.outcome_changed_at.map(rfc3339),
            outcome_history: None,
            touches: l
                .touches
                .iter()
                .map(|t| TouchBody {
                    at: rfc3339(t.at),
                    widget_version: format!("{:02}", t.key.widget),
                    source_code: format!("{:02}", t.key.source),
                    derived_channel: t.key.channel,
                })
                .collect(),
            id: l.id.to_string(),
            status: l.status,
            source_category: l.source_category.id().to_owned(),
            derived_channel: l.derived_channel,
            first_touch: l.first_touch.map(|raw| FirstTouchBody {
                widget_version: l.first_touch_widget_version.map(|w| w.to_string()),
                source_code: l.first_touch_source_code.map(|s| s.to_string()),
                raw,
            }),
            address: l.address,
            project: l.project,
            personal: l.personal,
            contact_preference: l.contact,
            enrichment: l.enrichment,
            raw_params: l.raw_params,
            created_at: rfc3339(l.created_at),
            updated_at: rfc3339(l.updated_at),
            enriched_at: l.enriched_at.map(rfc3339),
            erased_at: l.erased_at.map(rfc3339),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LeadQuery {
    /// Widget version, e.g. `02`.
    widget: Option<String>,
    /// Source code, e.g. `03` or `SRC-03`.
    source: Option<String>,
    status: Option<String>,
    /// `open`, `contacted`, `quoted`, `won` or `lost`.
    outcome: Option<String>,
    /// RFC 3339 time or `YYYY-MM-DD` (inclusive).
    from: Option<String>,
    /// RFC 3339 time or `YYYY-MM-DD` (exclusive).
    to: Option<String>,
    cursor: Option<String>,
    /// 1–200, default 50.
    limit: Option<i64>,
}

impl LeadQuery {
    /// An export is every matching lead: paging parameters would silently mean nothing.
    pub(super) fn refuse_paging(&self) -> Result<(), ApiError> {
        if self.cursor.is_some() || self.limit.is_some() {
            return Err(ApiError::bad_request(
                "invalid_query",
                "an export holds every lead that matches the filters: drop cursor and limit",
            ));
        }
        Ok(())
    }

    /// The filters as the store takes them (every lead that matches: no cursor, no limit).
    pub(super) fn export_filter(&self) -> Result<LeadFilter, ApiError> {
        let outcome = self
            .outcome
            .as_deref()
            .map(|o| {
                OutcomeKind::from_id(o).ok_or_else(|| {
                    ApiError::bad_request("invalid_query", format!("unknown outcome {o:?}"))
                })
            })
            .transpose()?;
        let status = self
            .status
            .as_deref()
            .map(|s| {
                LeadStatus::from_id(s).ok_or_else(|| {
                    ApiError::bad_request("invalid_query", format!("unknown lead status {s:?}"))
                })
            })
            .transpose()?;
        Ok(LeadFilter {
            widget: self.widget.as_deref().map(widget_version).transpose()?,
            source: self.source.as_deref().map(source_code).transpose()?,
            status,
            outcome,
            from_ms: self
                .from
                .as_deref()
                .map(|t| parse_time("from", t))
                .transpose()?,
            to_ms: self
                .to
                .as_deref()
                .map(|t| parse_time("to", t))
                .transpose()?,
            after: None,
            limit: 0,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct LeadPage {
    leads: Vec<LeadBody>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    next_cursor: Option<String>,
}

/// A query's time: RFC 3339 or `YYYY-MM-DD` (the same reading as an import's times).
pub(super) fn parse_time(field: &'static str, raw: &str) -> Result<i64, ApiError> {
    crate::domain::lead_import::parse_time(field, raw)
        .map_err(|e| ApiError::bad_request("invalid_query", e.message))
}

fn encode_cursor(lead: &LeadRecord) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{}", lead.created_at, lead.id))
}

fn decode_cursor(raw: &str) -> Result<(i64, String), ApiError> {
    let bad = || ApiError::bad_request("invalid_query", "cursor is not one this API produced");
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (at, id) = text.split_once('|').ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, id.to_owned()))
}

/// List leads, newest first
#[utoipa::path(get, path = "/leads", params(LeadQuery),
    responses((status = 200, body = LeadPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_leads(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    ApiQuery(q): ApiQuery<LeadQuery>,
) -> ApiResult<Json<LeadPage>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(DomainError::new("limit", "limit must be 1 to 200").into());
    }
    let filter = LeadFilter {
        after: q.cursor.as_deref().map(decode_cursor).transpose()?,
        limit: limit + 1,
        ..q.export_filter()?
    };
    let mut leads = state.store.leads(&org, &filter).await?;
    let more = leads.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    leads.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = more.then(|| leads.last().map(encode_cursor)).flatten();
    Ok(Json(LeadPage {
        leads: leads.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// One lead: snapshot, first touch, steps and enrichment
#[utoipa::path(get, path = "/leads/{id}", params(("id" = String, Path)),
    responses((status = 200, body = LeadBody), (status = 404, body = ErrorBody)))]
pub async fn get_lead(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<LeadBody>> {
    let id = extract::lead_id(&id)?;
    let lead = LeadBody::from(state.store.lead(&org, &id).await?)
        .with_outcome_history(state.store.outcome_history(&org, &id).await?);
    Ok(Json(lead))
}

#[derive(Serialize, ToSchema)]
pub struct OutcomeChangeBody {
    from: OutcomeKind,
    to: OutcomeKind,
    value: Option<i64>,
    lost_reason: Option<String>,
    /// `user:…` (a dashboard user's e-mail) or `api_key:…` (the key's id).
    changed_by: String,
    changed_at: String,
}

impl From<OutcomeChange> for OutcomeChangeBody {
    fn from(c: OutcomeChange) -> Self {
        Self {
            from: c.from,
            to: c.to.kind(),
            value: c.to.value(),
            lost_reason: c.to.lost_reason().map(|r| r.as_str().to_owned()),
            changed_by: c.actor,
            changed_at: rfc3339(c.created_at),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetOutcome {
    /// `open`, `contacted`, `quoted`, `won` or `lost`.
    outcome: String,
    /// With `won` (and only then): the job's value in minor units (cents).
    value: Option<i64>,
    /// With `lost` (and only then): `price`, `competitor`, `no_response`, `timing`,
    /// `out_of_area`, `not_a_fit`, or your own words (up to 200 characters).
    lost_reason: Option<String>,
}

/// Record what happened after the lead: contacted, quoted, won (with the job's value) or lost
/// (with a reason); a won or lost lead may be reopened. Setting the outcome the lead already
/// has changes nothing. Each change is kept with the key that made it and emits
/// `lead.outcome_changed`. Safe to retry with `Idempotency-Key`
#[utoipa::path(patch, path = "/leads/{id}/outcome", request_body = SetOutcome,
    params(("id" = String, Path)),
    responses((status = 200, body = OutcomeView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_outcome(
    State(state): State<AppState>,
    key: KeyAuth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<OutcomeView>> {
    let id = extract::lead_id(&id)?;
    let idempotency = idempotency(
        &headers,
        &format!("PATCH /api/v1/leads/{id}/outcome"),
        &body,
    )?;
    let request: SetOutcome = json_body(&body)?;
    let outcome = Outcome::parse(
        &request.outcome,
        request.value,
        request.lost_reason.as_deref(),
    )?;
    let view = state
        .store
        .set_outcome(&key.org, &id, outcome, &key.actor(), idempotency.as_ref())
        .await?;
    Ok(Json(view))
}

/// A JSON body read from bytes (kept for the idempotency hash), with the API's error shape.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
        } else {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                format!("the body does not fit: {e}"),
            )
        }
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLead {
    /// The widget the lead belongs to (`01`).
    widget: String,
    /// One of that widget's sources (`03`), archived ones included.
    source: String,
    address: AddressBody,
    project: Option<ProjectBody>,
    /// Needs `project`.
    personal: Option<PersonalBody>,
    /// Needs `personal`.
    contact: Option<ContactBody>,
}

/// Enter a lead the business took itself (a phone call, a walk-in), credited to a chosen
/// source: `record_source` is `api`; its steps and events follow as for the widget's leads
#[utoipa::path(post, path = "/leads", request_body = CreateLead,
    responses((status = 201, body = LeadBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn create_lead(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<LeadBody>)> {
    let lead: CreateLead = json_body(&body)?;
    let widget = widget_version(&lead.widget)?;
    let code = source_code(&lead.source)?;
    let sources = match state
        .store
        .sources(&org, widget, crate::store::SourceFilter::All)
        .await
    {
        Err(StoreError::NotFound) => {
            return Err(DomainError::new("widget", format!("there is no widget {widget}")).into());
        }
        other => other?,
    };
    if !sources.iter().any(|s| s.code == code) {
        return Err(
            DomainError::new("source", format!("widget {widget} has no source {code}")).into(),
        );
    }
    // Everything is checked before anything is written, so a bad field creates no lead.
    let address = lead.address.parse()?;
    let project = lead.project.as_ref().map(ProjectBody::parse).transpose()?;
    let personal = lead
        .personal
        .as_ref()
        .map(PersonalBody::parse)
        .transpose()?;
    let contact = lead.contact.as_ref().map(ContactBody::parse).transpose()?;
    if personal.is_some() && project.is_none() {
        return Err(DomainError::new("personal", "personal needs project").into());
    }
    if contact.is_some() && personal.is_none() {
        return Err(DomainError::new("contact", "contact needs personal").into());
    }
    let create = CaptureCommand::CreateLead(Box::new(NewLead {
        org: org.clone(),
        arrival: Arrival {
            embedding: Some(widget),
            v: Some(widget.to_string()),
            s: Some(code.to_string()),
            ..Arrival::default()
        },
        first_touch: None,
        address,
        idempotency: idempotency(&headers, "POST /api/v1/leads", &body)?,
        record_source: RecordSource::Api,
    }));
    let created = match state.capture.submit(create).await.map_err(write_failed)? {
        Ok(CaptureReply::Created(c)) => c,
        Ok(CaptureReply::Step(_)) => return Err(ApiError::internal("a create answered as a step")),
        Err(r) => return Err(refusal(r)),
    };
    let steps = [
        project.map(Step::ProjectDetails),
        personal.map(Step::PersonalInfo),
        contact.map(Step::ContactPreference),
    ];
    let status = state.store.lead(&org, &created.lead_id).await?.status;
    for step in steps.into_iter().flatten() {
        // A retried request (same Idempotency-Key) finds its steps already taken.
        if status >= step.status() {
            continue;
        }
        let update = CaptureCommand::Step(Box::new(StepUpdate {
            lead_id: created.lead_id.clone(),
            capture_token: created.capture_token.clone(),
            heard_about: None,
            step,
            idempotency: None,
        }));
        if let Err(r) = state.capture.submit(update).await.map_err(write_failed)? {
            return Err(refusal(r));
        }
    }
    metrics::counter!("leads_created_total", "record_source" => "api").increment(1);
    let lead = state.store.lead(&org, &created.lead_id).await?;
    Ok((StatusCode::CREATED, Json(lead.into())))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectSource {
    /// Another source of the lead's widget (`03`), archived ones included.
    source: String,
    /// Why, in 1 to 200 characters ("caller said they saw the yard sign").
    reason: String,
}

/// Re-assign a lead to another source of its widget. The arrival snapshot
/// (`source_tracking`) stays; reports count the corrected source; the change is kept with
/// who and when, and emits `lead.source_corrected`
#[utoipa::path(post, path = "/leads/{id}/source", request_body = CorrectSource,
    params(("id" = String, Path)),
    responses((status = 200, body = LeadBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn correct_source(
    State(state): State<AppState>,
    key: KeyAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CorrectSource>,
) -> ApiResult<Json<LeadBody>> {
    let id = extract::lead_id(&id)?;
    let code = SourceCode::parse(&body.source)
        .ok_or_else(|| DomainError::new("source", "source is a code like 03"))?;
    let lead = state
        .store
        .correct_source(&key.org, &id, code, &body.reason, &key.actor())
        .await?;
    Ok(Json(lead.into()))
}
