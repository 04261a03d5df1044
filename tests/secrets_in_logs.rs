//! No secret ever reaches the log. The real binary runs with verbose logging (`debug`, and
//! `trace` for leadtrail itself) through every flow that creates or carries a secret: the
//! operator token, an organization's API key, the owner's password, a dashboard session and
//! its form token, an invite link, a webhook signing secret before and after rotation, a
//! capture token, signed deliveries, the metrics token. Then the whole log is searched for each
//! of those values.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;
#[allow(dead_code, reason = "this test uses a part of the shared receiver")]
#[path = "api/receiver.rs"]
mod receiver;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_leadtrail");
const OPERATOR: &str = "logs-test-operator-token-0123456789ab";
const METRICS: &str = "logs-test-metrics-token-0123456789abc";
const PASSWORD: &str = "correct horse battery staple";

/// The cookie `name`'s value among a response's `Set-Cookie` headers.
fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|rest| rest.split(';').next())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// A form body, as a browser posts it.
fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The value of the first `name="_csrf" value="…"` field of a page.
fn form_token(page: &str) -> String {
    let at = page.find("name=\"_csrf\" value=\"").expect("a form") + 20;
    page[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("service.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(BIN)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env(
            "LEADTRAIL_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("logs.db").display()),
        )
        .env("LEADTRAIL_ADMIN_TOKEN", OPERATOR)
        .env("LEADTRAIL_METRICS_TOKEN", METRICS)
        .env("LEADTRAIL_ALLOW_PRIVATE_WEBHOOK_TARGETS", "true")
        .env("LEADTRAIL_PUBLIC_BASE_URL", &base)
        .env("RUST_LOG", "debug,leadtrail=trace")
        .stdout(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .stderr(Stdio::from(
            std::fs::OpenOptions::new()
                .append(true)
                .open(&log_path)
                .unwrap(),
        ))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{base}/healthz")).await.is_err() {
        assert!(Instant::now() < deadline, "the service never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut secrets: Vec<(&str, String)> = vec![
        ("operator token", OPERATOR.into()),
        ("metrics token", METRICS.into()),
        ("password", PASSWORD.into()),
    ];

    // The operator creates an organization with its owner.
    let org: Value = http
        .post(format!("{base}/api/v1/organizations"))
        .bearer_auth(OPERATOR)
        .json(&json!({"name": "Acme Roofing", "tier": "premium",
            "website_url": "https://acme.example", "brand_color": "#1A73E8",
            "owner_email": "owner@acme.example", "owner_password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = org["api_key"].as_str().expect("an API key").to_owned();
    secrets.push(("API key", key.clone()));
    let wrong = http
        .post(format!("{base}/api/v1/organizations"))
        .bearer_auth("a-wrong-operator-token-that-is-long-enough")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    // A webhook endpoint: its secret, rotated.
    let receiver = receiver::Receiver::start(Arc::new(|_, _| 200)).await;
    let endpoint: Value = http
        .post(format!("{base}/api/v1/webhooks"))
        .bearer_auth(&key)
        .json(&json!({"url": receiver.url, "events": ["lead.address_preview", "lead.enriched"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    secrets.push((
        "webhook secret",
        endpoint["secret"].as_str().unwrap().into(),
    ));
    let id = endpoint["id"].as_str().unwrap();
    let rotated: Value = http
        .post(format!("{base}/api/v1/webhooks/{id}/rotate-secret"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    if let Some(s) = rotated["secret"].as_str() {
        secrets.push(("rotated webhook secret", s.into()));
    }

    // A homeowner: a capture token, steps, enrichment, signed deliveries.
    let created: Value = http
        .post(format!("{base}/c/v1/leads"))
        .header("Idempotency-Key", "logs-1")
        .json(
            &json!({"public_key": org["public_key"], "address": {"street": "1 Main St",
            "city": "Austin", "state": "TX", "postal_code": "78701"}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let lead = created["lead_id"].as_str().unwrap().to_owned();
    let token = created["capture_token"].as_str().unwrap().to_owned();
    secrets.push(("capture token", token.clone()));
    for step in [
        json!({"step": "project_details", "roof_type": "replacement",
            "material": "asphalt_shingle", "stories": 2, "urgency": "within_1_month"}),
        json!({"step": "personal_info", "first_name": "Ann", "last_name": "Lee",
            "email": "ann@example.com", "phone": "(512) 555-0100", "owner_occupied": true}),
    ] {
        let res = http
            .patch(format!("{base}/c/v1/leads/{lead}"))
            .bearer_auth(&token)
            .json(&step)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    receiver
        .wait_for("the enriched lead", |r| {
            r.iter().any(|x| x.json["type"] == "lead.enriched")
        })
        .await;

    // The owner logs in (a wrong password first), invites someone, and the link is opened.
    let login = http.get(format!("{base}/login")).send().await.unwrap();
    let login_csrf = set_cookie(&login, "lt_login_csrf").unwrap();
    secrets.push(("login form token", login_csrf.clone()));
    for password in ["not the password at all", PASSWORD] {
        let res = http
            .post(format!("{base}/login"))
            .header(COOKIE, format!("lt_login_csrf={login_csrf}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("email", "owner@acme.example"),
                ("password", password),
                ("_csrf", login_csrf.as_str()),
            ]))
            .send()
            .await
            .unwrap();
        if password == PASSWORD {
            assert_eq!(res.status(), 303);
            let session = set_cookie(&res, "lt_session").unwrap();
            secrets.push(("session token", session));
        }
    }
    let session = secrets.last().unwrap().1.clone();
    let team = http
        .get(format!("{base}/app/team"))
        .header(COOKIE, format!("lt_session={session}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = form_token(&team);
    secrets.push(("session form token", csrf.clone()));
    let invited = http
        .post(format!("{base}/app/team/invite"))
        .header(COOKIE, format!("lt_session={session}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("email", "new@acme.example"),
            ("role", "member"),
            ("_csrf", csrf.as_str()),
        ]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = invited.find("/invite/").expect("an invite link") + 8;
    let invite = invited[at..].split('"').next().unwrap().to_owned();
    secrets.push(("invite token", invite.clone()));
    let opened = http
        .get(format!("{base}/invite/{invite}"))
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 200);
    let metrics = http
        .get(format!("{base}/metrics"))
        .bearer_auth(METRICS)
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);

    // Stop the service (it logs its shutdown) and read everything it wrote.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("leadtrail is serving"), "the log was captured");
    // Verbose enough to matter: every request and every delivery attempt is in it.
    assert!(
        log.contains("/invite/{token}"),
        "requests are logged by route"
    );
    assert!(log.contains("finished processing request"), "{log}");
    let leaked: Vec<&str> = secrets
        .iter()
        .filter(|(_, value)| log.contains(value.as_str()))
        .map(|(what, _)| *what)
        .collect();
    println!(
        "{} secrets checked against {} log lines",
        secrets.len(),
        log.lines().count()
    );
    assert!(leaked.is_empty(), "in the log: {leaked:?}");
}
