//! Organizations: operator creation, the caller's own organization, API keys.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::TestDb;
use crate::helpers::{ADMIN_TOKEN, TestApp, error_code};
use crate::on_both_backends;

async fn creating_an_organization_returns_keys_and_a_configured_primary_widget(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("premium").await;
    assert!(org.id.starts_with("org_"));
    assert!(org.key.starts_with("sk_"));
    assert!(org.body["public_key"].as_str().unwrap().starts_with("pk_"));
    assert_eq!(org.body["tier"], "premium");
    assert_eq!(org.body["primary_widget"]["version"], "01");
    assert_eq!(org.body["primary_widget"]["status"], "configured");
    let (status, me) = org.get("/api/v1/organization").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], org.id.as_str());
    assert!(me.get("api_key").is_none(), "the secret is shown only once");
}

async fn creating_an_organization_needs_the_operator_token(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let body = json!({"name": "X", "tier": "starter", "website_url": "https://x.example", "brand_color": "#000000"});
    let (status, err) = app
        .call(Method::POST, "/api/v1/organizations", None, Some(&body))
        .await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (status, err) = app
        .call(
            Method::POST,
            "/api/v1/organizations",
            Some("nope"),
            Some(&body),
        )
        .await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::UNAUTHORIZED, "invalid_operator_token")
    );
    // An organization's own API key is not the operator token.
    let org = app.create_org("starter").await;
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/organizations",
            Some(&org.key),
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn operator_endpoints_are_off_without_an_admin_token(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| c.admin_token = None).await;
    let body = json!({"name": "X", "tier": "starter", "website_url": "https://x.example", "brand_color": "#000000"});
    let (status, err) = app
        .call(
            Method::POST,
            "/api/v1/organizations",
            Some(ADMIN_TOKEN),
            Some(&body),
        )
        .await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::FORBIDDEN, "operator_endpoints_disabled")
    );
}

async fn an_owner_can_be_created_with_the_organization_and_emails_are_unique(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let body = json!({
        "name": "Acme", "tier": "starter", "website_url": "https://acme.example",
        "brand_color": "#000000", "owner_email": "Owner@Acme.example", "owner_password": "a long enough secret",
    });
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/organizations",
            Some(ADMIN_TOKEN),
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, err) = app
        .call(
            Method::POST,
            "/api/v1/organizations",
            Some(ADMIN_TOKEN),
            Some(&body),
        )
        .await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::CONFLICT, "duplicate_email")
    );
    let mut short = body.clone();
    short["owner_email"] = json!("other@acme.example");
    short["owner_password"] = json!("short");
    let (status, err) = app
        .call(
            Method::POST,
            "/api/v1/organizations",
            Some(ADMIN_TOKEN),
            Some(&short),
        )
        .await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );
}

async fn organization_settings_are_validated_and_saved(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    let (status, body) = org
        .patch(
            "/api/v1/organization",
            json!({"name": "Spark360", "brand_color": "#0b5394"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "Spark360");
    assert_eq!(body["brand_color"], "#0B5394");
    let (status, err) = org
        .patch("/api/v1/organization", json!({"brand_color": "#FFFF00"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["error"]["field"], "brand_color");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too light")
    );
    let (status, _) = org
        .patch("/api/v1/organization", json!({"website_url": "not a url"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn api_keys_can_be_added_listed_and_revoked(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    let (status, created) = org
        .post("/api/v1/api-keys", json!({"label": "Zapier"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let second = created["api_key"].as_str().unwrap().to_owned();
    let (status, _) = app
        .call(Method::GET, "/api/v1/widgets", Some(&second), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = org.get("/api/v1/api-keys").await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("api_key").is_none())
    );
    let id = created["id"].as_str().unwrap();
    let (status, _) = org
        .post_empty(&format!("/api/v1/api-keys/{id}/revoke"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, err) = app
        .call(Method::GET, "/api/v1/widgets", Some(&second), None)
        .await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::UNAUTHORIZED, "invalid_api_key")
    );
    // Another tenant cannot revoke this organization's keys.
    let rival = app.create_org("starter").await;
    let (status, _) = rival
        .post_empty(&format!("/api/v1/api-keys/{id}/revoke"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

on_both_backends!(
    creating_an_organization_returns_keys_and_a_configured_primary_widget,
    creating_an_organization_needs_the_operator_token,
    operator_endpoints_are_off_without_an_admin_token,
    an_owner_can_be_created_with_the_organization_and_emails_are_unique,
    organization_settings_are_validated_and_saved,
    api_keys_can_be_added_listed_and_revoked,
);
