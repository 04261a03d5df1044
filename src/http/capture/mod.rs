//! The public capture endpoints that widget.js calls from subscribers' pages, and widget.js
//! itself. Any origin may call them (CORS), bodies are small (16 KiB), and every request is
//! rate-limited per client IP (and per organization where one is named).

mod config;
pub(crate) mod leads;
pub mod limits;
pub mod public_keys;
mod visits;
pub mod widget_js;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde::de::DeserializeOwned;
use tower_http::cors::{Any, CorsLayer};

use super::AppState;
use super::client_ip;
use super::error::ApiError;

/// Largest body the public endpoints accept.
pub const CAPTURE_BODY_LIMIT: usize = 16 * 1024;

pub fn router(state: &AppState) -> Router<AppState> {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::OPTIONS])
        .allow_headers([
            axum::http::header::CONTENT_TYPE,
            axum::http::header::AUTHORIZATION,
            HeaderName::from_static("idempotency-key"),
        ])
        .max_age(std::time::Duration::from_secs(86_400));
    let endpoints = Router::new()
        // The OPTIONS routes only exist so that preflights reach the CORS layer, which answers
        // them; the root's method-not-allowed fallback would otherwise answer first.
        .route(
            "/c/v1/visits",
            post(visits::record_visit).options(preflight),
        )
        .route("/c/v1/leads", post(leads::create_lead).options(preflight))
        .route(
            "/c/v1/leads/{id}",
            patch(leads::update_lead).options(preflight),
        )
        .route("/c/v1/widget-config", get(config::widget_config))
        .layer(middleware::from_fn_with_state(state.clone(), limit_by_ip))
        .layer(DefaultBodyLimit::max(CAPTURE_BODY_LIMIT))
        .layer(cors);
    Router::new()
        .route("/widget.js", get(widget_js::serve))
        .merge(endpoints)
}

async fn preflight() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn limit_by_ip(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::OPTIONS
        && let Some(ip) = client_ip::of(request.extensions())
        && let Err(limited) = state.limits.check_ip(ip)
    {
        return limited.into_response();
    }
    next.run(request).await
}

/// Parses a capture body. Any content type is accepted: `text/plain` lets browsers send a
/// beacon without a CORS preflight.
pub(crate) fn parse_body<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<(T, Bytes), ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "capture requests are limited to {} KiB",
                    CAPTURE_BODY_LIMIT / 1024
                ),
            )
        } else {
            ApiError::bad_request("invalid_body", rejection.body_text())
        }
    })?;
    super::extract::refuse_nul(&bytes)?;
    let value = serde_json::from_slice::<T>(&bytes).map_err(|e| {
        if e.is_data() {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                e.to_string(),
            )
        } else {
            ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
        }
    })?;
    Ok((value, bytes))
}
