//! Reports over HTTP: by source, by channel, by period, first vs last touch, CSV.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::TestDb;
use crate::helpers::{Tenant, TestApp};
use crate::on_both_backends;

async fn post(app: &TestApp, path: &str, body: Value) {
    let res = app
        .client
        .request(Method::POST, format!("{}{path}", app.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
}

fn row<'a>(rows: &'a Value, code: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["source_code"] == code)
        .unwrap()
}

/// 4 visits and 2 leads on SRC-02 (one of them first touched on SRC-03), 1 visit on SRC-03.
async fn traffic(app: &TestApp, org: &Tenant<'_>) {
    let pk = org.body["public_key"].as_str().unwrap();
    for _ in 0..4 {
        post(
            app,
            "/c/v1/visits",
            json!({"public_key": pk, "v": "01", "s": "02"}),
        )
        .await;
    }
    post(
        app,
        "/c/v1/visits",
        json!({"public_key": pk, "v": "01", "s": "03"}),
    )
    .await;
    let address =
        json!({"street": "1 Main St", "city": "Austin", "state": "TX", "postal_code": "78701"});
    post(
        app,
        "/c/v1/leads",
        json!({"public_key": pk, "v": "01", "s": "02", "address": address}),
    )
    .await;
    post(
        app,
        "/c/v1/leads",
        json!({"public_key": pk, "v": "01", "s": "02", "address": address,
        "first_touch": {"v": "01", "s": "03"}}),
    )
    .await;
    // Visits are buffered for up to a second.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, rows) = org.get("/api/v1/reports/sources").await;
        if row(&rows, "03")["visits"] == 1 && row(&rows, "02")["visits"] == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "visits never counted: {rows}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn the_source_report_counts_visits_leads_and_conversion_per_source(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    org.create_source("01", "Facebook Ads", "paid_social").await;
    org.create_source("01", "Yard Signs", "print_outdoor").await;
    traffic(&app, &org).await;
    let (status, rows) = org.get("/api/v1/reports/sources").await;
    assert_eq!(status, StatusCode::OK);
    let fb = row(&rows, "02");
    assert_eq!(
        (fb["visits"].as_u64(), fb["leads"].as_u64()),
        (Some(4), Some(2))
    );
    assert_eq!(fb["conversion_rate"], 0.5);
    assert_eq!(fb["display_code"], "SRC-02");
    assert_eq!(
        row(&rows, "01")["conversion_rate"],
        0.0,
        "no visits, no division"
    );
    let (_, first) = org.get("/api/v1/reports/sources?touch=first").await;
    assert_eq!(row(&first, "02")["leads"], 1);
    assert_eq!(row(&first, "03")["leads"], 1);
    let (_, channels) = org.get("/api/v1/reports/channels").await;
    let social = channels
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel_category"] == "paid_social")
        .unwrap();
    assert_eq!(social["leads"], 2);
    let (_, future) = org.get("/api/v1/reports/sources?from=2999-01-01").await;
    assert_eq!(row(&future, "02")["leads"], 0);
    let (status, _) = org.get("/api/v1/reports/sources?touch=middle").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = org.get("/api/v1/reports/sources?widget=07").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn the_timeseries_has_a_row_per_day_and_source(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    org.create_source("01", "Facebook Ads", "paid_social").await;
    org.create_source("01", "Yard Signs", "print_outdoor").await;
    traffic(&app, &org).await;
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let (_, days) = org.get("/api/v1/reports/timeseries").await;
    let fb = days
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source_code"] == "02")
        .unwrap();
    assert_eq!(
        (
            fb["period"].as_str(),
            fb["visits"].as_u64(),
            fb["leads"].as_u64()
        ),
        (Some(today.as_str()), Some(4), Some(2))
    );
    let (_, weeks) = org.get("/api/v1/reports/timeseries?interval=week").await;
    let monday = weeks[0]["period"].as_str().unwrap();
    let date = time::Date::parse(
        monday,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .unwrap();
    assert_eq!(date.weekday(), time::Weekday::Monday);
}

async fn the_csv_export_neutralises_formula_cells(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    org.create_source("01", "=HYPERLINK(\"http://evil.example\")", "other")
        .await;
    org.create_source("01", "+Leads, Inc", "other").await;
    let res = app
        .client
        .get(format!("{}/api/v1/reports/sources.csv", app.base))
        .bearer_auth(&org.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = res.text().await.unwrap();
    assert!(csv.starts_with("widget_version,source_code,display_code,source_name"));
    assert!(
        csv.contains("\"'=HYPERLINK(\"\"http://evil.example\"\")\""),
        "{csv}"
    );
    assert!(csv.contains("\"'+Leads, Inc\""), "{csv}");
    assert!(
        !csv.lines()
            .any(|l| l.split(',').any(|c| c.starts_with('=')))
    );
}

async fn another_tenants_traffic_never_shows_in_a_report(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let acme = app.create_org("starter").await;
    let rival = app.create_org("starter").await;
    acme.create_source("01", "Facebook Ads", "paid_social")
        .await;
    acme.create_source("01", "Yard Signs", "print_outdoor")
        .await;
    traffic(&app, &acme).await;
    let (_, rows) = rival.get("/api/v1/reports/sources").await;
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(
        (rows[0]["visits"].as_u64(), rows[0]["leads"].as_u64()),
        (Some(0), Some(0))
    );
}

async fn the_organizations_time_zone_decides_its_days(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    org.create_source("01", "Facebook Ads", "paid_social").await;
    org.create_source("01", "Yard Signs", "print_outdoor").await;
    let (status, err) = org
        .patch("/api/v1/organization", json!({"time_zone": "Mars/Olympus"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("IANA"));
    traffic(&app, &org).await;
    // A zone far from UTC: the leads of now fall on its own date, which the daily series,
    // and a date filter, both use.
    for zone in ["Pacific/Kiritimati", "Pacific/Pago_Pago"] {
        let (status, body) = org
            .patch("/api/v1/organization", json!({"time_zone": zone}))
            .await;
        assert_eq!(
            (status, body["time_zone"].as_str()),
            (StatusCode::OK, Some(zone))
        );
        let tz = leadtrail::domain::time_zone::OrgTimeZone::parse(zone).unwrap();
        let local_today = tz.date_of(leadtrail::store::now_ms()).to_string();
        let (_, days) = org.get("/api/v1/reports/timeseries").await;
        let fb = days
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["source_code"] == "02")
            .cloned()
            .unwrap();
        assert_eq!(fb["period"], local_today.as_str(), "{zone}: {days}");
        assert_eq!(fb["leads"], 2);
        let (_, rows) = org
            .get(&format!("/api/v1/reports/sources?from={local_today}"))
            .await;
        assert_eq!(row(&rows, "02")["leads"], 2, "{zone}");
        let (_, rows) = org
            .get(&format!("/api/v1/reports/sources?to={local_today}"))
            .await;
        assert_eq!(row(&rows, "02")["leads"], 0, "{zone}: to is exclusive");
    }
}

on_both_backends!(
    the_organizations_time_zone_decides_its_days,
    the_source_report_counts_visits_leads_and_conversion_per_source,
    the_timeseries_has_a_row_per_day_and_source,
    the_csv_export_neutralises_formula_cells,
    another_tenants_traffic_never_shows_in_a_report,
);

/// PostgreSQL only: writers there append report changes (SQLite adds to the rollups directly).
mod postgres_only {
    use std::time::{Duration, Instant};

    use sqlx::{Connection, PgConnection};

    use super::traffic;
    use crate::common::{Backend, TestDb};
    use crate::helpers::TestApp;

    /// A serving node folds the changes its captures append into the rollups by itself, so
    /// they never pile up: soon none are left and the rollups hold the counts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_serving_node_folds_the_report_changes_its_captures_append() {
        let Some(db) = TestDb::new(Backend::Postgres).await else {
            return;
        };
        let mut conn = PgConnection::connect(db.url()).await.unwrap();
        let app = TestApp::spawn(db).await;
        let org = app.create_org("starter").await;
        org.create_source("01", "Facebook Ads", "paid_social").await;
        org.create_source("01", "Yard Signs", "print_outdoor").await;
        traffic(&app, &org).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (changes, rollups): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM rollup_deltas), (SELECT COUNT(*) FROM report_rollups)",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap();
            if changes == 0 && rollups > 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{changes} changes left unfolded, {rollups} rollup rows"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
