//! The `leadtrail` binary as an operator meets it: default-config, migrate, serve, shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use leadtrail::domain::attribution::Arrival;
use std::process::{Command, Stdio};

use futures::StreamExt;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_leadtrail");

/// The standard output of a command that must have succeeded (its standard error if not).
fn stdout_of_success(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn default_config_prints_every_setting_as_valid_toml() {
    let out = Command::new(BIN).arg("default-config").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let parsed: toml::Table = toml::from_str(&text).unwrap();
    for key in [
        "bind",
        "database_url",
        "allow_private_webhook_targets",
        "webhook_retry_schedule",
        "capture_rate_limit",
        "open_parameter",
        "tiers",
    ] {
        assert!(parsed.contains_key(key), "{key} missing");
    }
    assert!(
        text.contains("LEADTRAIL_ADMIN_TOKEN"),
        "commented keys are documented too"
    );
}

#[test]
fn migrate_creates_a_missing_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fresh.db");
    let status = Command::new(BIN)
        .args([
            "migrate",
            "--database-url",
            &format!("sqlite://{}", file.display()),
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(file.exists());
}

#[test]
fn a_bad_setting_is_a_clear_error_not_a_panic() {
    let out = Command::new(BIN)
        .args(["migrate", "--database-url", "mysql://nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unsupported database URL"), "{stderr}");
    assert!(!stderr.contains("panicked"));
}

#[test]
fn serve_with_demo_answers_healthz_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["serve", "--demo", "--bind", &format!("127.0.0.1:{port}")])
        .env(
            "LEADTRAIL_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("demo.db").display()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let healthy = loop {
        let ok = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut s| {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            buf.starts_with("HTTP/1.1 200")
        });
        if ok || Instant::now() > deadline {
            break ok;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(healthy, "/healthz never answered 200");
    assert!(status.success(), "exit after SIGTERM: {status}");
    let mut out = String::new();
    use std::io::Read;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(out.contains("dashboard login"), "{out}");
    assert!(out.contains("sk_"), "{out}");
}

#[test]
fn user_add_creates_a_login_with_the_password_from_standard_input() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("users.db").display());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let org = runtime.block_on(async {
        let store = leadtrail::store::Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let created = store
            .create_organization(leadtrail::store::NewOrganization {
                name: leadtrail::domain::organization::OrgName::parse("Acme Roofing").unwrap(),
                website_url: leadtrail::domain::organization::SiteUrl::parse(
                    "website_url",
                    "https://acme.example/",
                )
                .unwrap(),
                brand_color: leadtrail::domain::organization::BrandColor::parse("#1A73E8").unwrap(),
                tier: leadtrail::domain::tier::Tier::Starter,
                owner: None,
            })
            .await
            .unwrap();
        store.close().await;
        created.organization.id.to_string()
    });
    let add = |email: &str, role: &str, password: &str| {
        let mut child = Command::new(BIN)
            .args(["user", "add", "--database-url", &url, "--org", &org])
            .args(["--email", email, "--role", role])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let out = add("Ops@Acme.Example", "viewer", "a long enough password");
    assert!(stdout_of_success(&out).contains("added ops@acme.example (viewer)"));
    // Refusals are one clear line each, never a panic.
    for (email, role, password, expected) in [
        (
            "ops@acme.example",
            "viewer",
            "a long enough password",
            "already a member",
        ),
        (
            "other@acme.example",
            "admin",
            "a long enough password",
            "role must be",
        ),
        ("third@acme.example", "member", "short", "password must be"),
    ] {
        let out = add(email, role, password);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let user = runtime.block_on(async {
        let store = leadtrail::store::Store::connect(&url).await.unwrap();
        let user = store
            .user_by_email("ops@acme.example")
            .await
            .unwrap()
            .unwrap();
        store.close().await;
        user
    });
    assert_eq!(user.role, leadtrail::domain::user::Role::Viewer);
    assert!(leadtrail::domain::user::verify_password(
        "a long enough password",
        &user.password_hash
    ));
}

/// The real binary serving on a fresh SQLite file, stopped when dropped.
struct Served {
    child: std::process::Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Served {
    async fn start(env: &[(&str, String)]) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .env(
                "LEADTRAIL_DATABASE_URL",
                format!("sqlite://{}", dir.path().join("served.db").display()),
            )
            .env(
                "LEADTRAIL_ADMIN_TOKEN",
                "cli-test-operator-token-0123456789ab",
            )
            .env("LEADTRAIL_ALLOW_PRIVATE_WEBHOOK_TARGETS", "true")
            .env("LEADTRAIL_CAPTURE_RATE_LIMIT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().unwrap();
        let served = Served {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(format!("{}/healthz", served.base))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "the service never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        served
    }

    /// An organization's API key, with one endpoint at `url`; returns (key, endpoint id).
    async fn org_with_endpoint(&self, url: &str) -> (String, String) {
        let client = reqwest::Client::new();
        let org: serde_json::Value = client
            .post(format!("{}/api/v1/organizations", self.base))
            .bearer_auth("cli-test-operator-token-0123456789ab")
            .json(&serde_json::json!({"name": "Acme", "tier": "starter",
                "website_url": "https://acme.example", "brand_color": "#000000"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let key = org["api_key"].as_str().unwrap().to_owned();
        let endpoint: serde_json::Value = client
            .post(format!("{}/api/v1/webhooks", self.base))
            .bearer_auth(&key)
            .json(&serde_json::json!({"url": url}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (key, endpoint["id"].as_str().unwrap().to_owned())
    }

    /// Queues a test event and waits until its first attempt is in the log.
    async fn test_event_attempted(&self, key: &str, endpoint: &str) -> serde_json::Value {
        let client = reqwest::Client::new();
        let queued = client
            .post(format!("{}/api/v1/webhooks/{endpoint}/test", self.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(queued.status(), 202);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log: serde_json::Value = client
                .get(format!(
                    "{}/api/v1/webhooks/{endpoint}/deliveries",
                    self.base
                ))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if log[0]["attempts"].as_i64() == Some(1) {
                return log[0].clone();
            }
            assert!(Instant::now() < deadline, "never attempted: {log}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process's peak resident memory so far, in KiB (Linux `VmHWM`).
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A webhook receiver on loopback that answers 200 and counts what it got.
async fn counting_receiver() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { "ok" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, count)
}

/// A stand-in HTTP proxy: answers every request 200 itself and keeps each request line.
fn recording_proxy() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = lines.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            seen.lock().unwrap().push(first.trim().to_owned());
            let mut stream = reader.into_inner();
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\nproxied",
            );
        }
    });
    (url, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_deliveries_ignore_proxy_variables_and_use_only_a_configured_egress_proxy() {
    let (receiver, received) = counting_receiver().await;
    let (proxy, proxied) = recording_proxy();
    // Every proxy variable a client might read points at the proxy: none is followed.
    let env: Vec<(&str, String)> = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ]
    .into_iter()
    .map(|k| (k, proxy.clone()))
    .collect();
    let served = Served::start(&env).await;
    let (key, endpoint) = served.org_with_endpoint(&receiver).await;
    let delivery = served.test_event_attempted(&key, &endpoint).await;
    assert_eq!(delivery["status"], "delivered", "{delivery}");
    assert_eq!(
        received.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "sent directly"
    );
    assert!(
        proxied.lock().unwrap().is_empty(),
        "the proxy was used: {:?}",
        proxied.lock().unwrap()
    );
    drop(served);
    // Named explicitly, the egress proxy carries the delivery.
    let served = Served::start(&[("LEADTRAIL_WEBHOOK_EGRESS_PROXY", proxy.clone())]).await;
    let (key, endpoint) = served.org_with_endpoint(&receiver).await;
    let delivery = served.test_event_attempted(&key, &endpoint).await;
    assert_eq!(
        delivery["log"][0]["response_excerpt"], "proxied",
        "{delivery}"
    );
    let lines = proxied.lock().unwrap().clone();
    assert_eq!(lines, vec![format!("POST {receiver} HTTP/1.1")]);
    assert_eq!(
        received.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "not sent directly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_webhook_response_is_not_read_beyond_its_excerpt() {
    use std::sync::atomic::{AtomicU64, Ordering};
    const CHUNK: usize = 64 * 1024;
    const TOTAL: u64 = 400 * 1024 * 1024;
    // A receiver that answers with 400 MB, generated as it is read (it holds none of it).
    let produced = std::sync::Arc::new(AtomicU64::new(0));
    let counter = produced.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                let chunks = futures::stream::iter(0..TOTAL / CHUNK as u64).map(move |_| {
                    counter.fetch_add(CHUNK as u64, Ordering::Relaxed);
                    Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'x'; CHUNK]))
                });
                axum::body::Body::from_stream(chunks)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let served = Served::start(&[]).await;
    let (key, endpoint) = served.org_with_endpoint(&url).await;
    let before = served.peak_rss_kib();
    let delivery = served.test_event_attempted(&key, &endpoint).await;
    let after = served.peak_rss_kib();
    let excerpt = delivery["log"][0]["response_excerpt"].as_str().unwrap();
    assert_eq!(excerpt.len(), 4096, "the log keeps the first 4 KiB");
    assert_eq!(delivery["status"], "delivered");
    let sent = produced.load(Ordering::Relaxed);
    assert!(
        sent < 64 * 1024 * 1024,
        "the receiver got to send {} MiB",
        sent >> 20
    );
    assert!(
        after.saturating_sub(before) < 50 * 1024,
        "peak memory grew from {before} KiB to {after} KiB"
    );
}

#[test]
fn rollups_rebuild_recounts_reports_from_the_raw_rows() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("rollups.db").display());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (org, before) = runtime.block_on(async {
        let store = leadtrail::store::Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let org = store
            .create_organization(leadtrail::store::NewOrganization {
                name: leadtrail::domain::organization::OrgName::parse("Acme Roofing").unwrap(),
                website_url: leadtrail::domain::organization::SiteUrl::parse(
                    "website_url",
                    "https://acme.example/",
                )
                .unwrap(),
                brand_color: leadtrail::domain::organization::BrandColor::parse("#1A73E8").unwrap(),
                tier: leadtrail::domain::tier::Tier::Starter,
                owner: None,
            })
            .await
            .unwrap()
            .organization
            .id;
        let address =
            leadtrail::domain::lead::Address::parse("1 Main St", "Austin", "TX", "78701", None)
                .unwrap();
        let commands: Vec<_> = (0..5)
            .map(|_| {
                leadtrail::store::CaptureCommand::CreateLead(Box::new(leadtrail::store::NewLead {
                    org: org.clone(),
                    arrival: Arrival::default(),
                    first_touch: None,
                    address: address.clone(),
                    idempotency: None,
                    record_source: leadtrail::domain::lead::RecordSource::Widget,
                }))
            })
            .collect();
        store.apply_capture(&commands).await.unwrap();
        let filter = leadtrail::store::ReportFilter::default();
        let before = store.source_counts(&org, &filter).await.unwrap();
        // An audit finds the counters wrong (a bug, a hand edit): the rebuild puts them right.
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        sqlx::query("UPDATE report_rollups SET n = n + 40")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        assert_ne!(store.source_counts(&org, &filter).await.unwrap(), before);
        store.close().await;
        (org, before)
    });
    assert_eq!(
        before
            .values()
            .map(|c| c.leads)
            .sum::<leadtrail::domain::multi_touch::Credit>(),
        leadtrail::domain::multi_touch::Credit::whole(5)
    );
    let out = Command::new(BIN)
        .args([
            "rollups",
            "rebuild",
            "--database-url",
            &url,
            "--org",
            org.as_str(),
        ])
        .output()
        .unwrap();
    assert!(stdout_of_success(&out).contains("rebuilt the report rollups of 1 organization(s)"));
    runtime.block_on(async {
        let store = leadtrail::store::Store::connect(&url).await.unwrap();
        let after = store
            .source_counts(&org, &leadtrail::store::ReportFilter::default())
            .await
            .unwrap();
        assert_eq!(after, before);
        store.close().await;
    });
    let out = Command::new(BIN)
        .args(["rollups", "rebuild", "--database-url", &url])
        .args(["--org", "org_00000000000000000000000000000000"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no organization"));
}

/// `leadtrail backup nightly.db` from the directory the copy belongs in: a bare file name has
/// an empty parent, so the directory made durable after the rename is the working directory.
#[test]
fn backup_to_a_bare_file_name_lands_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("live.db").display());
    let migrated = Command::new(BIN)
        .args(["migrate", "--database-url", &url])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(migrated.success());
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .args(["backup", "--database-url", &url, "nightly.db"])
        .output()
        .unwrap();
    let stdout = stdout_of_success(&out);
    assert!(stdout.contains("to nightly.db"), "{stdout}");
    let copy = dir.path().join("nightly.db");
    assert!(copy.exists() && !dir.path().join("nightly.db.partial").exists());
    let opened = rusqlite::Connection::open(&copy).unwrap();
    let check: String = opened
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}
