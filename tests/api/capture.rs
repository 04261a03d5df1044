//! The public capture endpoints and widget.js, as a subscriber's page calls them.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::TestDb;
use crate::helpers::{Tenant, TestApp, error_code};
use crate::on_both_backends;

fn public_key(org: &Tenant<'_>) -> String {
    org.body["public_key"].as_str().unwrap().to_owned()
}

fn address() -> Value {
    json!({"street": "1 Main St", "city": "Austin", "state": "TX", "postal_code": "78701"})
}

pub(crate) async fn capture(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    key: Option<&str>,
    body: &Value,
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.base))
        .json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn start_lead(app: &TestApp, pk: &str, v: &str, s: &str) -> (String, String) {
    let (status, body) = capture(
        app,
        Method::POST,
        "/c/v1/leads",
        None,
        None,
        &json!({"public_key": pk, "widget": "01", "v": v, "s": s, "address": address()}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (
        body["lead_id"].as_str().unwrap().to_owned(),
        body["capture_token"].as_str().unwrap().to_owned(),
    )
}

fn project() -> Value {
    json!({"step": "project_details", "roof_type": "replacement", "material": "asphalt_shingle", "stories": 2, "urgency": "within_1_month"})
}

fn personal() -> Value {
    json!({"step": "personal_info", "first_name": "Ann", "last_name": "Lee", "email": "ann@example.com", "phone": "(512) 555-0100", "owner_occupied": true, "home_sqft": 2400})
}

async fn wait_for_enrichment(org: &Tenant<'_>, lead: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, body) = org.get(&format!("/api/v1/leads/{lead}")).await;
        if body["enrichment"].is_object() || Instant::now() > deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_lead_walks_all_four_steps_and_arrives_with_its_snapshot_and_enrichment(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    let pk = public_key(&org);
    org.create_source("01", "Yard Signs", "print_outdoor").await;
    let (status, _) = capture(
        &app,
        Method::POST,
        "/c/v1/visits",
        None,
        None,
        &json!({"public_key": pk, "widget": "01", "v": "01", "s": "02"}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (id, token) = start_lead(&app, &pk, "01", "02").await;
    let (status, body) = capture(
        &app,
        Method::PATCH,
        &format!("/c/v1/leads/{id}"),
        Some(&token),
        None,
        &project(),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("project_details_provided"))
    );
    let (status, body) = capture(
        &app,
        Method::PATCH,
        &format!("/c/v1/leads/{id}"),
        Some(&token),
        None,
        &personal(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["estimate"]["price_low"].as_u64().unwrap() > 0,
        "instant estimate: {body}"
    );
    let (status, body) = capture(
        &app,
        Method::PATCH,
        &format!("/c/v1/leads/{id}"),
        Some(&token),
        None,
        &json!({"step": "contact_preference", "contact_method": "text", "contact_time": "evening"}),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("contact_info_provided"))
    );

    let lead = wait_for_enrichment(&org, &id).await;
    assert_eq!(
        lead["source_tracking"],
        json!({"widget_version": "01", "widget_name": "Primary", "source_code": "02", "source_label": "Yard Signs"})
    );
    assert_eq!(lead["personal"]["phone"], "5125550100");
    assert!(lead["enrichment"]["score"].as_u64().unwrap() <= 100);
    assert!(
        lead["enrichment"]["estimate"]["price_high"]
            .as_u64()
            .unwrap()
            > 0
    );
    let (_, sources) = org.get("/api/v1/widgets/01/sources").await;
    assert_eq!(sources[1]["lead_count"], 1);
}

async fn capture_validation_errors_name_the_field(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    let pk = public_key(&org);
    let mut bad = address();
    bad["postal_code"] = json!("ABC");
    let (status, err) = capture(
        &app,
        Method::POST,
        "/c/v1/leads",
        None,
        None,
        &json!({"public_key": pk, "address": bad}),
    )
    .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("address.postal_code")
        )
    );
    let (id, token) = start_lead(&app, &pk, "01", "01").await;
    capture(
        &app,
        Method::PATCH,
        &format!("/c/v1/leads/{id}"),
        Some(&token),
        None,
        &project(),
    )
    .await;
    for (field, value) in [
        ("email", json!("not-an-email")),
        ("phone", json!("12")),
        ("first_name", json!("")),
    ] {
        let mut body = personal();
        body[field] = value;
        let (status, err) = capture(
            &app,
            Method::PATCH,
            &format!("/c/v1/leads/{id}"),
            Some(&token),
            None,
            &body,
        )
        .await;
        assert_eq!(
            (status, err["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field))
        );
    }
    let (status, err) = capture(
        &app,
        Method::PATCH,
        &format!("/c/v1/leads/{id}"),
        Some(&token),
        None,
        &json!({"step": "dance"}),
    )
    .await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
    );
}

async fn steps_need_the_capture_token_and_come_in_order(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    let pk = public_key(&org);
    let (id, token) = start_lead(&app, &pk, "01", "01").await;
    let path = format!("/c/v1/leads/{id}");
    let (status, err) = capture(&app, Method::PATCH, &path, None, None, &project()).await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::UNAUTHORIZED, "missing_capture_token")
    );
    let (other_id, other_token) = start_lead(&app, &pk, "01", "01").await;
    let (status, err) = capture(
        &app,
        Method::PATCH,
        &path,
        Some(&other_token),
        None,
        &project(),
    )
    .await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::UNAUTHORIZED, "invalid_capture_token")
    );
    let (status, err) = capture(&app, Method::PATCH, &path, Some(&token), None, &personal()).await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::CONFLICT, "step_out_of_order")
    );
    let (status, err) = capture(
        &app,
        Method::PATCH,
        "/c/v1/leads/lead_nope",
        Some(&token),
        None,
        &project(),
    )
    .await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let _ = other_id;
}

async fn a_retried_request_with_the_same_idempotency_key_creates_nothing_twice(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    let pk = public_key(&org);
    let body = json!({"public_key": pk, "address": address()});
    let (s1, first) = capture(
        &app,
        Method::POST,
        "/c/v1/leads",
        None,
        Some("create-1"),
        &body,
    )
    .await;
    let (s2, second) = capture(
        &app,
        Method::POST,
        "/c/v1/leads",
        None,
        Some("create-1"),
        &body,
    )
    .await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(first["lead_id"], second["lead_id"]);
    assert_eq!(first["status"], second["status"]);
    // The stored answer keeps no capture token: the retry gets a fresh one, which replaces the
    // first (the client that retried uses the answer it got).
    assert_ne!(first["capture_token"], second["capture_token"]);
    let pool = sqlx::AnyPool::connect(app.database_url()).await.unwrap();
    let stored: Vec<String> = sqlx::query_scalar("SELECT response FROM idempotency_keys")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    for token in [&first["capture_token"], &second["capture_token"]] {
        let token = token.as_str().unwrap();
        assert!(token.starts_with("ct_"));
        assert!(!stored[0].contains(token), "{}", stored[0]);
    }
    let lead = second["lead_id"].as_str().unwrap();
    let step = |token: String| {
        let app = &app;
        async move {
            capture(
                app,
                Method::PATCH,
                &format!("/c/v1/leads/{lead}"),
                Some(&token),
                None,
                &project(),
            )
            .await
            .0
        }
    };
    let old_token = first["capture_token"].as_str().unwrap().to_owned();
    assert_eq!(step(old_token).await, StatusCode::UNAUTHORIZED);
    let new_token = second["capture_token"].as_str().unwrap().to_owned();
    assert_eq!(step(new_token).await, StatusCode::OK);
    let mut changed = body.clone();
    changed["address"]["street"] = json!("2 Other St");
    let (status, err) = capture(
        &app,
        Method::POST,
        "/c/v1/leads",
        None,
        Some("create-1"),
        &changed,
    )
    .await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );
    let (_, page) = org.get("/api/v1/leads").await;
    assert_eq!(page["leads"].as_array().unwrap().len(), 1);
}

async fn junk_bodies_never_produce_a_server_error(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    let pk = public_key(&org);
    let (id, token) = start_lead(&app, &pk, "01", "01").await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes();
    let random: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    let bodies: Vec<Vec<u8>> = vec![
        deep,
        random,
        vec![b'x'; 2 * 1024 * 1024],
        br#"{"public_key": 5, "address": []}"#.to_vec(),
        format!(r#"{{"public_key":"{pk}","address":{{"street":{{}},"city":1}}}}"#).into_bytes(),
        format!(
            r#"{{"public_key":"{pk}","utm":"x","address":{}}}"#,
            address()
        )
        .into_bytes(),
        Vec::new(),
    ];
    // No connection reuse: after an early 413 the server closes the connection, and a pooled
    // client would blame the next request for it.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for path in ["/c/v1/visits", "/c/v1/leads", &format!("/c/v1/leads/{id}")] {
        // A visit ignores fields it does not use, so some of these are fine beacons there.
        let bodies = if path.ends_with("visits") {
            &bodies[..3]
        } else {
            &bodies[..]
        };
        for body in bodies {
            let method = if path.contains("lead_") {
                Method::PATCH
            } else {
                Method::POST
            };
            let sent = fresh
                .request(method, format!("{}{path}", app.base))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await;
            let res = match sent {
                Ok(res) => res,
                // The server may answer 413 and close before a 2 MB upload finishes; the client
                // then sees a broken pipe. That is a refusal, not a failure.
                Err(e) if body.len() > 16 * 1024 => {
                    assert!(e.is_request(), "{e}");
                    continue;
                }
                Err(e) => panic!("{path}: {e}"),
            };
            let status = res.status();
            assert!(
                status.is_client_error(),
                "{path}: {status} for a {}-byte body",
                body.len()
            );
            let json: Value = res.json().await.unwrap();
            error_code(&json);
        }
    }
    let res = app
        .client
        .post(format!("{}/c/v1/leads", app.base))
        .body(vec![b' '; 20_000])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "16 KiB capture limit"
    );
}

async fn an_unknown_public_key_is_404(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (status, err) = capture(
        &app,
        Method::POST,
        "/c/v1/visits",
        None,
        None,
        &json!({"public_key": "pk_nobody"}),
    )
    .await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::NOT_FOUND, "unknown_public_key")
    );
}

async fn the_honeypot_answers_like_success_and_stores_nothing(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    let pk = public_key(&org);
    let (status, body) = capture(
        &app,
        Method::POST,
        "/c/v1/leads",
        None,
        None,
        &json!({"public_key": pk, "address": address(), "company_website": "http://spam.example"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(body["lead_id"].as_str().unwrap().starts_with("lead_"));
    let (_, page) = org.get("/api/v1/leads").await;
    assert_eq!(page["leads"].as_array().unwrap().len(), 0);
}

async fn the_public_endpoints_are_rate_limited_per_ip_with_retry_after(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| c.capture_rate_limit = 5).await;
    let org = app.create_org("starter").await;
    let pk = public_key(&org);
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..8 {
        let res = app
            .client
            .post(format!("{}/c/v1/visits", app.base))
            .json(&json!({"public_key": pk}))
            .send()
            .await
            .unwrap();
        statuses.push(res.status());
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: Value = res.json().await.unwrap();
            assert_eq!(error_code(&body), "rate_limited");
        }
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::NO_CONTENT)
            .count(),
        5
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        3
    );
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
}

/// Behind a trusted reverse proxy each visitor has their own allowance (an IPv6 visitor is
/// their /64); without one, forwarding headers are just text and change nothing.
async fn limits_key_on_the_client_a_trusted_proxy_names_and_its_64(db: TestDb) {
    let behind_proxy = TestApp::spawn_with(db, |c| {
        c.capture_rate_limit = 1;
        c.trusted_proxies = leadtrail::http::client_ip::TrustedProxies::parse("127.0.0.1").unwrap();
    })
    .await;
    let org = behind_proxy.create_org("starter").await;
    let pk = public_key(&org);
    let visit = |app: &TestApp, forwarded_for: &'static str| {
        let req = app
            .client
            .post(format!("{}/c/v1/visits", app.base))
            .header("x-forwarded-for", forwarded_for)
            .json(&json!({"public_key": pk}));
        async move { req.send().await.unwrap().status() }
    };
    assert_eq!(
        visit(&behind_proxy, "198.51.100.1").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        visit(&behind_proxy, "198.51.100.1").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        visit(&behind_proxy, "198.51.100.2").await,
        StatusCode::NO_CONTENT
    );
    // A forged first entry does not help: the proxy appended the real address after it.
    assert_eq!(
        visit(&behind_proxy, "192.0.2.99, 198.51.100.1").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        visit(&behind_proxy, "2001:db8:0:1::1").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        visit(&behind_proxy, "2001:db8:0:1::2").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        visit(&behind_proxy, "2001:db8:0:2::1").await,
        StatusCode::NO_CONTENT
    );
}

async fn forwarding_headers_from_an_untrusted_peer_change_nothing(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| c.capture_rate_limit = 1).await;
    let org = app.create_org("starter").await;
    let pk = public_key(&org);
    let mut statuses = Vec::new();
    for forwarded_for in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        let res = app
            .client
            .post(format!("{}/c/v1/visits", app.base))
            .header("x-forwarded-for", forwarded_for)
            .json(&json!({"public_key": pk}))
            .send()
            .await
            .unwrap();
        statuses.push(res.status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::NO_CONTENT,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

async fn any_site_may_call_the_capture_endpoints(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let res = app
        .client
        .request(Method::OPTIONS, format!("{}/c/v1/leads", app.base))
        .header("origin", "https://acme-roofing.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,idempotency-key",
        )
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    let allowed = res.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("idempotency-key"));
}

async fn widget_js_is_served_with_caching_and_the_open_parameter(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| {
        c.open_parameter =
            leadtrail::domain::tracking_url::OpenParameter::parse("solar=go").unwrap()
    })
    .await;
    let res = app
        .client
        .get(format!("{}/widget.js", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/javascript")
    );
    assert!(
        res.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    let js = res.text().await.unwrap();
    assert!(js.contains(r#"OPEN_KEY = "solar", OPEN_VALUE = "go""#));
    assert!(!js.contains("__OPEN_KEY__"));
    let again = app
        .client
        .get(format!("{}/widget.js", app.base))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
}

async fn leads_are_listed_newest_first_with_filters_and_cursor_pages(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    let pk = public_key(&org);
    org.create_source("01", "Facebook Ads", "paid_social").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let s = if i % 2 == 0 { "02" } else { "01" };
        ids.push(start_lead(&app, &pk, "01", s).await.0);
    }
    let (status, page) = org.get("/api/v1/leads?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    let mut seen: Vec<String> = page["leads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    let mut cursor = page["next_cursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let (_, next) = org.get(&format!("/api/v1/leads?limit=2&cursor={c}")).await;
        seen.extend(
            next["leads"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["id"].as_str().unwrap().to_owned()),
        );
        cursor = next["next_cursor"].as_str().map(str::to_owned);
    }
    ids.reverse();
    assert_eq!(seen, ids, "every lead once, newest first");
    let (_, fb) = org.get("/api/v1/leads?source=SRC-02").await;
    assert_eq!(fb["leads"].as_array().unwrap().len(), 3);
    let (_, status_filtered) = org
        .get("/api/v1/leads?status=project_details_provided")
        .await;
    assert_eq!(status_filtered["leads"].as_array().unwrap().len(), 0);
    let (_, future) = org.get("/api/v1/leads?from=2999-01-01").await;
    assert_eq!(future["leads"].as_array().unwrap().len(), 0);
    let (status, _) = org.get("/api/v1/leads?from=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = org.get("/api/v1/leads?cursor=bogus!").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let rival = app.create_org("starter").await;
    let (status, _) = rival.get(&format!("/api/v1/leads/{}", ids[0])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, rival_page) = rival.get("/api/v1/leads").await;
    assert_eq!(rival_page["leads"].as_array().unwrap().len(), 0);
}

on_both_backends!(
    a_lead_walks_all_four_steps_and_arrives_with_its_snapshot_and_enrichment,
    capture_validation_errors_name_the_field,
    steps_need_the_capture_token_and_come_in_order,
    a_retried_request_with_the_same_idempotency_key_creates_nothing_twice,
    junk_bodies_never_produce_a_server_error,
    an_unknown_public_key_is_404,
    the_honeypot_answers_like_success_and_stores_nothing,
    the_public_endpoints_are_rate_limited_per_ip_with_retry_after,
    limits_key_on_the_client_a_trusted_proxy_names_and_its_64,
    forwarding_headers_from_an_untrusted_peer_change_nothing,
    any_site_may_call_the_capture_endpoints,
    widget_js_is_served_with_caching_and_the_open_parameter,
    leads_are_listed_newest_first_with_filters_and_cursor_pages,
);

mod lifecycle {
    //! Shutdown and enrichment providers.

    use std::time::Duration;

    use axum::Json;
    use axum::routing::post;
    use reqwest::{Method, StatusCode};
    use serde_json::{Value, json};

    use super::{capture, personal, project, public_key, start_lead, wait_for_enrichment};
    use crate::common::TestDb;
    use crate::helpers::TestApp;
    use crate::on_both_backends;
    use leadtrail::domain::source::SourceCode;
    use leadtrail::domain::widget::WidgetVersion;
    use leadtrail::store::Store;

    async fn buffered_visits_are_written_on_graceful_shutdown(db: TestDb) {
        let mut app = TestApp::spawn(db).await;
        let org = app.create_org("starter").await;
        let pk = public_key(&org);
        let org_id = leadtrail::domain::ids::OrgId::parse(&org.id).unwrap();
        for _ in 0..25 {
            capture(
                &app,
                Method::POST,
                "/c/v1/visits",
                None,
                None,
                &json!({"public_key": pk, "v": "01", "s": "01"}),
            )
            .await;
        }
        app.stop().await;
        let store = Store::connect(app.database_url()).await.unwrap();
        let count = store
            .visit_count(&org_id, WidgetVersion::PRIMARY, SourceCode::SYSTEM)
            .await
            .unwrap();
        assert_eq!(count, 25, "every accepted beacon is on disk after shutdown");
        store.close().await;
    }

    /// An enricher on loopback that answers after `delay` with a fixed score (77).
    async fn enricher(delay: Duration) -> String {
        enricher_scoring(delay, 77).await
    }

    async fn enricher_scoring(delay: Duration, score: i64) -> String {
        let app = axum::Router::new().route(
            "/enrich",
            post(move |Json(request): Json<Value>| async move {
                tokio::time::sleep(delay).await;
                let mut result = request["built_in"].clone();
                result["score"] = json!(score);
                result["score_reasons"] = json!(["external model"]);
                Json(result)
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/enrich", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    async fn run_flow(app: &TestApp, org: &crate::helpers::Tenant<'_>) -> Value {
        let pk = public_key(org);
        let (id, token) = start_lead(app, &pk, "01", "01").await;
        capture(
            app,
            Method::PATCH,
            &format!("/c/v1/leads/{id}"),
            Some(&token),
            None,
            &project(),
        )
        .await;
        capture(
            app,
            Method::PATCH,
            &format!("/c/v1/leads/{id}"),
            Some(&token),
            None,
            &personal(),
        )
        .await;
        wait_for_enrichment(org, &id).await
    }

    async fn an_external_enricher_that_answers_in_time_is_used(db: TestDb) {
        let url = enricher(Duration::from_millis(10)).await;
        let app = TestApp::spawn_with(db, |c| {
            c.enricher_url = Some(url);
            c.enricher_timeout = Duration::from_secs(2);
        })
        .await;
        let org = app.create_org("starter").await;
        let lead = run_flow(&app, &org).await;
        assert_eq!(lead["enrichment"]["provider"], "external");
        assert_eq!(lead["enrichment"]["score"], 77);
    }

    async fn a_slow_external_enricher_falls_back_to_the_built_in_result(db: TestDb) {
        let url = enricher(Duration::from_secs(5)).await;
        let app = TestApp::spawn_with(db, |c| {
            c.enricher_url = Some(url);
            c.enricher_timeout = Duration::from_millis(200);
        })
        .await;
        let org = app.create_org("starter").await;
        let lead = run_flow(&app, &org).await;
        assert_eq!(lead["enrichment"]["provider"], "built_in");
        assert_ne!(lead["enrichment"]["score"], 77);
    }

    /// A score is out of 100: an enricher that answers 150 is not believed.
    async fn an_external_enricher_answering_an_impossible_score_is_not_believed(db: TestDb) {
        let url = enricher_scoring(Duration::from_millis(10), 150).await;
        let app = TestApp::spawn_with(db, |c| {
            c.enricher_url = Some(url);
            c.enricher_timeout = Duration::from_secs(2);
        })
        .await;
        let org = app.create_org("starter").await;
        let lead = run_flow(&app, &org).await;
        assert_eq!(lead["enrichment"]["provider"], "built_in");
        assert!(lead["enrichment"]["score"].as_u64().unwrap() <= 100);
    }

    /// Captures are written in batches. One that the database refuses (here a trigger stands
    /// in for any unexpected error) fails alone: the batch is retried command by command, every
    /// other homeowner gets their 201, the refused one a 500 — not a 503 "retry", which would
    /// only fail again.
    async fn one_failing_capture_does_not_fail_the_others_in_its_batch(db: TestDb) {
        let app = TestApp::spawn_with(db, |c| c.capture_rate_limit = 0).await;
        let org = app.create_org("starter").await;
        let pk = public_key(&org);
        let pool = sqlx::AnyPool::connect(app.database_url()).await.unwrap();
        let poison: &[&str] = if app.database_url().starts_with("postgres") {
            &[
                "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN \
                 IF NEW.address LIKE '%Poison St%' THEN RAISE EXCEPTION 'poisoned'; END IF; \
                 RETURN NEW; END $$ LANGUAGE plpgsql",
                "CREATE TRIGGER poison BEFORE INSERT ON leads FOR EACH ROW EXECUTE FUNCTION poison()",
            ]
        } else {
            &[
                "CREATE TRIGGER poison BEFORE INSERT ON leads WHEN NEW.address LIKE '%Poison St%' \
               BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
            ]
        };
        for sql in poison {
            sqlx::query(sqlx::AssertSqlSafe(*sql))
                .execute(&pool)
                .await
                .unwrap();
        }
        let lead = |street: &'static str| {
            let (app, pk) = (&app, pk.clone());
            async move {
                capture(
                    app,
                    Method::POST,
                    "/c/v1/leads",
                    None,
                    None,
                    &json!({"public_key": pk, "address": {"street": street,
                        "city": "Austin", "state": "TX", "postal_code": "78701"}}),
                )
                .await
                .0
            }
        };
        // All at once, so they share the writer's batch.
        let mut sent = Vec::new();
        for i in 0..24 {
            sent.push(lead(if i == 12 { "1 Poison St" } else { "1 Main St" }));
        }
        let statuses = futures::future::join_all(sent).await;
        for (i, status) in statuses.iter().enumerate() {
            let expected = if i == 12 {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::CREATED
            };
            assert_eq!(*status, expected, "capture {i}: {statuses:?}");
        }
        let (_, page) = org.get("/api/v1/leads?limit=100").await;
        assert_eq!(page["leads"].as_array().unwrap().len(), 23);
    }

    on_both_backends!(
        buffered_visits_are_written_on_graceful_shutdown,
        an_external_enricher_that_answers_in_time_is_used,
        a_slow_external_enricher_falls_back_to_the_built_in_result,
        an_external_enricher_answering_an_impossible_score_is_not_believed,
        one_failing_capture_does_not_fail_the_others_in_its_batch,
    );
}
