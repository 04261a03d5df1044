//! `GET /widget.js`: the embeddable widget, with the configured open parameter baked in.

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::domain::tracking_url::OpenParameter;
use crate::http::AppState;

const SOURCE: &str = include_str!("../../../assets/widget.js");

/// The script as served: the same for every request, so it is rendered once at start.
pub struct WidgetScript {
    body: String,
    etag: String,
}

impl WidgetScript {
    pub fn render(open: &OpenParameter) -> Self {
        let body = SOURCE
            .replace("__OPEN_KEY__", open.key())
            .replace("__OPEN_VALUE__", open.value());
        let etag = format!(
            "\"{}\"",
            &hex::encode(Sha256::digest(body.as_bytes()))[..24]
        );
        Self { body, etag }
    }
}

pub async fn serve(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let script = &state.widget_js;
    let fresh = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == script.etag);
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(CONTENT_TYPE, "application/javascript; charset=utf-8")],
            script.body.clone(),
        )
            .into_response()
    };
    let h = response.headers_mut();
    // Short enough that a fix reaches every subscriber's page within minutes.
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300, stale-while-revalidate=86400"),
    );
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    if let Ok(v) = HeaderValue::from_str(&script.etag) {
        h.insert(ETAG, v);
    }
    response
}
