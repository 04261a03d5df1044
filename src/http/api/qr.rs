//! QR codes of custom sources: generate, then download as PNG or SVG.

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::IntoParams;

use super::sources::SourceBody;
use crate::domain::organization::BrandColor;
use crate::domain::source::SourceCode;
use crate::domain::widget::WidgetVersion;
use crate::http::AppState;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiQuery, OrgAuth, source_code, widget_version};
use crate::qr::{self, DEFAULT_PNG_SIZE, MAX_PNG_SIZE, MIN_PNG_SIZE, Symbol};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/widgets/{version}/sources/{code}/qr", post(generate_qr))
        .route(
            "/widgets/{version}/sources/{code}/qr.png",
            get(download_png),
        )
        .route(
            "/widgets/{version}/sources/{code}/qr.svg",
            get(download_svg),
        )
}

pub(crate) fn no_qr_for_the_system_source(code: SourceCode) -> Result<(), ApiError> {
    if code.is_system() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "system_source_has_no_qr",
            "the system source SRC-01 catches untagged traffic and has no QR code",
        ));
    }
    Ok(())
}

/// Generate a custom source's QR code
#[utoipa::path(post, path = "/widgets/{version}/sources/{code}/qr",
    params(("version" = String, Path, example = "01"), ("code" = String, Path, example = "02")),
    responses((status = 200, body = SourceBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn generate_qr(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    Path((version, code)): Path<(String, String)>,
) -> ApiResult<Json<SourceBody>> {
    let (version, code) = (widget_version(&version)?, source_code(&code)?);
    no_qr_for_the_system_source(code)?;
    let source = state.store.mark_qr_generated(&org, version, code).await?;
    Ok(Json(SourceBody::new(source, &state.config.open_parameter)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PngQuery {
    /// Width and height in pixels, 256–4096 (default 1024).
    size: Option<u32>,
}

#[derive(Clone, Copy)]
pub(crate) enum Format {
    Png(u32),
    Svg,
}

/// Download the QR code as PNG
#[utoipa::path(get, path = "/widgets/{version}/sources/{code}/qr.png",
    params(("version" = String, Path, example = "01"), ("code" = String, Path, example = "02"), PngQuery),
    responses((status = 200, content_type = "image/png", description = "The QR code; `Content-Disposition` carries the file name"),
        (status = 304), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn download_png(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    Path((version, code)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<PngQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let size = query.size.unwrap_or(DEFAULT_PNG_SIZE);
    if !(MIN_PNG_SIZE..=MAX_PNG_SIZE).contains(&size) {
        return Err(crate::domain::DomainError::new(
            "size",
            format!("size must be {MIN_PNG_SIZE} to {MAX_PNG_SIZE} pixels"),
        )
        .into());
    }
    let (version, code) = (widget_version(&version)?, source_code(&code)?);
    download(&state, &org, version, code, Format::Png(size), &headers).await
}

/// Download the QR code as SVG
#[utoipa::path(get, path = "/widgets/{version}/sources/{code}/qr.svg",
    params(("version" = String, Path, example = "01"), ("code" = String, Path, example = "02")),
    responses((status = 200, content_type = "image/svg+xml"), (status = 304), (status = 404, body = ErrorBody)))]
pub async fn download_svg(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    Path((version, code)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (version, code) = (widget_version(&version)?, source_code(&code)?);
    download(&state, &org, version, code, Format::Svg, &headers).await
}

/// Renders on request: the code always encodes today's tracking URL in today's brand colour.
/// The ETag is derived from exactly those inputs, so a client's copy stays valid until one of
/// them changes.
pub(crate) async fn download(
    state: &AppState,
    org: &crate::domain::ids::OrgId,
    version: WidgetVersion,
    code: SourceCode,
    format: Format,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    no_qr_for_the_system_source(code)?;
    let source = state.store.source(org, version, code).await?;
    if !source.qr_generated {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "qr_not_generated",
            "this source has no QR code yet; generate it first",
        ));
    }
    let organization = state.store.organization(org).await?;
    let color = BrandColor::parse(&organization.brand_color).map_err(ApiError::internal)?;
    let body = SourceBody::new(source.clone(), &state.config.open_parameter);
    let url = body.tracking_url();
    let (ext, variant) = match format {
        Format::Png(size) => ("png", format!("png:{size}")),
        Format::Svg => ("svg", "svg".to_owned()),
    };
    let etag = format!(
        "\"{}\"",
        &hex::encode(Sha256::digest(format!("{url}|{color}|{variant}")))[..32]
    );
    let file_name = qr::download_file_name(
        &organization.name,
        &source.name,
        &version.to_string(),
        &code.to_string(),
        ext,
    );
    let mut response = if headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let symbol = Symbol::encode(url).map_err(ApiError::internal)?;
        match format {
            Format::Png(size) => {
                let png = qr::render_png(&symbol, color, size).map_err(ApiError::internal)?;
                ([(CONTENT_TYPE, "image/png")], png).into_response()
            }
            Format::Svg => {
                let svg = qr::render_svg(&symbol, color);
                ([(CONTENT_TYPE, "image/svg+xml")], svg).into_response()
            }
        }
    };
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&file_name)) {
        headers.insert(CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// RFC 6266: an ASCII `filename` for old clients and the exact UTF-8 name in `filename*`.
fn content_disposition(file_name: &str) -> String {
    let ascii: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let exact = utf8_percent_encode(file_name, NON_ALPHANUMERIC);
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{exact}")
}
