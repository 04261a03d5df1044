//! `POST /c/v1/leads` (step 1) and `PATCH /c/v1/leads/{id}` (steps 2–4).

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::parse_body;
use super::visits::{ArrivalBody, bounded, organization};
use crate::domain::ids::LeadId;
use crate::domain::lead::RecordSource;
use crate::domain::lead::{
    Address, ContactPreference, PersonalInfo, ProjectDetails, ProjectInput, Step,
};
use crate::http::AppState;
use crate::http::client_ip::ClientIp;
use crate::http::error::ApiError;
use crate::store::{
    CaptureCommand, CaptureRefusal, CaptureReply, FirstTouch, HeardAbout, Idempotency, NewLead,
    StepUpdate,
};
use crate::workers::capture_writer::WriteError;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct AddressBody {
    street: String,
    city: String,
    state: String,
    postal_code: String,
    country: Option<String>,
}

impl AddressBody {
    pub fn parse(&self) -> Result<Address, ApiError> {
        Ok(Address::parse(
            &self.street,
            &self.city,
            &self.state,
            &self.postal_code,
            self.country.as_deref(),
        )?)
    }
}

#[derive(Deserialize)]
pub struct CreateLeadBody {
    public_key: String,
    #[serde(flatten)]
    arrival: ArrivalBody,
    first_touch: Option<FirstTouch>,
    address: AddressBody,
    /// Honeypot: hidden from people, filled in by form bots.
    #[serde(default)]
    company_website: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectBody {
    roof_type: String,
    material: String,
    stories: i64,
    pitch: Option<String>,
    urgency: String,
    roof_age_years: Option<i64>,
    insurance_claim: Option<bool>,
    financing_interest: Option<bool>,
}

impl ProjectBody {
    pub fn parse(&self) -> Result<ProjectDetails, ApiError> {
        Ok(ProjectDetails::parse(ProjectInput {
            roof_type: &self.roof_type,
            material: &self.material,
            stories: self.stories,
            pitch: self.pitch.as_deref(),
            urgency: &self.urgency,
            roof_age_years: self.roof_age_years,
            insurance_claim: self.insurance_claim,
            financing_interest: self.financing_interest,
        })?)
    }
}

/// "How did you hear about us?", answered in step 3 when the widget asks.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeardAboutBody {
    choice: String,
    /// With "Other": up to 50 characters.
    other: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonalBody {
    first_name: String,
    last_name: String,
    email: String,
    phone: String,
    owner_occupied: bool,
    home_sqft: Option<i64>,
    heard_about: Option<HeardAboutBody>,
}

impl PersonalBody {
    pub fn parse(&self) -> Result<PersonalInfo, ApiError> {
        Ok(PersonalInfo::parse(
            &self.first_name,
            &self.last_name,
            &self.email,
            &self.phone,
            self.owner_occupied,
            self.home_sqft,
        )?)
    }

    pub fn heard_about(&self) -> Option<HeardAbout> {
        self.heard_about.as_ref().map(|h| HeardAbout {
            choice: h.choice.chars().take(64).collect(),
            other: h.other.as_ref().map(|o| o.chars().take(200).collect()),
        })
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    contact_method: String,
    contact_time: String,
}

impl ContactBody {
    pub fn parse(&self) -> Result<ContactPreference, ApiError> {
        Ok(ContactPreference::parse(
            &self.contact_method,
            &self.contact_time,
        )?)
    }
}

#[derive(Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum StepBody {
    ProjectDetails(ProjectBody),
    PersonalInfo(PersonalBody),
    ContactPreference(ContactBody),
}

impl StepBody {
    fn parse(&self) -> Result<(Step, Option<HeardAbout>), ApiError> {
        Ok(match self {
            Self::ProjectDetails(p) => (Step::ProjectDetails(p.parse()?), None),
            Self::PersonalInfo(p) => (Step::PersonalInfo(p.parse()?), p.heard_about()),
            Self::ContactPreference(c) => (Step::ContactPreference(c.parse()?), None),
        })
    }
}

/// `Idempotency-Key`, bound to this exact request (method, path and body).
pub(crate) fn idempotency(
    headers: &HeaderMap,
    scope: &str,
    body: &[u8],
) -> Result<Option<Idempotency>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
        })?;
    let mut hash = Sha256::new();
    hash.update(scope.as_bytes());
    hash.update([0]);
    hash.update(body);
    Ok(Some(Idempotency {
        key: key.to_owned(),
        request_hash: hex::encode(hash.finalize()),
    }))
}

pub(crate) fn refusal(refusal: CaptureRefusal) -> ApiError {
    match refusal {
        CaptureRefusal::LeadNotFound => ApiError::not_found("lead"),
        CaptureRefusal::BadToken => ApiError::unauthorized(
            "invalid_capture_token",
            "the capture token does not belong to this lead",
        ),
        CaptureRefusal::IdempotencyKeyReused => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different request",
        ),
        CaptureRefusal::Invalid(e) if e.field == "step" => {
            ApiError::new(StatusCode::CONFLICT, "step_out_of_order", e.message)
        }
        CaptureRefusal::Invalid(e) => e.into(),
    }
}

pub(crate) fn write_failed(e: WriteError) -> ApiError {
    match e {
        WriteError::Stopped => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the service is shutting down; retry with the same Idempotency-Key",
        ),
        WriteError::Busy => ApiError::busy(
            "capture_busy",
            "too many captures are waiting to be written; retry in a moment (with the same Idempotency-Key)",
        ),
        WriteError::Unavailable(detail) => {
            tracing::warn!(error = %detail, "a capture found the database unavailable");
            ApiError::unavailable()
        }
        WriteError::Storage(detail) => ApiError::internal(detail),
    }
}

pub async fn create_lead(
    State(state): State<AppState>,
    client: Option<Extension<ClientIp>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (body, raw) = parse_body::<CreateLeadBody>(body)?;
    let org = organization(&state, &body.public_key, client).await?;
    let address = body.address.parse()?;
    if body.company_website.is_some_and(|v| !v.trim().is_empty()) {
        // A bot filled the hidden field: answer like a success so it learns nothing, store nothing.
        tracing::info!(org = %org, "honeypot triggered; lead dropped");
        metrics::counter!("capture_honeypot_total").increment(1);
        return Ok(created(&crate::store::LeadCreated {
            lead_id: LeadId::generate(),
            capture_token: format!("ct_{}", uuid::Uuid::new_v4().simple()),
            status: crate::domain::lead::LeadStatus::AddressInfoProvided,
        }));
    }
    let idempotency = idempotency(&headers, "POST /c/v1/leads", &raw)?;
    let first_touch = body.first_touch.map(|ft| FirstTouch {
        v: bounded(ft.v, 16),
        s: bounded(ft.s, 16),
        at: bounded(ft.at, 40),
        utm: ft.utm.bounded(),
        referrer: bounded(ft.referrer, 2048),
        page_url: bounded(ft.page_url, 2048),
    });
    let command = CaptureCommand::CreateLead(Box::new(NewLead {
        org,
        arrival: body.arrival.arrival(),
        first_touch,
        address,
        idempotency,
        record_source: RecordSource::Widget,
    }));
    match state.capture.submit(command).await.map_err(write_failed)? {
        Ok(CaptureReply::Created(reply)) => {
            metrics::counter!("leads_created_total").increment(1);
            Ok(created(&reply))
        }
        Ok(CaptureReply::Step(_)) => Err(ApiError::internal("a create answered as a step")),
        Err(r) => Err(refusal(r)),
    }
}

fn created(reply: &crate::store::LeadCreated) -> Response {
    (StatusCode::CREATED, Json(reply)).into_response()
}

pub async fn update_lead(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Some(lead_id) = LeadId::parse(&id) else {
        return Err(ApiError::not_found("lead"));
    };
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| t.starts_with("ct_"))
        .ok_or_else(|| {
            ApiError::unauthorized(
                "missing_capture_token",
                "send the lead's capture token as `Authorization: Bearer ct_…`",
            )
        })?;
    let (body, raw) = parse_body::<StepBody>(body)?;
    let (step, heard_about) = body.parse()?;
    let idempotency = idempotency(&headers, &format!("PATCH /c/v1/leads/{id}"), &raw)?;
    let command = CaptureCommand::Step(Box::new(StepUpdate {
        lead_id,
        capture_token: token.to_owned(),
        step,
        heard_about,
        idempotency,
    }));
    match state.capture.submit(command).await.map_err(write_failed)? {
        Ok(CaptureReply::Step(reply)) => Ok(Json(reply).into_response()),
        Ok(CaptureReply::Created(_)) => Err(ApiError::internal("a step answered as a create")),
        Err(r) => Err(refusal(r)),
    }
}
