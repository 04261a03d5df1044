//! A PostgreSQL restart during load: the service says so on `/readyz`, answers captures with a
//! 503 to retry (never a lost acknowledgement), and recovers by itself when the database is
//! back. The database is a private cluster this test creates (initdb on a free port), so it can
//! be stopped without touching anyone else's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_leadtrail");
const OPERATOR: &str = "restart-test-operator-token-0123456789";

/// PostgreSQL's server programs, where Debian puts them (or on the PATH).
fn pg_bin(name: &str) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.filter_map(|d| d.ok().map(|d| d.path().join("bin").join(name)))
                .collect()
        })
        .unwrap_or_default();
    candidates.sort();
    candidates
        .into_iter()
        .rev()
        .find(|p| p.exists())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.exists())
            })
        })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A throwaway cluster in a temporary directory. PostgreSQL refuses to run as root, so under
/// root it runs as the `postgres` user.
struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
    pg_ctl: PathBuf,
}

impl Cluster {
    fn run(&self, program: &Path, args: &[&str]) -> bool {
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn create() -> Option<Cluster> {
        let (initdb, pg_ctl) = (pg_bin("initdb")?, pg_bin("pg_ctl")?);
        let dir = tempfile::tempdir().ok()?;
        if is_root() {
            Command::new("chown")
                .args(["postgres", dir.path().to_str()?])
                .status()
                .ok()?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let cluster = Cluster { dir, port, pg_ctl };
        let data = cluster.data();
        let ok = cluster.run(
            &initdb,
            &["-D", &data, "-U", "postgres", "-A", "trust", "--no-sync"],
        );
        (ok && cluster.start()).then_some(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn start(&self) -> bool {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            &self.pg_ctl,
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        )
    }

    fn stop(&self) -> bool {
        self.run(
            &self.pg_ctl,
            &["-D", &self.data(), "-m", "fast", "-w", "stop"],
        )
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.run(
            &self.pg_ctl,
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }
}

struct Node {
    child: Child,
    base: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn status(url: &str) -> Option<u16> {
    reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// Homeowners starting leads until told to stop; every 201 is remembered, every other answer
/// counted (a refused attempt is retried later, as the widget does).
async fn homeowners(
    base: String,
    public_key: String,
    acked: Arc<Mutex<BTreeSet<String>>>,
    refused: Arc<Mutex<BTreeSet<u16>>>,
    stop: Arc<AtomicBool>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    while !stop.load(Ordering::SeqCst) {
        let answer = client
            .post(format!("{base}/c/v1/leads"))
            .json(
                &json!({"public_key": public_key, "address": {"street": "1 Main St",
                "city": "Austin", "state": "TX", "postal_code": "78701"}}),
            )
            .send()
            .await;
        match answer {
            Ok(r) if r.status() == 201 => {
                let body: Value = r.json().await.unwrap();
                acked
                    .lock()
                    .unwrap()
                    .insert(body["lead_id"].as_str().unwrap().to_owned());
            }
            Ok(r) => {
                refused.lock().unwrap().insert(r.status().as_u16());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn until(what: &str, within: Duration, mut done: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < within, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_during_load_loses_no_acknowledged_lead() {
    let Some(cluster) = Cluster::create() else {
        assert!(
            !common::require_all(),
            "PostgreSQL's server programs (initdb, pg_ctl) are required under LEADTRAIL_REQUIRE_ALL"
        );
        common::say_skipped("no initdb/pg_ctl to run a private PostgreSQL cluster");
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let node = Node {
        child: Command::new(BIN)
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .env("LEADTRAIL_DATABASE_URL", cluster.url())
            .env("LEADTRAIL_ADMIN_TOKEN", OPERATOR)
            .env("LEADTRAIL_CAPTURE_RATE_LIMIT", "0")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        base: format!("http://127.0.0.1:{port}"),
    };
    let ready = format!("{}/readyz", node.base);
    until(
        "the service is ready",
        Duration::from_secs(60),
        async || status(&ready).await == Some(200),
    )
    .await;
    let org: Value = reqwest::Client::new()
        .post(format!("{}/api/v1/organizations", node.base))
        .bearer_auth(OPERATOR)
        .json(&json!({"name": "Acme Roofing", "tier": "starter",
            "website_url": "https://acme.example", "brand_color": "#1A73E8"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = org["api_key"].as_str().unwrap().to_owned();
    let public_key = org["public_key"].as_str().unwrap().to_owned();

    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let refused = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn(homeowners(
                node.base.clone(),
                public_key.clone(),
                acked.clone(),
                refused.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let count = || acked.lock().unwrap().len();
    until(
        "leads before the restart",
        Duration::from_secs(60),
        async || count() >= 100,
    )
    .await;

    // The database goes away under load.
    assert!(cluster.stop(), "stopping the cluster");
    let before = count();
    let noticed = until(
        "/readyz reports the database",
        Duration::from_secs(30),
        async || status(&ready).await == Some(503),
    )
    .await;
    // Long enough that captures waiting for a connection give up and say so.
    until(
        "a capture is told to retry",
        Duration::from_secs(60),
        async || !refused.lock().unwrap().is_empty(),
    )
    .await;
    assert!(cluster.start(), "starting the cluster again");
    let recovered = until(
        "the service recovers by itself",
        Duration::from_secs(60),
        async || status(&ready).await == Some(200),
    )
    .await;
    until(
        "leads after the restart",
        Duration::from_secs(60),
        async || count() >= before + 100,
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }

    // Every acknowledged lead is there.
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let client = reqwest::Client::new();
    let mut lost = Vec::new();
    for lead in &acked {
        let res = client
            .get(format!("{}/api/v1/leads/{lead}", node.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        if res.status() != 200 {
            lost.push(lead.clone());
        }
    }
    let refused = refused.lock().unwrap().clone();
    println!(
        "leads acknowledged {} ({before} before the restart), lost {}; /readyz said 503 after \
         {noticed:?}, 200 again {recovered:?} after the database was back; refusals meanwhile: \
         {refused:?}",
        acked.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged leads lost: {lost:?}");
    // Meanwhile the service said "retry", never "you are wrong" and never "internal".
    assert!(
        refused.iter().all(|s| *s == 503),
        "answers while the database was away: {refused:?}"
    );
}
