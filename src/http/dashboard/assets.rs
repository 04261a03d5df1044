//! The dashboard's stylesheet and script, compiled into the binary (no build step), served
//! with an ETag so browsers revalidate cheaply.

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::http::AppState;

const CSS: &str = include_str!("../../../assets/app.css");
const JS: &str = include_str!("../../../assets/app.js");

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/app/assets/app.css",
            get(|h: HeaderMap| async move { asset(&h, CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/app/assets/app.js",
            get(|h: HeaderMap| async move { asset(&h, JS, "text/javascript; charset=utf-8") }),
        )
}

pub(crate) fn asset(
    headers: &HeaderMap,
    body: &'static str,
    content_type: &'static str,
) -> Response {
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(body))[..16]);
    let cache = [(CACHE_CONTROL, "public, max-age=300, must-revalidate")];
    if headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag)
    {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (
        cache,
        [(CONTENT_TYPE, content_type), (ETAG, etag.as_str())],
        body,
    )
        .into_response()
}
