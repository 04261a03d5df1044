//! The subscriber's dashboard: server-rendered pages (askama), plain forms that work without
//! JavaScript, and a small script that only adds comfort (copy buttons, live previews).

pub(crate) mod assets;
mod auth;
mod lead_import;
mod leads;
pub mod page;
mod reports;
pub mod session;
mod sources;
mod spend;
mod team;
mod webhooks;
mod widgets;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderValue;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::middleware;
use axum::response::Redirect;
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;

use super::AppState;

/// No inline script or style anywhere: a value that slipped past escaping still cannot run.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
    form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router() -> Router<AppState> {
    let pages = Router::new()
        .route("/app", get(auth::home))
        .route("/app/sources", get(sources::show))
        .route("/app/sources/{widget}/new", post(sources::create))
        .route("/app/sources/{widget}/{code}", post(sources::update))
        .route(
            "/app/sources/{widget}/{code}/archive",
            post(sources::archive),
        )
        .route(
            "/app/sources/{widget}/{code}/restore",
            post(sources::restore),
        )
        .route(
            "/app/sources/{widget}/{code}/qr",
            post(sources::generate_qr),
        )
        .route("/app/sources/{widget}/{code}/qr.png", get(sources::qr_png))
        .route("/app/sources/{widget}/{code}/spend", post(spend::save))
        .route("/app/sources/{widget}/spend-import", post(spend::import))
        .route("/app/sources/{widget}/{code}/qr.svg", get(sources::qr_svg))
        .route("/app/leads", get(leads::show))
        .route(
            "/app/leads/import",
            get(lead_import::show)
                .post(lead_import::submit)
                .layer(DefaultBodyLimit::max(crate::http::api::IMPORT_BODY_LIMIT)),
        )
        .route("/app/leads/export.csv", get(leads::export_csv))
        .route("/app/leads/export.jsonl", get(leads::export_jsonl))
        .route("/app/reports", get(reports::show))
        .route("/app/reports.csv", get(reports::csv))
        .route("/app/reports/attribution", post(reports::save_attribution))
        .route("/app/leads/{id}/source", post(leads::correct))
        .route("/app/leads/{id}/outcome", post(leads::set_outcome))
        .route("/app/leads/{id}/erase", post(leads::erase))
        .route("/app/webhooks", get(webhooks::show).post(webhooks::create))
        .route("/app/webhooks/{id}", post(webhooks::update))
        .route("/app/webhooks/{id}/rotate", post(webhooks::rotate))
        .route("/app/webhooks/{id}/test", post(webhooks::test))
        .route("/app/webhooks/{id}/delete", post(webhooks::delete))
        .route("/app/webhooks/{id}/replay", post(webhooks::replay))
        .route(
            "/app/webhooks/{id}/deliveries/{delivery}/resend",
            post(webhooks::resend),
        )
        .route(
            "/app/widgets",
            get(widgets::show_widgets).post(widgets::create_widget),
        )
        .route("/app/widgets/{version}", post(widgets::update_widget))
        .route(
            "/app/settings",
            get(widgets::show_settings).post(widgets::save_settings),
        )
        .route("/app/settings/qr-preview.svg", get(widgets::qr_preview))
        .route("/app/team", get(team::show))
        .route("/app/organization", post(auth::switch_organization))
        .route("/app/team/invite", post(team::invite))
        .route("/app/team/invites/revoke", post(team::revoke))
        .route("/app/team/{id}/reset", post(team::reset))
        .route("/app/team/{id}/remove", post(team::remove))
        .route("/login", get(auth::show_login).post(auth::login))
        .route("/logout", post(auth::logout))
        .route(
            "/invite/{token}",
            get(auth::show_invite).post(auth::accept_invite),
        )
        .route("/", get(|| async { Redirect::to("/app/sources") }))
        .layer(middleware::from_fn(page::clear_flash))
        .layer(SetResponseHeaderLayer::if_not_present(
            CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    Router::new()
        .merge(pages)
        .merge(assets::router())
        .merge(crate::http::api_docs::router())
        .layer(SetResponseHeaderLayer::overriding(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
}
