//! Reports at scale, on SQLite and on PostgreSQL: one organization with 1,000,000 leads and
//! 10,000,000 visits over 10 sources and 90 days (in America/Denver, with a daylight-saving
//! change inside). Each report query over the last 90 whole local days is timed as the service
//! answers it (from the rollups; median of 21 runs after a warm-up) and as a naive `GROUP BY`
//! over the raw rows answers it (median of 5), in the same run on the same database; the two
//! answers must be equal. Targets: every rollup query
//! under 20 ms and at least 20× faster than naive — the whole report (every source with its
//! outcomes, revenue, spend and costs, channels, derived channels) included, and the reports
//! under the linear and time-decay models, every lead with three touches on average (the
//! naive answer there recounts each lead's credit from its touches).
//!
//! Seeding: 2,000 leads and 20,000 visits go through the real capture path (attribution,
//! steps, enrichment, first touches, corrections, self-reported answers, outcomes (won, lost,
//! moved back and forth) and four months of spend per source); they are then copied
//! with SQL, spread over the 90 days, up to the asked size, and the rollups are built with the
//! code of `leadtrail rollups rebuild` (the upgrade path for existing data).
//!
//! Run: `cargo bench --bench reports` (optional: `REPORTS_BENCH_LEADS=1000000`,
//! `REPORTS_BENCH_VISITS=10000000`, `REPORTS_BENCH_BACKENDS=sqlite,postgres`,
//! `LEADTRAIL_TEST_POSTGRES_URL=postgres://…/test`). PostgreSQL gets a fresh database, dropped
//! afterwards. Exit code 1 if a target is missed or two answers differ.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/seed.rs"]
mod seed;

use leadtrail::domain::attribution::Arrival;
use std::future::Future;
use std::time::Instant;

use leadtrail::domain::attribution::Utm;
use leadtrail::domain::channel::ChannelCategory;
use leadtrail::domain::estimate::enrich;
use leadtrail::domain::ids::OrgId;
use leadtrail::domain::lead::{
    Address, ContactPreference, PersonalInfo, ProjectDetails, ProjectInput, Step,
};
use leadtrail::domain::multi_touch::Model;
use leadtrail::domain::organization::{BrandColor, OrgName, SiteUrl};
use leadtrail::domain::outcome::{LostReason, Outcome};
use leadtrail::domain::source::{SourceCode, SourceName};
use leadtrail::domain::spend::{Month, SpendEntry};
use leadtrail::domain::tier::Tier;
use leadtrail::domain::time_zone::OrgTimeZone;
use leadtrail::domain::widget::WidgetVersion;
use leadtrail::reports::Report;
use leadtrail::store::{
    CaptureCommand, CaptureReply, FirstTouch, Interval, NewOrganization, NewSource, NewVisit,
    OrganizationPatch, ReportFilter, StepUpdate, Store,
};

use harness::{Database, Summary, Targets, ms};
use seed::BoxError;

/// Runs of each rollup query (milliseconds each), and of each naive one (seconds each at the
/// full size).
const RUNS: usize = 21;
const NAIVE_RUNS: usize = 5;
const DAYS: i64 = 90;
const DAY_MS: i64 = 86_400_000;
const CAPTURED_LEADS: usize = 2_000;
const CAPTURED_VISITS: usize = 20_000;

/// Times `f` `runs` times after one warm-up; a failing call fails the bench.
async fn measure<F, Fut, T>(runs: usize, mut f: F) -> Result<(Summary, T), BoxError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, leadtrail::store::StoreError>>,
{
    let answer = f().await?;
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        f().await?;
        samples.push(ms(start.elapsed()));
    }
    Ok((Summary::of(&samples), answer))
}

async fn organization(store: &Store) -> Result<OrgId, BoxError> {
    let org = store
        .create_organization(NewOrganization {
            name: OrgName::parse("Bench Roofing")?,
            website_url: SiteUrl::parse("website_url", "https://bench.example")?,
            brand_color: BrandColor::parse("#1A73E8")?,
            tier: Tier::Starter,
            owner: None,
        })
        .await?
        .organization
        .id;
    for i in 0..9 {
        store
            .create_source(
                &org,
                WidgetVersion::PRIMARY,
                NewSource {
                    name: SourceName::parse(&format!("Source {i}"))?,
                    channel_category: [ChannelCategory::PaidSocial, ChannelCategory::PaidSearch]
                        [i % 2],
                    generate_qr: false,
                },
            )
            .await?;
    }
    store
        .update_organization(
            &org,
            OrganizationPatch {
                time_zone: Some(OrgTimeZone::parse("America/Denver")?),
                ..OrganizationPatch::default()
            },
        )
        .await?;
    Ok(org)
}

/// Leads and visits through the real capture path, with steps, enrichment, first touches and
/// corrections, so every rollup column has something in it.
async fn capture(store: &Store, org: &OrgId) -> Result<f64, BoxError> {
    let address = Address::parse("1 Main St", "Austin", "TX", "78701", None)?;
    // Journeys: before converting, homeowner n visited through one to three other sources
    // (two on average) in the hours before: with the arrival, three touches per lead.
    let now = leadtrail::store::now_ms();
    let journeys: Vec<NewVisit> = (0..CAPTURED_LEADS)
        .flat_map(|n| (0..=n % 3).map(move |k| (n, k)))
        .map(|(n, k)| NewVisit {
            org: org.clone(),
            arrival: Arrival {
                embedding: Some(WidgetVersion::PRIMARY),
                v: Some("01".into()),
                s: Some(format!("{:02}", (n + 3 * k + 1) % 10 + 1)),
                page_url: Some("https://bench.example/".into()),
                visitor_id: Some(format!("b{n}")),
                ..Arrival::default()
            },
            at: now - 6 * 3_600_000 + i64::try_from(k).unwrap_or(0) * 600_000,
        })
        .collect();
    for chunk in journeys.chunks(2_000) {
        store.insert_visits(chunk).await?;
    }
    let mut created = Vec::new();
    for chunk in 0..CAPTURED_LEADS.div_ceil(250) {
        let commands: Vec<_> = (chunk * 250..CAPTURED_LEADS.min(chunk * 250 + 250))
            .map(|n| {
                let CaptureCommand::CreateLead(mut new) = seed::new_lead(org, n % 10 + 1, &address)
                else {
                    unreachable!("seed::new_lead creates")
                };
                if n.is_multiple_of(2) {
                    new.first_touch = Some(FirstTouch {
                        v: Some("01".into()),
                        s: Some(format!("{:02}", (n / 2) % 10 + 1)),
                        at: None,
                        utm: Utm::default(),
                        referrer: Some("https://www.google.com/".into()),
                        page_url: None,
                    });
                }
                if n % 10 == 0 {
                    new.arrival.referrer = Some("https://www.google.com/".into());
                }
                new.arrival.visitor_id = Some(format!("b{n}"));
                CaptureCommand::CreateLead(new)
            })
            .collect();
        for reply in store.apply_capture(&commands).await? {
            match reply {
                Ok(CaptureReply::Created(c)) => created.push(c),
                other => return Err(format!("seeding refused: {other:?}").into()),
            }
        }
    }
    let project = ProjectDetails::parse(ProjectInput {
        roof_type: "replacement",
        material: "metal",
        stories: 2,
        pitch: Some("medium"),
        urgency: "within_1_month",
        roof_age_years: Some(18),
        insurance_claim: None,
        financing_interest: None,
    })?;
    let personal = PersonalInfo::parse("Ann", "Lee", "ann@example.com", "5125550100", true, None)?;
    let contact = ContactPreference::parse("phone", "morning")?;
    let steps = [
        Step::ProjectDetails(project),
        Step::PersonalInfo(personal),
        Step::ContactPreference(contact),
    ];
    for (depth, step) in steps.iter().enumerate() {
        let batch: Vec<_> = created
            .iter()
            .enumerate()
            .filter(|(n, _)| n % 4 > depth)
            .map(|(_, lead)| {
                CaptureCommand::Step(Box::new(StepUpdate {
                    lead_id: lead.lead_id.clone(),
                    capture_token: lead.capture_token.clone(),
                    heard_about: None,
                    step: step.clone(),
                    idempotency: None,
                }))
            })
            .collect();
        for chunk in batch.chunks(250) {
            store.apply_capture(chunk).await?;
        }
    }
    loop {
        let jobs = store.claim_enrichment(500, 60_000).await?;
        if jobs.is_empty() {
            break;
        }
        for job in jobs {
            store
                .write_enrichment(&job, &enrich(&job.project, &job.personal))
                .await?;
        }
    }
    for lead in created.iter().step_by(100) {
        let record = store.lead(org, &lead.lead_id).await?;
        let to =
            SourceCode::new(if record.source_code.get() == 2 { 3 } else { 2 }).ok_or("code")?;
        store
            .correct_source(org, &lead.lead_id, to, "caller said so", "user:bench")
            .await?;
    }
    // Outcomes: one lead in five won (values spread over $5k–$25k), one in seven lost, some
    // moved won → lost → won; and four months of spend per source.
    for (i, lead) in created.iter().enumerate() {
        let value = 500_000 + (i as i64 * 7919 % 2_000) * 1_000;
        let lost = Outcome::Lost {
            reason: LostReason::parse("price")?,
        };
        let moves = match i % 35 {
            0 => vec![Outcome::Won { value }, lost, Outcome::Won { value }],
            n if n % 5 == 0 => vec![Outcome::Won { value }],
            n if n % 7 == 0 => vec![lost],
            n if n % 3 == 0 => vec![Outcome::Quoted],
            _ => Vec::new(),
        };
        for outcome in moves {
            store
                .set_outcome(org, &lead.lead_id, outcome, "user:bench", None)
                .await?;
        }
    }
    let now = leadtrail::store::now_ms();
    let zone = OrgTimeZone::parse("America/Denver")?;
    for back in 0..4 {
        let month = Month::of(zone.date_of(now - back * 31 * DAY_MS));
        for code in 1..=10 {
            let entry = SpendEntry {
                widget: WidgetVersion::PRIMARY,
                source: SourceCode::new(code).ok_or("code")?,
                month,
                amount: i64::from(code) * 50_000,
            };
            store.set_spend(org, &entry, "user:bench").await?;
        }
    }
    let mut touches = 0;
    for lead in &created {
        touches += store.lead(org, &lead.lead_id).await?.touches.len();
    }
    let visits: Vec<_> = (journeys.len()..CAPTURED_VISITS)
        .map(|i| NewVisit {
            org: org.clone(),
            arrival: Arrival {
                embedding: Some(WidgetVersion::PRIMARY),
                v: Some("01".into()),
                s: Some(format!("{:02}", i % 10 + 1)),
                page_url: Some("https://bench.example/".into()),
                referrer: (i % 3 == 0).then(|| "https://www.facebook.com/".to_owned()),
                ..Arrival::default()
            },
            at: now - 3_600_000,
        })
        .collect();
    for chunk in visits.chunks(2_000) {
        store.insert_visits(chunk).await?;
    }
    Ok(touches as f64 / created.len() as f64)
}

/// The columns of a table, as the database lists them.
async fn columns(
    pool: &sqlx::AnyPool,
    table: &str,
    postgres: bool,
) -> Result<Vec<String>, BoxError> {
    let sql = if postgres {
        format!(
            "SELECT CAST(column_name AS TEXT) AS name FROM information_schema.columns \
             WHERE table_name = '{table}' ORDER BY ordinal_position"
        )
    } else {
        format!("SELECT name FROM pragma_table_info('{table}')")
    };
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?)
}

/// Copies the captured rows `copies` times with SQL, each copy moved back a pseudo-random
/// number of days (up to 90) and minutes, so the organization reaches the asked size.
async fn multiply(
    url: &str,
    org: &OrgId,
    table: &str,
    copies: usize,
    postgres: bool,
) -> Result<(), BoxError> {
    if copies == 0 {
        return Ok(());
    }
    let pool = sqlx::AnyPool::connect(url).await?;
    let cols = columns(&pool, table, postgres).await?;
    let select: Vec<String> = cols
        .iter()
        .map(|c| match c.as_str() {
            "id" if table == "leads" => "t.id || '-' || k.x".to_owned(),
            // Visits' ids are generated.
            "created_at" => format!(
                "t.created_at - ((k.x * 7919) % {DAYS}) * {DAY_MS} \
                 - (k.x * 104729 % 1440) * 60000"
            ),
            other => format!("t.{other}"),
        })
        .collect();
    let (insert_cols, select): (Vec<&str>, Vec<&str>) = cols
        .iter()
        .zip(&select)
        .filter(|(c, _)| !(table == "visits" && c.as_str() == "id"))
        .map(|(c, s)| (c.as_str(), s.as_str()))
        .unzip();
    // In slices, so no transaction grows without bound.
    let slice = 50usize;
    let mut done = 0;
    while done < copies {
        let upto = copies.min(done + slice);
        let series = if postgres {
            format!(
                "generate_series(CAST({} AS BIGINT), {}) AS k(x)",
                done + 1,
                upto
            )
        } else {
            format!(
                "(WITH RECURSIVE s(x) AS (SELECT {} UNION ALL SELECT x + 1 FROM s WHERE x < {}) \
                 SELECT x FROM s) AS k",
                done + 1,
                upto
            )
        };
        let sql = format!(
            "INSERT INTO {table} ({}) SELECT {} FROM {table} t CROSS JOIN {series} \
             WHERE t.org_id = '{}' AND t.created_at > {}",
            insert_cols.join(", "),
            select.join(", "),
            org.as_str(),
            leadtrail::store::now_ms() - DAY_MS / 2,
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await?;
        done = upto;
    }
    pool.close().await;
    Ok(())
}

async fn run(
    backend: &str,
    url: &str,
    leads: usize,
    visits: usize,
    targets: &mut Targets,
) -> Result<(), BoxError> {
    let postgres = url.starts_with("postgres");
    let seeding = Instant::now();
    let store = Store::connect(url).await?;
    store.migrate().await?;
    let org = organization(&store).await?;
    let touches = capture(&store, &org).await?;
    multiply(url, &org, "leads", leads / CAPTURED_LEADS - 1, postgres).await?;
    multiply(url, &org, "visits", visits / CAPTURED_VISITS - 1, postgres).await?;
    let seeded = seeding.elapsed();
    let rebuild = Instant::now();
    store.rebuild_rollups(Some(&org)).await?;
    let rebuilt = rebuild.elapsed();
    store.optimize().await?;
    if postgres {
        let pool = sqlx::AnyPool::connect(url).await?;
        sqlx::query("ANALYZE").execute(&pool).await?;
        pool.close().await;
    }
    println!(
        "\n{backend}: {leads} leads and {visits} visits over 10 sources and {DAYS} days, \
         America/Denver, {touches:.2} touches per lead (seeded in {:.0} s; rollups, those of \
         the multi-touch models included, built in {:.1} s)",
        seeded.as_secs_f64(),
        rebuilt.as_secs_f64()
    );
    let tz = OrgTimeZone::parse("America/Denver")?;
    let today = tz.date_of(leadtrail::store::now_ms());
    let from = today.checked_sub(jiff::Span::new().days(DAYS - 1))?;
    let rolled = ReportFilter {
        from_ms: Some(tz.start_of(from)),
        to_ms: Some(tz.start_of(today.tomorrow()?)),
        ..ReportFilter::default()
    };
    let naive = ReportFilter {
        raw_rows: true,
        ..rolled
    };
    let (rolled_linear, naive_linear, rolled_decay, naive_decay) = (
        ReportFilter {
            model: Model::Linear,
            ..rolled
        },
        ReportFilter {
            model: Model::Linear,
            ..naive
        },
        ReportFilter {
            model: Model::TimeDecay,
            ..rolled
        },
        ReportFilter {
            model: Model::TimeDecay,
            ..naive
        },
    );
    println!(
        "  {:<28} {:>22} {:>24} {:>9}",
        "last 90 days", "rollups (ms)", "naive GROUP BY (ms)", "speed-up"
    );
    macro_rules! compare {
        ($name:expr, $call:expr) => {{ compare!($name, &rolled, &naive, $call) }};
        ($name:expr, $rolled:expr, $naive:expr, $call:expr) => {{
            let (fast, a) = measure(RUNS, || {
                let filter = $rolled;
                $call(filter)
            })
            .await?;
            let (slow, b) = measure(NAIVE_RUNS, || {
                let filter = $naive;
                $call(filter)
            })
            .await?;
            let same = a == b;
            let ratio = slow.median / fast.median;
            println!(
                "  {:<28} {:>22} {:>24} {:>8.0}x   under 20 ms: {}, 20x: {}, same answer: {}",
                $name,
                fast.show(2),
                slow.show(1),
                ratio,
                targets.check(
                    &format!("{backend} {} under 20 ms", $name),
                    fast.median < 20.0
                ),
                targets.check(&format!("{backend} {} 20x naive", $name), ratio >= 20.0),
                targets.check(&format!("{backend} {} same answer", $name), same),
            );
        }};
    }
    compare!("by source", |f| store.source_counts(&org, f));
    compare!("by channel", |f| store.channel_counts(&org, f));
    compare!("Website by derived channel", |f| store
        .derived_channel_counts(&org, f));
    compare!("whole report, with outcomes and spend", |f| Report::load(
        &store, &org, f
    ));
    compare!("by source, linear", &rolled_linear, &naive_linear, |f| {
        store.source_counts(&org, f)
    });
    compare!("by source, time decay", &rolled_decay, &naive_decay, |f| {
        store.source_counts(&org, f)
    });
    compare!(
        "Website channels, linear",
        &rolled_linear,
        &naive_linear,
        |f| store.derived_channel_counts(&org, f)
    );
    compare!("whole report, linear", &rolled_linear, &naive_linear, |f| {
        Report::load(&store, &org, f)
    });
    compare!("daily series", |f| store.period_counts(
        &org,
        f,
        Interval::Day,
        &tz
    ));
    store.close().await;
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let size = |name: &str, default: usize| -> Result<usize, BoxError> {
        Ok(match std::env::var(name) {
            Ok(n) => n.parse()?,
            Err(_) => default,
        })
    };
    let leads = size("REPORTS_BENCH_LEADS", 1_000_000)?.max(CAPTURED_LEADS);
    let visits = size("REPORTS_BENCH_VISITS", 10 * leads)?.max(CAPTURED_VISITS);
    let backends = std::env::var("REPORTS_BENCH_BACKENDS").unwrap_or("sqlite,postgres".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut targets = Targets::default();
    rt.block_on(async {
        for backend in backends.split(',') {
            match backend {
                "sqlite" => {
                    let dir = tempfile::tempdir()?;
                    let url = format!("sqlite://{}", dir.path().join("reports.db").display());
                    run("SQLite", &url, leads, visits, &mut targets).await?;
                }
                "postgres" => {
                    let db = Database::create("reports").await?;
                    let result = run("PostgreSQL", &db.url, leads, visits, &mut targets).await;
                    db.drop_now().await;
                    result?;
                }
                other => return Err::<(), BoxError>(format!("unknown backend {other:?}").into()),
            }
        }
        Ok(())
    })?;
    if targets.missed().is_empty() {
        println!("\nall targets met");
        Ok(())
    } else {
        println!("\ntargets missed: {}", targets.missed().join("; "));
        std::process::exit(1);
    }
}
