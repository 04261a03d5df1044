//! Webhooks end to end: a real receiver on loopback, real signatures, real retries.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::TestDb;
use crate::helpers::{Tenant, TestApp, error_code};
use crate::on_both_backends;
use crate::receiver::{Received, Receiver};
use leadtrail::webhooks::signing::Secret;

async fn app_for_webhooks(db: TestDb) -> TestApp {
    TestApp::spawn_with(db, |c| {
        c.allow_private_webhook_targets = true;
        c.webhook_retry_schedule = vec![Duration::from_millis(100); 3];
    })
    .await
}

async fn subscribe(org: &Tenant<'_>, url: &str, events: &[&str]) -> Value {
    let (status, body) = org
        .post("/api/v1/webhooks", json!({"url": url, "events": events}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

fn assert_signed(received: &Received, secret: &str) {
    let secret = Secret::parse(secret).unwrap();
    let timestamp: i64 = received.timestamp.parse().unwrap();
    let expected = secret.sign(&received.id, timestamp, received.body.as_bytes());
    assert!(
        received.signature.split(' ').any(|s| s == expected),
        "bad signature on {}",
        received.id
    );
    assert!((timestamp - leadtrail::store::now_ms() / 1000).abs() < 60);
}

/// Creates a lead and walks it through the given steps over the capture API.
pub(crate) async fn lead(
    app: &TestApp,
    org: &Tenant<'_>,
    owner_occupied: bool,
    contact: bool,
) -> String {
    let pk = org.body["public_key"].as_str().unwrap();
    let send = |method: Method, path: String, token: Option<String>, body: Value| async move {
        let mut req = app
            .client
            .request(method, format!("{}{path}", app.base))
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        assert!(res.status().is_success(), "{}", res.status());
        res.json::<Value>().await.unwrap()
    };
    let created = send(Method::POST, "/c/v1/leads".into(), None, json!({"public_key": pk, "v": "01", "s": "02",
        "address": {"street": "1 Main St", "city": "Austin", "state": "TX", "postal_code": "78701"}})).await;
    let id = created["lead_id"].as_str().unwrap().to_owned();
    let token = created["capture_token"].as_str().unwrap().to_owned();
    let path = format!("/c/v1/leads/{id}");
    send(
        Method::PATCH,
        path.clone(),
        Some(token.clone()),
        json!({"step": "project_details", "roof_type": "repair",
        "material": "asphalt_shingle", "stories": 1, "urgency": "emergency"}),
    )
    .await;
    send(Method::PATCH, path.clone(), Some(token.clone()), json!({"step": "personal_info", "first_name": "Ann",
        "last_name": "Lee", "email": "ann@example.com", "phone": "5125550100", "owner_occupied": owner_occupied})).await;
    if contact {
        send(Method::PATCH, path, Some(token), json!({"step": "contact_preference", "contact_method": "phone", "contact_time": "morning"})).await;
    }
    id
}

fn types_for(received: &[Received], lead: &str) -> Vec<String> {
    received
        .iter()
        .filter(|r| r.json["data"]["lead_id"] == lead)
        .map(|r| r.json["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn every_event_type_is_delivered_with_a_valid_signature(db: TestDb) {
    let app = app_for_webhooks(db).await;
    let org = app.create_org("premium").await;
    org.create_source("01", "Facebook Ads", "paid_social").await;
    let receiver = Receiver::ok().await;
    let all = [
        "lead.address_preview",
        "lead.rental_alert",
        "lead.contact_requested",
        "widget.status_changed",
    ];
    let endpoint = subscribe(&org, &receiver.url, &all).await;
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    org.post("/api/v1/widgets", json!({"name": "Second"})).await;
    org.patch("/api/v1/widgets/02", json!({"status": "configured"}))
        .await;
    let lead_id = lead(&app, &org, false, true).await;
    let seen = receiver
        .wait_for("every event", |r| {
            types_for(r, &lead_id).len() == 4
                && r.iter().any(|x| x.json["type"] == "widget.status_changed")
        })
        .await;
    assert_eq!(
        types_for(&seen, &lead_id),
        vec![
            "lead.address_preview",
            "lead.enriched",
            "lead.rental_alert",
            "lead.contact_requested"
        ]
    );
    for r in &seen {
        assert_signed(r, &secret);
        assert!(r.json["timestamp"].is_string());
        if r.json["type"] != "widget.status_changed" {
            assert_eq!(
                r.json["data"]["source_tracking"]["source_label"], "Facebook Ads",
                "{}",
                r.body
            );
        }
    }
    let preview = seen
        .iter()
        .find(|r| r.json["type"] == "lead.address_preview")
        .unwrap();
    for personal in ["email", "phone", "first_name"] {
        assert!(
            !preview.body.contains(personal),
            "address preview leaks {personal}"
        );
    }
    let enriched = seen
        .iter()
        .find(|r| r.json["type"] == "lead.enriched")
        .unwrap();
    assert!(
        enriched.json["data"]["estimate"]["price_high"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(enriched.json["data"]["score"].is_number());
}

async fn lead_enriched_is_always_part_of_a_subscription(db: TestDb) {
    let app = app_for_webhooks(db).await;
    let org = app.create_org("starter").await;
    let endpoint = subscribe(
        &org,
        "http://127.0.0.1:9999/hook",
        &["lead.address_preview"],
    )
    .await;
    assert_eq!(
        endpoint["events"],
        json!(["lead.enriched", "lead.address_preview"])
    );
    let id = endpoint["id"].as_str().unwrap();
    let (_, patched) = org
        .patch(&format!("/api/v1/webhooks/{id}"), json!({"events": []}))
        .await;
    assert_eq!(patched["events"], json!(["lead.enriched"]));
    assert!(
        patched.get("secret").is_none(),
        "the secret is only shown on create and rotate"
    );
    let (status, err) = org
        .post(
            "/api/v1/webhooks",
            json!({"url": "http://127.0.0.1:9999/", "events": ["lead.deleted"]}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("events"))
    );
}

async fn a_receiver_that_fails_lead_enriched_twice_still_gets_it_before_contact_requested(
    db: TestDb,
) {
    let app = app_for_webhooks(db).await;
    let org = app.create_org("starter").await;
    org.create_source("01", "Facebook Ads", "paid_social").await;
    let receiver = Receiver::start(Arc::new(|event, seen| {
        if event == "lead.enriched" && seen < 2 {
            500
        } else {
            200
        }
    }))
    .await;
    subscribe(
        &org,
        &receiver.url,
        &["lead.address_preview", "lead.contact_requested"],
    )
    .await;
    let lead_id = lead(&app, &org, true, true).await;
    let seen = receiver
        .wait_for("the contact request", |r| types_for(r, &lead_id).len() == 3)
        .await;
    assert_eq!(
        types_for(&seen, &lead_id),
        vec![
            "lead.address_preview",
            "lead.enriched",
            "lead.contact_requested"
        ]
    );
    let attempts = receiver
        .all()
        .into_iter()
        .filter(|r| r.json["type"] == "lead.enriched")
        .collect::<Vec<_>>();
    assert_eq!(attempts.len(), 3);
    assert!(
        attempts.iter().all(|a| a.id == attempts[0].id),
        "retries keep their webhook-id"
    );
}

async fn redirects_are_not_followed_and_are_logged(db: TestDb) {
    let app = app_for_webhooks(db).await;
    let org = app.create_org("starter").await;
    let receiver = Receiver::start(Arc::new(|_, _| 302)).await;
    let endpoint = subscribe(&org, &receiver.url, &[]).await;
    let id = endpoint["id"].as_str().unwrap();
    org.post_empty(&format!("/api/v1/webhooks/{id}/test")).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let log = loop {
        let (_, log) = org.get(&format!("/api/v1/webhooks/{id}/deliveries")).await;
        if log[0]["attempts"].as_i64().unwrap_or(0) >= 1 {
            break log;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(log[0]["log"][0]["status_code"], 302);
    assert_eq!(log[0]["log"][0]["error_class"], "redirect_not_followed");
    assert_eq!(receiver.all().len(), 1, "one attempt at the endpoint");
    assert_eq!(
        receiver.redirected(),
        0,
        "the redirect target was never called"
    );
}

async fn an_endpoint_answering_410_is_disabled_and_says_why(db: TestDb) {
    let app = app_for_webhooks(db).await;
    let org = app.create_org("starter").await;
    let receiver = Receiver::start(Arc::new(|_, _| 410)).await;
    let endpoint = subscribe(&org, &receiver.url, &[]).await;
    let id = endpoint["id"].as_str().unwrap();
    org.post_empty(&format!("/api/v1/webhooks/{id}/test")).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, e) = org.get(&format!("/api/v1/webhooks/{id}")).await;
        if e["enabled"] == false {
            assert!(e["disabled_reason"].as_str().unwrap().contains("410"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never disabled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, e) = org
        .patch(&format!("/api/v1/webhooks/{id}"), json!({"enabled": true}))
        .await;
    assert_eq!(
        (e["enabled"].as_bool(), e["disabled_reason"].is_null()),
        (Some(true), true)
    );
}

async fn the_test_event_is_signed_and_logged_and_can_be_resent(db: TestDb) {
    let app = app_for_webhooks(db).await;
    let org = app.create_org("starter").await;
    let receiver = Receiver::ok().await;
    let endpoint = subscribe(&org, &receiver.url, &[]).await;
    let id = endpoint["id"].as_str().unwrap();
    let (status, queued) = org.post_empty(&format!("/api/v1/webhooks/{id}/test")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let seen = receiver.wait_for("the test event", |r| r.len() == 1).await;
    assert_eq!(seen[0].json["type"], "webhook.test");
    assert_signed(&seen[0], endpoint["secret"].as_str().unwrap());
    let delivery = queued["delivery_id"].as_str().unwrap();
    assert_eq!(seen[0].id, delivery);
    let (status, _) = org
        .post_empty(&format!(
            "/api/v1/webhooks/{id}/deliveries/{delivery}/resend"
        ))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let again = receiver.wait_for("the resend", |r| r.len() == 2).await;
    assert_eq!(again[1].id, delivery, "a resend keeps the webhook-id");
    let (_, log) = org.get(&format!("/api/v1/webhooks/{id}/deliveries")).await;
    assert_eq!(log[0]["status"], "delivered");
    assert_eq!(log[0]["log"].as_array().unwrap().len(), 2);
    assert_eq!(log[0]["log"][0]["response_excerpt"], "answered 200");
}

async fn after_rotation_both_secrets_sign_for_a_day(db: TestDb) {
    let app = app_for_webhooks(db).await;
    let org = app.create_org("starter").await;
    let receiver = Receiver::ok().await;
    let endpoint = subscribe(&org, &receiver.url, &[]).await;
    let id = endpoint["id"].as_str().unwrap();
    let old = endpoint["secret"].as_str().unwrap().to_owned();
    let (_, rotated) = org
        .post_empty(&format!("/api/v1/webhooks/{id}/rotate-secret"))
        .await;
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    org.post_empty(&format!("/api/v1/webhooks/{id}/test")).await;
    let seen = receiver.wait_for("the test event", |r| r.len() == 1).await;
    assert_signed(&seen[0], &old);
    assert_signed(&seen[0], &new);
}

async fn private_and_metadata_targets_are_refused_unless_allowed(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    for url in [
        "http://127.0.0.1/hook",
        "http://localhost:8080/",
        "http://[::1]/",
        "http://169.254.169.254/latest",
        "http://10.1.2.3/",
        "http://2130706433/",
        "http://[::ffff:7f00:1]/",
        "ftp://hooks.example.com/",
    ] {
        let (status, err) = org.post("/api/v1/webhooks", json!({"url": url})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        assert_eq!(err["error"]["field"], "url");
    }
}

async fn another_tenants_endpoints_and_deliveries_are_not_found(db: TestDb) {
    let app = app_for_webhooks(db).await;
    let acme = app.create_org("starter").await;
    let rival = app.create_org("starter").await;
    let endpoint = subscribe(&acme, "http://127.0.0.1:9999/hook", &[]).await;
    let id = endpoint["id"].as_str().unwrap();
    for path in [
        format!("/api/v1/webhooks/{id}"),
        format!("/api/v1/webhooks/{id}/deliveries"),
    ] {
        let (status, err) = rival.get(&path).await;
        assert_eq!(
            (status, error_code(&err)),
            (StatusCode::NOT_FOUND, "not_found")
        );
    }
    let (status, _) = rival
        .post_empty(&format!("/api/v1/webhooks/{id}/test"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = rival.get("/api/v1/webhooks").await;
    assert_eq!(list.as_array().unwrap().len(), 0);
}

async fn an_endpoint_failing_past_its_retries_is_disabled_and_holds_later_events(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| {
        c.allow_private_webhook_targets = true;
        c.webhook_retry_schedule = vec![Duration::from_millis(50); 2];
        c.webhook_disable_after = Duration::ZERO;
    })
    .await;
    let org = app.create_org("starter").await;
    org.create_source("01", "Facebook Ads", "paid_social").await;
    let receiver = Receiver::start(Arc::new(|_, _| 503)).await;
    let endpoint = subscribe(&org, &receiver.url, &["lead.address_preview"]).await;
    let id = endpoint["id"].as_str().unwrap();
    lead(&app, &org, true, false).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let log = loop {
        let (_, e) = org.get(&format!("/api/v1/webhooks/{id}")).await;
        let (_, log) = org.get(&format!("/api/v1/webhooks/{id}/deliveries")).await;
        if e["enabled"] == false {
            assert!(
                e["disabled_reason"]
                    .as_str()
                    .unwrap()
                    .contains("kept failing")
            );
            break log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never disabled: {log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let preview = log
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["event_type"] == "lead.address_preview")
        .unwrap();
    assert_eq!(
        (preview["status"].as_str(), preview["attempts"].as_i64()),
        (Some("failed"), Some(3))
    );
    assert_eq!(preview["log"][0]["error_class"], "http_503");
    let enriched = log
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["event_type"] == "lead.enriched")
        .unwrap();
    assert_eq!(
        (enriched["status"].as_str(), enriched["held"].as_bool()),
        (Some("pending"), Some(true))
    );
    assert!(
        receiver
            .all()
            .iter()
            .all(|r| r.json["type"] == "lead.address_preview"),
        "nothing overtook the failed event"
    );
}

async fn a_refused_change_emits_nothing(db: TestDb) {
    let app = app_for_webhooks(db).await;
    let org = app.create_org("premium").await;
    let receiver = Receiver::ok().await;
    subscribe(&org, &receiver.url, &["widget.status_changed"]).await;
    let (status, _) = org
        .patch("/api/v1/widgets/01", json!({"status": "archived"}))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "the Primary widget cannot be archived"
    );
    org.post("/api/v1/widgets", json!({"name": "Second"})).await;
    org.patch("/api/v1/widgets/02", json!({"status": "configured"}))
        .await;
    let seen = receiver
        .wait_for("the real change", |r| !r.is_empty())
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = receiver.all();
    assert_eq!(all.len(), 1, "only the committed change was sent");
    assert_eq!(seen[0].json["data"]["widget_version"], "02");
}

async fn failed_deliveries_since_a_time_can_be_resent_together(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| {
        c.allow_private_webhook_targets = true;
        c.webhook_retry_schedule = vec![Duration::from_millis(20)];
        c.webhook_disable_after = Duration::from_secs(3600);
    })
    .await;
    let org = app.create_org("starter").await;
    // Fails every message on its first two tries: one try plus one retry use the schedule up.
    let receiver = Receiver::start(Arc::new(|_, seen| if seen < 2 { 500 } else { 200 })).await;
    let endpoint = subscribe(&org, &receiver.url, &[]).await;
    let id = endpoint["id"].as_str().unwrap();
    let since = "2000-01-01T00:00:00Z";
    org.post_empty(&format!("/api/v1/webhooks/{id}/test")).await;
    org.post_empty(&format!("/api/v1/webhooks/{id}/test")).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, log) = org.get(&format!("/api/v1/webhooks/{id}/deliveries")).await;
        if log
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "failed")
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never failed: {log}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let (status, body) = org
        .post(
            &format!("/api/v1/webhooks/{id}/deliveries/resend-failed"),
            json!({"since": since}),
        )
        .await;
    assert_eq!(
        (status, body["requeued"].as_u64()),
        (StatusCode::ACCEPTED, Some(2))
    );
    receiver
        .wait_for("both resent messages", |r| r.len() == 2)
        .await;
    let (status, _) = org
        .post(
            &format!("/api/v1/webhooks/{id}/deliveries/resend-failed"),
            json!({"since": "yesterday"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn a_429_with_retry_after_is_waited_out(db: TestDb) {
    let app = app_for_webhooks(db).await;
    let org = app.create_org("starter").await;
    let receiver = Receiver::start(Arc::new(|_, seen| if seen == 0 { 429 } else { 200 })).await;
    let endpoint = subscribe(&org, &receiver.url, &[]).await;
    let id = endpoint["id"].as_str().unwrap();
    org.post_empty(&format!("/api/v1/webhooks/{id}/test")).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let log = loop {
        let (_, log) = org.get(&format!("/api/v1/webhooks/{id}/deliveries")).await;
        if log[0]["attempts"] == 1 {
            break log;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let parse = |v: &Value| {
        time::OffsetDateTime::parse(
            v.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    let wait = parse(&log[0]["next_attempt_at"]) - parse(&log[0]["log"][0]["attempted_at"]);
    assert!(
        wait >= time::Duration::seconds(2),
        "retried after {wait}, not the 2 s asked for"
    );
    assert!(
        wait < time::Duration::seconds(3),
        "jitter adds at most a tenth: {wait}"
    );
    let seen = receiver.wait_for("the retry", |r| !r.is_empty()).await;
    assert_eq!(seen.len(), 1);
}

on_both_backends!(
    a_receiver_outage_loses_nothing_and_keeps_each_leads_order,
    a_429_with_retry_after_is_waited_out,
    a_refused_change_emits_nothing,
    failed_deliveries_since_a_time_can_be_resent_together,
    an_endpoint_failing_past_its_retries_is_disabled_and_holds_later_events,
    every_event_type_is_delivered_with_a_valid_signature,
    lead_enriched_is_always_part_of_a_subscription,
    a_receiver_that_fails_lead_enriched_twice_still_gets_it_before_contact_requested,
    redirects_are_not_followed_and_are_logged,
    an_endpoint_answering_410_is_disabled_and_says_why,
    the_test_event_is_signed_and_logged_and_can_be_resent,
    after_rotation_both_secrets_sign_for_a_day,
    private_and_metadata_targets_are_refused_unless_allowed,
    another_tenants_endpoints_and_deliveries_are_not_found,
);

/// The subscriber's endpoint is down (503) while leads keep arriving and moving through their
/// steps; when it is back, every event arrives, and each lead's events in their order. Time is
/// scaled: retries come within a second instead of minutes, the outage lasts a few seconds.
async fn a_receiver_outage_loses_nothing_and_keeps_each_leads_order(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| {
        c.allow_private_webhook_targets = true;
        c.capture_rate_limit = 0;
        c.webhook_retry_schedule = vec![Duration::from_millis(300); 40];
    })
    .await;
    let tenant = app.create_org("starter").await;
    let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let policy_up = up.clone();
    let receiver = Receiver::start(Arc::new(move |_, _| {
        if policy_up.load(std::sync::atomic::Ordering::SeqCst) {
            200
        } else {
            503
        }
    }))
    .await;
    tenant
        .post(
            "/api/v1/webhooks",
            json!({"url": receiver.url, "events": ["lead.address_preview", "lead.enriched"]}),
        )
        .await;
    let pk = tenant.body["public_key"].as_str().unwrap().to_owned();
    let mut leads = Vec::new();
    for _ in 0..20 {
        let (status, created) = app
            .call(
                Method::POST,
                "/c/v1/leads",
                None,
                Some(&json!({"public_key": pk, "address": {"street": "1 Main St",
                    "city": "Austin", "state": "TX", "postal_code": "78701"}})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let id = created["lead_id"].as_str().unwrap().to_owned();
        let token = created["capture_token"].as_str().unwrap().to_owned();
        for step in [
            json!({"step": "project_details", "roof_type": "replacement",
                "material": "asphalt_shingle", "stories": 2, "urgency": "within_1_month"}),
            json!({"step": "personal_info", "first_name": "Ann", "last_name": "Lee",
                "email": "ann@example.com", "phone": "(512) 555-0100", "owner_occupied": true}),
        ] {
            let (status, body) = app
                .call(
                    Method::PATCH,
                    &format!("/c/v1/leads/{id}"),
                    Some(&token),
                    Some(&step),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        leads.push(id);
    }
    // The outage lasts through several retries of every first event (about five each).
    receiver.wait_for_attempts(100).await;
    assert!(receiver.delivered().is_empty());
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    let got = receiver
        .wait_for("every event after the outage", |r| {
            leads.iter().all(|l| {
                ["lead.address_preview", "lead.enriched"].iter().all(|t| {
                    r.iter()
                        .any(|x| x.json["type"] == *t && x.json["data"]["lead_id"] == **l)
                })
            })
        })
        .await;
    for lead in &leads {
        let order: Vec<&str> = got
            .iter()
            .filter(|r| r.json["data"]["lead_id"] == **lead)
            .map(|r| r.json["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            order.first(),
            Some(&"lead.address_preview"),
            "{lead}: {order:?}"
        );
        assert!(order.contains(&"lead.enriched"), "{lead}: {order:?}");
    }
    let refused = receiver.all().len() - got.len();
    println!(
        "{} leads, {} deliveries after the outage, {refused} attempts refused during it",
        leads.len(),
        got.len()
    );
}
