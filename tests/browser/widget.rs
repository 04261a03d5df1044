//! The embedded widget on a subscriber's page, used the way a homeowner uses it.

use std::time::{Duration, Instant};

use axum::response::Html;
use axum::routing::get;
use fantoccini::Locator;
use serde_json::Value;

use crate::common::TestDb;
use crate::harness::Browser;
use crate::helpers::TestApp;

/// The subscriber's own site, on another origin than leadtrail: a plain page with the snippet.
pub(crate) async fn host_page(leadtrail: &str, public_key: &str, widget: &str) -> String {
    let html = format!(
        "<!doctype html><html><head><title>Acme Roofing</title>\
         <style>body{{font-family:serif}} input{{border:5px solid red}}</style></head>\
         <body><h1>Acme Roofing</h1><p>Storm damage? We can help.</p>\
         <script src=\"{leadtrail}/widget.js\" data-key=\"{public_key}\" data-widget=\"{widget}\" async></script>\
         </body></html>"
    );
    let app = axum::Router::new().route("/", get(move || async move { Html(html) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

pub(crate) async fn type_into(browser: &Browser, name: &str, text: &str) {
    let input = browser
        .in_shadow("[data-leadtrail]", &format!("[name='{name}']"))
        .await;
    input.send_keys(text).await.unwrap();
}

async fn choose(browser: &Browser, name: &str, value: &str) {
    let select = browser
        .in_shadow("[data-leadtrail]", &format!("select[name='{name}']"))
        .await;
    select.select_by_value(value).await.unwrap();
}

pub(crate) async fn continue_to(browser: &Browser, next_field: &str) {
    let root = browser.shadow_root("[data-leadtrail]").await;
    root.find(Locator::Css("button.primary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.in_shadow("[data-leadtrail]", next_field).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_homeowner_completes_the_widget_from_a_tracking_url_and_the_lead_arrives_attributed() {
    let Some(db) = TestDb::new(crate::common::Backend::Sqlite).await else {
        return;
    };
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    let (_, source) = org.create_source("01", "Yard Signs", "print_outdoor").await;
    let tracking_url = source["tracking_url"].as_str().unwrap();
    let query = tracking_url.split_once('?').unwrap().1;
    let site = host_page(&app.base, org.body["public_key"].as_str().unwrap(), "01").await;

    // The yard sign's QR code leads here: the widget opens by itself.
    browser
        .client
        .goto(&format!("{site}/?{query}&utm_campaign=spring"))
        .await
        .unwrap();
    type_into(&browser, "street", "12 Oak Lane").await;
    type_into(&browser, "city", "Austin").await;
    type_into(&browser, "state", "TX").await;
    type_into(&browser, "postal_code", "78704").await;
    browser.screenshot("widget-step-1").await;
    continue_to(&browser, "select[name='roof_type']").await;

    choose(&browser, "roof_type", "replacement").await;
    choose(&browser, "material", "metal").await;
    choose(&browser, "stories", "2").await;
    choose(&browser, "urgency", "emergency").await;
    continue_to(&browser, "[name='first_name']").await;

    type_into(&browser, "first_name", "Maria").await;
    type_into(&browser, "last_name", "Garcia").await;
    type_into(&browser, "email", "maria@example.com").await;
    type_into(&browser, "phone", "(512) 555-0199").await;
    choose(&browser, "owner_occupied", "true").await;
    type_into(&browser, "home_sqft", "2200").await;
    continue_to(&browser, "select[name='contact_method']").await;
    let estimate = browser
        .in_shadow("[data-leadtrail]", ".estimate")
        .await
        .text()
        .await
        .unwrap();
    assert!(estimate.starts_with("Estimated cost: $"), "{estimate}");
    browser.screenshot("widget-step-4-estimate").await;

    choose(&browser, "contact_method", "text").await;
    choose(&browser, "contact_time", "evening").await;
    let root = browser.shadow_root("[data-leadtrail]").await;
    root.find(Locator::Css("button.primary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The dialog is rendered anew for the thank-you: look the title up each time (a held
    // element would go stale when it is replaced).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let title = browser.in_shadow("[data-leadtrail]", "#lt-title").await;
        if title.text().await.is_ok_and(|t| t == "Thank you!") {
            break;
        }
        assert!(Instant::now() < deadline, "never thanked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser.screenshot("widget-done").await;

    // The lead is there, attributed to the yard sign, and enriched.
    let deadline = Instant::now() + Duration::from_secs(15);
    let lead: Value = loop {
        let (_, page) = org.get("/api/v1/leads").await;
        let lead = page["leads"][0].clone();
        if lead["enrichment"].is_object() && lead["status"] == "contact_info_provided" {
            break lead;
        }
        assert!(Instant::now() < deadline, "lead never completed: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(lead["source_tracking"]["source_code"], "02");
    assert_eq!(lead["source_tracking"]["source_label"], "Yard Signs");
    assert_eq!(lead["source_tracking"]["widget_version"], "01");
    assert_eq!(lead["raw_params"]["utm"]["utm_campaign"], "spring");
    assert_eq!(
        lead["first_touch"]["source_code"], "02",
        "first touch remembered"
    );
    assert_eq!(lead["personal"]["phone"], "5125550199");
    assert_eq!(lead["contact_preference"]["contact_method"], "text");
    assert!(
        lead["enrichment"]["estimate"]["price_low"]
            .as_u64()
            .unwrap()
            > 0
    );
    // The page view was counted too: a visit of the yard sign (the beacon is buffered ≤ 1 s).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, report) = org.get("/api/v1/reports/sources").await;
        let yard = report
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["source_code"] == "02")
            .cloned()
            .unwrap_or_default();
        if yard["visits"].as_u64().unwrap_or(0) >= 1 {
            assert_eq!(yard["leads"], 1, "{yard}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the visit was never counted: {report}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.close().await;
}

/// "How did you hear about us?" from the homeowner's side: asked in step 3 in the brand's
/// colours, answered with "Other" and a few words, kept on the lead, carried by its events
/// next to the click id, and counted in the tracked × self-reported report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_homeowners_own_answer_travels_from_the_widget_to_the_event_and_the_report() {
    let Some(db) = TestDb::new(crate::common::Backend::Sqlite).await else {
        return;
    };
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let app = TestApp::spawn_with(db, |c| c.allow_private_webhook_targets = true).await;
    let org = app.create_org("starter").await;
    let (_, source) = org.create_source("01", "Google Ads", "paid_search").await;
    let query = source["tracking_url"]
        .as_str()
        .unwrap()
        .split_once('?')
        .unwrap()
        .1
        .to_owned();
    let (status, _) = org
        .patch(
            "/api/v1/widgets/01",
            serde_json::json!({"self_report": {"enabled": true, "choices": ["Yard sign", "Radio"]}}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let receiver = crate::receiver::Receiver::ok().await;
    let (status, _) = org
        .post(
            "/api/v1/webhooks",
            serde_json::json!({"url": receiver.url, "events": ["lead.enriched"]}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED);
    let site = host_page(&app.base, org.body["public_key"].as_str().unwrap(), "01").await;
    browser
        .client
        .goto(&format!("{site}/?{query}&gclid=Cj0-browser"))
        .await
        .unwrap();
    // The organization's colour is on the primary button, in the widget's shadow root (looked
    // up each time: the widget may render its dialog again when its settings arrive).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let button = browser
            .in_shadow("[data-leadtrail]", "button.primary")
            .await;
        let background = button
            .css_value("background-color")
            .await
            .unwrap_or_default();
        // The test organization's brand colour, #1A73E8.
        if ["rgb(26, 115, 232)", "rgba(26, 115, 232, 1)"].contains(&background.as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "never branded: {background}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let progress = browser
        .in_shadow("[data-leadtrail]", "[role='progressbar']")
        .await;
    assert_eq!(
        progress.attr("aria-valuenow").await.unwrap().as_deref(),
        Some("1")
    );
    type_into(&browser, "street", "12 Oak Lane").await;
    type_into(&browser, "city", "Austin").await;
    type_into(&browser, "state", "TX").await;
    type_into(&browser, "postal_code", "78704").await;
    continue_to(&browser, "select[name='roof_type']").await;
    choose(&browser, "roof_type", "repair").await;
    choose(&browser, "material", "metal").await;
    choose(&browser, "stories", "1").await;
    choose(&browser, "urgency", "emergency").await;
    continue_to(&browser, "[name='first_name']").await;
    let progress = browser
        .in_shadow("[data-leadtrail]", "[role='progressbar']")
        .await;
    assert_eq!(
        progress.attr("aria-valuenow").await.unwrap().as_deref(),
        Some("3")
    );
    type_into(&browser, "first_name", "Maria").await;
    type_into(&browser, "last_name", "Garcia").await;
    type_into(&browser, "email", "maria@example.com").await;
    type_into(&browser, "phone", "(512) 555-0199").await;
    choose(&browser, "owner_occupied", "true").await;
    // The question is labelled for screen readers; "Other" reveals a text box.
    let label = browser
        .in_shadow("[data-leadtrail]", "label[for='lt-heard_about']")
        .await;
    assert_eq!(label.text().await.unwrap(), "How did you hear about us?");
    choose(&browser, "heard_about", "Other").await;
    type_into(&browser, "heard_about_other", "church bulletin").await;
    browser.screenshot("widget-step-3-heard-about").await;
    continue_to(&browser, "select[name='contact_method']").await;

    let got = receiver.wait_for("lead.enriched", |r| !r.is_empty()).await;
    let data = &got[0].json["data"];
    assert_eq!(
        data["self_reported"],
        serde_json::json!({"choice": "Other", "other": "church bulletin"}),
        "{data}"
    );
    assert_eq!(data["attribution"]["gclid"], "Cj0-browser");
    assert_eq!(data["source_tracking"]["source_label"], "Google Ads");
    let (_, cells) = org.get("/api/v1/reports/self-reported").await;
    assert_eq!(
        cells,
        serde_json::json!([{"widget_version": "01", "source_code": "02",
            "source_name": "Google Ads", "heard_about": "Other", "leads": 1}])
    );
    browser.close().await;
}
