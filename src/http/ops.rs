//! Operations endpoints: liveness, readiness, Prometheus metrics.

use axum::Router;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;
use super::error::ApiError;
use super::extract::{Guarded, guarded_bearer};
use crate::telemetry;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The process is up and serving HTTP.
async fn healthz() -> &'static str {
    "ok"
}

/// The process can do useful work: its database answers.
/// Answers within `READY_WITHIN` whatever the database does, as a load balancer's probe needs.
async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    let ping = tokio::time::timeout(READY_WITHIN, state.store.ping()).await;
    let failure = match ping {
        Ok(Ok(())) => return Ok("ready"),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} s", READY_WITHIN.as_secs()),
    };
    tracing::warn!(error = %failure, "readiness check failed");
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "database_unavailable",
        "the database is not reachable",
    ))
}

/// How long readiness waits for the database.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Prometheus metrics, for a scraper holding the metrics token: backlog sizes and endpoint
/// ids are not for the public.
async fn metrics(
    State(state): State<AppState>,
    parts: Parts,
) -> Result<impl IntoResponse, ApiError> {
    let Some(expected) = state.config.metrics_token.as_deref() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "metrics_disabled",
            "metrics are off: set LEADTRAIL_METRICS_TOKEN and scrape with it as a bearer token",
        ));
    };
    guarded_bearer(&parts, &state, expected, Guarded::Metrics)?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        telemetry::metrics_handle().render(),
    ))
}
