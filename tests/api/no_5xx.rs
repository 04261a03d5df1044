//! No input makes the service fail: generated bodies and query strings for every operation of
//! the API (read from the served OpenAPI document, so none is forgotten), the capture endpoints
//! and the dashboard's pages. A user's mistake is a 4xx in the error shape, never a 5xx.
//! Cases come from proptest's deterministic runner, so a failure names a body that reproduces.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::common::TestDb;
use crate::dashboard::{PASSWORD, Visitor, org_with_owner};
use crate::helpers::{ADMIN_TOKEN, TestApp};
use crate::isolation::victim_objects;
use crate::on_both_backends;

/// Generated cases per operation.
const CASES: u32 = 64;

/// Every property name the document knows, so generated objects often hit real fields.
fn property_names(doc: &Value, out: &mut BTreeSet<String>) {
    match doc {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                out.extend(props.keys().cloned());
            }
            map.values().for_each(|v| property_names(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| property_names(v, out)),
        _ => {}
    }
}

/// Strings a person or an attacker might send: empty, huge, unicode, dates at the calendar's
/// ends, numbers out of range, markup, SQL.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("9999-12-31".to_owned()),
        Just("-0001-01-01".to_owned()),
        Just("2026-02-30".to_owned()),
        Just("99999999999999999999999".to_owned()),
        Just("' OR 1=1 --".to_owned()),
        Just("<script>alert(1)</script>".to_owned()),
        Just("\u{0}\u{202e}💩".to_owned()),
        Just("x".repeat(5_000)),
        "\\PC{0,40}",
        "[a-z_]{1,12}",
    ]
}

fn json_value(keys: Vec<String>) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(1),
            Just(i64::MAX),
            Just(i64::MIN)
        ]
        .prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        text().prop_map(Value::String),
    ];
    let key = prop_oneof![4 => proptest::sample::select(keys), 1 => "[a-z]{1,8}"];
    leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A query string over `names`, each present or not, with generated values.
fn query(names: Vec<String>) -> impl Strategy<Value = String> {
    let n = names.len();
    proptest::collection::vec(proptest::option::of(text()), n).prop_map(move |values| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in names.iter().zip(values) {
            if let Some(v) = value {
                q.append_pair(name, &v);
            }
        }
        q.finish()
    })
}

fn cases<T: std::fmt::Debug>(
    strategy: impl Strategy<Value = T>,
    runner: &mut TestRunner,
) -> Vec<T> {
    (0..CASES)
        .map(|_| strategy.new_tree(runner).expect("a case").current())
        .collect()
}

async fn every_api_and_capture_input_is_answered_without_a_server_error(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| {
        c.capture_rate_limit = 0;
        c.allow_private_webhook_targets = true;
    })
    .await;
    let tenant = app.create_org("premium").await;
    let v = victim_objects(&app, &tenant).await;
    let (_, doc) = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    let mut names = BTreeSet::new();
    property_names(&doc, &mut names);
    let keys: Vec<String> = names.into_iter().collect();
    let mut runner = TestRunner::deterministic();
    let mut operations: Vec<(String, String, Value)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations.push((method.to_uppercase(), path.clone(), op.clone()));
        }
    }
    // Deletions last, so the objects the other operations aim at exist while they run.
    operations.sort_by_key(|(m, p, _)| (m == "DELETE", p.clone(), m.clone()));
    let mut sent = 0;
    for (method, template, op) in &operations {
        let path = v.fill(template, &tenant.id);
        let key = if template == "/organizations" {
            ADMIN_TOKEN
        } else {
            tenant.key.as_str()
        };
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let params: Vec<String> = op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "query")
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let queries = cases(query(params), &mut runner);
        let bodies = cases(json_value(keys.clone()), &mut runner);
        for (q, body) in queries.iter().zip(&bodies) {
            let url = format!("/api/v1{path}?{q}");
            let with_body = op.get("requestBody").is_some();
            let (status, answer) = app
                .call(method.clone(), &url, Some(key), with_body.then_some(body))
                .await;
            sent += 1;
            assert!(
                status.as_u16() < 500,
                "{method} {url} with {body}: {status} {answer}"
            );
        }
    }

    // The capture endpoints, with the real public key inside generated bodies.
    let pk = tenant.body["public_key"].as_str().unwrap().to_owned();
    let (_, lead) = app
        .call(
            Method::POST,
            "/c/v1/leads",
            None,
            Some(&json!({"public_key": pk, "address": {"street": "1 Main St",
                "city": "Austin", "state": "TX", "postal_code": "78701"}})),
        )
        .await;
    let (id, token) = (
        lead["lead_id"].as_str().unwrap().to_owned(),
        lead["capture_token"].as_str().unwrap().to_owned(),
    );
    let bodies = cases(json_value(keys.clone()), &mut runner);
    for body in &bodies {
        let mut keyed = body.clone();
        if let Value::Object(map) = &mut keyed {
            map.insert("public_key".into(), json!(pk));
        }
        for (method, url, token) in [
            (Method::POST, "/c/v1/leads".to_owned(), None),
            (Method::POST, "/c/v1/visits".to_owned(), None),
            (
                Method::PATCH,
                format!("/c/v1/leads/{id}"),
                Some(token.as_str()),
            ),
        ] {
            let (status, answer) = app.call(method.clone(), &url, token, Some(&keyed)).await;
            sent += 1;
            assert!(
                status.as_u16() < 500,
                "{method} {url} with {keyed}: {status} {answer}"
            );
        }
    }
    let config_params = ["public_key", "widget", "v", "s"]
        .map(str::to_owned)
        .to_vec();
    for q in cases(query(config_params), &mut runner) {
        let (status, answer) = app
            .call(Method::GET, &format!("/c/v1/widget-config?{q}"), None, None)
            .await;
        sent += 1;
        assert!(
            status.as_u16() < 500,
            "widget-config?{q}: {status} {answer}"
        );
    }
    println!("{sent} generated requests, none answered with a server error");
}

async fn every_dashboard_page_answers_generated_query_strings(db: TestDb) {
    let app = TestApp::spawn(db).await;
    org_with_owner(&app, "owner@acme.example").await;
    let mut owner = Visitor::new(&app);
    owner.log_in("owner@acme.example", PASSWORD).await;
    let mut runner = TestRunner::deterministic();
    let pages: [(&str, &[&str]); 8] = [
        (
            "/app/leads",
            &[
                "widget", "source", "status", "outcome", "from", "to", "after", "open",
            ],
        ),
        ("/app/reports", &["widget", "preset", "from", "to", "touch"]),
        (
            "/app/reports.csv",
            &["widget", "preset", "from", "to", "touch"],
        ),
        ("/app/webhooks", &["endpoint", "reveal"]),
        ("/app/sources", &["widget", "panel", "status"]),
        ("/app/widgets", &["widget"]),
        ("/app/settings", &["panel"]),
        ("/app/team", &["panel"]),
    ];
    let mut sent = 0;
    for (path, params) in pages {
        let names = params.iter().map(|p| (*p).to_owned()).collect();
        for q in cases(query(names), &mut runner) {
            let page = owner.get(&format!("{path}?{q}")).await;
            sent += 1;
            assert!(
                page.status.as_u16() < 500,
                "{path}?{q}: {} {}",
                page.status,
                page.body
            );
        }
    }
    println!("{sent} generated page requests, none answered with a server error");
}

/// A NUL character (which PostgreSQL cannot store) in an otherwise valid body is the caller's
/// mistake: a 422 naming it, and nothing written — also inside a batched capture.
async fn nul_characters_are_refused_before_anything_is_written(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let tenant = app.create_org("starter").await;
    let (status, body) = tenant
        .post(
            "/api/v1/widgets/01/sources",
            json!({"name": "Yard\u{0}Signs", "channel_category": "print_outdoor"}),
        )
        .await;
    assert_eq!(status.as_u16(), 422, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("NUL"),
        "{body}"
    );
    let pk = tenant.body["public_key"].as_str().unwrap();
    let (status, body) = app
        .call(
            Method::POST,
            "/c/v1/leads",
            None,
            Some(
                &json!({"public_key": pk, "address": {"street": "1\u{0} Main St",
                "city": "Austin", "state": "TX", "postal_code": "78701"}}),
            ),
        )
        .await;
    assert_eq!(status.as_u16(), 422, "{body}");
    // A public key that cannot be one is simply unknown.
    let (status, _) = app
        .call(
            Method::GET,
            "/c/v1/widget-config?public_key=pk_%00",
            None,
            None,
        )
        .await;
    assert_eq!(status.as_u16(), 404);
    let (_, leads) = tenant.get("/api/v1/leads").await;
    assert_eq!(leads["leads"].as_array().unwrap().len(), 0);
    let (_, sources) = tenant.get("/api/v1/widgets/01/sources").await;
    assert_eq!(sources.as_array().unwrap().len(), 1, "{sources}");
}

on_both_backends!(
    nul_characters_are_refused_before_anything_is_written,
    every_api_and_capture_input_is_answered_without_a_server_error,
    every_dashboard_page_answers_generated_query_strings,
);
