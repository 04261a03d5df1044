//! Seeding shared by the benchmarks that need a sizeable organization.

use leadtrail::domain::attribution::Utm;
use leadtrail::domain::channel::ChannelCategory;
use leadtrail::domain::ids::OrgId;
use leadtrail::domain::lead::Address;
use leadtrail::domain::organization::{BrandColor, OrgName, SiteUrl};
use leadtrail::domain::source::SourceName;
use leadtrail::domain::tier::Tier;
use leadtrail::domain::widget::WidgetVersion;
use leadtrail::store::{CaptureCommand, NewLead, NewOrganization, NewSource, Store};

pub type BoxError = Box<dyn std::error::Error>;

/// An organization whose Primary widget has ten active sources (the system source and nine
/// more, every other one with a QR code).
pub async fn organization_with_ten_sources(store: &Store, tier: Tier) -> Result<OrgId, BoxError> {
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

/// The n-th lead of a seed, on the Primary widget, cycling through the ten sources.
pub fn new_lead(org: &OrgId, n: usize, address: &Address) -> CaptureCommand {
    CaptureCommand::CreateLead(Box::new(NewLead {
        org: org.clone(),
        embedding: Some(WidgetVersion::PRIMARY),
        v: Some("01".into()),
        s: Some(format!("{:02}", n % 10 + 1)),
        page_url: None,
        referrer: None,
        utm: Utm::default(),
        first_touch: None,
        address: address.clone(),
        idempotency: None,
    }))
}
