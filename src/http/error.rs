//! The one error type handlers return, rendered as `{"error":{"code","message","field"?}}`.
//! Internal failures are logged with detail and shown to the caller without it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::DomainError;
use crate::store::{Conflict, StoreError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<&'static str>,
    /// Seconds, for `Retry-After` on 429 and 503 answers.
    pub retry_after: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `source_limit_reached`.
    code: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// The database cannot be reached for a moment: 503 with `Retry-After`, so clients (the
    /// widget, a CRM) retry — with the same `Idempotency-Key`, nothing is written twice.
    pub fn unavailable() -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "the database is not reachable right now; retry shortly (with the same Idempotency-Key)",
        );
        error.retry_after = Some(5);
        error
    }

    /// Too much is already waiting to be written: 503 with `Retry-After: 1`, answered at once
    /// instead of queueing in memory.
    pub fn busy(code: &'static str, message: impl Into<String>) -> Self {
        let mut error = Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message);
        error.retry_after = Some(1);
        error
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong on our side; it has been logged",
        )
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "validation_failed",
            message: e.message,
            field: Some(e.field),
            retry_after: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::not_found("resource"),
            StoreError::Invalid(d) => d.into(),
            StoreError::Conflict(c) => {
                let code = match &c {
                    Conflict::SourceLimitReached(_) => "source_limit_reached",
                    Conflict::WidgetLimitReached { .. } => "widget_limit_reached",
                    Conflict::DuplicateSourceName(_) => "duplicate_source_name",
                    Conflict::SystemSourceImmutable(_) => "system_source_immutable",
                    Conflict::PrimaryWidgetImmutable(_) => "primary_widget_immutable",
                    Conflict::DuplicateEmail => "duplicate_email",
                    Conflict::AlreadyMember => "already_member",
                    Conflict::LoginExists => "login_exists",
                    Conflict::InviteForAnotherLogin => "invite_for_another_login",
                    Conflict::LastOwner => "last_owner",
                    Conflict::EndpointLimitReached { .. } => "endpoint_limit_reached",
                    Conflict::TierTooSmall { .. } => "tier_too_small",
                    Conflict::OutcomeRefused(_) => "outcome_transition_refused",
                    Conflict::IdempotencyKeyReused => {
                        // As the capture API answers it: the request, not the state, is wrong.
                        return Self::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "idempotency_key_reused",
                            c.to_string(),
                        );
                    }
                };
                Self::new(StatusCode::CONFLICT, code, c.to_string())
            }
            other if other.is_unavailable() => {
                tracing::warn!(error = %other, "the database is unavailable");
                Self::unavailable()
            }
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
