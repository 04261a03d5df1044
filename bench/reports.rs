//! Report queries on a sizeable organization: 100,000 leads and 300,000 visits over 10
//! sources in a fresh SQLite file. Prints the median time of each report query, against a
//! baseline measured in the same run: reading one page of 50 leads.
//!
//! Run: `cargo bench --bench reports` (optional: `REPORTS_BENCH_LEADS=100000`)

#[path = "support/seed.rs"]
mod seed;

use std::time::{Duration, Instant};

use leadtrail::domain::attribution::Utm;
use leadtrail::domain::channel::ChannelCategory;
use leadtrail::domain::ids::OrgId;
use leadtrail::domain::lead::Address;
use leadtrail::domain::organization::{BrandColor, OrgName, SiteUrl};
use leadtrail::domain::source::SourceName;
use leadtrail::domain::tier::Tier;
use leadtrail::domain::widget::WidgetVersion;
use leadtrail::store::{
    Interval, LeadFilter, NewOrganization, NewSource, NewVisit, ReportFilter, Store, Touch,
};
use seed::BoxError;

async fn median<F, Fut>(runs: usize, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        f().await;
        samples.push(start.elapsed());
    }
    samples.sort();
    samples[runs / 2]
}

/// An organization whose Primary widget has ten active sources (the system source and nine
/// more, every other one with a QR code).
async fn organization_with_ten_sources(store: &Store, tier: Tier) -> Result<OrgId, BoxError> {
    let org = store
        .create_organization(NewOrganization {
            name: OrgName::parse("Bench Roofing")?,
            website_url: SiteUrl::parse("website_url", "https://bench.example")?,
            brand_color: BrandColor::parse("#1A73E8")?,
            tier,
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let leads: usize = std::env::var("REPORTS_BENCH_LEADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let dir = tempfile::tempdir()?;
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("reports.db").display())).await?;
        store.migrate().await?;
        let org = organization_with_ten_sources(&store, Tier::Starter).await?;
        let seeding = Instant::now();
        let address = Address::parse("1 Main St", "Austin", "TX", "78701", None)?;
        for chunk in 0..leads.div_ceil(256) {
            let commands: Vec<_> = (0..256.min(leads - chunk * 256))
                .map(|i| seed::new_lead(&org, (chunk * 256 + i) % 10 + 1, &address))
                .collect();
            store.apply_capture(&commands).await?;
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
                    // Spread over 90 days, so the timeseries has many periods.
                    at: now - ((chunk * 2000 + i) as i64 % 90) * 86_400_000,
                })
                .collect();
            store.insert_visits(&visits).await?;
        }
        // What the service's hourly maintenance does.
        store.optimize().await?;
        println!("reports benchmark: {leads} leads and {} visits over 10 sources (seeded in {:.1} s), SQLite", 3 * leads, seeding.elapsed().as_secs_f64());

        let runs = 21;
        let page = LeadFilter { limit: 50, ..LeadFilter::default() };
        let baseline = median(runs, || async { store.leads(&org, &page).await.map(drop).unwrap_or_default() }).await;
        let last = ReportFilter::default();
        let first = ReportFilter { touch: Touch::First, ..ReportFilter::default() };
        let sources = median(runs, || async { store.source_counts(&org, &last).await.map(drop).unwrap_or_default() }).await;
        let sources_first = median(runs, || async { store.source_counts(&org, &first).await.map(drop).unwrap_or_default() }).await;
        let days = median(runs, || async { store.period_counts(&org, &last, Interval::Day).await.map(drop).unwrap_or_default() }).await;
        let row = |name: &str, d: Duration| {
            println!("  {name:<36} {:>8.2} ms  {:>6.1}x baseline", d.as_secs_f64() * 1e3, d.as_secs_f64() / baseline.as_secs_f64());
        };
        row("baseline: one page of 50 leads", baseline);
        row("by source, last touch", sources);
        row("by source, first touch", sources_first);
        row("timeseries by day", days);
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}
