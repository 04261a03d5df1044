//! Outcomes and spend over HTTP: the CRM write-back with `Idempotency-Key`, its refusals in the
//! error shape, the lead's history, spend by month and by CSV, and the report's money columns.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::TestDb;
use crate::helpers::{Tenant, TestApp, error_code};
use crate::on_both_backends;

async fn lead(app: &TestApp, org: &Tenant<'_>, source: &str) -> String {
    let (status, created) = app
        .call(
            Method::POST,
            "/c/v1/leads",
            None,
            Some(
                &json!({"public_key": org.body["public_key"], "v": "01", "s": source,
                "address": {"street": "1 Main St", "city": "Austin", "state": "TX",
                    "postal_code": "78701"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["lead_id"].as_str().unwrap().to_owned()
}

async fn outcome(
    org: &Tenant<'_>,
    lead: &str,
    body: &str,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = org
        .app
        .client
        .patch(format!("{}/api/v1/leads/{lead}/outcome", org.app.base))
        .bearer_auth(&org.key)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(k) = key {
        request = request.header("idempotency-key", k);
    }
    let res = request.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn a_crm_writes_outcomes_back_and_the_lead_keeps_its_history(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    let rival = app.create_org("starter").await;
    let id = lead(&app, &org, "01").await;

    let (status, body) = outcome(&org, &id, r#"{"outcome": "quoted"}"#, None).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("quoted"))
    );
    let won = r#"{"outcome": "won", "value": 1250000}"#;
    let (status, first) = outcome(&org, &id, won, Some("crm-42")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["value"], 1_250_000);
    // A retry answers the same and records nothing new.
    let (status, again) = outcome(&org, &id, won, Some("crm-42")).await;
    assert_eq!((status, &again), (StatusCode::OK, &first));
    let (status, reused) = outcome(
        &org,
        &id,
        r#"{"outcome": "won", "value": 1}"#,
        Some("crm-42"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&reused), "idempotency_key_reused");

    for (body, status, code, field) in [
        (r#"{"outcome": "won"}"#, 422, "validation_failed", "value"),
        (
            r#"{"outcome": "won", "value": -5}"#,
            422,
            "validation_failed",
            "value",
        ),
        (
            r#"{"outcome": "quoted", "value": 5}"#,
            422,
            "validation_failed",
            "value",
        ),
        (
            r#"{"outcome": "lost"}"#,
            422,
            "validation_failed",
            "lost_reason",
        ),
        (
            r#"{"outcome": "closed"}"#,
            422,
            "validation_failed",
            "outcome",
        ),
        (
            r#"{"outcome": "won", "value": "ten"}"#,
            422,
            "validation_failed",
            "",
        ),
        (
            r#"{"outcome": "won", "value": 5, "extra": 1}"#,
            422,
            "validation_failed",
            "",
        ),
        (r#"{"outcome": "#, 400, "invalid_json", ""),
    ] {
        let (got, answer) = outcome(&org, &id, body, None).await;
        assert_eq!(got.as_u16(), status, "{body}: {answer}");
        assert_eq!(error_code(&answer), code, "{body}");
        if !field.is_empty() {
            assert_eq!(answer["error"]["field"], field, "{body}");
        }
    }
    let (status, answer) = outcome(
        &org,
        &id,
        r#"{"outcome": "lost", "lost_reason": "Went with his cousin"}"#,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    outcome(&org, &id, r#"{"outcome": "contacted"}"#, None).await;
    let (status, refused) = outcome(&org, &id, r#"{"outcome": "open"}"#, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&refused), "outcome_transition_refused");
    // Another tenant's lead is not found, and stays as it was.
    let (status, answer) = outcome(&rival, &id, won, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let (status, answer) = outcome(&org, "lead_nope", won, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");

    let (_, body) = org.get(&format!("/api/v1/leads/{id}")).await;
    assert_eq!(body["outcome"], "contacted");
    let history = body["outcome_history"].as_array().unwrap();
    let moves: Vec<String> = history
        .iter()
        .map(|h| {
            format!(
                "{}→{}",
                h["from"].as_str().unwrap(),
                h["to"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        moves,
        ["open→quoted", "quoted→won", "won→lost", "lost→contacted"]
    );
    assert!(
        history[1]["changed_by"]
            .as_str()
            .unwrap()
            .starts_with("api_key:")
    );
    assert_eq!(history[2]["lost_reason"], "Went with his cousin");
    // The list filters by outcome.
    let other = lead(&app, &org, "01").await;
    let (_, page) = org.get("/api/v1/leads?outcome=contacted").await;
    let ids: Vec<&str> = page["leads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()]);
    let (_, page) = org.get("/api/v1/leads?outcome=open").await;
    assert_eq!(page["leads"][0]["id"], other.as_str());
    let (status, _) = org.get("/api/v1/leads?outcome=maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn put_spend(org: &Tenant<'_>, path: &str, body: Value) -> (StatusCode, Value) {
    org.app
        .call(Method::PUT, path, Some(&org.key), Some(&body))
        .await
}

async fn import(org: &Tenant<'_>, csv: &str) -> (StatusCode, Value) {
    let res = org
        .app
        .client
        .post(format!("{}/api/v1/spend/import", org.app.base))
        .bearer_auth(&org.key)
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap())
}

/// This month and the one before (`yyyy-mm`), and the report range covering both.
fn months() -> (String, String, String, String) {
    let today = time::OffsetDateTime::now_utc().date();
    let this = today.replace_day(1).unwrap();
    let before = this.previous_day().unwrap().replace_day(1).unwrap();
    let next = this
        .replace_day(28)
        .unwrap()
        .saturating_add(time::Duration::days(7))
        .replace_day(1)
        .unwrap();
    let month = |d: time::Date| format!("{:04}-{:02}", d.year(), u8::from(d.month()));
    (
        month(before),
        month(this),
        before.to_string(),
        next.to_string(),
    )
}

async fn spend_goes_in_by_month_and_by_csv_and_reports_show_the_return(db: TestDb) {
    let (before, this, from, to) = months();
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    org.create_source("01", "Yard Signs", "print_outdoor").await;
    let (status, row) = put_spend(
        &org,
        &format!("/api/v1/widgets/01/sources/02/spend/{this}"),
        json!({"amount": 40_000}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{row}");
    assert_eq!(
        (row["month"].as_str(), row["amount"].as_i64()),
        (Some(this.as_str()), Some(40_000))
    );
    for (path, body, status) in [
        (
            "/api/v1/widgets/01/sources/02/spend/2026-13",
            json!({"amount": 1}),
            422,
        ),
        (
            "/api/v1/widgets/01/sources/02/spend/2026-11",
            json!({"amount": -1}),
            422,
        ),
        (
            "/api/v1/widgets/01/sources/09/spend/2026-11",
            json!({"amount": 1}),
            404,
        ),
        (
            "/api/v1/widgets/07/sources/02/spend/2026-11",
            json!({"amount": 1}),
            404,
        ),
    ] {
        let (got, answer) = put_spend(&org, path, body).await;
        assert_eq!(got.as_u16(), status, "{path}: {answer}");
        error_code(&answer);
    }
    let (status, refused) = import(
        &org,
        "widget_version,source_code,month,amount\n01,02,2026-10,100\n01,02,2026-10,200\n01,05,2026-10,1\nnope\n",
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&refused), "spend_import_refused");
    let lines: Vec<u64> = refused["error"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [3, 4, 5], "{refused}");
    let (_, listed) = org.get("/api/v1/spend").await;
    assert_eq!(
        listed["spend"].as_array().unwrap().len(),
        1,
        "nothing half imported"
    );
    let (status, done) = import(
        &org,
        &format!("widget_version,source_code,month,amount\n01,SRC-02,{before},\"1,200.00\"\n"),
    )
    .await;
    assert_eq!(
        (status, done["imported"].as_u64()),
        (StatusCode::OK, Some(1))
    );

    // A lead on the yard sign, won, in this month: the report shows what it returned.
    let id = lead(&app, &org, "02").await;
    outcome(&org, &id, r#"{"outcome": "won", "value": 1000000}"#, None).await;
    let (_, rows) = org
        .get(&format!("/api/v1/reports/sources?from={from}&to={to}"))
        .await;
    let signs = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source_code"] == "02")
        .unwrap();
    assert_eq!(signs["won"], 1);
    assert_eq!(signs["revenue"], 1_000_000);
    assert_eq!(signs["spend"], 160_000);
    assert_eq!(signs["cost_per_won"], 160_000);
    assert_eq!(signs["roas"], 6.25);
    let website = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source_code"] == "01")
        .unwrap();
    assert!(
        website["spend"].is_null() && website["cost_per_lead"].is_null(),
        "{website}"
    );
    let csv = app
        .client
        .get(format!(
            "{}/api/v1/reports/sources.csv?from={from}&to={to}",
            app.base
        ))
        .bearer_auth(&org.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with("won,close_rate,revenue,spend,cost_per_lead,cost_per_won,roas")
    );
    assert!(
        csv.contains(",1,1.0000,10000.00,1600.00,1600.00,1600.00,6.25"),
        "{csv}"
    );
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/widgets/01/sources/02/spend/{before}"),
            Some(&org.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, listed) = org
        .get(&format!("/api/v1/spend?from={before}&to={before}"))
        .await;
    assert!(listed["spend"].as_array().unwrap().is_empty(), "{listed}");
}

on_both_backends!(
    a_crm_writes_outcomes_back_and_the_lead_keeps_its_history,
    spend_goes_in_by_month_and_by_csv_and_reports_show_the_return,
);
