//! Tenant isolation over every route of the API, read from the served OpenAPI document (and
//! that document checked against the routers' source, so no route can be left out): each
//! operation without a key, and with another organization's key, must neither reach nor
//! reveal nor change anything of the victim's.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::TestDb;
use crate::helpers::{Tenant, TestApp};
use crate::on_both_backends;
use crate::receiver::Receiver;

/// Every `(METHOD, /path)` the API routers register, read from their source.
fn routed() -> BTreeSet<(String, String)> {
    let sources = [
        include_str!("../../src/http/api/api_keys.rs"),
        include_str!("../../src/http/api/leads.rs"),
        include_str!("../../src/http/api/organizations.rs"),
        include_str!("../../src/http/api/privacy.rs"),
        include_str!("../../src/http/api/qr.rs"),
        include_str!("../../src/http/api/reports.rs"),
        include_str!("../../src/http/api/sources.rs"),
        include_str!("../../src/http/api/spend.rs"),
        include_str!("../../src/http/api/webhooks.rs"),
        include_str!("../../src/http/api/widgets.rs"),
    ];
    let mut out = BTreeSet::new();
    for source in sources {
        let mut rest = source;
        while let Some(i) = rest.find(".route(") {
            rest = &rest[i + 7..];
            let path = rest.split('"').nth(1).unwrap_or_default().to_owned();
            let end = rest
                .find(".route(")
                .unwrap_or(rest.len())
                .min(rest.find("\n}\n").unwrap_or(rest.len()));
            for method in ["get", "post", "patch", "put", "delete"] {
                if rest[..end].contains(&format!("{method}(")) {
                    out.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
    }
    out
}

/// The operations the served OpenAPI document lists.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

/// What the victim has, to aim at.
pub(crate) struct Victim {
    pub(crate) lead: String,
    pub(crate) endpoint: String,
    pub(crate) delivery: String,
    pub(crate) api_key_id: String,
}

impl Victim {
    /// An operation's path template with the victim's objects in it (widget 01, source 02).
    pub(crate) fn fill(&self, template: &str, org_id: &str) -> String {
        template
            .replace("{version}", "01")
            .replace("{code}", "02")
            .replace("{month}", "2026-10")
            .replace("{delivery}", &self.delivery)
            .replace("/leads/{id}", &format!("/leads/{}", self.lead))
            .replace("/webhooks/{id}", &format!("/webhooks/{}", self.endpoint))
            .replace("/api-keys/{id}", &format!("/api-keys/{}", self.api_key_id))
            .replace("/organizations/{id}", &format!("/organizations/{org_id}"))
    }
}

pub(crate) async fn victim_objects(app: &TestApp, victim: &Tenant<'_>) -> Victim {
    victim
        .post("/api/v1/widgets", json!({"name": "Second"}))
        .await;
    victim
        .create_source("01", "Yard Signs", "print_outdoor")
        .await;
    victim
        .post("/api/v1/widgets/01/sources/02/qr", json!({}))
        .await;
    let pk = victim.body["public_key"].as_str().unwrap();
    let (_, lead) = app
        .call(
            Method::POST,
            "/c/v1/leads",
            None,
            Some(
                &json!({"public_key": pk, "v": "01", "s": "02", "address": {"street": "1 Main St",
                "city": "Austin", "state": "TX", "postal_code": "78701"}}),
            ),
        )
        .await;
    let receiver = Receiver::start(std::sync::Arc::new(|_, _| 500)).await;
    let (_, endpoint) = victim
        .post("/api/v1/webhooks", json!({"url": receiver.url}))
        .await;
    let endpoint = endpoint["id"].as_str().unwrap().to_owned();
    let (_, test) = victim
        .post_empty(&format!("/api/v1/webhooks/{endpoint}/test"))
        .await;
    let (_, key) = victim
        .post("/api/v1/api-keys", json!({"label": "crm"}))
        .await;
    let (status, _) = app
        .call(
            Method::PUT,
            "/api/v1/widgets/01/sources/02/spend/2026-10",
            Some(&victim.key),
            Some(&json!({"amount": 120_000})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // The test event's first attempt fails and waits an hour for the next: from then on the
    // victim's state holds still while the rival tries everything.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, e) = victim.get(&format!("/api/v1/webhooks/{endpoint}")).await;
        if e["last_error"].is_string() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never attempted: {e}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Victim {
        lead: lead["lead_id"].as_str().unwrap().to_owned(),
        endpoint,
        delivery: test["delivery_id"].as_str().unwrap().to_owned(),
        api_key_id: key["id"].as_str().unwrap_or_default().to_owned(),
    }
}

/// The victim's state as its own key reads it (times of attempts aside: the dispatcher keeps
/// retrying the failing test delivery meanwhile).
async fn snapshot(victim: &Tenant<'_>, v: &Victim) -> Vec<String> {
    let mut out = Vec::new();
    for path in [
        "/api/v1/organization".to_owned(),
        "/api/v1/api-keys".to_owned(),
        "/api/v1/widgets".to_owned(),
        "/api/v1/widgets/01/sources?status=all".to_owned(),
        "/api/v1/widgets/02/sources?status=all".to_owned(),
        "/api/v1/leads".to_owned(),
        format!("/api/v1/leads/{}", v.lead),
        "/api/v1/spend".to_owned(),
        format!("/api/v1/webhooks/{}", v.endpoint),
    ] {
        let (_, body) = victim.get(&path).await;
        out.push(format!("{path} {body}"));
    }
    let (_, log) = victim
        .get(&format!("/api/v1/webhooks/{}/deliveries", v.endpoint))
        .await;
    for d in log.as_array().unwrap() {
        out.push(format!(
            "delivery {} {} {}",
            d["id"], d["event_type"], d["replay"]
        ));
    }
    out
}

/// A body that a handler would accept, so a refusal is about who asks, not what.
fn body_for(method: &str, path: &str) -> Value {
    match (method, path) {
        ("POST", "/organizations") => json!({"name": "X", "tier": "starter",
            "website_url": "https://x.example", "brand_color": "#000000"}),
        ("PATCH", "/organization") => json!({"name": "Pwned"}),
        ("POST", "/api-keys") => json!({"label": "pwned"}),
        ("POST", "/widgets") => json!({"name": "Pwned"}),
        ("PATCH", "/widgets/{version}") => json!({"name": "Pwned"}),
        ("POST", "/widgets/{version}/sources") => {
            json!({"name": "Pwned", "channel_category": "other"})
        }
        ("PATCH", "/widgets/{version}/sources/{code}") => json!({"name": "Pwned"}),
        ("POST", "/webhooks") => json!({"url": "https://hooks.example.com/in"}),
        ("PATCH", "/webhooks/{id}") => json!({"description": "pwned", "enabled": false}),
        ("POST", "/webhooks/{id}/deliveries/resend-failed") => {
            json!({"since": "2000-01-01T00:00:00Z"})
        }
        ("POST", "/webhooks/{id}/replay") => {
            json!({"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"})
        }
        ("POST", "/leads/{id}/source") => json!({"source": "01", "reason": "pwned"}),
        ("PATCH", "/leads/{id}/outcome") => json!({"outcome": "won", "value": 100}),
        ("PUT", "/widgets/{version}/sources/{code}/spend/{month}") => json!({"amount": 1}),
        _ => json!({}),
    }
}

async fn every_route_keeps_another_tenants_objects_out_of_reach(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| {
        c.allow_private_webhook_targets = true;
        c.webhook_manual_sends_per_minute = 0;
        c.webhook_retry_schedule = vec![std::time::Duration::from_secs(3600)];
    })
    .await;
    let victim = app.create_org("premium").await;
    let rival = app.create_org("premium").await;
    let v = victim_objects(&app, &victim).await;
    let (_, doc) = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    let operations = documented(&doc);
    assert_eq!(
        operations,
        routed(),
        "the OpenAPI document and the routers disagree"
    );
    let before = snapshot(&victim, &v).await;
    // What the victim's objects are called: none of it may appear in a rival's answer.
    let secrets = [
        victim.id.as_str(),
        victim.key.as_str(),
        v.lead.as_str(),
        v.endpoint.as_str(),
        v.delivery.as_str(),
    ];
    let mut foreign_ids = 0;
    for (method, template) in &operations {
        let path = v.fill(template, &victim.id);
        assert!(!path.contains('{'), "no stand-in for {template}");
        let url = format!("/api/v1{path}");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let body = body_for(method.as_str(), template);
        // Without a key: refused, never reached.
        let (status, _) = app.call(method.clone(), &url, None, Some(&body)).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {url} without a key"
        );
        // With the rival's key.
        let (status, answer) = app
            .call(method.clone(), &url, Some(&rival.key), Some(&body))
            .await;
        assert!(!status.is_server_error(), "{method} {url}: {status}");
        let text = answer.to_string();
        for secret in secrets {
            assert!(
                !text.contains(secret),
                "{method} {url} showed the rival {secret}: {text}"
            );
        }
        let names_foreign_object = [&v.lead, &v.endpoint, &v.delivery, &v.api_key_id, &victim.id]
            .iter()
            .any(|id| !id.is_empty() && path.contains(id.as_str()));
        if names_foreign_object {
            foreign_ids += 1;
            let expected = if template.starts_with("/organizations/") {
                // Operator routes refuse organization keys outright.
                status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN
            } else {
                status == StatusCode::NOT_FOUND
            };
            assert!(
                expected,
                "{method} {url} with the rival's key: {status} {text}"
            );
        }
    }
    assert!(
        foreign_ids >= 10,
        "only {foreign_ids} routes named a foreign object"
    );
    assert_eq!(
        snapshot(&victim, &v).await,
        before,
        "the victim's state changed"
    );
}

on_both_backends!(every_route_keeps_another_tenants_objects_out_of_reach);
