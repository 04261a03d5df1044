//! One tenant's webhooks never hold up another's: slow and hanging endpoints keep only their
//! own slots, per-lead order holds with many deliveries in flight, caps and replays.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::TestDb;
use crate::helpers::{Tenant, TestApp, error_code};
use crate::on_both_backends;
use crate::receiver::{Received, Receiver};

async fn subscribe(org: &Tenant<'_>, url: &str, events: &[&str]) -> String {
    let (status, body) = org
        .post("/api/v1/webhooks", json!({"url": url, "events": events}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Step 1 of a lead over the capture API: its `lead.address_preview` is written at once.
async fn capture_lead(org: &Tenant<'_>) -> String {
    let pk = org.body["public_key"].as_str().unwrap();
    let (status, body) = org
        .app
        .call(
            reqwest::Method::POST,
            "/c/v1/leads",
            None,
            Some(
                &json!({"public_key": pk, "address": {"street": "1 Main St", "city": "Austin",
                "state": "TX", "postal_code": "78701"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["lead_id"].as_str().unwrap().to_owned()
}

fn lead_of(r: &Received) -> &str {
    r.json["data"]["lead_id"].as_str().unwrap_or_default()
}

async fn a_slow_or_hanging_endpoint_of_another_organization_does_not_delay_a_healthy_one(
    db: TestDb,
) {
    let app = TestApp::spawn_with(db, |c| {
        c.allow_private_webhook_targets = true;
        c.webhook_endpoint_concurrency = 4;
    })
    .await;
    let (slow_org, hanging_org, healthy_org) = (
        app.create_org("starter").await,
        app.create_org("starter").await,
        app.create_org("starter").await,
    );
    let slow = Receiver::slow(Duration::from_secs(2)).await;
    let hanging = Receiver::hanging().await;
    let healthy = Receiver::ok().await;
    subscribe(&slow_org, &slow.url, &["lead.address_preview"]).await;
    subscribe(&hanging_org, &hanging.url, &["lead.address_preview"]).await;
    subscribe(&healthy_org, &healthy.url, &["lead.address_preview"]).await;
    // Each neighbour gets three times what it may have in flight.
    for _ in 0..12 {
        capture_lead(&slow_org).await;
        capture_lead(&hanging_org).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while slow.all().len() < 4 || hanging.all().len() < 4 {
        assert!(Instant::now() < deadline, "the neighbours never got busy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Now, with both neighbours' slots full and backlogs waiting, the healthy endpoint's
    // leads arrive as fast as ever: in milliseconds, not behind a 2 s or 15 s batch.
    let mut latencies = Vec::new();
    for _ in 0..8 {
        let lead = capture_lead(&healthy_org).await;
        let committed = Instant::now();
        let seen = healthy
            .wait_for("the healthy lead", |r| r.iter().any(|r| lead_of(r) == lead))
            .await;
        let arrived = seen.iter().find(|r| lead_of(r) == lead).unwrap().at;
        latencies.push(arrived.saturating_duration_since(committed));
    }
    assert!(
        latencies.iter().all(|l| *l < Duration::from_millis(1500)),
        "a healthy endpoint waited behind its neighbours: {latencies:?}"
    );
    // The bound holds for the neighbours: never more than 4 of theirs at once.
    assert!(hanging.all().len() <= 4, "{}", hanging.all().len());
    // And the slow one is not starved either: its backlog drains at its own pace.
    slow.wait_for("the slow backlog", |r| r.len() == 12).await;
}

async fn per_lead_order_holds_with_many_deliveries_in_flight_and_failures(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| {
        c.allow_private_webhook_targets = true;
        c.webhook_retry_schedule = vec![Duration::from_millis(30); 20];
    })
    .await;
    let org = app.create_org("starter").await;
    // Every third request fails, whatever it is: many events are retried, out of step with
    // the others of their lead.
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    let receiver = Receiver::start(Arc::new(move |_, _| {
        if counter.fetch_add(1, Ordering::Relaxed).is_multiple_of(3) {
            503
        } else {
            200
        }
    }))
    .await;
    let events = [
        "lead.address_preview",
        "lead.enriched",
        "lead.rental_alert",
        "lead.contact_requested",
    ];
    subscribe(&org, &receiver.url, &events).await;
    let mut leads = Vec::new();
    for _ in 0..12 {
        leads.push(crate::webhooks::lead(&app, &org, false, true).await);
    }
    let seen = receiver
        .wait_for("every event of every lead", |r| r.len() == leads.len() * 4)
        .await;
    let all = receiver.all();
    for lead in &leads {
        let delivered: Vec<&Received> = seen.iter().filter(|r| lead_of(r) == lead).collect();
        let types: Vec<&str> = delivered
            .iter()
            .map(|r| r.json["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, events, "lead {lead} arrived out of order");
        // No attempt of an event was made before the previous event of its lead succeeded.
        for pair in delivered.windows(2) {
            let (before, next) = (pair[0], pair[1]);
            let early = all.iter().find(|r| {
                lead_of(r) == lead.as_str()
                    && r.json["type"] == next.json["type"]
                    && r.at < before.at
            });
            assert!(
                early.is_none(),
                "{} was attempted before {} was delivered",
                next.json["type"],
                before.json["type"]
            );
        }
    }
    assert!(
        count.load(Ordering::Relaxed) > leads.len() * 4,
        "failures happened and were retried"
    );
}

async fn endpoints_and_hand_started_sends_are_capped_per_organization(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| {
        c.allow_private_webhook_targets = true;
        c.webhook_max_endpoints = 2;
        c.webhook_manual_sends_per_minute = 3;
    })
    .await;
    let org = app.create_org("starter").await;
    let other = app.create_org("starter").await;
    let receiver = Receiver::ok().await;
    let id = subscribe(&org, &receiver.url, &[]).await;
    subscribe(&org, &receiver.url, &[]).await;
    let (status, body) = org
        .post("/api/v1/webhooks", json!({"url": receiver.url}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "endpoint_limit_reached");
    assert!(body["error"]["message"].as_str().unwrap().contains('2'));
    let (_, list) = org.get("/api/v1/webhooks").await;
    assert_eq!(list.as_array().unwrap().len(), 2, "nothing was added");

    for _ in 0..3 {
        let (status, _) = org.post_empty(&format!("/api/v1/webhooks/{id}/test")).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let refused = app
        .client
        .post(format!("{}/api/v1/webhooks/{id}/test", app.base))
        .bearer_auth(&org.key)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(error_code(&body), "rate_limited");
    let (_, log) = org.get(&format!("/api/v1/webhooks/{id}/deliveries")).await;
    assert_eq!(
        log.as_array().unwrap().len(),
        3,
        "the refused test queued nothing"
    );
    let first = log[0]["id"].as_str().unwrap();
    let (status, _) = org
        .post_empty(&format!("/api/v1/webhooks/{id}/deliveries/{first}/resend"))
        .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "resends share the budget"
    );
    let (status, _) = org
        .post(
            &format!("/api/v1/webhooks/{id}/replay"),
            json!({"since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "replays share the budget"
    );
    // Another organization has a budget of its own.
    let theirs = subscribe(&other, &receiver.url, &[]).await;
    let (status, _) = other
        .post_empty(&format!("/api/v1/webhooks/{theirs}/test"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

async fn new_address_forms_and_other_ports_are_refused(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    for (url, says) in [
        ("http://[::ffff:0:7f00:1]/hook", "not a public address"),
        ("http://[::ffff:0:a00:1]/hook", "not a public address"),
        ("http://[64:ff9b:1::7f00:1]/hook", "not a public address"),
        ("http://[64:ff9b:1::808:808]/hook", "not a public address"),
        (
            "https://hooks.example.com:22/hook",
            "port 22 is not allowed",
        ),
        ("http://hooks.example.com:6379/", "port 6379"),
    ] {
        let (status, body) = org.post("/api/v1/webhooks", json!({"url": url})).await;
        if url.ends_with(":6379/") {
            // 6379 is above 1023: allowed by the default port list.
            assert_eq!(status, StatusCode::CREATED, "{url}: {body}");
            continue;
        }
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
        assert_eq!(body["error"]["field"], "url");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{url}: {message}");
    }
    let (status, _) = org
        .post(
            "/api/v1/webhooks",
            json!({"url": "https://hooks.example.com:8443/in"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

/// A lead walked through every step, waited for until its enrichment (and so every event of
/// it) is written.
async fn enriched_lead(app: &TestApp, org: &Tenant<'_>) -> String {
    let lead = crate::webhooks::lead(app, org, true, true).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = org.get(&format!("/api/v1/leads/{lead}")).await;
        if body["enrichment"].is_object() {
            return lead;
        }
        assert!(Instant::now() < deadline, "never enriched: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The deliveries of one replay in the endpoint's log (they are marked with its id).
async fn replay_log(org: &Tenant<'_>, endpoint: &str, replay: &str) -> Vec<Value> {
    let (_, log) = org
        .get(&format!("/api/v1/webhooks/{endpoint}/deliveries?limit=200"))
        .await;
    log.as_array()
        .unwrap()
        .iter()
        .filter(|d| d["replay"] == replay)
        .cloned()
        .collect()
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

async fn a_replay_sends_a_periods_events_in_order_once_per_replay(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| c.allow_private_webhook_targets = true).await;
    let org = app.create_org("starter").await;
    let rival = app.create_org("starter").await;
    let since = rfc3339(time::OffsetDateTime::now_utc() - time::Duration::seconds(1));
    let mut early = Vec::new();
    for _ in 0..3 {
        early.push(enriched_lead(&app, &org).await);
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let until = rfc3339(time::OffsetDateTime::now_utc());
    tokio::time::sleep(Duration::from_millis(5)).await;
    let late = enriched_lead(&app, &org).await;
    // A new endpoint: it was not there for any of these events.
    let receiver = Receiver::ok().await;
    let id = subscribe(
        &org,
        &receiver.url,
        &["lead.address_preview", "lead.contact_requested"],
    )
    .await;
    let replay = |since: String, until: String| {
        let (org, id) = (&org, &id);
        async move {
            org.post(
                &format!("/api/v1/webhooks/{id}/replay"),
                json!({"since": since, "until": until}),
            )
            .await
        }
    };
    // (Events of the late lead may still reach the new endpoint live, if they were fanned
    // out after it was created; only the replay's own deliveries are looked at here.)
    for round in 1..=2 {
        let (status, body) = replay(since.clone(), until.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(
            body["deliveries"], 9,
            "three leads × three subscribed types"
        );
        let replay_id = body["replay_id"].as_str().unwrap();
        let log = replay_log(&org, &id, replay_id).await;
        let ids: Vec<&str> = log.iter().map(|d| d["id"].as_str().unwrap()).collect();
        let seen = receiver
            .wait_for("the replay", |r| {
                ids.iter().all(|id| r.iter().any(|r| r.id == *id))
            })
            .await;
        let replayed: Vec<&Received> = seen
            .iter()
            .filter(|r| ids.contains(&r.id.as_str()))
            .collect();
        assert_eq!(replayed.len(), 9, "round {round}: each event once");
        let expected = [
            "lead.address_preview",
            "lead.enriched",
            "lead.contact_requested",
        ];
        for lead in &early {
            let types: Vec<&str> = replayed
                .iter()
                .filter(|r| lead_of(r) == lead)
                .map(|r| r.json["type"].as_str().unwrap())
                .collect();
            assert_eq!(types, expected, "round {round}, lead {lead}: in order");
        }
        assert!(
            replayed.iter().all(|r| lead_of(r) != late),
            "outside the period"
        );
    }
    // Refusals: a backwards period, a bad time, another tenant's endpoint.
    let (status, body) = replay(until.clone(), since.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "until");
    let (status, _) = replay("yesterday".into(), until.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = rival
        .post(
            &format!("/api/v1/webhooks/{id}/replay"),
            json!({"since": since, "until": until}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = org
        .post(
            "/api/v1/webhooks/wh_nope/replay",
            json!({"since": since, "until": until}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn late_deliveries_show_in_the_metrics_per_endpoint(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| {
        c.allow_private_webhook_targets = true;
        c.webhook_endpoint_concurrency = 1;
        c.webhook_lag_warning = Duration::from_millis(200);
    })
    .await;
    let org = app.create_org("starter").await;
    let slow = Receiver::slow(Duration::from_secs(2)).await;
    let id = subscribe(&org, &slow.url, &["lead.address_preview"]).await;
    for _ in 0..4 {
        capture_lead(&org).await;
    }
    let gauge = format!("webhook_backlog{{endpoint=\"{id}\"}} ");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = app
            .client
            .get(format!("{}/metrics", app.base))
            .bearer_auth(crate::helpers::METRICS_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let backlog = text
            .lines()
            .find_map(|l| l.strip_prefix(gauge.as_str()))
            .and_then(|v| v.trim().parse::<f64>().ok());
        // One in flight (the bound), the other three due and waiting.
        if backlog == Some(3.0) {
            assert!(text.contains("webhook_oldest_due_seconds"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no backlog gauge for {id}: {backlog:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

on_both_backends!(
    late_deliveries_show_in_the_metrics_per_endpoint,
    a_slow_or_hanging_endpoint_of_another_organization_does_not_delay_a_healthy_one,
    per_lead_order_holds_with_many_deliveries_in_flight_and_failures,
    endpoints_and_hand_started_sends_are_capped_per_organization,
    new_address_forms_and_other_ports_are_refused,
    a_replay_sends_a_periods_events_in_order_once_per_replay,
);
