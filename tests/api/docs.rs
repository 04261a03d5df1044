//! `docs/webhooks.md` shows one example of every event; this test makes each of them happen
//! for real, receives them on a real endpoint and checks that the documented example is what
//! was sent (ids and times aside). With `LEADTRAIL_BLESS_DOCS=1` it rewrites the examples
//! from what was received instead, so the documentation is generated from the code.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Backend, TestDb};
use crate::helpers::TestApp;
use crate::receiver::Receiver;
use leadtrail::domain::event::EventType;

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/webhooks.md");
const LEAD_ID: &str = "lead_01a2020f1b9d710982444f849be62646";
const TIME: &str = "2026-11-22T07:01:14.268Z";

/// Ids and times differ on every run; everything else is what a receiver gets.
fn normalise(mut event: Value) -> Value {
    event["timestamp"] = json!(TIME);
    let data = &mut event["data"];
    if data.get("lead_id").is_some() {
        data["lead_id"] = json!(LEAD_ID);
    }
    for field in ["created_at", "changed_at"] {
        if data.get(field).is_some() {
            data[field] = json!(TIME);
        }
    }
    if data["attribution"].get("at").is_some() {
        data["attribution"]["at"] = json!(TIME);
    }
    if data["corrected_source"].get("corrected_at").is_some() {
        data["corrected_source"]["corrected_at"] = json!(TIME);
    }
    event
}

/// The example under each "### `type`" heading: (type, byte range of the JSON, parsed JSON).
fn documented(doc: &str) -> Vec<(String, std::ops::Range<usize>, Value)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = doc[at..].find("\n### `") {
        let start = at + i + 6;
        let Some(len) = doc[start..].find('`') else {
            break;
        };
        let kind = doc[start..start + len].to_owned();
        at = start + len;
        let next_heading = doc[at..].find("\n#").map_or(doc.len(), |n| at + n);
        let Some(open) = doc[at..next_heading].find("```json\n") else {
            continue;
        };
        let body = at + open + 8;
        let close = body + doc[body..].find("\n```").expect("closed code block");
        let parsed = serde_json::from_str(&doc[body..close])
            .unwrap_or_else(|e| panic!("the {kind} example is not JSON: {e}"));
        out.push((kind, body..close, parsed));
    }
    out
}

/// Makes every event happen once, the way a subscriber's leads make them.
async fn every_event(app: &TestApp) -> Vec<Value> {
    let org = app.create_org("premium").await;
    org.create_source("01", "Facebook Ads", "paid_social").await;
    org.create_source("01", "Yard Signs", "print_outdoor").await;
    org.patch(
        "/api/v1/widgets/01",
        json!({"self_report": {"enabled": true, "choices": ["Yard sign", "Facebook or Instagram"]}}),
    )
    .await;
    let receiver = Receiver::ok().await;
    let all: Vec<&str> = EventType::ALL.iter().map(|e| e.id()).collect();
    let (status, body) = org
        .post(
            "/api/v1/webhooks",
            json!({"url": receiver.url, "events": all}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let send = |method: Method, path: String, token: Option<String>, body: Value| async move {
        let mut req = app
            .client
            .request(method, format!("{}{path}", app.base))
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        res.json::<Value>().await.unwrap()
    };
    let pk = org.body["public_key"].as_str().unwrap();
    let created = send(Method::POST, "/c/v1/leads".into(), None, json!({
        "public_key": pk, "v": "01", "s": "02",
        "page_url": "https://acme-roofing.example/storm?v=01&s=02&utm_source=facebook&utm_medium=paid_social&utm_campaign=hail-2026&fbclid=IwAR2xYz",
        "referrer": "https://l.facebook.com/",
        "utm": {"utm_source": "facebook", "utm_medium": "paid_social", "utm_campaign": "hail-2026",
            "fbclid": "IwAR2xYz"},
        "first_touch": {"v": "01", "s": "01", "at": "2026-11-19T18:42:05Z",
            "page_url": "https://acme-roofing.example/?gclid=Cj0KCQiA-example",
            "referrer": "https://www.google.com/", "utm": {"gclid": "Cj0KCQiA-example"}},
        "address": {"street": "1 Main St", "city": "Austin", "state": "TX", "postal_code": "78701"}})).await;
    let id = created["lead_id"].as_str().unwrap().to_owned();
    let token = created["capture_token"].as_str().map(str::to_owned);
    let path = format!("/c/v1/leads/{id}");
    for step in [
        json!({"step": "project_details", "roof_type": "replacement", "material": "metal",
            "stories": 2, "urgency": "emergency"}),
        json!({"step": "personal_info", "first_name": "Ann", "last_name": "Lee",
            "email": "ann@example.com", "phone": "5125550100", "owner_occupied": false,
            "heard_about": {"choice": "Facebook or Instagram"}}),
        json!({"step": "contact_preference", "contact_method": "phone", "contact_time": "morning"}),
    ] {
        send(Method::PATCH, path.clone(), token.clone(), step).await;
    }
    // Enrichment must be written before the correction so the events come in this order.
    receiver
        .wait_for("the contact request", |r| {
            r.iter().any(|e| e.json["type"] == "lead.contact_requested")
        })
        .await;
    let (status, body) = org
        .post(
            &format!("/api/v1/leads/{id}/source"),
            json!({"source": "03", "reason": "Caller said they saw our yard sign"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = org
        .patch(
            &format!("/api/v1/leads/{id}/outcome"),
            json!({"outcome": "won", "value": 1_480_000}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    org.post("/api/v1/widgets", json!({"name": "Storm Season 2026"}))
        .await;
    org.patch("/api/v1/widgets/02", json!({"status": "configured"}))
        .await;
    let got = receiver
        .wait_for("every event type", |r| {
            EventType::ALL
                .iter()
                .all(|t| r.iter().any(|e| e.json["type"] == t.id()))
        })
        .await;
    EventType::ALL
        .iter()
        .map(|t| {
            let event = got.iter().find(|e| e.json["type"] == t.id()).unwrap();
            normalise(event.json.clone())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_event_examples_are_what_a_receiver_gets() {
    let Some(db) = TestDb::new(Backend::Sqlite).await else {
        return;
    };
    let app = TestApp::spawn_with(db, |c| {
        c.allow_private_webhook_targets = true;
        c.webhook_retry_schedule = vec![Duration::from_millis(100); 3];
    })
    .await;
    let events = every_event(&app).await;
    let mut doc = std::fs::read_to_string(DOC).unwrap();
    let examples = documented(&doc);
    if std::env::var_os("LEADTRAIL_BLESS_DOCS").is_some() {
        // Back to front, so earlier ranges stay valid.
        for (kind, range, _) in examples.iter().rev() {
            if let Some(event) = events.iter().find(|e| e["type"] == kind.as_str()) {
                doc.replace_range(range.clone(), &serde_json::to_string_pretty(event).unwrap());
            }
        }
        std::fs::write(DOC, &doc).unwrap();
        return;
    }
    for event in &events {
        let kind = event["type"].as_str().unwrap();
        let example = examples
            .iter()
            .find(|(k, _, _)| k == kind)
            .unwrap_or_else(|| panic!("docs/webhooks.md has no example of {kind}"));
        assert_eq!(
            &example.2,
            event,
            "docs/webhooks.md's {kind} example differs from what is sent; \
             LEADTRAIL_BLESS_DOCS=1 cargo test --test api docs rewrites it. Sent:\n{}",
            serde_json::to_string_pretty(event).unwrap()
        );
    }
}
