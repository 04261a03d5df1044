//! The JSON API under `/api/v1`, and the OpenAPI document generated from its handlers.

mod api_keys;
pub mod lead_export;
mod lead_import;
pub use lead_import::IMPORT_BODY_LIMIT;
mod leads;
mod organizations;
mod privacy;
pub(crate) mod qr;
pub mod reports;
pub(crate) mod sources;
mod spend;
pub(crate) mod webhooks;
mod widgets;

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::AppState;
use super::error::ErrorBody;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .merge(organizations::router())
        .merge(api_keys::router())
        .merge(widgets::router())
        .merge(sources::router())
        .merge(qr::router())
        .merge(leads::router())
        .merge(privacy::router())
        .merge(webhooks::router())
        .merge(reports::router())
        .merge(spend::router())
}

#[derive(OpenApi)]
#[openapi(
    info(title = "leadtrail API", description = "Lead source attribution: organizations, widgets, lead sources."),
    servers((url = "/api/v1")),
    paths(
        organizations::create_organization,
        organizations::get_organization,
        organizations::update_organization,
        organizations::change_organization,
        api_keys::list_api_keys,
        api_keys::create_api_key,
        api_keys::revoke_api_key,
        widgets::list_widgets,
        widgets::create_widget,
        widgets::get_widget,
        widgets::update_widget,
        sources::list_sources,
        sources::create_source,
        sources::update_source,
        sources::archive_source,
        sources::restore_source,
        qr::generate_qr,
        qr::download_png,
        qr::download_svg,
        leads::list_leads,
        leads::get_lead,
        lead_export::export_csv,
        lead_export::export_jsonl,
        lead_import::import_leads,
        privacy::erase_lead,
        privacy::export_person,
        leads::create_lead,
        leads::correct_source,
        leads::set_outcome,
        spend::set_spend,
        spend::delete_spend,
        spend::list_spend,
        spend::import_spend,
        webhooks::create_endpoint,
        webhooks::list_endpoints,
        webhooks::get_endpoint,
        webhooks::update_endpoint,
        webhooks::delete_endpoint,
        webhooks::rotate_secret,
        webhooks::list_deliveries,
        webhooks::resend_delivery,
        webhooks::resend_failed,
        webhooks::send_test,
        webhooks::replay,
        reports::sources_report,
        reports::sources_csv_report,
        reports::channels_report,
        reports::timeseries_report,
        reports::self_reported_report,
        reports::derived_channels_report,
        reports::models_report,
        reports::attribution_settings,
        reports::change_attribution_settings,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An organization API key (`sk_…`), or the operator token for operator endpoints",
                    ))
                    .build(),
            ),
        );
    }
}

async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
