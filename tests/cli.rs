//! The `leadtrail` binary as an operator meets it: default-config, migrate, serve, shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_leadtrail");

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
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("added ops@acme.example (viewer)"));
    // Refusals are one clear line each, never a panic.
    for (email, role, password, expected) in [
        (
            "ops@acme.example",
            "viewer",
            "a long enough password",
            "already exists",
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
