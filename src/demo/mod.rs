//! `serve --demo`: a demo organization with widgets, sources, ninety days of leads and a
//! webhook endpoint, so a first look is not empty.

mod leads;

use crate::domain::self_report::SelfReportSetting;
use std::net::SocketAddr;

use crate::domain::channel::ChannelCategory;
use crate::domain::ids::OrgId;
use crate::domain::organization::{BrandColor, OrgName, SiteUrl};
use crate::domain::source::SourceName;
use crate::domain::tier::Tier;
use crate::domain::user::hash_password;
use crate::domain::widget::{WidgetName, WidgetStatus, WidgetVersion};
use crate::http::AppState;
use crate::store::{NewOrganization, NewOwner, NewSource, WidgetPatch};

pub const DEMO_EMAIL: &str = "owner@acme-roofing.example";
pub const DEMO_PASSWORD: &str = "demo-password-2026";

pub struct Seeded {
    pub org: OrgId,
    pub api_key: String,
    pub public_key: String,
    pub created: bool,
}

impl Seeded {
    pub fn instructions(&self, address: SocketAddr) -> String {
        let state = if self.created {
            "created"
        } else {
            "already present"
        };
        format!(
            "\nDemo organization {state}: Acme Roofing ({org})\n\
             \x20 dashboard login: {DEMO_EMAIL} / {DEMO_PASSWORD}\n\
             \x20 API key (new each start): {key}\n\
             \x20 public key: {pk}\n\
             \x20 try: curl -H 'Authorization: Bearer {key}' http://{address}/api/v1/widgets/01/sources\n",
            org = self.org,
            key = self.api_key,
            pk = self.public_key,
        )
    }
}

/// Seeds once; on later starts finds the same organization and mints a fresh API key for it.
pub async fn seed(state: &AppState) -> anyhow::Result<Seeded> {
    let store = &state.store;
    if let Some(user) = store.user_by_email(DEMO_EMAIL).await? {
        let (_, api_key) = store.create_api_key(&user.org_id, "demo").await?;
        let org = store.organization(&user.org_id).await?;
        return Ok(Seeded {
            org: org.id,
            api_key,
            public_key: org.public_key,
            created: false,
        });
    }
    let password_hash = hash_password("password", DEMO_PASSWORD)?;
    let created = store
        .create_organization(NewOrganization {
            name: OrgName::parse("Acme Roofing")?,
            website_url: SiteUrl::parse("website_url", "https://acme-roofing.example/")?,
            brand_color: BrandColor::parse("#C2410C")?,
            tier: Tier::Premium,
            owner: Some(NewOwner {
                email: DEMO_EMAIL.to_owned(),
                password_hash,
            }),
        })
        .await?;
    let org = created.organization.id.clone();
    let storm = store
        .create_widget(
            &org,
            &WidgetName::parse("Storm Season 2026")?,
            Some(&SiteUrl::parse(
                "site_url",
                "https://storm.acme-roofing.example/estimate",
            )?),
            &state.config.tiers,
        )
        .await?;
    // Primary asks "How did you hear about us?", with the usual choices.
    store
        .update_widget(
            &org,
            WidgetVersion::PRIMARY,
            WidgetPatch {
                self_report: Some(SelfReportSetting {
                    enabled: true,
                    ..SelfReportSetting::default()
                }),
                ..WidgetPatch::default()
            },
            &state.config.tiers,
        )
        .await?;
    store
        .update_widget(
            &org,
            storm.version,
            WidgetPatch {
                status: Some(WidgetStatus::Configured),
                ..WidgetPatch::default()
            },
            &state.config.tiers,
        )
        .await?;
    let sources: [(WidgetVersion, &str, ChannelCategory, bool); 7] = [
        (
            WidgetVersion::PRIMARY,
            "Facebook Ads",
            ChannelCategory::PaidSocial,
            true,
        ),
        (
            WidgetVersion::PRIMARY,
            "Google Ads",
            ChannelCategory::PaidSearch,
            false,
        ),
        (
            WidgetVersion::PRIMARY,
            "Yard Signs",
            ChannelCategory::PrintOutdoor,
            true,
        ),
        (
            WidgetVersion::PRIMARY,
            "Monthly Newsletter",
            ChannelCategory::Email,
            false,
        ),
        (
            WidgetVersion::PRIMARY,
            "Spring Mailer",
            ChannelCategory::DirectMail,
            true,
        ),
        (
            storm.version,
            "Instagram",
            ChannelCategory::OrganicSocial,
            false,
        ),
        (
            storm.version,
            "Home Show Booth",
            ChannelCategory::Events,
            true,
        ),
    ];
    for (version, name, category, qr) in sources {
        store
            .create_source(
                &org,
                version,
                NewSource {
                    name: SourceName::parse(name)?,
                    channel_category: category,
                    generate_qr: qr,
                },
            )
            .await?;
    }
    // One archived source, so the Archived view has something to show.
    if let Some(mailer) = crate::domain::source::SourceCode::new(6) {
        store
            .archive_source(&org, WidgetVersion::PRIMARY, mailer)
            .await?;
    }
    leads::seed(store, &org).await?;
    let (_, secret) = crate::webhooks::signing::Secret::generate();
    let endpoint = store
        .create_endpoint(
            &org,
            "https://hooks.acme-roofing.example/leadtrail",
            "CRM intake (demo: this host does not exist, so deliveries fail and retry)",
            &[
                "lead.enriched".to_owned(),
                "lead.contact_requested".to_owned(),
            ],
            &secret,
            state.config.webhook_max_endpoints,
        )
        .await?;
    store.queue_test_delivery(&org, &endpoint.id).await?;
    Ok(Seeded {
        org,
        api_key: created.api_key,
        public_key: created.organization.public_key,
        created: true,
    })
}
