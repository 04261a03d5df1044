//! Lead sources over HTTP: every rule of the spec, as a subscriber meets it.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::TestDb;
use crate::helpers::{TestApp, error_code};
use crate::on_both_backends;

async fn a_new_source_gets_the_next_code_and_a_tracking_url(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    let (status, s) = org.create_source("01", "Facebook Ads", "paid_social").await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    assert_eq!(s["code"], "02");
    assert_eq!(s["display_code"], "SRC-02");
    assert_eq!(s["name"], "Facebook Ads");
    assert_eq!(s["channel_category"], "paid_social");
    assert_eq!(s["status"], "active");
    assert_eq!(s["is_system"], false);
    assert_eq!(s["qr_generated"], false);
    assert_eq!(s["lead_count"], 0);
    assert_eq!(
        s["tracking_url"],
        "https://acme-roofing.example/?roof-estimate=open&v=01&s=02"
    );
}

async fn the_system_source_is_listed_first_and_refuses_changes(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    let (_, list) = org.get("/api/v1/widgets/01/sources").await;
    assert_eq!(list[0]["display_code"], "SRC-01");
    assert_eq!(list[0]["name"], "Website");
    assert_eq!(list[0]["is_system"], true);
    let (status, err) = org
        .patch("/api/v1/widgets/01/sources/01", json!({"name": "Home"}))
        .await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::CONFLICT, "system_source_immutable")
    );
    let (status, err) = org
        .post_empty("/api/v1/widgets/01/sources/SRC-01/archive")
        .await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::CONFLICT, "system_source_immutable")
    );
}

async fn edit_archive_and_restore_move_a_source_between_lists(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    org.create_source("01", "Facebook", "paid_social").await;
    let (status, s) = org
        .patch(
            "/api/v1/widgets/01/sources/02",
            json!({"name": "Meta Ads", "channel_category": "display"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (s["name"].as_str(), s["code"].as_str()),
        (Some("Meta Ads"), Some("02"))
    );
    let (status, s) = org
        .post_empty("/api/v1/widgets/01/sources/02/archive")
        .await;
    assert_eq!(
        (status, s["status"].as_str()),
        (StatusCode::OK, Some("archived"))
    );
    let (_, active) = org.get("/api/v1/widgets/01/sources").await;
    assert_eq!(active.as_array().unwrap().len(), 1);
    let (_, archived) = org.get("/api/v1/widgets/01/sources?status=archived").await;
    assert_eq!(archived[0]["name"], "Meta Ads");
    let (_, all) = org.get("/api/v1/widgets/01/sources?status=all").await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    let (status, s) = org
        .post_empty("/api/v1/widgets/01/sources/02/restore")
        .await;
    assert_eq!(
        (status, s["status"].as_str()),
        (StatusCode::OK, Some("active"))
    );
    let (status, _) = org.get("/api/v1/widgets/01/sources?status=deleted").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn the_eleventh_active_source_is_refused_with_source_limit_reached(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    for i in 0..9 {
        let (status, _) = org
            .create_source("01", &format!("Source {i}"), "other")
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, err) = org.create_source("01", "One too many", "other").await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::CONFLICT, "source_limit_reached")
    );
    org.post_empty("/api/v1/widgets/01/sources/03/archive")
        .await;
    org.create_source("01", "Replacement", "other").await;
    let (status, err) = org
        .post_empty("/api/v1/widgets/01/sources/03/restore")
        .await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::CONFLICT, "source_limit_reached")
    );
}

async fn names_are_unique_ignoring_case_and_must_fit_the_rules(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    org.create_source("01", "Yard Signs", "print_outdoor").await;
    let (status, err) = org
        .create_source("01", "  yard SIGNS ", "print_outdoor")
        .await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::CONFLICT, "duplicate_source_name")
    );
    let (status, s) = org.create_source("01", &"ü".repeat(50), "other").await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    for bad in ["", "   ", &"x".repeat(51), "Tab\there"] {
        let (status, err) = org.create_source("01", bad, "other").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        assert_eq!(err["error"]["field"], "name");
    }
}

async fn unknown_and_reserved_categories_are_refused(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    for bad in ["tiktok", "website", "Paid Social", ""] {
        let (status, err) = org.create_source("01", "X", bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        assert_eq!(err["error"]["field"], "channel_category");
    }
}

async fn changing_the_site_url_changes_every_tracking_url_of_the_widget(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    org.create_source("01", "Google Ads", "paid_search").await;
    org.patch(
        "/api/v1/widgets/01",
        json!({"site_url": "https://acme.example/quote?lang=en"}),
    )
    .await;
    let (_, list) = org.get("/api/v1/widgets/01/sources").await;
    assert_eq!(
        list[1]["tracking_url"],
        "https://acme.example/quote?lang=en&roof-estimate=open&v=01&s=02"
    );
}

async fn another_tenants_source_is_not_found(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let acme = app.create_org("starter").await;
    let rival = app.create_org("starter").await;
    acme.create_source("01", "Acme secret", "email").await;
    let (status, err) = rival
        .patch("/api/v1/widgets/01/sources/02", json!({"name": "x"}))
        .await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, _) = rival
        .post_empty("/api/v1/widgets/01/sources/02/archive")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = rival.get("/api/v1/widgets/01/sources?status=all").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}

async fn twenty_concurrent_creates_over_http_yield_nine_sources_and_eleven_409s(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    let names: Vec<String> = (0..20).map(|i| format!("Race {i}")).collect();
    let requests = names
        .iter()
        .map(|name| org.create_source("01", name, "other"));
    let results = futures::future::join_all(requests).await;
    let mut codes = BTreeSet::new();
    let mut refused = 0;
    for (status, body) in results {
        match status {
            StatusCode::CREATED => assert!(codes.insert(body["code"].as_str().unwrap().to_owned())),
            StatusCode::CONFLICT => {
                assert_eq!(error_code(&body), "source_limit_reached");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let expected: BTreeSet<String> = (2..=10).map(|n| format!("{n:02}")).collect();
    assert_eq!(codes, expected);
    assert_eq!(refused, 11);
}

on_both_backends!(
    a_new_source_gets_the_next_code_and_a_tracking_url,
    the_system_source_is_listed_first_and_refuses_changes,
    edit_archive_and_restore_move_a_source_between_lists,
    the_eleventh_active_source_is_refused_with_source_limit_reached,
    names_are_unique_ignoring_case_and_must_fit_the_rules,
    unknown_and_reserved_categories_are_refused,
    changing_the_site_url_changes_every_tracking_url_of_the_widget,
    another_tenants_source_is_not_found,
    twenty_concurrent_creates_over_http_yield_nine_sources_and_eleven_409s,
);
