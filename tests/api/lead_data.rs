//! A business's data in and out: the streamed lead export (CSV and JSON Lines), the import
//! that reads it back (dry run, refusals, all or nothing, no webhook storm), a homeowner's
//! erasure and data export, the raw-data retention setting — each kept to its organization.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::capture::capture;
use crate::common::{Backend, TestDb};
use crate::helpers::{Tenant, TestApp, error_code};
use crate::multi_touch::{beacon, eventually};
use crate::on_both_backends;
use crate::receiver::Receiver;

/// The homeowner whose data is erased: values distinctive enough to search a database file for.
const FIRST: &str = "Zebulon";
const LAST: &str = "Quagmire";
const EMAIL: &str = "zeb.quagmire@example.com";
const PHONE: &str = "(512) 555-0199";
const PHONE_STORED: &str = "5125550199";
const STREET: &str = "742 Evergreen Terrace";

/// A homeowner through the widget: steps 1 to `steps`, with a visitor id and campaign tags.
/// Returns the lead id and its capture token.
#[allow(clippy::too_many_arguments)]
async fn homeowner(
    app: &TestApp,
    org: &Tenant<'_>,
    source: &str,
    steps: usize,
    who: (&str, &str, &str, &str),
    street: &str,
    utm_source: &str,
    visitor: &str,
) -> (String, String) {
    let pk = org.body["public_key"].as_str().unwrap();
    let (status, created) = capture(
        app,
        Method::POST,
        "/c/v1/leads",
        None,
        None,
        &json!({"public_key": pk, "widget": "01", "v": "01", "s": source,
            "page_url": "https://acme-roofing.example/?utm_source=x", "visitor_id": visitor,
            "utm": {"utm_source": utm_source, "utm_medium": "cpc"},
            "address": {"street": street, "city": "Austin", "state": "TX", "postal_code": "78701"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["lead_id"].as_str().unwrap().to_owned();
    let token = created["capture_token"].as_str().unwrap().to_owned();
    let bodies = [
        json!({"step": "project_details", "roof_type": "replacement",
            "material": "metal", "stories": 2, "urgency": "within_1_month"}),
        json!({"step": "personal_info", "first_name": who.0, "last_name": who.1,
            "email": who.2, "phone": who.3, "owner_occupied": source != "03", "home_sqft": 2200}),
        json!({"step": "contact_preference", "contact_method": "phone", "contact_time": "morning"}),
    ];
    for (i, body) in bodies.iter().take(steps.saturating_sub(1)).enumerate() {
        let key = format!("{id}-step-{i}");
        let path = format!("/c/v1/leads/{id}");
        let (status, reply) =
            capture(app, Method::PATCH, &path, Some(&token), Some(&key), body).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
    }
    (id, token)
}

async fn text(org: &Tenant<'_>, path: &str) -> (StatusCode, String, String) {
    let res = org
        .app
        .client
        .get(format!("{}{path}", org.app.base))
        .bearer_auth(&org.key)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let kind = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, kind, res.text().await.unwrap())
}

async fn import(org: &Tenant<'_>, query: &str, csv: &str) -> (StatusCode, Value) {
    org.app
        .raw(
            Method::POST,
            &format!("/api/v1/leads/import{query}"),
            Some(&org.key),
            "text/csv",
            csv.as_bytes().to_vec(),
        )
        .await
}

/// The same catalog on any organization: Yard Signs (02), Mailers (03, archived later),
/// Facebook Ads (04).
async fn catalog(org: &Tenant<'_>) {
    for (name, category) in [
        ("Yard Signs", "print_outdoor"),
        ("Mailers", "direct_mail"),
        ("Facebook Ads", "paid_social"),
    ] {
        let (status, body) = org.create_source("01", name, category).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

/// The lead-derived columns of the source report (visits are not leads: not exported).
fn lead_numbers(report: &Value) -> Vec<Value> {
    let mut rows: Vec<Value> = report
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            json!([
                r["source_code"],
                r["leads"],
                r["first_touch_leads"],
                r["reached_project"],
                r["reached_personal"],
                r["contact_requested"],
                r["enriched"],
                r["average_score"],
                r["pipeline_value"],
                r["corrected"],
                r["won"],
                r["revenue"]
            ])
        })
        .collect();
    rows.sort_by_key(|r| r[0].as_str().unwrap_or_default().to_owned());
    rows
}

async fn an_export_streams_every_lead_and_imports_back_to_the_same_reports(db: TestDb) {
    let app = TestApp::spawn_with(db, |c| c.allow_private_webhook_targets = true).await;
    let org = app.create_org("starter").await;
    catalog(&org).await;
    let mut ids = Vec::new();
    for (i, (source, steps)) in [
        ("02", 4),
        ("02", 3),
        ("03", 3),
        ("04", 2),
        ("01", 1),
        ("04", 3),
    ]
    .into_iter()
    .enumerate()
    {
        let email = format!("owner{i}@example.com");
        let who = ("Ann", "Lee", email.as_str(), "+1 512 555 0100");
        // A campaign tag a spreadsheet would run as a formula.
        let tag = if i == 0 {
            "=HYPERLINK(\"http://evil\")"
        } else {
            "google"
        };
        let (id, _) = homeowner(
            &app,
            &org,
            source,
            steps,
            who,
            "1 Main St",
            tag,
            &format!("v{i}"),
        )
        .await;
        ids.push(id);
    }
    let (status, _) = org
        .patch(
            &format!("/api/v1/leads/{}/outcome", ids[0]),
            json!({"outcome": "won", "value": 1_250_000}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = org
        .patch(
            &format!("/api/v1/leads/{}/outcome", ids[2]),
            json!({"outcome": "lost", "lost_reason": "price"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = org
        .post(
            &format!("/api/v1/leads/{}/source", ids[3]),
            json!({"source": "02", "reason": "caller said yard sign"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = org
        .post_empty("/api/v1/widgets/01/sources/03/archive")
        .await;
    assert_eq!(status, StatusCode::OK);
    eventually(
        &org,
        "/api/v1/leads?status=personal_info_and_estimate_provided",
        |b| {
            b["leads"]
                .as_array()
                .is_some_and(|l| l.iter().all(|l| l["enrichment"].is_object()))
        },
    )
    .await;
    eventually(&org, "/api/v1/leads?status=contact_info_provided", |b| {
        b["leads"]
            .as_array()
            .is_some_and(|l| l.iter().all(|l| l["enrichment"].is_object()))
    })
    .await;

    // CSV: a header, a line per lead, formulas neutralised.
    let (status, kind, csv) = text(&org, "/api/v1/leads/export.csv").await;
    assert_eq!(status, StatusCode::OK, "{csv}");
    assert!(kind.starts_with("text/csv"), "{kind}");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), ids.len());
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let exported: Vec<&str> = records.iter().map(|r| &r[column("id")]).collect();
    for id in &ids {
        assert!(exported.contains(&id.as_str()), "{id} not exported");
    }
    let first = records.iter().find(|r| r[column("id")] == ids[0]).unwrap();
    assert_eq!(&first[column("utm_source")], "'=HYPERLINK(\"http://evil\")");
    assert_eq!(&first[column("outcome")], "won");
    assert_eq!(&first[column("outcome_value")], "1250000");
    assert_eq!(&first[column("source_name")], "Yard Signs");
    assert_eq!(&first[column("email")], "owner0@example.com");
    assert_eq!(&first[column("phone")], "'+15125550100");
    // The Leads filters apply; paging does not.
    let (_, _, yard) = text(&org, "/api/v1/leads/export.csv?source=02").await;
    assert_eq!(yard.lines().count(), 1 + 2, "{yard}");
    let (status, body) = org.get("/api/v1/leads/export.csv?limit=2").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );

    // JSON Lines: the lead objects of the API, one per line.
    let (status, kind, jsonl) = text(&org, "/api/v1/leads/export.jsonl").await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("application/jsonl"), "{kind}");
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), ids.len());
    let corrected = lines.iter().find(|l| l["id"] == ids[3].as_str()).unwrap();
    assert_eq!(corrected["corrected_source"]["source_code"], "02");
    assert_eq!(corrected["source_tracking"]["source_code"], "04");

    // Into a second organization with the same catalog: a dry run writes nothing.
    let copy = app.create_org("starter").await;
    catalog(&copy).await;
    copy.post_empty("/api/v1/widgets/01/sources/03/archive")
        .await;
    let receiver = Receiver::ok().await;
    let (status, endpoint) = copy
        .post(
            "/api/v1/webhooks",
            json!({"url": receiver.url, "events": ["lead.address_preview"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{endpoint}");
    let endpoint = endpoint["id"].as_str().unwrap().to_owned();
    let (status, dry) = import(&copy, "?dry_run=true", &csv).await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry, json!({"imported": ids.len(), "dry_run": true}));
    let (_, none) = copy.get("/api/v1/leads").await;
    assert_eq!(none["leads"], json!([]));
    let (status, done) = import(&copy, "", &csv).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["imported"], ids.len());

    let (_, original) = org.get("/api/v1/reports/sources").await;
    let (_, imported) = copy.get("/api/v1/reports/sources").await;
    assert_eq!(lead_numbers(&imported), lead_numbers(&original));
    for touch in ["first", "last"] {
        let (_, a) = org
            .get(&format!("/api/v1/reports/channels?touch={touch}"))
            .await;
        let (_, b) = copy
            .get(&format!("/api/v1/reports/channels?touch={touch}"))
            .await;
        let leads = |r: &Value| -> Vec<(Value, Value)> {
            r.as_array()
                .unwrap()
                .iter()
                .map(|c| (c["channel_category"].clone(), c["leads"].clone()))
                .collect()
        };
        assert_eq!(leads(&b), leads(&a), "{touch} touch");
    }
    let (_, page) = copy.get("/api/v1/leads?limit=200").await;
    for lead in page["leads"].as_array().unwrap() {
        assert_eq!(lead["record_source"], "import");
        assert!(
            !ids.contains(&lead["id"].as_str().unwrap().to_owned()),
            "a new id"
        );
    }
    let arrived = |page: &Value| -> Vec<String> {
        let mut at: Vec<String> = page["leads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["created_at"].as_str().unwrap().to_owned())
            .collect();
        at.sort();
        at
    };
    let (_, originals) = org.get("/api/v1/leads?limit=200").await;
    assert_eq!(
        arrived(&page),
        arrived(&originals),
        "the original arrival times"
    );
    // No webhook storm: imported leads sent nothing.
    let (_, log) = copy
        .get(&format!("/api/v1/webhooks/{endpoint}/deliveries"))
        .await;
    assert_eq!(log, json!([]));

    // Asked for, an import sends each lead's events.
    let one: String = csv.lines().take(2).collect::<Vec<_>>().join("\n");
    let (status, _) = import(&copy, "?events=true", &one).await;
    assert_eq!(status, StatusCode::OK);
    let (_, log) = copy
        .get(&format!("/api/v1/webhooks/{endpoint}/deliveries"))
        .await;
    let mut sent: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event_type"].as_str().unwrap())
        .collect();
    sent.sort_unstable();
    // The newest lead reached the contact step: its preview, and `lead.enriched`, which every
    // endpoint gets.
    assert_eq!(sent, vec!["lead.address_preview", "lead.enriched"], "{log}");

    // Refusals: every bad line listed, nothing written.
    let bad = format!(
        "{}\n{}\n{}\n{}",
        csv.lines().next().unwrap(),
        csv.lines().nth(1).unwrap(),
        csv.lines().nth(2).unwrap().replacen(",01,", ",07,", 1),
        csv.lines().nth(3).unwrap().replace("78701", "787")
    );
    let (_, before) = copy.get("/api/v1/leads?limit=200").await;
    let (status, refused) = import(&copy, "", &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(error_code(&refused), "lead_import_refused");
    let lines: Vec<i64> = refused["error"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines, vec![3, 4], "{refused}");
    let (_, after) = copy.get("/api/v1/leads?limit=200").await;
    assert_eq!(
        after["leads"].as_array().map(Vec::len),
        before["leads"].as_array().map(Vec::len)
    );
    let (status, refused) = import(&copy, "", "name,phone\nAnn,5125550100\n").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused["error"]["lines"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("created_at")
    );

    // Each organization exports its own leads only.
    let (_, _, theirs) = text(&copy, "/api/v1/leads/export.csv").await;
    for id in &ids {
        assert!(!theirs.contains(id.as_str()));
    }
    let (_, _, ours) = text(&org, "/api/v1/leads/export.csv").await;
    assert_eq!(ours.lines().count(), 1 + ids.len());
}

/// Every file and table a value could hide in: the SQLite files, or every PostgreSQL table's
/// rows as text. Returns where `needle` (any case) was found.
async fn held_anywhere(url: &str, needle: &str) -> Vec<String> {
    let needle_lower = needle.to_lowercase();
    let mut found = Vec::new();
    if let Some(path) = url.strip_prefix("sqlite://") {
        for file in [path.to_owned(), format!("{path}-wal")] {
            let Ok(bytes) = std::fs::read(&file) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes).to_lowercase();
            if text.contains(&needle_lower) {
                found.push(file);
            }
        }
        return found;
    }
    use sqlx::{Connection, Row};
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    for table in tables {
        let sql = format!("SELECT count(*) FROM \"{table}\" t WHERE lower(t::text) LIKE $1");
        let n: i64 = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(format!("%{needle_lower}%"))
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            found.push(table);
        }
    }
    found
}

async fn erasure_removes_a_homeowners_data_everywhere_and_keeps_the_reports(db: TestDb) {
    let backend = if db.url().starts_with("sqlite") {
        Backend::Sqlite
    } else {
        Backend::Postgres
    };
    let app = TestApp::spawn_with(db, |c| c.allow_private_webhook_targets = true).await;
    let org = app.create_org("starter").await;
    let rival = app.create_org("starter").await;
    catalog(&org).await;
    let receiver = Receiver::ok().await;
    let events = [
        "lead.address_preview",
        "lead.enriched",
        "lead.contact_requested",
        "lead.rental_alert",
    ];
    let (status, _) = org
        .post(
            "/api/v1/webhooks",
            json!({"url": receiver.url, "events": events}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let pk = org.body["public_key"].as_str().unwrap();
    // The visitor's page views: one from a campaign, one with the address in its query string.
    let campaign = json!({"utm_source": "google", "utm_campaign": "spring-roofs"});
    for (page, utm) in [
        (
            "https://acme-roofing.example/?s=02".to_owned(),
            campaign.clone(),
        ),
        (
            format!("https://acme-roofing.example/?email={EMAIL}"),
            json!({}),
        ),
    ] {
        beacon(
            &app,
            json!({"public_key": pk, "widget": "01", "v": "01", "s": "02", "page_url": page,
                "utm": utm, "visitor_id": "visitor-zeb"}),
        )
        .await;
    }
    // Visits are buffered: the lead gathers them once they are written.
    eventually(&org, "/api/v1/reports/sources", |rows| {
        rows.as_array().is_some_and(|r| {
            r.iter()
                .any(|r| r["source_code"] == "02" && r["visits"] == 2)
        })
    })
    .await;
    let who = (FIRST, LAST, EMAIL, PHONE);
    let (id, token) = homeowner(&app, &org, "03", 4, who, STREET, "google", "visitor-zeb").await;
    let (other, _) = homeowner(
        &app,
        &org,
        "02",
        4,
        ("Ann", "Lee", "ann@example.com", "5125550100"),
        "1 Main St",
        "google",
        "visitor-ann",
    )
    .await;
    // Another tenant's homeowner with the same e-mail is theirs alone.
    let (theirs, _) = homeowner(&app, &rival, "01", 3, who, STREET, "google", "visitor-zeb").await;
    eventually(&org, &format!("/api/v1/leads/{id}"), |l| {
        l["enrichment"].is_object()
    })
    .await;
    eventually(&org, &format!("/api/v1/leads/{other}"), |l| {
        l["enrichment"].is_object()
    })
    .await;
    // Every event delivered (its body logged) before the erasure.
    receiver
        .wait_for("both leads' events", |r| {
            r.iter().filter(|r| r.answered == 200).count() >= 7
        })
        .await;
    let (_, report_before) = org.get("/api/v1/reports/sources").await;

    // Everything held about the address, before.
    let (status, held) = org
        .get(&format!(
            "/api/v1/privacy/export?email={}",
            EMAIL.to_uppercase()
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{held}");
    let leads = held["leads"].as_array().unwrap();
    assert_eq!(leads.len(), 1, "the rival's homeowner is not ours: {held}");
    assert_eq!(leads[0]["id"], id.as_str());
    assert_eq!(leads[0]["personal"]["last_name"], LAST);
    assert!(leads[0]["events"].as_array().unwrap().len() >= 3, "{held}");
    let visits = leads[0]["visits"].as_array().unwrap();
    assert_eq!(visits.len(), 2, "{held}");
    // Each visit with its own tracking parameters, oldest first.
    assert_eq!(visits[0]["utm"], campaign, "{held}");
    assert_eq!(visits[1]["utm"], json!({}), "{held}");
    let (status, _) = org.get("/api/v1/privacy/export?email=").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Another tenant cannot erase it.
    let (status, _) = rival.post_empty(&format!("/api/v1/leads/{id}/erase")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, still) = org.get(&format!("/api/v1/leads/{id}")).await;
    assert_eq!(still["personal"]["email"], EMAIL);

    let (status, erased) = org.post_empty(&format!("/api/v1/leads/{id}/erase")).await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert_eq!(erased["erased_now"], true);
    // Its four events (address preview, enriched, rental alert, contact requested); a
    // delivery builds its body from the event, so there is nothing more to scrub there.
    assert_eq!(erased["scrubbed"]["events"], 4, "{erased}");
    assert_eq!(erased["scrubbed"]["visits"], 2);
    let lead = &erased["lead"];
    assert!(lead["erased_at"].is_string());
    assert_eq!(lead["personal"]["email"], "");
    assert_eq!(lead["address"]["street"], "");
    assert_eq!(lead["address"]["city"], "Austin");
    assert_eq!(lead["source_tracking"]["source_code"], "03");
    assert!(lead["enrichment"]["score"].is_number());
    let (status, again) = org.post_empty(&format!("/api/v1/leads/{id}/erase")).await;
    assert_eq!(
        (status, &again["erased_now"]),
        (StatusCode::OK, &json!(false))
    );
    // The capture token no longer opens the lead.
    let (status, _) = capture(&app, Method::PATCH, &format!("/c/v1/leads/{id}"), Some(&token), None,
        &json!({"step": "contact_preference", "contact_method": "email", "contact_time": "evening"})).await;
    assert!(status.is_client_error(), "{status}");

    // Reports are as they were; the other leads are untouched.
    let (_, report_after) = org.get("/api/v1/reports/sources").await;
    assert_eq!(lead_numbers(&report_after), lead_numbers(&report_before));
    let (_, ann) = org.get(&format!("/api/v1/leads/{other}")).await;
    assert_eq!(ann["personal"]["email"], "ann@example.com");
    let (_, rivals) = rival.get(&format!("/api/v1/leads/{theirs}")).await;
    assert_eq!(rivals["personal"]["email"], EMAIL);
    let (_, held) = org
        .get(&format!("/api/v1/privacy/export?email={EMAIL}"))
        .await;
    assert_eq!(held["leads"], json!([]));

    // Nothing of it is left in the database of this organization: the rival's copy is the
    // only one, so erase that too and search everything.
    let (status, _) = rival
        .post_empty(&format!("/api/v1/leads/{theirs}/erase"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let url = app.database_url().to_owned();
    for value in [FIRST, LAST, EMAIL, PHONE_STORED, STREET, "555-0199"] {
        let found = held_anywhere(&url, value).await;
        assert!(
            found.is_empty(),
            "{value} survived in {found:?} ({backend:?})"
        );
    }
    // Ann's data is still there (the search can find what is there).
    assert!(!held_anywhere(&url, "ann@example.com").await.is_empty());
}

async fn the_retention_setting_is_checked_against_the_lookback(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    let (status, body) = org.get("/api/v1/organization").await;
    assert_eq!(
        (status, &body["raw_data_retention_days"]),
        (StatusCode::OK, &Value::Null)
    );
    let (status, body) = org
        .patch(
            "/api/v1/organization",
            json!({"raw_data_retention_days": 400}),
        )
        .await;
    assert_eq!(
        (status, &body["raw_data_retention_days"]),
        (StatusCode::OK, &json!(400)),
        "{body}"
    );
    for (days, field) in [
        (10, "raw_data_retention_days"),
        (60, "raw_data_retention_days"),
        (89, "raw_data_retention_days"),
    ] {
        let (status, body) = org
            .patch(
                "/api/v1/organization",
                json!({"raw_data_retention_days": days}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{days}: {body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    // As long as the 90-day lookback is long enough.
    let (status, body) = org
        .patch(
            "/api/v1/organization",
            json!({"raw_data_retention_days": 90}),
        )
        .await;
    assert_eq!(
        (status, &body["raw_data_retention_days"]),
        (StatusCode::OK, &json!(90)),
        "{body}"
    );
    // The lookback cannot outgrow the retention either.
    let (status, _) = org
        .patch(
            "/api/v1/organization",
            json!({"raw_data_retention_days": 100}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/v1/reports/attribution",
            Some(&org.key),
            Some(&json!({"lookback_days": 120, "half_life_days": 7})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Other fields leave it alone; null clears it.
    let (_, body) = org
        .patch("/api/v1/organization", json!({"name": "Acme"}))
        .await;
    assert_eq!(body["raw_data_retention_days"], 100);
    let (_, body) = org
        .patch(
            "/api/v1/organization",
            json!({"raw_data_retention_days": null}),
        )
        .await;
    assert_eq!(body["raw_data_retention_days"], Value::Null);
}

/// A capture token is a secret the homeowner's browser holds: the database keeps only its
/// digest, on the lead and in the answer stored for a retried request alike (a retry gets a
/// fresh token, which replaces the first).
async fn a_capture_token_is_kept_nowhere_in_plain_text(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let org = app.create_org("starter").await;
    let pk = org.body["public_key"].as_str().unwrap();
    let body = json!({"public_key": pk, "widget": "01", "v": "01", "s": "01",
        "address": {"street": STREET, "city": "Austin", "state": "TX", "postal_code": "78701"}});
    let mut tokens = Vec::new();
    let mut leads = Vec::new();
    for _ in 0..2 {
        let (status, created) = capture(
            &app,
            Method::POST,
            "/c/v1/leads",
            None,
            Some("lead-7"),
            &body,
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        tokens.push(created["capture_token"].as_str().unwrap().to_owned());
        leads.push(created["lead_id"].clone());
    }
    assert_eq!(
        leads[0], leads[1],
        "the retry is answered with the same lead"
    );
    assert_ne!(tokens[0], tokens[1]);
    let url = app.database_url().to_owned();
    for token in &tokens {
        assert_eq!(
            held_anywhere(&url, token).await,
            Vec::<String>::new(),
            "{token}"
        );
    }
    // The fresh token is the one the lead's next step needs.
    let lead = leads[0].as_str().unwrap();
    let step = json!({"step": "project_details", "roof_type": "replacement",
        "material": "asphalt_shingle", "stories": 2, "urgency": "within_1_month"});
    let path = format!("/c/v1/leads/{lead}");
    let (status, _) = capture(&app, Method::PATCH, &path, Some(&tokens[0]), None, &step).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = capture(&app, Method::PATCH, &path, Some(&tokens[1]), None, &step).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

on_both_backends!(
    an_export_streams_every_lead_and_imports_back_to_the_same_reports,
    erasure_removes_a_homeowners_data_everywhere_and_keeps_the_reports,
    the_retention_setting_is_checked_against_the_lookback,
    a_capture_token_is_kept_nowhere_in_plain_text,
);
