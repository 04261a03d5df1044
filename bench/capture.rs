//! Capture throughput: the release binary on a fresh SQLite file, driven from this process over
//! loopback by `CAPTURE_BENCH_CONNECTIONS` (64) keep-alive connections, closed-loop (each
//! connection sends its next request when the last is answered: a saturation test). Phases:
//! `GET /healthz` (this machine's HTTP ceiling, measured in the same run), visit beacons and
//! durable lead captures (step 1). Every phase is warmed up, then run `CAPTURE_BENCH_REPEATS`
//! times; figures are medians (range). The load generator runs on two threads and its own CPU
//! is printed beside the server's. Targets are evaluated; a missed one, or any failed request,
//! makes the bench exit non-zero.
//!
//! After the lead phase, a raw-insert baseline writes the rows the service stored (leads, their
//! events, a batch's rollup changes: upserts on SQLite, appended on PostgreSQL) straight into the database at the batch size the
//! service formed (see `support/raw_insert.rs`): the service's durable rate is judged against
//! what the database does with the same writes.
//!
//! The whole run happens on SQLite (the embedded default, whose targets are evaluated) and then
//! on a fresh PostgreSQL database (`LEADTRAIL_TEST_POSTGRES_URL`, else the local server; figures
//! for comparison).
//!
//! Run: `cargo bench --bench capture` (optional: `CAPTURE_BENCH_SECONDS=5`,
//! `CAPTURE_BENCH_CONNECTIONS=64`, `CAPTURE_BENCH_REPEATS=3`,
//! `CAPTURE_BENCH_BACKENDS=sqlite,postgres`)

#[path = "support/harness.rs"]
mod harness;
#[path = "support/raw_insert.rs"]
mod raw_insert;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{
    ADMIN, BenchResult, Database, MachineCpu, Sched, Server, Summary, Targets, batch_stats, ms,
    own_cpu, percentile,
};
use serde_json::{Value, json};

/// One run of one phase.
struct Run {
    rps: f64,
    p50: Duration,
    p99: Duration,
    errors: u64,
    /// Cores used over the run, by the server and by this load generator.
    server_cores: f64,
    generator_cores: f64,
}

#[derive(Clone)]
enum Load {
    Health,
    Visit(Arc<String>),
    Lead(Arc<String>),
}

async fn drive(server: &Server, load: &Load, connections: usize, seconds: f64) -> Run {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap_or_default();
    let (url, body): (String, Option<Arc<String>>) = match load {
        Load::Health => (format!("{}/healthz", server.base), None),
        Load::Visit(b) => (format!("{}/c/v1/visits", server.base), Some(b.clone())),
        Load::Lead(b) => (format!("{}/c/v1/leads", server.base), Some(b.clone())),
    };
    let (server_cpu, generator_cpu, started) = (server.cpu(), own_cpu(), Instant::now());
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(16_384);
            let mut errors = 0u64;
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
        match task.await {
            Ok((l, e)) => {
                all.extend(l);
                errors += e;
            }
            Err(_) => errors += 1,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    Run {
        rps: all.len() as f64 / elapsed,
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
        errors,
        server_cores: (server.cpu() - server_cpu) / elapsed,
        generator_cores: (own_cpu() - generator_cpu) / elapsed,
    }
}

/// The same rows written straight into the database (see `raw_insert`) at the batch size the
/// service formed, and at larger batches for context; the service's durable rate against the
/// first. The 0.7× target is the embedded default's (SQLite); on PostgreSQL the ratio is shown.
async fn raw_baseline(
    server: &Server,
    raw: &Raw,
    leads: &Row,
    formed: f64,
    repeats: usize,
    targets: &mut Targets,
) -> BenchResult<Option<RawAtFormed>> {
    const TOTAL: usize = 20_000;
    let formed_size = (formed.round() as usize).max(1);
    let mut sizes = vec![formed_size];
    sizes.extend([64, 256].into_iter().filter(|&s| s > formed_size));
    let how = match raw {
        Raw::Sqlite => "rusqlite, prepared statements",
        Raw::Postgres { .. } => "one multi-row INSERT per table and batch",
    };
    println!(
        "  raw-insert baseline (the service's rows, schema and durability, {how}; {TOTAL} leads per run):"
    );
    let sample = match raw {
        Raw::Sqlite => Baseline::Sqlite(raw_insert::Sample::read(&server.database_path(), TOTAL)?),
        Raw::Postgres { service_url } => {
            Baseline::Postgres(raw_insert::PgSample::read(service_url, TOTAL).await?)
        }
    };
    let mut at_formed = None;
    for size in sizes {
        let mut rates = Vec::with_capacity(repeats);
        let mut commit_shares = Vec::new();
        let mut cpu_shares = Vec::new();
        let mut waiting_shares = Vec::new();
        for run in 0..repeats.max(1) {
            rates.push(match &sample {
                Baseline::Sqlite(sqlite) => {
                    let run = sqlite.write(server.scratch_dir(), size, TOTAL)?;
                    commit_shares.push(run.commit_share);
                    cpu_shares.push(run.on_cpu_share);
                    waiting_shares.push(run.waiting_share);
                    run.leads_per_second
                }
                Baseline::Postgres(postgres) => {
                    let db = Database::create(&format!("capture_raw_{size}_{run}")).await?;
                    let rate = postgres.write(&db.url, size, TOTAL).await;
                    db.drop_now().await;
                    rate?
                }
            });
        }
        let raw_rate = Summary::of(&rates);
        if size == formed_size {
            let ratio = leads.rps.median / raw_rate.median;
            let verdict = match raw {
                Raw::Sqlite => format!(
                    "  (target >= 0.7×: {})",
                    targets.check(
                        "durable leads >= 0.7× raw insert at the same batch size",
                        ratio >= 0.7
                    )
                ),
                Raw::Postgres { .. } => String::new(),
            };
            let per_transaction = size as f64 * 1000.0 / raw_rate.median;
            if !cpu_shares.is_empty() {
                at_formed = Some(RawAtFormed {
                    leads_per_second: raw_rate.median,
                    cpu_us_per_lead: cpu_us(Summary::of(&cpu_shares).median, raw_rate.median),
                });
            }
            let split = if commit_shares.is_empty() {
                String::new()
            } else {
                let share = |shares: &[f64]| per_transaction * Summary::of(shares).median;
                let commit = share(&commit_shares);
                format!(
                    ": {:.2} ms of statements, {commit:.2} ms of commit; {:.2} ms on a CPU, {:.2} ms waiting for one",
                    per_transaction - commit,
                    share(&cpu_shares),
                    share(&waiting_shares),
                )
            };
            println!(
                "    {size:>4} leads per transaction (as the service formed)  {} leads/s ({per_transaction:.2} ms per transaction{split})  service {ratio:.2}× raw{verdict}",
                raw_rate.show(0),
            );
        } else {
            println!(
                "    {size:>4} leads per transaction                         {} leads/s",
                raw_rate.show(0)
            );
        }
    }
    Ok(at_formed)
}

/// The raw-insert baseline at the batch size the service formed.
struct RawAtFormed {
    leads_per_second: f64,
    /// CPU the baseline's one thread spent per lead.
    cpu_us_per_lead: f64,
}

/// Microseconds of CPU per request: `cores` busy while serving `rate` requests a second.
fn cpu_us(cores: f64, rate: f64) -> f64 {
    cores * 1e6 / rate
}

/// Where the durable lead rate's CPU goes, and how many of this machine's cores the 0.7× target
/// would take at today's cost per lead: the server and the load generator share the cores, so
/// a target rate times the CPU a lead costs both must fit in them (and a closed loop whose
/// writer waits for its fsync never keeps every core busy).
fn print_budget(ceiling: &Row, leads: &Row, raw: &RawAtFormed) {
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    let server = cpu_us(leads.server.median, leads.rps.median);
    let generator = cpu_us(leads.generator.median, leads.rps.median);
    let bare = cpu_us(ceiling.server.median, ceiling.rps.median);
    let target = 0.7 * raw.leads_per_second;
    let needed = target * (server + generator) / 1e6;
    let afford = cores * 1e6 / (server + generator);
    println!(
        "  CPU per durable lead: server {server:.0} µs (the raw write alone {:.0} µs, a bare GET /healthz {bare:.0} µs), load generator {generator:.0} µs",
        raw.cpu_us_per_lead
    );
    println!(
        "  at that cost the {cores:.0} cores afford at most {afford:.0} leads/s with every core busy; the 0.7× raw target ({target:.0}/s) needs {needed:.2} cores"
    );
}

/// Whether the lead runs had the machine to spare: where a single writer's figures come from
/// on a machine whose cores the HTTP work also needs.
fn print_machine(machine: &MachineCpu, seconds: f64) {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "  the machine during the lead runs: {:.2} of {cores} cores busy, {:.2} idle ({:.2} of it waiting for the disk)",
        machine.busy_cores(seconds),
        machine.idle / seconds,
        machine.iowait / seconds,
    );
}

/// The server's threads over the lead runs: cores on a CPU, and cores' worth of time spent
/// runnable but waiting for one; the SQLite writer's per transaction.
fn print_threads(
    before: &BTreeMap<String, Sched>,
    after: &BTreeMap<String, Sched>,
    seconds: f64,
    transactions: f64,
) {
    let mut shown = Vec::new();
    for (name, now) in after {
        let used = *now - before.get(name).copied().unwrap_or_default();
        if used.on_cpu / seconds >= 0.01 {
            shown.push(format!(
                "{name} {:.2} (+{:.2} waiting)",
                used.on_cpu / seconds,
                used.waiting / seconds
            ));
        }
        if name == "sqlite-native" && transactions > 0.0 {
            println!(
                "  the SQLite writing thread per transaction: {:.2} ms on a CPU, {:.2} ms runnable waiting for one",
                used.on_cpu * 1000.0 / transactions,
                used.waiting * 1000.0 / transactions,
            );
        }
    }
    println!(
        "  server threads, cores on a CPU (+ waiting for one): {}",
        shown.join(", ")
    );
}

/// Warm-up, then `repeats` runs.
async fn phase(
    server: &Server,
    load: &Load,
    connections: usize,
    seconds: f64,
    repeats: usize,
) -> Vec<Run> {
    drive(server, load, connections, 1.0).await;
    let mut runs = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        runs.push(drive(server, load, connections, seconds).await);
    }
    runs
}

struct Row {
    rps: Summary,
    p50: Summary,
    p99: Summary,
    server: Summary,
    generator: Summary,
    errors: u64,
}

fn summarize(runs: &[Run]) -> Row {
    let of = |f: &dyn Fn(&Run) -> f64| Summary::of(&runs.iter().map(f).collect::<Vec<_>>());
    Row {
        rps: of(&|r| r.rps),
        p50: of(&|r| ms(r.p50)),
        p99: of(&|r| ms(r.p99)),
        server: of(&|r| r.server_cores),
        generator: of(&|r| r.generator_cores),
        errors: runs.iter().map(|r| r.errors).sum(),
    }
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// How long and how hard each phase runs.
#[derive(Clone, Copy)]
struct Settings {
    seconds: f64,
    connections: usize,
    repeats: usize,
}

/// Where the raw-insert baseline reads the service's rows and writes its own.
enum Raw {
    Sqlite,
    Postgres { service_url: String },
}

/// The service's rows, read back for the raw-insert baseline.
enum Baseline {
    Sqlite(raw_insert::Sample),
    Postgres(raw_insert::PgSample),
}

fn main() -> BenchResult<()> {
    let settings = Settings {
        seconds: env_num("CAPTURE_BENCH_SECONDS", 5.0),
        connections: env_num("CAPTURE_BENCH_CONNECTIONS", 64),
        repeats: env_num("CAPTURE_BENCH_REPEATS", 3),
    };
    let backends =
        std::env::var("CAPTURE_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    // Two threads for the load generator; the server has the machine's cores. Both share them,
    // so the generator's own CPU is printed with every figure.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut failed = Vec::new();
    for backend in backends.split(',').map(str::trim) {
        let outcome = match backend {
            "sqlite" => Server::start(&[])
                .and_then(|server| rt.block_on(run(&server, Raw::Sqlite, settings))),
            "postgres" => rt.block_on(on_postgres(settings)),
            other => Err(format!("unknown backend {other:?} (sqlite, postgres)").into()),
        };
        if let Err(e) = outcome {
            println!("  {backend}: FAILED: {e}");
            failed.push(format!("{backend}: {e}"));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; ").into())
    }
}

/// The same phases on a fresh PostgreSQL database (dropped after).
async fn on_postgres(settings: Settings) -> BenchResult<()> {
    let db = Database::create("capture").await?;
    let outcome = match Server::start(&[("LEADTRAIL_DATABASE_URL", db.url.as_str())]) {
        Ok(server) => {
            let raw = Raw::Postgres {
                service_url: db.url.clone(),
            };
            run(&server, raw, settings).await
        }
        Err(e) => Err(e),
    };
    db.drop_now().await;
    outcome
}

async fn run(server: &Server, raw: Raw, settings: Settings) -> BenchResult<()> {
    let Settings {
        seconds,
        connections,
        repeats,
    } = settings;
    let client = reqwest::Client::new();
    let org: Value = client
        .post(format!("{}/api/v1/organizations", server.base))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "Bench Roofing", "tier": "starter",
            "website_url": "https://bench.example", "brand_color": "#000000"}))
        .send()
        .await?
        .json()
        .await?;
    let pk = org["public_key"]
        .as_str()
        .ok_or("no public key")?
        .to_owned();
    let key = org["api_key"].as_str().ok_or("no api key")?.to_owned();
    client
        .post(format!("{}/api/v1/widgets/01/sources", server.base))
        .bearer_auth(&key)
        .json(&json!({"name": "Facebook Ads", "channel_category": "paid_social"}))
        .send()
        .await?;
    let visit = Arc::new(
        json!({"public_key": pk, "widget": "01", "v": "01", "s": "02",
            "page_url": "https://bench.example/?roof-estimate=open&v=01&s=02", "visitor_id": "v1"})
        .to_string(),
    );
    // As widget.js sends it: with the visitor id, whose visits the lead's touches are read from.
    let lead = Arc::new(
        json!({"public_key": pk, "widget": "01", "v": "01", "s": "02", "visitor_id": "homeowner-7",
            "address": {"street": "1 Main St", "city": "Austin", "state": "TX", "postal_code": "78701"}})
        .to_string(),
    );
    let on = match raw {
        Raw::Sqlite => "a fresh SQLite file (WAL, synchronous=FULL)",
        Raw::Postgres { .. } => "a fresh PostgreSQL database (synchronous_commit on)",
    };
    println!(
        "capture benchmark: {connections} connections (closed loop), {seconds:.0} s per run, {repeats} runs after a warm-up, \
         release binary on {on}; median (range)"
    );
    let ceiling = summarize(&phase(server, &Load::Health, connections, seconds, repeats).await);
    let visits =
        summarize(&phase(server, &Load::Visit(visit), connections, seconds, repeats).await);
    // Visits are buffered up to a second: let the last of them reach the disk before leads.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let metrics_before = batch_stats(&client, server).await?;
    let (machine_before, threads_before) = (MachineCpu::now(), Sched::by_thread_name(server.pid()));
    let lead_runs = Instant::now();
    let leads = summarize(&phase(server, &Load::Lead(lead), connections, seconds, repeats).await);
    let lead_seconds = lead_runs.elapsed().as_secs_f64();
    let machine = MachineCpu::now() - machine_before;
    let threads = Sched::by_thread_name(server.pid());
    let metrics_after = batch_stats(&client, server).await?;
    let mut targets = Targets::default();
    let print = |name: &str, row: &Row, ratio: Option<Summary>, verdict: String| {
        println!(
            "  {name:<26} {} req/s  p50 {} ms  p99 {} ms{}{verdict}",
            row.rps.show(0),
            row.p50.show(2),
            row.p99.show(2),
            ratio.map_or(String::new(), |r| format!("  {}× ceiling", r.show(2))),
        );
        println!(
            "  {:<26} server {} cores, load generator {} cores, errors {}",
            "",
            row.server.show(2),
            row.generator.show(2),
            row.errors
        );
    };
    let ratio = |row: &Row| Summary {
        median: row.rps.median / ceiling.rps.median,
        min: row.rps.min / ceiling.rps.median,
        max: row.rps.max / ceiling.rps.median,
    };
    print("GET /healthz (ceiling)", &ceiling, None, String::new());
    let visits_ratio = ratio(&visits);
    let verdict = format!(
        "  (target >= 0.6×: {}; p99 < 50 ms: {})",
        targets.check("visits >= 0.6× ceiling", visits_ratio.median >= 0.6),
        targets.check("visits p99 < 50 ms", visits.p99.median < 50.0)
    );
    print("POST /c/v1/visits", &visits, Some(visits_ratio), verdict);
    let leads_ratio = ratio(&leads);
    let verdict = format!(
        "  (target >= 0.3×: {}; p99 < 50 ms: {})",
        targets.check("durable leads >= 0.3× ceiling", leads_ratio.median >= 0.3),
        targets.check("durable leads p99 < 50 ms", leads.p99.median < 50.0)
    );
    print(
        "POST /c/v1/leads (durable)",
        &leads,
        Some(leads_ratio),
        verdict,
    );
    let batches = metrics_after - metrics_before;
    if batches.batches == 0.0 {
        return Err("the server reported no capture batches".into());
    }
    let formed = batches.captures / batches.batches;
    println!(
        "  group commit during the lead runs: {:.0} transactions, {formed:.1} captures per transaction on average",
        batches.batches
    );
    if batches.work_seconds > 0.0 {
        println!(
            "  per transaction: {:.2} ms of statements, {:.2} ms of commit (fsync); the writer was busy {:.0} % of the lead runs",
            batches.work_seconds * 1000.0 / batches.batches,
            batches.commit_seconds * 1000.0 / batches.batches,
            100.0 * (batches.work_seconds + batches.commit_seconds) / lead_seconds,
        );
    }
    print_machine(&machine, lead_seconds);
    print_threads(&threads_before, &threads, lead_seconds, batches.batches);
    if let Some(at_formed) =
        raw_baseline(server, &raw, &leads, formed, repeats, &mut targets).await?
    {
        print_budget(&ceiling, &leads, &at_formed);
    }
    let errors = ceiling.errors + visits.errors + leads.errors;
    if errors > 0 {
        return Err(format!("{errors} requests failed").into());
    }
    if matches!(raw, Raw::Postgres { .. }) {
        // The targets are the embedded default's; PostgreSQL's figures are for comparison.
        println!("  (PostgreSQL: targets shown for reference, not required)");
        return Ok(());
    }
    if !targets.missed().is_empty() {
        return Err(format!("targets missed: {}", targets.missed().join(", ")).into());
    }
    Ok(())
}
