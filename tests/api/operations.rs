//! Health, readiness, metrics and the OpenAPI document.

use reqwest::{Method, StatusCode};

use crate::common::TestDb;
use crate::helpers::TestApp;
use crate::on_both_backends;

async fn healthz_and_readyz_answer(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let health = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
}

async fn metrics_are_prometheus_text_with_request_counts(db: TestDb) {
    let app = TestApp::spawn(db).await;
    app.call(Method::GET, "/healthz", None, None).await;
    let res = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    assert!(text.contains("http_requests_total"), "{text}");
    assert!(text.contains("route=\"/healthz\""), "{text}");
}

async fn the_openapi_document_describes_the_api(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (status, doc) = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/organizations",
        "/organization",
        "/widgets",
        "/widgets/{version}",
        "/widgets/{version}/sources",
        "/widgets/{version}/sources/{code}",
        "/widgets/{version}/sources/{code}/archive",
        "/widgets/{version}/sources/{code}/restore",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["SourceBody"].is_object());
}

on_both_backends!(
    healthz_and_readyz_answer,
    metrics_are_prometheus_text_with_request_counts,
    the_openapi_document_describes_the_api,
);
