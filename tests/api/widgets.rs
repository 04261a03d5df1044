//! Widgets over HTTP: versions, tier limits, status changes.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::TestDb;
use crate::helpers::{TestApp, error_code};
use crate::on_both_backends;

async fn a_starter_organization_cannot_create_a_second_live_widget(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    let (status, err) = org.post("/api/v1/widgets", json!({"name": "Second"})).await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::CONFLICT, "widget_limit_reached")
    );
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 live widget")
    );
}

async fn widgets_are_created_not_configured_and_can_be_configured_and_archived(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("premium").await;
    let (status, w) = org
        .post(
            "/api/v1/widgets",
            json!({"name": "New Spark 02", "site_url": "https://b.example/x"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{w}");
    assert_eq!(w["version"], "02");
    assert_eq!(w["status"], "not_configured");
    let (status, w) = org
        .patch("/api/v1/widgets/02", json!({"status": "configured"}))
        .await;
    assert_eq!(
        (status, w["status"].as_str()),
        (StatusCode::OK, Some("configured"))
    );
    let (status, w) = org
        .patch("/api/v1/widgets/2", json!({"status": "archived"}))
        .await;
    assert_eq!(
        (status, w["status"].as_str()),
        (StatusCode::OK, Some("archived"))
    );
    let (status, err) = org
        .patch("/api/v1/widgets/01", json!({"status": "archived"}))
        .await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::CONFLICT, "primary_widget_immutable")
    );
    let (status, err) = org
        .patch("/api/v1/widgets/02", json!({"status": "paused"}))
        .await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );
    let (_, list) = org.get("/api/v1/widgets").await;
    let versions: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["version"].clone())
        .collect();
    assert_eq!(versions, vec![json!("01"), json!("02")]);
}

async fn another_tenants_widget_is_not_found(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let acme = app.create_org("premium").await;
    let rival = app.create_org("starter").await;
    acme.post("/api/v1/widgets", json!({"name": "Acme two"}))
        .await;
    let (status, err) = rival.get("/api/v1/widgets/02").await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, _) = rival
        .patch("/api/v1/widgets/02", json!({"name": "stolen"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = rival.get("/api/v1/widgets/02/sources").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

on_both_backends!(
    a_starter_organization_cannot_create_a_second_live_widget,
    widgets_are_created_not_configured_and_can_be_configured_and_archived,
    another_tenants_widget_is_not_found,
);
