//! The axum application: feature routers merged at the root, one state, one error shape.

pub mod api;
pub mod api_docs;
pub mod backoff;
pub mod capture;
pub mod client_ip;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod listen;
mod ops;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header::STRICT_TRANSPORT_SECURITY;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware;
use axum::response::IntoResponse;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use self::capture::limits::CaptureLimits;
use self::capture::public_keys::PublicKeyCache;
use self::capture::widget_js::WidgetScript;
use self::error::ApiError;
use crate::config::Config;
use crate::store::Store;
use crate::telemetry;
use crate::webhooks::limits::ManualSendLimit;
use crate::workers::capture_writer::CaptureWriter;
use crate::workers::visit_buffer::VisitBuffer;

/// Largest JSON body the API accepts.
pub const API_BODY_LIMIT: usize = 64 * 1024;

/// What every handler shares. axum clones it for every request (and for every extractor and
/// middleware that takes it), so it is one shared reference, not a clone of each part.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

pub struct Services {
    pub store: Store,
    pub config: Arc<Config>,
    pub capture: CaptureWriter,
    pub visits: VisitBuffer,
    pub public_keys: Arc<PublicKeyCache>,
    pub limits: Arc<CaptureLimits>,
    pub widget_js: Arc<WidgetScript>,
    pub login_limits: Arc<backoff::LoginThrottle>,
    /// Wrong operator and metrics tokens, slowed per client network.
    pub token_failures: Arc<backoff::TokenThrottle>,
    /// Test events, resends and replays started by hand, per organization.
    pub manual_sends: Arc<ManualSendLimit>,
}

impl AppState {
    pub fn new(
        store: Store,
        config: Arc<Config>,
        capture: CaptureWriter,
        visits: VisitBuffer,
    ) -> Self {
        let limits = Arc::new(CaptureLimits::new(config.capture_rate_limit));
        let widget_js = Arc::new(WidgetScript::render(&config.open_parameter));
        Self(Arc::new(Services {
            store,
            capture,
            visits,
            public_keys: Arc::new(PublicKeyCache::default()),
            limits,
            widget_js,
            login_limits: Arc::default(),
            token_failures: Arc::default(),
            manual_sends: Arc::new(ManualSendLimit::new(config.webhook_manual_sends_per_minute)),
            config,
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

pub fn router(state: AppState) -> Router {
    // Install the recorder before the first request is counted, not at the first scrape.
    telemetry::metrics_handle();
    let router = Router::new()
        .merge(ops::router())
        .nest(
            "/api/v1",
            api::router().layer(DefaultBodyLimit::max(API_BODY_LIMIT)),
        )
        .merge(capture::router(&state))
        .merge(dashboard::router())
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.config.request_timeout,
            listen::request_deadline,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            client_ip::remember_client,
        ))
        .layer(middleware::from_fn(telemetry::track_http))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("a request handler panicked").into_response()
        }));
    // Reached over https only (the operator says so): browsers must never try plain http.
    let router = if state.config.secure_cookies {
        router.layer(SetResponseHeaderLayer::overriding(
            STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ))
    } else {
        router
    };
    router.with_state(state)
}

/// The span of a request names its route template (`/invite/{token}`), never the path itself:
/// paths carry one-time tokens and ids that have no place in a log.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("(no route)", |m| m.as_str());
    tracing::debug_span!("request", method = %req.method(), route)
}

/// Unknown paths answer in the caller's language: an HTML page under the dashboard, the JSON
/// error shape everywhere else.
async fn fallback(uri: axum::http::Uri) -> axum::response::Response {
    if uri.path().starts_with("/app/") {
        dashboard::page::PageError::not_found().into_response()
    } else {
        ApiError::not_found("route").into_response()
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}
