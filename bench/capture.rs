//! Capture throughput: starts the release binary on a fresh SQLite file and drives it from this
//! process over loopback with 64 keep-alive connections, bounded in time. Prints requests/s and
//! p50/p99 latency for `GET /healthz` (this machine's HTTP ceiling, measured in the same run),
//! visit beacons and durable lead captures (step 1), each as a ratio to the ceiling.
//!
//! Run: `cargo bench --bench capture` (optional: `CAPTURE_BENCH_SECONDS=10`, `CAPTURE_BENCH_CONNECTIONS=64`)

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ADMIN: &str = "bench-operator-token";

struct Server {
    child: Child,
    base: String,
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

fn start_server() -> Result<Server, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_leadtrail"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env(
            "LEADTRAIL_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("bench.db").display()),
        )
        .env("LEADTRAIL_ADMIN_TOKEN", ADMIN)
        .env("LEADTRAIL_CAPTURE_RATE_LIMIT", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    })
}

struct Figures {
    rps: f64,
    p50: Duration,
    p99: Duration,
    errors: u64,
}

enum Load {
    Health,
    Visit(Arc<String>),
    Lead(Arc<String>),
}

async fn drive(base: &str, load: &Load, connections: usize, seconds: u64) -> Figures {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for worker in 0..connections {
        let client = client.clone();
        let (url, body): (String, Option<Arc<String>>) = match load {
            Load::Health => (format!("{base}/healthz"), None),
            Load::Visit(b) => (format!("{base}/c/v1/visits"), Some(b.clone())),
            Load::Lead(b) => (format!("{base}/c/v1/leads"), Some(b.clone())),
        };
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(16_384);
            let mut errors = 0u64;
            let _ = worker;
            while Instant::now() < deadline {
                let start = Instant::now();
                let request = match &body {
                    None => client.get(&url),
                    Some(b) => client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(b.as_str().to_owned()),
                };
                match request.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        latencies.push(start.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        if let Ok((l, e)) = task.await {
            all.extend(l);
            errors += e;
        }
    }
    all.sort();
    let pick = |q: f64| {
        all.get(((all.len() as f64) * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    Figures {
        rps: all.len() as f64 / seconds as f64,
        p50: pick(0.50),
        p99: pick(0.99),
        errors,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = std::env::var("CAPTURE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let connections: usize = std::env::var("CAPTURE_BENCH_CONNECTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let server = start_server()?;
    // The load generator gets one thread; the server has the machine's cores. Both share them.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let client = reqwest::Client::new();
        let org: Value = client
            .post(format!("{}/api/v1/organizations", server.base))
            .bearer_auth(ADMIN)
            .json(&json!({"name": "Bench Roofing", "tier": "starter", "website_url": "https://bench.example", "brand_color": "#000000"}))
            .send().await?.json().await?;
        let pk = org["public_key"].as_str().ok_or("no public key")?.to_owned();
        let key = org["api_key"].as_str().ok_or("no api key")?.to_owned();
        client.post(format!("{}/api/v1/widgets/01/sources", server.base)).bearer_auth(&key)
            .json(&json!({"name": "Facebook Ads", "channel_category": "paid_social"})).send().await?;
        let visit = Arc::new(json!({"public_key": pk, "widget": "01", "v": "01", "s": "02",
            "page_url": "https://bench.example/?roof-estimate=open&v=01&s=02", "visitor_id": "v1"}).to_string());
        let lead = Arc::new(json!({"public_key": pk, "widget": "01", "v": "01", "s": "02",
            "address": {"street": "1 Main St", "city": "Austin", "state": "TX", "postal_code": "78701"}}).to_string());

        println!("capture benchmark: {connections} connections, {seconds} s per phase, release binary on a fresh SQLite file (WAL, synchronous=FULL)");
        let warm = drive(&server.base, &Load::Health, connections, 1).await;
        let _ = warm;
        let ceiling = drive(&server.base, &Load::Health, connections, seconds).await;
        let visits = drive(&server.base, &Load::Visit(visit), connections, seconds).await;
        let leads = drive(&server.base, &Load::Lead(lead), connections, seconds).await;
        let row = |name: &str, f: &Figures, target: Option<f64>| {
            let ratio = f.rps / ceiling.rps;
            let verdict = target.map_or(String::new(), |t| format!("  (target >= {t:.1}: {})", if ratio >= t { "met" } else { "NOT met" }));
            println!(
                "  {name:<28} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  {:>5.2}x ceiling  errors {}{verdict}",
                f.rps, f.p50.as_secs_f64() * 1e3, f.p99.as_secs_f64() * 1e3, ratio, f.errors
            );
        };
        row("GET /healthz (ceiling)", &ceiling, None);
        row("POST /c/v1/visits", &visits, Some(0.6));
        row("POST /c/v1/leads (durable)", &leads, Some(0.3));
        println!("  p99 target: under 50 ms at {connections} connections");
        // How many captures shared each transaction (group commit), from the server's metrics.
        let metrics = client.get(format!("{}/metrics", server.base)).send().await?.text().await?;
        let stat = |name: &str| {
            metrics.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        };
        let (sum, count) = (stat("capture_batch_size_sum"), stat("capture_batch_size_count"));
        if count > 0.0 {
            println!("  group commit: {count:.0} transactions, {:.1} captures per transaction on average", sum / count);
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}
