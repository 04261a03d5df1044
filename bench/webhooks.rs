//! Webhook delivery against the release binary (fresh SQLite file), with receivers in this
//! process on loopback. Every phase is warmed up and repeated; figures are medians with their
//! range; targets are evaluated (a missed one makes the bench exit non-zero); a failed
//! capture fails the bench. Prints:
//!
//! - bursts: leads captured by 32 clients as fast as they go, until every delivery arrived —
//!   deliveries/s to one endpoint and fanned out to ten endpoints of one organization;
//! - steady open-loop load on a healthy endpoint, alone and beside another organization whose
//!   endpoint takes 2 s per request: commit→receipt p50/p99 (from the capture's 201 to the
//!   receiver's arrival), the offered rate reached, and the server's CPU per delivery (the CPU
//!   of the same load with nobody subscribed is the baseline it is measured against);
//! - the CPU this load generator used, so it can be seen not to be the bottleneck.
//!
//! Run: `cargo bench --bench webhooks` (optional: `WEBHOOK_BENCH_LEADS=3000`,
//! `WEBHOOK_BENCH_REPEATS=3`, `WEBHOOK_BENCH_SECONDS=8`)

#[path = "support/harness.rs"]
mod harness;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::routing::post;
use harness::{ADMIN, BenchResult, Server, Summary, Targets, ms, open_loop, own_cpu, percentile};
use serde_json::{Value, json};

/// First arrival of each lead at each endpoint, and every request counted.
#[derive(Clone, Default)]
struct Arrivals {
    first: Arc<Mutex<HashMap<u32, HashMap<String, Instant>>>>,
    requests: Arc<AtomicUsize>,
}

impl Arrivals {
    fn record(&self, endpoint: u32, body: &str) {
        let now = Instant::now();
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Ok(json) = serde_json::from_str::<Value>(body)
            && let Some(lead) = json["data"]["lead_id"].as_str()
            && let Ok(mut map) = self.first.lock()
        {
            map.entry(endpoint)
                .or_default()
                .entry(lead.to_owned())
                .or_insert(now);
        }
    }

    fn at(&self, lead: &str, endpoint: u32) -> Option<Instant> {
        self.first
            .lock()
            .ok()
            .and_then(|m| m.get(&endpoint)?.get(lead).copied())
    }

    /// How many of `pairs` (from the front) have arrived, starting the count at `from`: the
    /// check stops at the first one missing, so waiting costs the generator little CPU.
    fn arrived_from(&self, pairs: &[(&str, u32)], from: usize) -> usize {
        let Ok(map) = self.first.lock() else {
            return from;
        };
        from + pairs[from..]
            .iter()
            .take_while(|(lead, e)| map.get(e).is_some_and(|m| m.contains_key(*lead)))
            .count()
    }
}

async fn fast(State(a): State<Arrivals>, Path(n): Path<u32>, body: String) -> &'static str {
    a.record(n, &body);
    "ok"
}

/// The slow neighbour: two seconds per request.
async fn slow(State(a): State<Arrivals>, body: String) -> &'static str {
    a.record(u32::MAX, &body);
    tokio::time::sleep(Duration::from_secs(2)).await;
    "ok"
}

struct Bench {
    client: reqwest::Client,
    base: String,
    arrivals: Arrivals,
    hooks: String,
    errors: Arc<AtomicUsize>,
}

/// An organization with `endpoints` fast endpoints (`/hook/0…`), or the slow one.
struct Org {
    public_key: String,
    endpoints: Vec<u32>,
}

impl Bench {
    async fn org(&self, name: &str, endpoints: &[u32], slow: bool) -> BenchResult<Org> {
        let org: Value = self
            .client
            .post(format!("{}/api/v1/organizations", self.base))
            .bearer_auth(ADMIN)
            .json(&json!({"name": name, "tier": "starter",
                "website_url": "https://bench.example", "brand_color": "#000000"}))
            .send()
            .await?
            .json()
            .await?;
        let key = org["api_key"].as_str().ok_or("no key")?.to_owned();
        let urls: Vec<String> = if slow {
            vec![format!("{}/slow", self.hooks)]
        } else {
            endpoints
                .iter()
                .map(|n| format!("{}/hook/{n}", self.hooks))
                .collect()
        };
        for url in urls {
            let created = self
                .client
                .post(format!("{}/api/v1/webhooks", self.base))
                .bearer_auth(&key)
                .json(&json!({"url": url, "events": ["lead.address_preview"]}))
                .send()
                .await?;
            if !created.status().is_success() {
                return Err(format!("endpoint refused: {}", created.text().await?).into());
            }
        }
        Ok(Org {
            public_key: org["public_key"]
                .as_str()
                .ok_or("no public key")?
                .to_owned(),
            endpoints: if slow {
                vec![u32::MAX]
            } else {
                endpoints.to_vec()
            },
        })
    }

    /// Captures one lead (step 1); returns its id and when its 201 arrived (its commit).
    async fn capture(&self, org: &Org) -> Option<(String, Instant)> {
        let body = json!({"public_key": org.public_key, "address": {"street": "1 Main St",
            "city": "Austin", "state": "TX", "postal_code": "78701"}});
        let sent = self
            .client
            .post(format!("{}/c/v1/leads", self.base))
            .json(&body)
            .send()
            .await;
        let at = Instant::now();
        let lead = match sent {
            Ok(r) if r.status().as_u16() == 201 => r
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v["lead_id"].as_str().map(str::to_owned)),
            _ => None,
        };
        if lead.is_none() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        lead.map(|l| (l, at))
    }

    /// `clients` concurrent clients capture `total` leads between them, as fast as they can.
    async fn burst(self: &Arc<Self>, org: &Arc<Org>, total: usize, clients: usize) -> Vec<String> {
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (bench, org, next) = (self.clone(), org.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    if let Some((lead, _)) = bench.capture(&org).await {
                        mine.push(lead);
                    }
                }
                mine
            }));
        }
        let mut leads = Vec::new();
        for t in tasks {
            leads.extend(t.await.unwrap_or_default());
        }
        leads
    }

    /// Waits until every lead reached every endpoint of its organization (120 s at most).
    async fn delivered(&self, org: &Org, leads: &[String]) -> BenchResult<Instant> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let pairs: Vec<(&str, u32)> = leads
            .iter()
            .flat_map(|l| org.endpoints.iter().map(move |e| (l.as_str(), *e)))
            .collect();
        let mut arrived = 0;
        loop {
            arrived = self.arrivals.arrived_from(&pairs, arrived);
            if arrived == pairs.len() {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                return Err("deliveries did not all arrive within 120 s".into());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Open-loop captures at `rate`/s for `seconds`; returns the offered rate reached and each
    /// lead with its commit time.
    async fn steady(
        self: &Arc<Self>,
        org: &Arc<Org>,
        rate: f64,
        seconds: f64,
    ) -> (f64, Vec<(String, Instant)>) {
        let count = (rate * seconds) as usize;
        let run = open_loop(rate, count, |_| {
            let (bench, org) = (self.clone(), org.clone());
            async move { bench.capture(&org).await }
        })
        .await;
        (
            run.achieved_rate,
            run.results.into_iter().flatten().collect(),
        )
    }

    fn latencies(&self, org: &Org, committed: &[(String, Instant)]) -> Vec<Duration> {
        let mut out: Vec<Duration> = committed
            .iter()
            .filter_map(|(lead, at)| {
                self.arrivals
                    .at(lead, org.endpoints[0])
                    .map(|r| r.saturating_duration_since(*at))
            })
            .collect();
        out.sort();
        out
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() -> BenchResult<()> {
    let leads = env_usize("WEBHOOK_BENCH_LEADS", 3000);
    let repeats = env_usize("WEBHOOK_BENCH_REPEATS", 3);
    let seconds = env_usize("WEBHOOK_BENCH_SECONDS", 8) as f64;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(leads, repeats, seconds))
}

async fn run(leads: usize, repeats: usize, seconds: f64) -> BenchResult<()> {
    let arrivals = Arrivals::default();
    let app = axum::Router::new()
        .route("/hook/{n}", post(fast))
        .route("/slow", post(slow))
        .with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hooks = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let server = Server::start(&[])?;
    let bench = Arc::new(Bench {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?,
        base: server.base.clone(),
        arrivals,
        hooks,
        errors: Arc::default(),
    });
    let mut targets = Targets::default();
    println!(
        "webhook delivery: release binary on a fresh SQLite file, receivers on loopback in this process; {repeats} runs per phase, median (range)"
    );

    // Warm-up: connections, caches, the first fsyncs.
    let warm = Arc::new(bench.org("Warm-up", &[0], false).await?);
    let warmed = bench.burst(&warm, 500, 32).await;
    bench.delivered(&warm, &warmed).await?;

    // Bursts to one endpoint, then to ten endpoints of one organization.
    let one = Arc::new(bench.org("One endpoint", &[1], false).await?);
    let ten = Arc::new(
        bench
            .org("Ten endpoints", &(10..20).collect::<Vec<_>>(), false)
            .await?,
    );
    let (mut one_rate, mut ten_rate, mut generator) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeats {
        let (cpu, started) = (own_cpu(), Instant::now());
        let sent = bench.burst(&one, leads, 32).await;
        let done = bench.delivered(&one, &sent).await?;
        one_rate.push(sent.len() as f64 / done.duration_since(started).as_secs_f64());
        generator.push((own_cpu() - cpu) / done.duration_since(started).as_secs_f64());
        let started = Instant::now();
        let sent = bench.burst(&ten, leads / 3, 32).await;
        let done = bench.delivered(&ten, &sent).await?;
        ten_rate.push((sent.len() * 10) as f64 / done.duration_since(started).as_secs_f64());
    }
    let (one_rate, ten_rate) = (Summary::of(&one_rate), Summary::of(&ten_rate));
    println!("  burst, {leads} leads by 32 clients → every delivery received:");
    println!(
        "    1 endpoint:   {} deliveries/s   (target >= 1900: {})",
        one_rate.show(0),
        targets.check("1-endpoint deliveries/s", one_rate.median >= 1900.0)
    );
    println!(
        "    10 endpoints: {} deliveries/s   ({} leads × 10; target >= 5600: {})",
        ten_rate.show(0),
        leads / 3,
        targets.check("10-endpoint deliveries/s", ten_rate.median >= 5600.0)
    );
    println!(
        "    load generator CPU during the 1-endpoint burst: {} cores",
        Summary::of(&generator).show(2)
    );

    // Steady load: first nobody subscribed (the CPU baseline), then a healthy endpoint alone,
    // then the same beside a 2 s neighbour.
    let rate = 200.0;
    let quiet = Arc::new(bench.org("Nobody subscribed", &[], false).await?);
    let healthy = Arc::new(bench.org("Healthy", &[2], false).await?);
    let neighbour = Arc::new(bench.org("Slow neighbour", &[], true).await?);
    let (mut base_cpu, mut cpu_per, mut offered) = (Vec::new(), Vec::new(), Vec::new());
    let (mut alone, mut beside) = (Vec::new(), Vec::new());
    let (mut gen_cpu, mut neighbour_offered) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        let cpu = server.cpu();
        let (reached, _) = bench.steady(&quiet, rate, seconds).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let baseline = (server.cpu() - cpu) / (rate * seconds);
        base_cpu.push(baseline * 1e3);
        offered.push(reached);

        let (cpu, generator_cpu, started) = (server.cpu(), own_cpu(), Instant::now());
        let (reached, committed) = bench.steady(&healthy, rate, seconds).await;
        let leads: Vec<String> = committed.iter().map(|(l, _)| l.clone()).collect();
        bench.delivered(&healthy, &leads).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let per_lead = (server.cpu() - cpu) / committed.len().max(1) as f64;
        cpu_per.push((per_lead - baseline) * 1e3);
        gen_cpu.push((own_cpu() - generator_cpu) / started.elapsed().as_secs_f64());
        offered.push(reached);
        let lat = bench.latencies(&healthy, &committed);
        alone.push((ms(percentile(&lat, 0.5)), ms(percentile(&lat, 0.99))));

        let slow_run = {
            let (bench, neighbour) = (bench.clone(), neighbour.clone());
            tokio::spawn(async move { bench.steady(&neighbour, 25.0, seconds).await })
        };
        let (reached, committed) = bench.steady(&healthy, rate, seconds).await;
        let leads: Vec<String> = committed.iter().map(|(l, _)| l.clone()).collect();
        bench.delivered(&healthy, &leads).await?;
        offered.push(reached);
        if let Ok((slow_reached, _)) = slow_run.await {
            neighbour_offered.push(slow_reached);
        }
        let lat = bench.latencies(&healthy, &committed);
        beside.push((ms(percentile(&lat, 0.5)), ms(percentile(&lat, 0.99))));
    }
    let offered = Summary::of(&offered);
    println!(
        "  steady open loop, {rate:.0} leads/s for {seconds:.0} s (offered rate reached: {} /s; {}):",
        offered.show(0),
        targets.check("open-loop rate reached", offered.min >= rate * 0.95)
    );
    let p = |v: &[(f64, f64)], i: usize| {
        Summary::of(
            &v.iter()
                .map(|x| if i == 0 { x.0 } else { x.1 })
                .collect::<Vec<_>>(),
        )
    };
    let (alone50, alone99, beside50, beside99) =
        (p(&alone, 0), p(&alone, 1), p(&beside, 0), p(&beside, 1));
    println!(
        "    healthy endpoint alone:            commit→receipt p50 {} ms, p99 {} ms",
        alone50.show(2),
        alone99.show(2)
    );
    println!(
        "    beside a 2 s/request neighbour:    commit→receipt p50 {} ms, p99 {} ms  (neighbour offered {} leads/s)",
        beside50.show(2),
        beside99.show(2),
        Summary::of(&neighbour_offered).show(1)
    );
    println!(
        "    p99 beside the neighbour = {:.2}× alone   (target <= 2×: {})",
        beside99.median / alone99.median.max(0.001),
        targets.check(
            "healthy p99 beside a slow neighbour",
            beside99.median <= 2.0 * alone99.median
        )
    );
    println!(
        "    server CPU per delivery: {} ms   (over the {} ms per lead of the same load with nobody subscribed)",
        Summary::of(&cpu_per).show(3),
        Summary::of(&base_cpu).show(3)
    );
    println!(
        "    load generator CPU: {} cores",
        Summary::of(&gen_cpu).show(2)
    );
    let errors = bench.errors.load(Ordering::Relaxed);
    if errors > 0 {
        return Err(format!("{errors} captures failed").into());
    }
    if !targets.missed().is_empty() {
        return Err(format!("targets missed: {}", targets.missed().join(", ")).into());
    }
    Ok(())
}
