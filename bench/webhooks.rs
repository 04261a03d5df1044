//! Webhook pipeline: N leads captured against the release binary (fresh SQLite file) → every
//! `lead.address_preview` received by a fast local receiver. Prints deliveries/s and the
//! commit-to-receipt latency (from the capture's 201 to the receiver's arrival), p50/p99.
//!
//! Run: `cargo bench --bench webhooks` (optional: `WEBHOOK_BENCH_LEADS=3000`)

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};

const ADMIN: &str = "bench-operator-token";

struct Server {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

async fn receive(State(arrivals): State<Arrivals>, body: String) -> &'static str {
    let now = Instant::now();
    if let Ok(json) = serde_json::from_str::<Value>(&body)
        && let Some(lead) = json["data"]["lead_id"].as_str()
        && let Ok(mut map) = arrivals.lock()
    {
        map.entry(lead.to_owned()).or_insert(now);
    }
    "ok"
}

type Committed = HashMap<String, Instant>;

/// `clients` concurrent clients each capture `each` leads, pausing between them; returns when
/// each lead's 201 (its commit) arrived.
async fn capture(
    client: &reqwest::Client,
    base: &str,
    body: &Arc<String>,
    clients: usize,
    each: usize,
    pause: Duration,
) -> Committed {
    let committed: Arc<Mutex<Committed>> = Arc::new(Mutex::new(HashMap::new()));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url, body, committed) = (
            client.clone(),
            format!("{base}/c/v1/leads"),
            body.clone(),
            committed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for _ in 0..each {
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                let Ok(r) = client
                    .post(&url)
                    .body(body.as_str().to_owned())
                    .send()
                    .await
                else {
                    continue;
                };
                let at = Instant::now();
                if let Ok(v) = r.json::<Value>().await
                    && let Some(id) = v["lead_id"].as_str()
                    && let Ok(mut map) = committed.lock()
                {
                    map.insert(id.to_owned(), at);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    committed.lock().map(|m| m.clone()).unwrap_or_default()
}

async fn wait_for(arrivals: &Arrivals, committed: &Committed) {
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let done = arrivals
            .lock()
            .map(|a| committed.keys().all(|k| a.contains_key(k)))
            .unwrap_or(false);
        if done || Instant::now() > until {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn latencies(committed: &Committed, arrivals: &Arrivals) -> (usize, Vec<Duration>) {
    let arrivals = arrivals.lock().map(|a| a.clone()).unwrap_or_default();
    let mut out: Vec<Duration> = committed
        .iter()
        .filter_map(|(id, at)| arrivals.get(id).map(|r| r.saturating_duration_since(*at)))
        .collect();
    out.sort();
    (out.len(), out)
}

fn pct(sorted: &[Duration], q: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64) * q) as usize)
        .copied()
        .unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let leads: usize = std::env::var("WEBHOOK_BENCH_LEADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let arrivals: Arrivals = Arc::new(Mutex::new(HashMap::new()));
        let app = axum::Router::new().route("/hook", post(receive)).with_state(arrivals.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let hook = format!("http://{}/hook", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });

        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(env!("CARGO_BIN_EXE_leadtrail"))
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .env("LEADTRAIL_DATABASE_URL", format!("sqlite://{}", dir.path().join("bench.db").display()))
            .env("LEADTRAIL_ADMIN_TOKEN", ADMIN)
            .env("LEADTRAIL_CAPTURE_RATE_LIMIT", "0")
            .env("LEADTRAIL_ALLOW_PRIVATE_WEBHOOK_TARGETS", "true")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()?;
        let _server = Server { child, _dir: dir };
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("server did not start".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let client = reqwest::Client::new();
        let org: Value = client.post(format!("{base}/api/v1/organizations")).bearer_auth(ADMIN)
            .json(&json!({"name": "Bench", "tier": "starter", "website_url": "https://bench.example", "brand_color": "#000000"}))
            .send().await?.json().await?;
        let key = org["api_key"].as_str().ok_or("no key")?.to_owned();
        let pk = org["public_key"].as_str().ok_or("no public key")?.to_owned();
        client.post(format!("{base}/api/v1/webhooks")).bearer_auth(&key)
            .json(&json!({"url": hook, "events": ["lead.address_preview"]})).send().await?;
        let body = Arc::new(json!({"public_key": pk,
            "address": {"street": "1 Main St", "city": "Austin", "state": "TX", "postal_code": "78701"}}).to_string());

        println!("webhook pipeline: leads captured against the release binary (fresh SQLite file), each lead.address_preview received by a local receiver");
        // Burst: 32 clients capture as fast as they can; the dispatcher works through the backlog.
        let started = Instant::now();
        let burst = capture(&client, &base, &body, 32, leads / 32, Duration::ZERO).await;
        wait_for(&arrivals, &burst).await;
        let elapsed = started.elapsed();
        let (received, lat) = latencies(&burst, &arrivals);
        let rate = received as f64 / elapsed.as_secs_f64();
        println!("  burst: {} leads in, {received} deliveries out in {:.2} s", burst.len(), elapsed.as_secs_f64());
        println!("    deliveries/s            {rate:>8.0}  (target >= 2000: {})", if rate >= 2000.0 { "met" } else { "NOT met" });
        println!("    commit-to-receipt p50 {:>8.2} ms, p99 {:>8.2} ms (includes waiting behind the backlog)",
            pct(&lat, 0.5).as_secs_f64() * 1e3, pct(&lat, 0.99).as_secs_f64() * 1e3);
        // Steady: 500 leads/s (4 clients, one lead every 8 ms each), well under capacity.
        let steady = capture(&client, &base, &body, 4, 250, Duration::from_millis(8)).await;
        wait_for(&arrivals, &steady).await;
        let (_, lat) = latencies(&steady, &arrivals);
        println!("  steady 500 leads/s: {} leads", steady.len());
        println!("    commit-to-receipt p50 {:>8.2} ms  (target < 25 ms: {}), p99 {:>8.2} ms",
            pct(&lat, 0.5).as_secs_f64() * 1e3, if pct(&lat, 0.5) < Duration::from_millis(25) { "met" } else { "NOT met" },
            pct(&lat, 0.99).as_secs_f64() * 1e3);
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}
