//! Scale-out on one PostgreSQL, in one run: the release binary as 1, 2 and 3 nodes on a fresh
//! database each, with a webhook receiver in this process.
//!
//! - capture capacity: 32 clients capture leads as fast as they go for a fixed time, round
//!   robin over the nodes (closed loop: the figure is what the nodes sustained), for an
//!   organization without webhooks, so the figure is capture alone; three rounds of one run of
//!   1, 2 and 3 nodes each (interleaved, each on a fresh database after a warm-up), median and
//!   range, and each round's figures against its own one-node run;
//! - delivery capacity: a backlog of `BACKLOG` leads, each with a `lead.address_preview` due,
//!   written before the nodes start (through the library's store); then the nodes start together
//!   and deliveries/s is the backlog ÷ the time from their start to the last receipt; three
//!   rounds of 1, 2 and 3 nodes as for capture, for two subscriber bases: one endpoint in each
//!   of `ORGANIZATIONS` organizations (the case scale-out is for: work the nodes can share), and
//!   a single endpoint, whose in-flight bound (`webhook_endpoint_concurrency`) holds across the
//!   nodes, so more nodes cannot send it faster and only their claims' contention shows;
//! - wake-up latency: leads written by another node (this process, through the library's
//!   store, which sends no HTTP and runs no dispatcher) at an open-loop 10/s, delivered by two
//!   serving nodes: commit→receipt p50/p99 with `LISTEN/NOTIFY` and with polling alone (the
//!   dispatcher's 500 ms poll), against a single node's own commit→receipt (the capture's 201
//!   to the receipt) as the baseline.
//!
//! On a 2-core machine the nodes share the cores, so the point is that throughput does not fall
//! as nodes are added and that cross-node latency stays near the single-node figure. Targets:
//! 2 and 3 nodes capture and deliver at least 0.8× what one node does; cross-node p50 with
//! wake-ups within 50 ms of the single-node p50. Exit code 1 if a target is missed or a capture
//! fails.
//!
//! Run: `cargo bench --bench nodes` (PostgreSQL at `LEADTRAIL_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`; each phase gets a fresh database, dropped after).

#[path = "support/harness.rs"]
mod harness;

use leadtrail::domain::attribution::Arrival;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};

use harness::{
    ADMIN, BenchResult, Database, Server, Summary, Targets, batch_stats, ms, open_loop, own_cpu,
    percentile,
};
use leadtrail::domain::ids::OrgId;
use leadtrail::domain::lead::{Address, RecordSource};
use leadtrail::domain::widget::WidgetVersion;
use leadtrail::store::{CaptureCommand, CaptureReply, NewLead, Store};

const CLIENTS: usize = 32;
const CAPTURE_FOR: Duration = Duration::from_secs(8);
const RUNS: usize = 3;
const LATENCY_RATE: f64 = 10.0;
const LATENCY_LEADS: usize = 100;
/// Deliveries waiting when the nodes start, per delivery run.
const BACKLOG: usize = 10_000;
/// Organizations, each with one endpoint, that share a backlog of many subscribers.
const ORGANIZATIONS: usize = 12;

/// First arrival of each lead's event at the receiver.
#[derive(Clone, Default)]
struct Arrivals {
    first: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Arrivals {
    fn at(&self, lead: &str) -> Option<Instant> {
        self.first.lock().ok().and_then(|m| m.get(lead).copied())
    }

    fn last(&self) -> Option<Instant> {
        self.first
            .lock()
            .ok()
            .and_then(|m| m.values().max().copied())
    }
}

async fn receiver() -> BenchResult<(String, Arrivals)> {
    let arrivals = Arrivals::default();
    async fn receive(State(a): State<Arrivals>, body: String) -> &'static str {
        let now = Instant::now();
        if let Ok(json) = serde_json::from_str::<Value>(&body)
            && let Some(lead) = json["data"]["lead_id"].as_str()
            && let Ok(mut map) = a.first.lock()
        {
            map.entry(lead.to_owned()).or_insert(now);
        }
        "ok"
    }
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, arrivals))
}

/// `n` nodes on `url`, started at once.
fn nodes(url: &str, n: usize, env: &[(&str, &str)]) -> BenchResult<Vec<Server>> {
    let mut vars = vec![("LEADTRAIL_DATABASE_URL", url)];
    vars.extend_from_slice(env);
    std::thread::scope(|scope| {
        let starting: Vec<_> = (0..n)
            .map(|_| scope.spawn(|| Server::start(&vars).map_err(|e| e.to_string())))
            .collect();
        starting
            .into_iter()
            .map(|s| match s.join() {
                Ok(started) => Ok(started?),
                Err(_) => Err("a node's start panicked".into()),
            })
            .collect()
    })
}

/// `n` nodes on `url`, an organization subscribed to `lead.address_preview` at the receiver
/// (`hook`), if any.
async fn cluster(
    url: &str,
    n: usize,
    env: &[(&str, &str)],
    hook: Option<&str>,
) -> BenchResult<(Vec<Server>, Organization)> {
    let nodes = nodes(url, n, env)?;
    let org = organization(&nodes[0].base, "Acme Roofing", hook).await?;
    Ok((nodes, org))
}

/// An organization made through the admin API, with its keys.
struct Organization {
    id: String,
    public_key: String,
}

/// A new organization named `name` on the node at `base`, subscribed to `lead.address_preview`
/// at `hook`, if any.
async fn organization(base: &str, name: &str, hook: Option<&str>) -> BenchResult<Organization> {
    let client = reqwest::Client::new();
    let org: Value = client
        .post(format!("{base}/api/v1/organizations"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": name, "tier": "premium",
            "website_url": "https://acme.example/", "brand_color": "#1A73E8"}))
        .send()
        .await?
        .json()
        .await?;
    let text = |field: &str| -> BenchResult<String> {
        Ok(org[field]
            .as_str()
            .ok_or_else(|| format!("no {field} in {org}"))?
            .to_owned())
    };
    if let Some(hook) = hook {
        let res = client
            .post(format!("{base}/api/v1/webhooks"))
            .bearer_auth(text("api_key")?)
            .json(&json!({"url": hook, "events": ["lead.address_preview"]}))
            .send()
            .await?;
        if !res.status().is_success() {
            return Err(format!("webhook: {}", res.text().await?).into());
        }
    }
    Ok(Organization {
        id: text("id")?,
        public_key: text("public_key")?,
    })
}

fn lead_body(public_key: &str) -> Value {
    json!({"public_key": public_key, "v": "01", "s": "01",
        "address": {"street": "1 Main St", "city": "Austin", "state": "TX", "postal_code": "78701"}})
}

/// Captures for `for_` with `CLIENTS` clients round robin over `bases`; the ids and 201 times.
async fn capture(
    bases: &[String],
    public_key: &str,
    for_: Duration,
) -> BenchResult<Vec<(String, Instant)>> {
    let client = reqwest::Client::new();
    let until = Instant::now() + for_;
    let failures = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, bases, body) = (client.clone(), bases.to_vec(), lead_body(public_key));
        let failures = failures.clone();
        tasks.push(tokio::spawn(async move {
            let mut made = Vec::new();
            let mut i = c;
            while Instant::now() < until {
                let base = &bases[i % bases.len()];
                i += 1;
                match client
                    .post(format!("{base}/c/v1/leads"))
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 201 => {
                        let at = Instant::now();
                        if let Ok(v) = r.json::<Value>().await
                            && let Some(id) = v["lead_id"].as_str()
                        {
                            made.push((id.to_owned(), at));
                        }
                    }
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            made
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    let failed = failures.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(format!("{failed} captures failed").into());
    }
    Ok(all)
}

async fn delivered(arrivals: &Arrivals, leads: &[(String, Instant)]) -> BenchResult<Instant> {
    let deadline = Instant::now() + Duration::from_secs(180);
    while leads.iter().any(|(id, _)| arrivals.at(id).is_none()) {
        if Instant::now() > deadline {
            return Err("deliveries never all arrived".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    arrivals.last().ok_or_else(|| "nothing arrived".into())
}

/// What the nodes did during the measured runs: capture batches (commits), the captures in
/// them, and the nodes' CPU seconds, summed over the nodes and the runs.
#[derive(Default)]
struct Work {
    batches: f64,
    captures: f64,
    cpu: f64,
}

impl Work {
    async fn so_far(nodes: &[Server]) -> BenchResult<Work> {
        let client = reqwest::Client::new();
        let mut work = Work::default();
        for node in nodes {
            let stats = batch_stats(&client, node).await?;
            work.captures += stats.captures;
            work.batches += stats.batches;
            work.cpu += node.cpu();
        }
        Ok(work)
    }

    fn add(&mut self, after: &Work, before: &Work) {
        self.batches += after.batches - before.batches;
        self.captures += after.captures - before.captures;
        self.cpu += after.cpu - before.cpu;
    }

    fn batch_size(&self) -> f64 {
        if self.batches > 0.0 {
            self.captures / self.batches
        } else {
            0.0
        }
    }
}

/// One capture run of `n` nodes on a fresh database, for an organization without webhooks:
/// leads/s after a warm-up, and the work behind it added to `work`.
async fn capture_run(n: usize, round: usize, work: &mut Work) -> BenchResult<f64> {
    let db = Database::create(&format!("nodes_capture{n}_{round}")).await?;
    let (nodes, Organization { public_key, .. }) = cluster(&db.url, n, &[], None).await?;
    let bases: Vec<String> = nodes.iter().map(|s| s.base.clone()).collect();
    capture(&bases, &public_key, Duration::from_secs(2)).await?;
    let before = Work::so_far(&nodes).await?;
    let start = Instant::now();
    let leads = capture(&bases, &public_key, CAPTURE_FOR).await?;
    let rate = leads.len() as f64 / start.elapsed().as_secs_f64();
    work.add(&Work::so_far(&nodes).await?, &before);
    drop(nodes);
    db.drop_now().await;
    Ok(rate)
}

/// Leads/s of 1, 2 and 3 nodes, `RUNS` rounds of one run each, interleaved (see `rounds`).
async fn capture_capacity(targets: &mut Targets) -> BenchResult<()> {
    let mut work: [Work; 3] = Default::default();
    let mut rates: [Vec<f64>; 3] = Default::default();
    for round in 0..RUNS {
        for n in 1..=3 {
            rates[n - 1].push(capture_run(n, round, &mut work[n - 1]).await?);
        }
    }
    for (n, (leads, ratio, verdict)) in rounds(targets, &rates, "capture") {
        let w = &work[n - 1];
        println!(
            "{n} node(s): captured {:.0} leads/s (range {:.0}–{:.0}) = {}× one node in the same round: {verdict}; \
             the nodes committed {:.0} capture batches of {:.1} on average and used {:.1} CPU-s",
            leads.median,
            leads.min,
            leads.max,
            ratio.show(2),
            w.batches,
            w.batch_size(),
            w.cpu
        );
    }
    Ok(())
}

/// Figures of 1, 2 and 3 nodes (`rates[n - 1]`, one per round) measured in rounds, 1, 2, 3
/// nodes in each (interleaved, so that drift of the machine over the minutes of the bench falls
/// on every node count alike): for each node count the median and range, the median and range
/// of each round's figure against that round's one node, and the verdict on the target of at
/// least 0.8× one node.
fn rounds(
    targets: &mut Targets,
    rates: &[Vec<f64>; 3],
    what: &str,
) -> Vec<(usize, (Summary, Summary, &'static str))> {
    (1..=3)
        .map(|n| {
            let ratios: Vec<f64> = rates[n - 1]
                .iter()
                .zip(&rates[0])
                .map(|(r, one)| r / one)
                .collect();
            let ratio = Summary::of(&ratios);
            let verdict = if n == 1 {
                "baseline"
            } else {
                targets.check(
                    &format!("{n} nodes {what} ≥ 0.8× one node"),
                    ratio.median >= 0.8,
                )
            };
            (n, (Summary::of(&rates[n - 1]), ratio, verdict))
        })
        .collect()
}

/// `count` new leads, each with its `lead.address_preview` due, written by this process
/// through the library's store in batches as a node's writer forms them under load; the leads
/// go to `orgs` in turn.
async fn backlog(
    store: &Store,
    orgs: &[OrgId],
    count: usize,
) -> BenchResult<Vec<(String, Instant)>> {
    let address = Address::parse("1 Main St", "Austin", "TX", "78701", None)?;
    let mut leads = Vec::with_capacity(count);
    let mut turn = orgs.iter().cycle();
    while leads.len() < count {
        let commands = (0..(count - leads.len()).min(256))
            .map(|_| {
                Ok(lead_command(
                    turn.next().ok_or("no organization")?,
                    &address,
                ))
            })
            .collect::<BenchResult<Vec<CaptureCommand>>>()?;
        for reply in store.apply_capture(&commands).await? {
            match reply {
                Ok(CaptureReply::Created(c)) => leads.push((c.lead_id.to_string(), Instant::now())),
                other => return Err(format!("backlog capture: {other:?}").into()),
            }
        }
    }
    Ok(leads)
}

fn lead_command(org: &OrgId, address: &Address) -> CaptureCommand {
    CaptureCommand::CreateLead(Box::new(NewLead {
        org: org.clone(),
        arrival: Arrival {
            embedding: WidgetVersion::new(1),
            v: Some("01".into()),
            s: Some("01".into()),
            ..Arrival::default()
        },
        first_touch: None,
        address: address.clone(),
        idempotency: None,
        record_source: RecordSource::Api,
    }))
}

/// Whose endpoints a delivery run's backlog is due to.
#[derive(Clone, Copy)]
enum Subscribers {
    /// One endpoint in each of `ORGANIZATIONS` organizations.
    Many,
    /// A single endpoint of one organization.
    One,
}

impl Subscribers {
    fn organizations(self) -> usize {
        match self {
            Subscribers::Many => ORGANIZATIONS,
            Subscribers::One => 1,
        }
    }

    fn short(self) -> &'static str {
        match self {
            Subscribers::Many => "many",
            Subscribers::One => "one",
        }
    }

    fn describe(self) -> String {
        match self {
            Subscribers::Many => format!("one endpoint in each of {ORGANIZATIONS} organizations"),
            Subscribers::One => "a single endpoint (its in-flight bound holds across nodes)".into(),
        }
    }
}

/// Deliveries/s of `n` nodes draining a backlog written before they start, and the nodes' CPU
/// seconds.
async fn delivery_run(n: usize, round: usize, to: Subscribers) -> BenchResult<(f64, f64)> {
    let db = Database::create(&format!("nodes_delivery_{}{n}_{round}", to.short())).await?;
    let (hook, arrivals) = receiver().await?;
    let setup = nodes(&db.url, 1, &[])?;
    let mut orgs = Vec::with_capacity(to.organizations());
    for i in 0..to.organizations() {
        let org = organization(&setup[0].base, &format!("Roofer {i}"), Some(&hook)).await?;
        orgs.push(OrgId::parse(&org.id).ok_or("bad org id")?);
    }
    drop(setup);
    let writer = Store::connect(&db.url).await?;
    let leads = backlog(&writer, &orgs, BACKLOG).await?;
    let start = Instant::now();
    let nodes = nodes(&db.url, n, &[])?;
    let last = delivered(&arrivals, &leads).await?;
    let rate = leads.len() as f64 / last.duration_since(start).as_secs_f64();
    let cpu = nodes.iter().map(Server::cpu).sum::<f64>();
    drop(nodes);
    writer.close().await;
    db.drop_now().await;
    Ok((rate, cpu))
}

/// Deliveries/s of 1, 2 and 3 nodes for each subscriber base, `RUNS` rounds of one run each,
/// interleaved (see `rounds`), each on a fresh database with its backlog written before the
/// nodes start.
async fn delivery_capacity(targets: &mut Targets) -> BenchResult<()> {
    for to in [Subscribers::Many, Subscribers::One] {
        println!("deliveries to {}:", to.describe());
        let mut cpu = [0.0; 3];
        let mut rates: [Vec<f64>; 3] = Default::default();
        for round in 0..RUNS {
            for n in 1..=3 {
                let (rate, used) = delivery_run(n, round, to).await?;
                rates[n - 1].push(rate);
                cpu[n - 1] += used;
            }
        }
        let what = format!("deliver ({} endpoints)", to.short());
        for (n, (sent, ratio, verdict)) in rounds(targets, &rates, &what) {
            println!(
                "  {n} node(s): delivered a backlog of {BACKLOG} at {:.0}/s (range {:.0}–{:.0}) = \
                 {}× one node in the same round: {verdict}; the nodes used {:.1} CPU-s",
                sent.median,
                sent.min,
                sent.max,
                ratio.show(2),
                cpu[n - 1]
            );
        }
    }
    Ok(())
}

/// Each lead's wait from its commit to its receipt, sorted; every one of the leads written.
async fn commit_to_receipt(
    arrivals: &Arrivals,
    written: Vec<Option<(String, Instant)>>,
    what: &str,
) -> BenchResult<Vec<Duration>> {
    let leads: Vec<(String, Instant)> = written.into_iter().flatten().collect();
    if leads.len() != LATENCY_LEADS {
        return Err(format!("only {} of {LATENCY_LEADS} {what} succeeded", leads.len()).into());
    }
    delivered(arrivals, &leads).await?;
    let mut waits: Vec<Duration> = leads
        .iter()
        .filter_map(|(id, at)| Some(arrivals.at(id)?.saturating_duration_since(*at)))
        .collect();
    waits.sort();
    Ok(waits)
}

/// Commit→receipt of leads written by another node (this process) at an open-loop rate.
async fn cross_node_latency(wakeups: bool) -> BenchResult<(Vec<Duration>, f64)> {
    let label = if wakeups { "notify" } else { "poll" };
    let db = Database::create(&format!("nodes_latency_{label}")).await?;
    let (hook, arrivals) = receiver().await?;
    let env: &[(&str, &str)] = if wakeups {
        &[]
    } else {
        &[("LEADTRAIL_CROSS_NODE_WAKEUPS", "false")]
    };
    let (nodes, org) = cluster(&db.url, 2, env, Some(&hook)).await?;
    let writer = Store::connect(&db.url).await?;
    let org = OrgId::parse(&org.id).ok_or("bad org id")?;
    let address = Address::parse("1 Main St", "Austin", "TX", "78701", None)?;
    let run = open_loop(LATENCY_RATE, LATENCY_LEADS, |_| {
        let (writer, org, address) = (writer.clone(), org.clone(), address.clone());
        async move {
            let command = lead_command(&org, &address);
            let replies = writer.apply_capture(&[command]).await.ok()?;
            let at = Instant::now();
            match replies.into_iter().next()? {
                Ok(CaptureReply::Created(c)) => Some((c.lead_id.to_string(), at)),
                _ => None,
            }
        }
    })
    .await;
    let waits = commit_to_receipt(&arrivals, run.results, "writes").await?;
    writer.close().await;
    drop(nodes);
    db.drop_now().await;
    Ok((waits, run.achieved_rate))
}

/// A single node's own commit→receipt: the capture's 201 to the receipt, open loop.
async fn single_node_latency() -> BenchResult<(Vec<Duration>, f64)> {
    let db = Database::create("nodes_latency_single").await?;
    let (hook, arrivals) = receiver().await?;
    let (nodes, Organization { public_key, .. }) = cluster(&db.url, 1, &[], Some(&hook)).await?;
    let client = reqwest::Client::new();
    let base = nodes[0].base.clone();
    let run = open_loop(LATENCY_RATE, LATENCY_LEADS, |_| {
        let (client, base, body) = (client.clone(), base.clone(), lead_body(&public_key));
        async move {
            let r = client
                .post(format!("{base}/c/v1/leads"))
                .json(&body)
                .send()
                .await
                .ok()?;
            let at = Instant::now();
            let v: Value = r.json().await.ok()?;
            Some((v["lead_id"].as_str()?.to_owned(), at))
        }
    })
    .await;
    let waits = commit_to_receipt(&arrivals, run.results, "captures").await?;
    drop(nodes);
    db.drop_now().await;
    Ok((waits, run.achieved_rate))
}

#[tokio::main]
async fn main() -> BenchResult<()> {
    let mut targets = Targets::default();
    let cpu_before = own_cpu();
    capture_capacity(&mut targets).await?;
    delivery_capacity(&mut targets).await?;
    let (single, rate) = single_node_latency().await?;
    let single_p50 = ms(percentile(&single, 0.5));
    println!(
        "one node, its own capture→receipt at {rate:.1}/s: p50 {single_p50:.1} ms, p99 {:.1} ms",
        ms(percentile(&single, 0.99))
    );
    for wakeups in [true, false] {
        let (waits, rate) = cross_node_latency(wakeups).await?;
        let p50 = ms(percentile(&waits, 0.5));
        let how = if wakeups {
            "LISTEN/NOTIFY"
        } else {
            "polling alone (500 ms)"
        };
        let verdict = if wakeups {
            targets.check(
                "cross-node p50 within 50 ms of one node's",
                p50 <= single_p50 + 50.0,
            )
        } else {
            "for comparison"
        };
        println!(
            "another node's commit→receipt, two serving nodes, {how}, at {rate:.1}/s: p50 {p50:.1} ms, \
             p99 {:.1} ms: {verdict}",
            ms(percentile(&waits, 0.99))
        );
    }
    println!("load generator CPU: {:.1} s", own_cpu() - cpu_before);
    if !targets.missed().is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
