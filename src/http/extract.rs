//! Extractors that turn a request into parsed values or an `ApiError` in our JSON shape.

use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::AppState;
use super::capture::limits::TooManyRequests;
use super::error::ApiError;
use crate::domain::ids::{DeliveryId, EndpointId, LeadId, OrgId};
use crate::domain::keys::{api_key_digest, tokens_match};
use crate::domain::source::SourceCode;
use crate::domain::widget::WidgetVersion;

/// `axum::Json` with rejections in the API's error shape.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // As axum's `Json` decides it: `application/json` or `application/…+json`.
        let is_json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|m| {
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        "the request body is larger than this endpoint accepts",
                    )
                } else {
                    ApiError::bad_request("invalid_body", e.body_text())
                }
            })?;
        refuse_nul(&bytes)?;
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

/// A JSON text with a NUL character in a string (`\u0000`): no field of ours may hold one
/// (PostgreSQL cannot store it), so the whole body is refused before anything is written.
pub(crate) fn refuse_nul(json: &[u8]) -> Result<(), ApiError> {
    let escaped_nul = json.windows(6).enumerate().any(|(i, w)| {
        // The backslash must itself be unescaped: an odd run of backslashes ends here.
        w == b"\\u0000" && json[..i].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0
    });
    if escaped_nul {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "text must not contain NUL characters (\\u0000)",
        ));
    }
    Ok(())
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    let detail = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", detail)
        }
        JsonRejection::JsonSyntaxError(_) => ApiError::bad_request("invalid_json", detail),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ),
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is larger than this endpoint accepts",
        ),
        _ => ApiError::bad_request("invalid_body", detail),
    }
}

/// `axum::extract::Query` with rejections in the API's error shape.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::bad_request(
                "invalid_query",
                rejection.body_text(),
            )),
        }
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The organization whose secret API key signed this request.
pub struct OrgAuth(pub OrgId);

impl FromRequestParts<AppState> for OrgAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        KeyAuth::from_request_parts(parts, state)
            .await
            .map(|k| Self(k.org))
    }
}

/// The organization, and the key that signed this request: for changes that record who made
/// them (`api_key:key_…`).
pub struct KeyAuth {
    pub org: OrgId,
    pub key_id: String,
}

impl KeyAuth {
    pub fn actor(&self) -> String {
        format!("api_key:{}", self.key_id)
    }
}

impl FromRequestParts<AppState> for KeyAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(|| {
            ApiError::unauthorized(
                "unauthorized",
                "send your API key as `Authorization: Bearer sk_…`",
            )
        })?;
        if !token.starts_with("sk_") {
            return Err(ApiError::unauthorized(
                "invalid_api_key",
                "that is not a secret API key (they start with sk_)",
            ));
        }
        match state.store.api_key_owner(&api_key_digest(token)).await? {
            Some((org, key_id)) => Ok(Self { org, key_id }),
            None => Err(ApiError::unauthorized(
                "invalid_api_key",
                "this API key is unknown or revoked",
            )),
        }
    }
}

/// The operator, proven by `LEADTRAIL_ADMIN_TOKEN`.
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(expected) = state.config.admin_token.as_deref() else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "operator_endpoints_disabled",
                "operator endpoints are off: set LEADTRAIL_ADMIN_TOKEN to turn them on",
            ));
        };
        guarded_bearer(parts, state, expected, Guarded::Operator)?;
        Ok(Self)
    }
}

/// Checks a bearer token against a configured one. A right token always passes; wrong ones
/// are slowed per client network (429 with `Retry-After` once too many were tried), so the
/// token cannot be guessed at speed.
pub fn guarded_bearer(
    parts: &Parts,
    state: &AppState,
    expected: &str,
    guarded: Guarded,
) -> Result<(), ApiError> {
    let (what, wrong) = match guarded {
        Guarded::Operator => ("operator token", "invalid_operator_token"),
        Guarded::Metrics => ("metrics token", "invalid_metrics_token"),
    };
    let token = bearer(parts).ok_or_else(|| {
        ApiError::unauthorized(
            "unauthorized",
            format!("send the {what} as `Authorization: Bearer …`"),
        )
    })?;
    if tokens_match(token, expected) {
        return Ok(());
    }
    let peer = super::client_ip::of(&parts.extensions);
    let now = Instant::now();
    if let Err(wait) = state.token_failures.check(peer, now) {
        return Err(TooManyRequests(wait).into());
    }
    state.token_failures.failed(peer, now);
    Err(ApiError::unauthorized(
        wrong,
        format!("the {what} is wrong"),
    ))
}

/// Which configured token a request presents.
#[derive(Debug, Clone, Copy)]
pub enum Guarded {
    Operator,
    Metrics,
}

/// A path segment that is not a widget version names no widget: 404, like a missing one.
pub fn widget_version(raw: &str) -> Result<WidgetVersion, ApiError> {
    WidgetVersion::parse(raw).ok_or_else(|| ApiError::not_found("widget"))
}

pub fn source_code(raw: &str) -> Result<SourceCode, ApiError> {
    SourceCode::parse(raw).ok_or_else(|| ApiError::not_found("source"))
}

pub fn lead_id(raw: &str) -> Result<LeadId, ApiError> {
    LeadId::parse(raw).ok_or_else(|| ApiError::not_found("lead"))
}

pub fn endpoint_id(raw: &str) -> Result<EndpointId, ApiError> {
    EndpointId::parse(raw).ok_or_else(|| ApiError::not_found("webhook endpoint"))
}

pub fn delivery_id(raw: &str) -> Result<DeliveryId, ApiError> {
    DeliveryId::parse(raw).ok_or_else(|| ApiError::not_found("delivery"))
}
