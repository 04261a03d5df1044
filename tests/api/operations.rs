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
        .bearer_auth(crate::helpers::METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    assert!(text.contains("http_requests_total"), "{text}");
    assert!(text.contains("route=\"/healthz\""), "{text}");
}

/// Metrics name endpoints and backlogs: only a scraper with the token reads them, and guesses
/// at it (or at the operator token) are slowed while the right token still gets through.
async fn metrics_and_operator_tokens_are_guarded(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let metrics = |token: Option<&'static str>| {
        let mut req = app.client.get(format!("{}/metrics", app.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move { req.send().await.unwrap() }
    };
    assert_eq!(metrics(None).await.status(), StatusCode::UNAUTHORIZED);
    let wrong = metrics(Some("wrong-token")).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_metrics_token", "{body}");
    // Ten wrong guesses are heard; then the next waits (each heard failure doubles the wait, so
    // a slow machine reaches the refusal within a few more tries).
    let mut slowed = None;
    for _ in 0..30 {
        let res = metrics(Some("wrong-token")).await;
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            slowed = Some(res);
            break;
        }
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let slowed = slowed.expect("wrong metrics tokens were never slowed");
    assert!(slowed.headers().contains_key("retry-after"));
    // The operator token is slowed from the same network too …
    let mut refused = false;
    for _ in 0..10 {
        let (status, _) = app
            .call(
                Method::POST,
                "/api/v1/organizations",
                Some("guess"),
                Some(&serde_json::json!({})),
            )
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            refused = true;
            break;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert!(refused, "wrong operator tokens were never slowed");
    // … but the right tokens still work.
    assert_eq!(
        metrics(Some(crate::helpers::METRICS_TOKEN)).await.status(),
        StatusCode::OK
    );
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/organizations",
            Some(crate::helpers::ADMIN_TOKEN),
            Some(&serde_json::json!({"name": "Acme", "tier": "starter",
                "website_url": "https://acme.example", "brand_color": "#000000"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn metrics_are_off_without_a_token(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| c.metrics_token = None).await;
    let res = app
        .client
        .get(format!("{}/metrics", app.base))
        .bearer_auth(crate::helpers::METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
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
    metrics_and_operator_tokens_are_guarded,
    metrics_are_off_without_a_token,
    the_openapi_document_describes_the_api,
);
