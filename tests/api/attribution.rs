//! Attribution over HTTP: Primary's status, tiers, leads entered through the API, source
//! corrections, the self-reported source, and the `attribution` block in every lead event as
//! a real receiver gets it.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::TestDb;
use crate::helpers::{ADMIN_TOKEN, Tenant, TestApp, error_code};
use crate::on_both_backends;
use crate::receiver::{Received, Receiver};

fn address() -> Value {
    json!({"street": "1 Main St", "city": "Austin", "state": "TX", "postal_code": "78701"})
}

async fn app_for_webhooks(db: TestDb) -> TestApp {
    TestApp::spawn_with(db, |c| {
        c.allow_private_webhook_targets = true;
        c.webhook_retry_schedule = vec![Duration::from_millis(100); 3];
    })
    .await
}

async fn subscribe(org: &Tenant<'_>, url: &str, events: &[&str]) {
    let (status, body) = org
        .post("/api/v1/webhooks", json!({"url": url, "events": events}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// A public capture call, as widget.js makes it.
async fn capture(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.base))
        .json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn personal(heard_about: Option<Value>) -> Value {
    let mut body = json!({"step": "personal_info", "first_name": "Ann", "last_name": "Lee",
        "email": "ann@example.com", "phone": "5125550100", "owner_occupied": true});
    if let Some(h) = heard_about {
        body["heard_about"] = h;
    }
    body
}

fn project() -> Value {
    json!({"step": "project_details", "roof_type": "repair", "material": "asphalt_shingle",
        "stories": 1, "urgency": "emergency"})
}

fn events_of<'a>(received: &'a [Received], lead: &str) -> Vec<&'a Received> {
    received
        .iter()
        .filter(|r| r.json["data"]["lead_id"] == lead)
        .collect()
}

async fn primary_is_always_configured(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("premium").await;
    for status in ["not_configured", "archived"] {
        let (code, err) = org
            .patch("/api/v1/widgets/01", json!({"status": status}))
            .await;
        assert_eq!(
            (code, error_code(&err)),
            (StatusCode::CONFLICT, "primary_widget_immutable"),
            "{status}"
        );
    }
    let (_, widget) = org.get("/api/v1/widgets/01").await;
    assert_eq!(widget["status"], "configured");
    // Renaming Primary (and restating its status) is fine.
    let (code, widget) = org
        .patch(
            "/api/v1/widgets/01",
            json!({"name": "Main site", "status": "configured"}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{widget}");
    assert_eq!(widget["name"], "Main site");
}

async fn an_operator_changes_a_tier_but_not_below_the_live_widgets(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("premium").await;
    for name in ["Storm page", "Gutter page"] {
        let (status, body) = org.post("/api/v1/widgets", json!({"name": name})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let change = |tier: &str, token: Option<&str>| {
        let (app, path) = (&app, format!("/api/v1/organizations/{}", org.id));
        let body = json!({ "tier": tier });
        let token = token.map(str::to_owned);
        async move {
            app.call(Method::PATCH, &path, token.as_deref(), Some(&body))
                .await
        }
    };
    let (status, err) = change("starter", Some(ADMIN_TOKEN)).await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::CONFLICT, "tier_too_small")
    );
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("02") && message.contains("03"),
        "the refusal lists the widgets to archive: {message}"
    );
    let (_, me) = org.get("/api/v1/organization").await;
    assert_eq!(me["tier"], "premium", "a refused change changes nothing");
    let (status, _) = change("ultimate", Some(&org.key)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an API key is not the operator"
    );
    let (status, err) = change("gold", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let (status, body) = change("ultimate", Some(ADMIN_TOKEN)).await;
    assert_eq!(
        (status, body["tier"].as_str()),
        (StatusCode::OK, Some("ultimate"))
    );
    // Archiving two widgets makes room for starter.
    for v in ["02", "03"] {
        let (status, _) = org
            .patch(
                &format!("/api/v1/widgets/{v}"),
                json!({"status": "archived"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, body) = change("starter", Some(ADMIN_TOKEN)).await;
    assert_eq!(
        (status, body["tier"].as_str()),
        (StatusCode::OK, Some("starter"))
    );
    let (status, _) = app
        .call(
            Method::PATCH,
            "/api/v1/organizations/org_00000000000000000000000000000000",
            Some(ADMIN_TOKEN),
            Some(&json!({"tier": "premium"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn a_lead_entered_through_the_api_is_recorded_as_api_with_its_events(db: TestDb) {
    let app = app_for_webhooks(db).await;
    let org = app.create_org("premium").await;
    let (status, _) = org.create_source("01", "Radio", "other").await;
    assert_eq!(status, StatusCode::CREATED);
    let receiver = Receiver::ok().await;
    subscribe(
        &org,
        &receiver.url,
        &["lead.address_preview", "lead.contact_requested"],
    )
    .await;
    let body = json!({"widget": "01", "source": "SRC-02", "address": address(),
        "project": {"roof_type": "repair", "material": "metal", "stories": 1, "urgency": "emergency"},
        "personal": {"first_name": "Bo", "last_name": "Diaz", "email": "bo@example.com",
            "phone": "5125550101", "owner_occupied": true},
        "contact": {"contact_method": "phone", "contact_time": "morning"}});
    let (status, lead) = org.post("/api/v1/leads", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{lead}");
    assert_eq!(lead["record_source"], "api");
    assert_eq!(lead["status"], "contact_info_provided");
    assert_eq!(lead["source_tracking"]["source_label"], "Radio");
    let id = lead["id"].as_str().unwrap().to_owned();
    let got = receiver
        .wait_for("both events", |r| events_of(r, &id).len() >= 2)
        .await;
    for event in events_of(&got, &id) {
        assert_eq!(event.json["data"]["record_source"], "api", "{}", event.body);
        assert_eq!(event.json["data"]["source_tracking"]["source_code"], "02");
        assert_eq!(event.json["data"]["attribution"]["source_code"], "02");
    }
    // Refusals name the field and create nothing.
    for (bad, field) in [
        (
            json!({"widget": "01", "source": "09", "address": address()}),
            "source",
        ),
        (
            json!({"widget": "09", "source": "01", "address": address()}),
            "widget",
        ),
        (
            json!({"widget": "01", "source": "01", "address": address(),
                "personal": body["personal"].clone()}),
            "personal",
        ),
    ] {
        let (status, err) = org.post("/api/v1/leads", bad).await;
        assert!(status.is_client_error(), "{field}: {status} {err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(field),
            "{field}: {err}"
        );
    }
    let (_, page) = org.get("/api/v1/leads").await;
    assert_eq!(page["leads"].as_array().unwrap().len(), 1);
}

async fn a_correction_moves_reports_keeps_the_snapshot_and_is_announced(db: TestDb) {
    let app = app_for_webhooks(db).await;
    let org = app.create_org("premium").await;
    org.create_source("01", "Yard Signs", "print_outdoor").await;
    org.create_source("01", "Nextdoor", "organic_social").await;
    let receiver = Receiver::ok().await;
    subscribe(&org, &receiver.url, &["lead.source_corrected"]).await;
    let pk = org.body["public_key"].as_str().unwrap();
    let (_, created) = capture(
        &app,
        Method::POST,
        "/c/v1/leads",
        None,
        &json!({"public_key": pk, "v": "01", "s": "02", "address": address()}),
    )
    .await;
    let id = created["lead_id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/leads/{id}/source");
    let (before, _) = org.get(&format!("/api/v1/leads/{id}")).await;
    assert_eq!(before, StatusCode::OK);

    for (bad, why) in [
        (
            json!({"source": "02", "reason": "same"}),
            "already credited",
        ),
        (json!({"source": "09", "reason": "nope"}), "has no source"),
        (json!({"source": "03", "reason": "  "}), "say why"),
        (
            json!({"source": "03", "reason": "x".repeat(201)}),
            "say why",
        ),
        (
            json!({"source": "03", "reason": "rang\u{7} twice"}),
            "say why",
        ),
    ] {
        let (status, err) = org.post(&path, bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(why),
            "{err}"
        );
    }
    let rival = app.create_org("premium").await;
    let (status, err) = rival
        .post(&path, json!({"source": "01", "reason": "mine"}))
        .await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::NOT_FOUND, "not_found")
    );

    // The longest reason allowed: 200 characters, one of them outside ASCII.
    let reason = format!("Caller said Nextdoor — {}", "x".repeat(177));
    assert_eq!(reason.chars().count(), 200);
    let (status, lead) = org
        .post(&path, json!({"source": "SRC-03", "reason": reason}))
        .await;
    assert_eq!(status, StatusCode::OK, "{lead}");
    assert_eq!(
        lead["source_tracking"],
        json!({"widget_version": "01", "widget_name": "Primary", "source_code": "02",
            "source_label": "Yard Signs"}),
        "the arrival snapshot is never touched"
    );
    assert_eq!(lead["corrected_source"]["source_code"], "03");
    assert_eq!(lead["corrected_source"]["source_label"], "Nextdoor");
    assert_eq!(lead["corrected_source"]["reason"], reason.as_str());

    let (_, rows) = org.get("/api/v1/reports/sources").await;
    let row = |code: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["source_code"] == code)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        (row("02")["leads"].as_u64(), row("02")["corrected"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        (row("03")["leads"].as_u64(), row("03")["corrected"].as_u64()),
        (Some(1), Some(1))
    );
    let (_, channels) = org.get("/api/v1/reports/channels").await;
    let social = channels
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel_category"] == "organic_social")
        .cloned()
        .unwrap();
    assert_eq!(social["leads"], 1);
    let (_, series) = org.get("/api/v1/reports/timeseries").await;
    assert_eq!(series[0]["source_code"], "03", "{series}");

    let got = receiver
        .wait_for("the correction", |r| !events_of(r, &id).is_empty())
        .await;
    let event = events_of(&got, &id)[0];
    assert_eq!(event.json["type"], "lead.source_corrected");
    let data = &event.json["data"];
    assert_eq!(data["previous_source_code"], "02");
    assert_eq!(data["source_tracking"]["source_code"], "02");
    assert_eq!(data["corrected_source"]["source_code"], "03");
    assert_eq!(data["corrected_source"]["reason"], reason.as_str());
    assert!(data["attribution"].is_object(), "{data}");
}

async fn the_self_reported_source_is_asked_kept_announced_and_reported(db: TestDb) {
    let app = app_for_webhooks(db).await;
    let org = app.create_org("premium").await;
    org.create_source("01", "Yard Signs", "print_outdoor").await;
    let receiver = Receiver::ok().await;
    subscribe(&org, &receiver.url, &["lead.enriched"]).await;
    let pk = org.body["public_key"].as_str().unwrap();
    let start = |s: &'static str| {
        let app = &app;
        async move {
            let (status, created) = capture(
                app,
                Method::POST,
                "/c/v1/leads",
                None,
                &json!({"public_key": pk, "v": "01", "s": s, "address": address()}),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED);
            let id = created["lead_id"].as_str().unwrap().to_owned();
            let token = created["capture_token"].as_str().unwrap().to_owned();
            let path = format!("/c/v1/leads/{id}");
            let (status, _) = capture(app, Method::PATCH, &path, Some(&token), &project()).await;
            assert_eq!(status, StatusCode::OK);
            (id, token, path)
        }
    };
    // A widget that does not ask refuses an answer, and loses nothing: the step without it works.
    let (id, token, path) = start("02").await;
    let answer = json!({"choice": "Yard sign"});
    let (status, err) = capture(
        &app,
        Method::PATCH,
        &path,
        Some(&token),
        &personal(Some(answer.clone())),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let (_, config) = capture(
        &app,
        Method::GET,
        &format!("/c/v1/widget-config?public_key={pk}&widget=01"),
        None,
        &Value::Null,
    )
    .await;
    assert_eq!(config["self_report"]["enabled"], false, "{config}");

    let (status, widget) = org
        .patch(
            "/api/v1/widgets/01",
            json!({"self_report": {"enabled": true, "choices": ["Yard sign", "Radio"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{widget}");
    let (_, config) = capture(
        &app,
        Method::GET,
        &format!("/c/v1/widget-config?public_key={pk}&widget=01"),
        None,
        &Value::Null,
    )
    .await;
    assert_eq!(
        config["self_report"]["choices"],
        json!(["Yard sign", "Radio"])
    );
    let (status, err) = capture(
        &app,
        Method::PATCH,
        &path,
        Some(&token),
        &personal(Some(json!({"choice": "Billboard"}))),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let (status, body) = capture(
        &app,
        Method::PATCH,
        &path,
        Some(&token),
        &personal(Some(answer)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Two more: an "Other" answer on the Website source, and one who did not answer.
    let (other, token, path) = start("01").await;
    let (status, _) = capture(
        &app,
        Method::PATCH,
        &path,
        Some(&token),
        &personal(Some(json!({"choice": "Other", "other": "church bulletin"}))),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, token, path) = start("02").await;
    let (status, _) = capture(&app, Method::PATCH, &path, Some(&token), &personal(None)).await;
    assert_eq!(status, StatusCode::OK);

    let (_, lead) = org.get(&format!("/api/v1/leads/{id}")).await;
    assert_eq!(lead["self_reported"], json!({"choice": "Yard sign"}));
    let (_, lead) = org.get(&format!("/api/v1/leads/{other}")).await;
    assert_eq!(
        lead["self_reported"],
        json!({"choice": "Other", "other": "church bulletin"})
    );
    let got = receiver
        .wait_for("the answered lead enriched", |r| {
            !events_of(r, &id).is_empty()
        })
        .await;
    assert_eq!(
        events_of(&got, &id)[0].json["data"]["self_reported"],
        json!({"choice": "Yard sign"})
    );
    let (status, cells) = org.get("/api/v1/reports/self-reported").await;
    assert_eq!(status, StatusCode::OK, "{cells}");
    let matrix: Vec<(String, Value, u64)> = cells
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["source_code"].as_str().unwrap().to_owned(),
                c["heard_about"].clone(),
                c["leads"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        matrix,
        vec![
            ("01".into(), json!("Other"), 1),
            ("02".into(), json!("Yard sign"), 1),
            ("02".into(), Value::Null, 1),
        ]
    );
}

async fn every_lead_event_carries_the_attribution_block_a_crm_sends_back(db: TestDb) {
    let app = app_for_webhooks(db).await;
    let org = app.create_org("premium").await;
    org.create_source("01", "Google Ads", "paid_search").await;
    let receiver = Receiver::ok().await;
    subscribe(
        &org,
        &receiver.url,
        &[
            "lead.address_preview",
            "lead.enriched",
            "lead.contact_requested",
        ],
    )
    .await;
    let pk = org.body["public_key"].as_str().unwrap();
    let (status, created) = capture(
        &app,
        Method::POST,
        "/c/v1/leads",
        None,
        &json!({"public_key": pk, "v": "01", "s": "02",
            "page_url": "https://acme.example/roofs?v=01&s=02&gclid=Cj0KCQ-abc",
            "referrer": "https://www.google.com/",
            "utm": {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring",
                "gclid": "Cj0KCQ-abc"},
            "first_touch": {"v": "01", "s": "01", "at": "2026-11-01T10:00:00Z",
                "referrer": "https://www.bing.com/"},
            "address": address()}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["lead_id"].as_str().unwrap().to_owned();
    let token = created["capture_token"].as_str().unwrap().to_owned();
    let path = format!("/c/v1/leads/{id}");
    for step in [
        project(),
        personal(None),
        json!({"step": "contact_preference", "contact_method": "phone", "contact_time": "morning"}),
    ] {
        let (status, body) = capture(&app, Method::PATCH, &path, Some(&token), &step).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let got = receiver
        .wait_for("three events", |r| events_of(r, &id).len() >= 3)
        .await;
    let (_, lead) = org.get(&format!("/api/v1/leads/{id}")).await;
    let expected = json!({
        "widget_version": "01", "source_code": "02", "at": null,
        "landing_page_url": "https://acme.example/roofs?v=01&s=02&gclid=Cj0KCQ-abc",
        "referrer": "https://www.google.com/",
        "utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring",
        "gclid": "Cj0KCQ-abc",
        "first_touch": {"widget_version": "01", "source_code": "01",
            "at": "2026-11-01T10:00:00Z", "referrer": "https://www.bing.com/",
            "derived_channel": "organic_search"},
    });
    let mut expected = expected;
    // The arrival's own time is the lead's.
    expected["at"] = lead["created_at"].clone();
    assert_eq!(lead["attribution"], expected, "{}", lead["attribution"]);
    for event in events_of(&got, &id) {
        let data = &event.json["data"];
        assert_eq!(data["attribution"], expected, "{}", event.json["type"]);
        assert_eq!(
            data["source_tracking"],
            json!({"widget_version": "01", "widget_name": "Primary", "source_code": "02",
                "source_label": "Google Ads"}),
            "source_tracking stays exactly as it was"
        );
        assert_eq!(data["record_source"], "widget");
    }
}

on_both_backends!(
    primary_is_always_configured,
    an_operator_changes_a_tier_but_not_below_the_live_widgets,
    a_lead_entered_through_the_api_is_recorded_as_api_with_its_events,
    a_correction_moves_reports_keeps_the_snapshot_and_is_announced,
    the_self_reported_source_is_asked_kept_announced_and_reported,
    every_lead_event_carries_the_attribution_block_a_crm_sends_back,
);
