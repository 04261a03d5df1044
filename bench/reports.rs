//! Report queries on a sizeable organization, on SQLite and on PostgreSQL: 100,000 leads (half
//! with a first touch on another source, 1% corrected by a person, a third with a
//! self-reported answer) and 300,000 visits over 10 sources, spread over 90 days. Prints the
//! median and range of each report query against a baseline measured in the same run on the
//! same database: reading one page of 50 leads. A query error fails the bench.
//!
//! Run: `cargo bench --bench reports` (optional: `REPORTS_BENCH_LEADS=100000`,
//! `REPORTS_BENCH_BACKENDS=sqlite,postgres`, `LEADTRAIL_TEST_POSTGRES_URL=postgres://…/test`).
//! PostgreSQL gets a fresh database, dropped afterwards.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/seed.rs"]
mod seed;

use std::future::Future;
use std::time::Instant;

use leadtrail::domain::attribution::Utm;
use leadtrail::domain::channel::ChannelCategory;
use leadtrail::domain::ids::OrgId;
use leadtrail::domain::lead::Address;
use leadtrail::domain::organization::{BrandColor, OrgName, SiteUrl};
use leadtrail::domain::source::{SourceCode, SourceName};
use leadtrail::domain::tier::Tier;
use leadtrail::domain::widget::WidgetVersion;
use leadtrail::store::{
    CaptureCommand, FirstTouch, Interval, LeadFilter, NewOrganization, NewSource, NewVisit,
    ReportFilter, Store, Touch,
};
use sqlx::Connection;

use harness::{Summary, ms};
use seed::BoxError;

const RUNS: usize = 21;
const DAYS: usize = 90;

/// Times `f` `RUNS` times after one warm-up; a failing call fails the bench.
async fn measure<F, Fut, T>(mut f: F) -> Result<Summary, BoxError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, leadtrail::store::StoreError>>,
{
    f().await?;
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        f().await?;
        samples.push(ms(start.elapsed()));
    }
    Ok(Summary::of(&samples))
}

/// An organization whose Primary widget has ten active sources (the system source and nine
/// more, every other one with a QR code), asking "How did you hear about us?".
async fn organization_with_ten_sources(store: &Store) -> Result<OrgId, BoxError> {
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
                    channel_category: ChannelCategory::Other,
                    generate_qr: i % 2 == 0,
                },
            )
            .await?;
    }
    Ok(org)
}

fn lead(org: &OrgId, n: usize, address: &Address) -> CaptureCommand {
    let CaptureCommand::CreateLead(mut new) = seed::new_lead(org, n % 10 + 1, address) else {
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
    CaptureCommand::CreateLead(new)
}

/// Moves the leads back over `DAYS` days (capture stamps them now), answers the
/// self-report question on a third of the leads, and corrects 1% of them.
async fn age_and_annotate(url: &str, store: &Store, org: &OrgId) -> Result<(), BoxError> {
    let pool = sqlx::AnyPool::connect(url).await?;
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM leads WHERE org_id = $1 ORDER BY id")
        .bind(org.as_str())
        .fetch_all(&pool)
        .await?;
    let answers = ["Google search", "Yard sign", "Friend, family or neighbor"];
    // Lead p goes back p % DAYS days; every third one answered the question.
    let mut groups: std::collections::BTreeMap<(usize, Option<&str>), Vec<&str>> =
        Default::default();
    for (p, id) in ids.iter().enumerate() {
        let answer = p
            .is_multiple_of(3)
            .then(|| answers[(p / 3) % answers.len()]);
        groups.entry((p % DAYS, answer)).or_default().push(id);
    }
    for ((day, answer), members) in groups {
        let answer = answer.map_or("NULL".to_owned(), |a| format!("'{{\"choice\":\"{a}\"}}'"));
        for batch in members.chunks(500) {
            let list = batch
                .iter()
                .map(|id| format!("'{id}'"))
                .collect::<Vec<_>>()
                .join(",");
            let sql = format!(
                "UPDATE leads SET created_at = created_at - {}, self_reported = {answer} \
                 WHERE id IN ({list})",
                day as i64 * 86_400_000
            );
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await?;
        }
    }
    for id in ids.iter().step_by(100) {
        let to = SourceCode::new(2).ok_or("code")?;
        // A lead already on SRC-02 cannot be corrected to it; the next one is.
        let to = match store.lead(org, id).await?.source_code == to {
            true => SourceCode::new(3).ok_or("code")?,
            false => to,
        };
        store
            .correct_source(org, id, to, "caller said so", "user:bench")
            .await?;
    }
    Ok(())
}

async fn seed_database(url: &str, leads: usize) -> Result<(Store, OrgId), BoxError> {
    let store = Store::connect(url).await?;
    store.migrate().await?;
    let org = organization_with_ten_sources(&store).await?;
    let address = Address::parse("1 Main St", "Austin", "TX", "78701", None)?;
    for chunk in 0..leads.div_ceil(256) {
        let commands: Vec<_> = (chunk * 256..leads.min(chunk * 256 + 256))
            .map(|n| lead(&org, n, &address))
            .collect();
        for result in store.apply_capture(&commands).await? {
            result.map_err(|r| format!("seeding refused: {r:?}"))?;
        }
    }
    let now = leadtrail::store::now_ms();
    for chunk in 0..(3 * leads).div_ceil(2000) {
        let visits: Vec<_> = (0..2000)
            .map(|i| NewVisit {
                org: org.clone(),
                embedding: Some(WidgetVersion::PRIMARY),
                v: Some("01".into()),
                s: Some(format!("{:02}", (chunk * 2000 + i) % 10 + 1)),
                page_url: None,
                referrer: None,
                utm: Utm::default(),
                visitor_id: None,
                // Spread over the same days as the leads, so the timeseries has many periods.
                at: now - ((chunk * 2000 + i) % DAYS) as i64 * 86_400_000,
            })
            .collect();
        store.insert_visits(&visits).await?;
    }
    age_and_annotate(url, &store, &org).await?;
    // What the service's hourly maintenance does.
    store.optimize().await?;
    Ok((store, org))
}

async fn run(backend: &str, url: &str, leads: usize) -> Result<(), BoxError> {
    let seeding = Instant::now();
    let (store, org) = seed_database(url, leads).await?;
    println!(
        "\n{backend}: {leads} leads and {} visits over 10 sources and {DAYS} days (seeded in {:.1} s)",
        3 * leads,
        seeding.elapsed().as_secs_f64()
    );
    let page = LeadFilter {
        limit: 50,
        ..LeadFilter::default()
    };
    let last = ReportFilter::default();
    let first = ReportFilter {
        touch: Touch::First,
        ..ReportFilter::default()
    };
    let month = ReportFilter {
        from_ms: Some(leadtrail::store::now_ms() - 30 * 86_400_000),
        ..ReportFilter::default()
    };
    let tz = leadtrail::domain::time_zone::OrgTimeZone::parse("America/Denver")?;
    let baseline = measure(|| store.leads(&org, &page)).await?;
    let rows = [
        (
            "by source, last touch",
            measure(|| store.source_counts(&org, &last)).await?,
        ),
        (
            "by source, first touch",
            measure(|| store.source_counts(&org, &first)).await?,
        ),
        (
            "by source, last 30 days",
            measure(|| store.source_counts(&org, &month)).await?,
        ),
        (
            "timeseries by day",
            measure(|| store.period_counts(&org, &last, Interval::Day, &tz)).await?,
        ),
        (
            "timeseries by week",
            measure(|| store.period_counts(&org, &last, Interval::Week, &tz)).await?,
        ),
        (
            "tracked × self-reported",
            measure(|| store.self_reported_counts(&org, &last)).await?,
        ),
    ];
    println!(
        "  {:<34} {:>24}   (median and range of {RUNS} runs, ms)",
        "baseline: one page of 50 leads",
        baseline.show(2)
    );
    for (name, s) in rows {
        println!(
            "  {name:<34} {:>24}   {:>6.1}x baseline",
            s.show(2),
            s.median / baseline.median
        );
    }
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let leads: usize = match std::env::var("REPORTS_BENCH_LEADS") {
        Ok(n) => n.parse()?,
        Err(_) => 100_000,
    };
    let backends = std::env::var("REPORTS_BENCH_BACKENDS").unwrap_or("sqlite,postgres".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        for backend in backends.split(',') {
            match backend {
                "sqlite" => {
                    let dir = tempfile::tempdir()?;
                    let url = format!("sqlite://{}", dir.path().join("reports.db").display());
                    run("SQLite", &url, leads).await?;
                }
                "postgres" => {
                    let admin = std::env::var("LEADTRAIL_TEST_POSTGRES_URL")
                        .unwrap_or("postgres://postgres@127.0.0.1:5432/test".into());
                    let name = format!("lt_reports_bench_{}", std::process::id());
                    let mut conn = sqlx::PgConnection::connect(&admin).await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                        .execute(&mut conn)
                        .await?;
                    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                    let result = run("PostgreSQL", &format!("{base}/{name}"), leads).await;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await?;
                    result?;
                }
                other => return Err(format!("unknown backend {other:?}").into()),
            }
        }
        Ok(())
    })
}
