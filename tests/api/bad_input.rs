//! Bad input gets a 4xx in the JSON error shape — never a 5xx, never a panic.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::TestDb;
use crate::helpers::{TestApp, error_code};
use crate::on_both_backends;

async fn malformed_json_is_a_400_invalid_json(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    let (status, err) = app
        .raw(
            Method::POST,
            "/api/v1/widgets/01/sources",
            Some(&org.key),
            "application/json",
            b"{\"name\":".to_vec(),
        )
        .await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::BAD_REQUEST, "invalid_json")
    );
}

async fn wrong_types_and_unknown_fields_are_422(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    for body in [
        json!({"name": 5, "channel_category": "email"}),
        json!({"name": "A", "channel_category": ["email"]}),
        json!({"name": "A", "channel_category": "email", "generate_qr": "yes"}),
        json!({"name": "A", "channel_category": "email", "code": "07"}),
        json!({"channel_category": "email"}),
        json!([1, 2, 3]),
    ] {
        let (status, err) = org.post("/api/v1/widgets/01/sources", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        error_code(&err);
    }
}

async fn bodies_over_64_kib_are_413(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    let body = json!({"name": "x".repeat(70 * 1024), "channel_category": "email"});
    let (status, err) = org.post("/api/v1/widgets/01/sources", body).await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    let two_mb = vec![b'['; 2 * 1024 * 1024];
    // The server answers 413 without reading the rest; the client may see that answer, or a
    // broken pipe if the connection closes mid-upload. Either way nothing was accepted.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let sent = fresh
        .post(format!("{}/api/v1/widgets", app.base))
        .bearer_auth(&org.key)
        .header("content-type", "application/json")
        .body(two_mb)
        .send()
        .await;
    match sent {
        Ok(res) => assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE),
        // Cut off mid-upload: acceptable, as long as it was the connection, not a timeout.
        Err(e) => assert!(!e.is_timeout(), "{e}"),
    }
    let (_, widgets) = org.get("/api/v1/widgets").await;
    assert_eq!(widgets.as_array().unwrap().len(), 1, "nothing was created");
}

async fn deep_nesting_and_random_bytes_are_refused_cleanly(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes();
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for body in [deep, junk, Vec::new()] {
        let (status, err) = app
            .raw(
                Method::POST,
                "/api/v1/widgets/01/sources",
                Some(&org.key),
                "application/json",
                body,
            )
            .await;
        assert!(status.is_client_error(), "{status}");
        error_code(&err);
    }
}

async fn a_body_that_is_not_json_is_415(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    let (status, err) = app
        .raw(
            Method::POST,
            "/api/v1/widgets",
            Some(&org.key),
            "text/plain",
            b"name=x".to_vec(),
        )
        .await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
}

async fn missing_or_wrong_keys_are_401(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (status, err) = app.call(Method::GET, "/api/v1/widgets", None, None).await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    for key in ["sk_not_a_real_key", "pk_public", "Basic abc", ""] {
        let (status, err) = app
            .call(Method::GET, "/api/v1/widgets", Some(key), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key:?}");
        error_code(&err);
    }
}

async fn unknown_routes_versions_and_codes_are_404_in_the_error_shape(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    for path in [
        "/api/v1/nothing-here",
        "/api/v1/widgets/abc",
        "/api/v1/widgets/00",
        "/api/v1/widgets/99",
        "/api/v1/widgets/99999999999999999999/sources",
        "/api/v1/widgets/01/sources/../../organization",
    ] {
        let (status, err) = org.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        error_code(&err);
    }
    let (status, err) = org
        .patch("/api/v1/widgets/01/sources/SRC-xx", json!({"name": "a"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    error_code(&err);
    let (status, err) = app
        .call(Method::DELETE, "/api/v1/widgets", Some(&org.key), None)
        .await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

on_both_backends!(
    malformed_json_is_a_400_invalid_json,
    wrong_types_and_unknown_fields_are_422,
    bodies_over_64_kib_are_413,
    deep_nesting_and_random_bytes_are_refused_cleanly,
    a_body_that_is_not_json_is_415,
    missing_or_wrong_keys_are_401,
    unknown_routes_versions_and_codes_are_404_in_the_error_shape,
);
