//! Multi-touch attribution over HTTP: the widget's visitor id ties visit beacons to the lead,
//! the source report credits every touch under the chosen model (JSON and CSV), the models
//! side by side, the lead's touches, and the lookback and half-life settings.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::TestDb;
use crate::helpers::{Tenant, TestApp, error_code};
use crate::on_both_backends;

/// Sends a visit beacon, answered 204.
pub(crate) async fn beacon(app: &TestApp, body: Value) {
    let (status, _) = app
        .call(Method::POST, "/c/v1/visits", None, Some(&body))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

fn row<'a>(rows: &'a Value, code: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["source_code"] == code)
        .unwrap_or_else(|| panic!("no row {code} in {rows}"))
}

/// Polls `path` until `done` holds (visits are buffered; the recount runs in the background).
pub(crate) async fn eventually(
    org: &Tenant<'_>,
    path: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = org.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} never got there: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A homeowner visits through the Facebook ad and the yard sign, then converts through the
/// mailer: linear credits each a third.
async fn every_touch_of_a_journey_gets_its_share(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    for (name, category) in [
        ("Facebook Ads", "paid_social"),
        ("Yard Signs", "print_outdoor"),
        ("Mailer", "direct_mail"),
    ] {
        let (status, body) = org.create_source("01", name, category).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let pk = org.body["public_key"].as_str().unwrap().to_owned();
    let other = app.create_org("starter").await;
    let other_pk = other.body["public_key"].as_str().unwrap().to_owned();
    for s in ["02", "03"] {
        beacon(
            &app,
            json!({"public_key": pk, "v": "01", "s": s, "visitor_id": "vid-1"}),
        )
        .await;
        // The same id sent with another organization's key is that organization's visitor.
        beacon(
            &app,
            json!({"public_key": other_pk, "referrer": "https://www.google.com/",
                "visitor_id": "vid-1"}),
        )
        .await;
    }
    eventually(&org, "/api/v1/reports/sources", |rows| {
        row(rows, "02")["visits"] == 1 && row(rows, "03")["visits"] == 1
    })
    .await;
    let address =
        json!({"street": "1 Main St", "city": "Austin", "state": "TX", "postal_code": "78701"});
    let (status, created) = app
        .call(
            Method::POST,
            "/c/v1/leads",
            None,
            Some(
                &json!({"public_key": pk, "v": "01", "s": "04", "visitor_id": "vid-1",
                "address": address}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["lead_id"].as_str().unwrap();

    let (_, lead) = org.get(&format!("/api/v1/leads/{id}")).await;
    let codes: Vec<&str> = lead["touches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["source_code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["02", "03", "04"], "{lead}");

    let (status, rows) = org.get("/api/v1/reports/sources?model=linear").await;
    assert_eq!(status, StatusCode::OK, "{rows}");
    assert_eq!(row(&rows, "02")["leads"], json!(0.333334));
    assert_eq!(row(&rows, "03")["leads"], json!(0.333333));
    assert_eq!(row(&rows, "04")["leads"], json!(0.333333));
    // Last touch is whole, as before models.
    let (_, rows) = org.get("/api/v1/reports/sources").await;
    assert_eq!(row(&rows, "04")["leads"], json!(1));
    assert_eq!(row(&rows, "02")["leads"], json!(0));

    let text = app
        .client
        .get(format!(
            "{}/api/v1/reports/sources.csv?model=position_based",
            app.base
        ))
        .bearer_auth(&org.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let cells = |code: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.starts_with(&format!("01,{code},")))
            .unwrap()
            .split(',')
            .map(str::to_owned)
            .collect()
    };
    // Columns: …, visits (6), leads (7): 40 %, 20 %, 40 %.
    assert_eq!(cells("02")[7], "0.4");
    assert_eq!(cells("03")[7], "0.2");
    assert_eq!(cells("04")[7], "0.4");

    let (status, models) = org.get("/api/v1/reports/models").await;
    assert_eq!(status, StatusCode::OK, "{models}");
    let credit = |code: &str, model: &str| -> Value {
        row(&models, code)["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["model"] == model)
            .unwrap()["leads"]
            .clone()
    };
    assert_eq!(credit("02", "first"), json!(0));
    assert_eq!(credit("04", "last"), json!(1));
    assert_eq!(credit("03", "linear"), json!(0.333333));
    assert_eq!(credit("03", "position_based"), json!(0.2));

    let (status, body) = org.get("/api/v1/reports/sources?model=data_driven").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "invalid_query");
}

/// The lookback and half-life are settings; a change is recounted in the background.
async fn the_lookback_and_half_life_are_settings(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    let (status, settings) = org.get("/api/v1/reports/attribution").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        settings,
        json!({"lookback_days": 90, "half_life_days": 7, "recount": null})
    );
    for (body, field) in [
        (
            json!({"lookback_days": 0, "half_life_days": 7}),
            "lookback_days",
        ),
        (
            json!({"lookback_days": 400, "half_life_days": 7}),
            "lookback_days",
        ),
        (
            json!({"lookback_days": 30, "half_life_days": 0}),
            "half_life_days",
        ),
    ] {
        let (status, err) = app
            .call(
                Method::PUT,
                "/api/v1/reports/attribution",
                Some(&org.key),
                Some(&body),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        assert_eq!(err["error"]["field"], field, "{err}");
    }
    let (status, changed) = app
        .call(
            Method::PUT,
            "/api/v1/reports/attribution",
            Some(&org.key),
            Some(&json!({"lookback_days": 30, "half_life_days": 3})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        (&changed["lookback_days"], &changed["half_life_days"]),
        (&json!(30), &json!(3))
    );
    eventually(&org, "/api/v1/reports/attribution", |s| {
        s["recount"].is_null()
    })
    .await;
}

on_both_backends!(
    every_touch_of_a_journey_gets_its_share,
    the_lookback_and_half_life_are_settings,
);
