//! Lead export and import at scale, on the release binary: 1,000,000 leads go in through
//! `POST /api/v1/leads/import` (files of 50,000, all-or-nothing each), then come out through
//! `GET /api/v1/leads/export.csv` and `export.jsonl`, streamed.
//!
//! What it shows: the import rate; the export rate (leads/s, MB/s); and that the export streams
//! in bounded memory — the server's resident memory is sampled every 5 ms during each export,
//! and the peak growth over the RSS before it is compared for the whole million and for a
//! tenth of it (the same query with a date filter), per format, measured in the same run after
//! a warm-up export of each format has filled the database page caches. Each export runs three
//! times: median and range, and the largest growth is the one checked. Target: the million's
//! peak growth within 64 MB (one connection's page cache) of the tenth's; a buffered export
//! would grow by the whole file, 354 MB of CSV or 1.4 GB of JSON Lines. Every export must hold
//! exactly the leads asked for.
//!
//! Run: `cargo bench --bench export` (optional: `EXPORT_BENCH_LEADS=1000000`). Exit code 1 if a
//! target is missed or a count is wrong.

#[path = "support/harness.rs"]
mod harness;

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use leadtrail::store::rfc3339;

use harness::{ADMIN, BenchResult, Server, Summary, Targets};

const IMPORT_FILE: usize = 50_000;
const RUNS: usize = 3;
const DAY_MS: i64 = 86_400_000;
/// Leads arrive over the year before now; the "tenth" export asks for the last 36.5 days.
const SPAN_DAYS: i64 = 365;
/// How much more the whole export's peak may grow than the tenth's: one pool connection's
/// SQLite page cache (`cache_size = -65536`, 64 MB), which can still fill during a run when the
/// pool hands the export a connection that has not served it before. A buffered export would
/// grow by the whole file instead (354 MB of CSV, 1.4 GB of JSON Lines at a million leads).
const BOUND_MB: f64 = 64.0;

fn leads_wanted() -> usize {
    std::env::var("EXPORT_BENCH_LEADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// Lead `i` of `n` as an import line: spread evenly over the year, every fourth source,
/// half of them with the project and contact steps, some won or lost.
fn line(out: &mut String, i: usize, n: usize, now: i64) {
    let at = now - 60_000 - (SPAN_DAYS * DAY_MS) * (n - 1 - i) as i64 / n.max(1) as i64;
    let source = ["01", "02", "03", "04"][i % 4];
    let _ = write!(
        out,
        "{},01,{source},{} Main St,Austin,TX,78701,google,cpc,spring-{}",
        rfc3339(at),
        i % 9_000 + 1,
        i % 12
    );
    if i.is_multiple_of(2) {
        let _ = write!(
            out,
            ",replacement,asphalt_shingle,2,within_1_month,Ann,Lee{},ann{i}@example.com,5125550100,true",
            i % 100
        );
    } else {
        out.push_str(",,,,,,,,,");
    }
    match i % 10 {
        0 => out.push_str(",won,1250000,"),
        1 => out.push_str(",lost,,price"),
        _ => out.push_str(",open,,"),
    }
    out.push('\n');
}

const HEADER: &str = "created_at,widget_version,source_code,street,city,state,postal_code,\
    utm_source,utm_medium,utm_campaign,roof_type,material,stories,urgency,first_name,last_name,\
    email,phone,owner_occupied,outcome,outcome_value,lost_reason\n";

/// The server's resident memory now, in MB (`VmRSS`).
fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// One export: (seconds, bytes, lines without the header, peak RSS growth in MB).
async fn export(
    client: &reqwest::Client,
    server: &Server,
    key: &str,
    path: &str,
) -> BenchResult<(f64, u64, u64, f64)> {
    let pid = server.pid();
    let before = rss_mb(pid);
    let peak = Arc::new(AtomicU64::new(before.to_bits()));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let now = rss_mb(pid);
                if now > f64::from_bits(peak.load(Ordering::Relaxed)) {
                    peak.store(now.to_bits(), Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let started = Instant::now();
    let res = client
        .get(format!("{}{path}", server.base))
        .bearer_auth(key)
        .send()
        .await?;
    if !res.status().is_success() {
        return Err(format!("{path}: {}", res.status()).into());
    }
    let (mut bytes, mut newlines) = (0u64, 0u64);
    let mut res = res;
    while let Some(chunk) = res.chunk().await? {
        bytes += chunk.len() as u64;
        newlines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let growth = f64::from_bits(peak.load(Ordering::Relaxed)) - before;
    let lines = if path.contains(".csv") {
        newlines.saturating_sub(1)
    } else {
        newlines
    };
    Ok((seconds, bytes, lines, growth))
}

async fn call(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    path: &str,
    body: Value,
) -> BenchResult<Value> {
    let res = client
        .post(format!("{base}{path}"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await?;
    let status = res.status();
    let body: Value = res.json().await?;
    if !status.is_success() {
        return Err(format!("{path}: {status} {body}").into());
    }
    Ok(body)
}

#[tokio::main]
async fn main() -> BenchResult<()> {
    let n = leads_wanted();
    let server = Server::start(&[])?;
    let client = reqwest::Client::new();
    let org = call(
        &client,
        &server.base,
        ADMIN,
        "/api/v1/organizations",
        json!({"name": "Acme Roofing", "tier": "premium",
            "website_url": "https://acme.example/", "brand_color": "#1A73E8"}),
    )
    .await?;
    let key = org["api_key"].as_str().ok_or("no api key")?.to_owned();
    for (name, category) in [
        ("Yard Signs", "print_outdoor"),
        ("Mailers", "direct_mail"),
        ("Facebook Ads", "paid_social"),
    ] {
        call(
            &client,
            &server.base,
            &key,
            "/api/v1/widgets/01/sources",
            json!({"name": name, "channel_category": category}),
        )
        .await?;
    }

    // Import: files of 50,000 lines.
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let started = Instant::now();
    let mut imported = 0usize;
    let mut file_seconds = Vec::new();
    while imported < n {
        let size = IMPORT_FILE.min(n - imported);
        let mut csv = String::with_capacity(size * 160 + HEADER.len());
        csv.push_str(HEADER);
        for i in imported..imported + size {
            line(&mut csv, i, n, now);
        }
        let t = Instant::now();
        let res = client
            .post(format!("{}/api/v1/leads/import", server.base))
            .bearer_auth(&key)
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await?;
        let status = res.status();
        let body: Value = res.json().await?;
        if !status.is_success() || body["imported"] != size {
            return Err(format!("import: {status} {body}").into());
        }
        file_seconds.push(t.elapsed().as_secs_f64());
        imported += size;
    }
    let import_s = started.elapsed().as_secs_f64();
    let per_file = Summary::of(&file_seconds);
    println!(
        "import: {n} leads in {} files of up to {IMPORT_FILE} in {import_s:.1} s = {:.0} leads/s \
         (a file: median {:.2} s, range {:.2}–{:.2} s; server CPU {:.1} s)",
        file_seconds.len(),
        n as f64 / import_s,
        per_file.median,
        per_file.min,
        per_file.max,
        server.cpu()
    );

    let from = rfc3339(now - SPAN_DAYS * DAY_MS / 10);
    let tenth_path = format!("/api/v1/leads/export.csv?from={}", from.replace('+', "%2B"));
    // The expected tenth, counted by the list API's filter semantics: created_at >= from.
    let expected_tenth = (0..n)
        .filter(|i| {
            now - 60_000 - (SPAN_DAYS * DAY_MS) * (n - 1 - i) as i64 / n.max(1) as i64
                >= now - SPAN_DAYS * DAY_MS / 10
        })
        .count() as u64;

    let mut targets = Targets::default();
    let mut wrong = Vec::new();
    // Warm-up, each format once: fills the database page caches and lets the allocator reach
    // its working size, so the growth measured next is the export's own.
    for path in ["/api/v1/leads/export.csv", "/api/v1/leads/export.jsonl"] {
        let (s, bytes, lines, growth) = export(&client, &server, &key, path).await?;
        println!(
            "warm-up {path}: {lines} leads, {:.1} MB in {s:.1} s; RSS grew {growth:.1} MB",
            bytes as f64 / 1e6
        );
    }
    let jsonl_tenth = tenth_path.replace("export.csv", "export.jsonl");
    let mut peaks = Vec::new();
    for (label, path, expected) in [
        (
            "CSV, a tenth (date filter)",
            tenth_path.clone(),
            expected_tenth,
        ),
        ("CSV, all", "/api/v1/leads/export.csv".to_owned(), n as u64),
        (
            "JSON Lines, a tenth (date filter)",
            jsonl_tenth,
            expected_tenth,
        ),
        (
            "JSON Lines, all",
            "/api/v1/leads/export.jsonl".to_owned(),
            n as u64,
        ),
    ] {
        let mut secs = Vec::new();
        let mut growths = Vec::new();
        let mut size = 0;
        for _ in 0..RUNS {
            let (s, bytes, lines, growth) = export(&client, &server, &key, &path).await?;
            if lines != expected {
                wrong.push(format!("{label}: {lines} leads, expected {expected}"));
            }
            secs.push(s);
            growths.push(growth);
            size = bytes;
        }
        let s = Summary::of(&secs);
        let g = Summary::of(&growths);
        println!(
            "export {label}: {expected} leads, {:.1} MB; median {:.2} s (range {:.2}–{:.2}) = \
             {:.0} leads/s, {:.1} MB/s; peak RSS growth median {:.1} MB (range {:.1}–{:.1})",
            size as f64 / 1e6,
            s.median,
            s.min,
            s.max,
            expected as f64 / s.median,
            size as f64 / 1e6 / s.median,
            g.median,
            g.min,
            g.max
        );
        peaks.push(g.max);
    }
    for (label, tenth, all) in [
        ("CSV", peaks[0], peaks[1]),
        ("JSON Lines", peaks[2], peaks[3]),
    ] {
        let bound = tenth.max(0.0) + BOUND_MB;
        let met = targets.check(
            &format!("{label} export of all leads within {BOUND_MB} MB of a tenth's peak growth"),
            all <= bound,
        );
        println!(
            "bounded memory, {label}: all {n} leads peak growth {all:.1} MB vs a tenth {tenth:.1} MB \
             (+{BOUND_MB} MB allowed): {met}"
        );
    }
    println!("server RSS at the end: {:.0} MB", rss_mb(server.pid()));
    for w in &wrong {
        println!("WRONG: {w}");
    }
    if !wrong.is_empty() || !targets.missed().is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
