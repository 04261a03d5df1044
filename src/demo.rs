//! `serve --demo`: a demo organization with widgets and sources, so a first look is not empty.

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
    seed_leads(store, &org).await?;
    Ok(Seeded {
        org,
        api_key: created.api_key,
        public_key: created.organization.public_key,
        created: true,
    })
}

/// A few dozen leads across the sources, at every step; enrichment follows in the background.
async fn seed_leads(store: &crate::store::Store, org: &OrgId) -> anyhow::Result<()> {
    use crate::domain::attribution::Utm;
    use crate::domain::lead::{
        Address, ContactPreference, PersonalInfo, ProjectDetails, ProjectInput, Step,
    };
    use crate::store::{CaptureCommand, CaptureReply, NewLead, StepUpdate};

    const STREETS: [&str; 6] = [
        "Oak Lane",
        "Maple Ave",
        "Cedar St",
        "Elm Ct",
        "Pine Rd",
        "Birch Way",
    ];
    const PEOPLE: [(&str, &str); 6] = [
        ("Maria", "Garcia"),
        ("James", "Smith"),
        ("Aisha", "Khan"),
        ("Tom", "Nguyen"),
        ("Lena", "Fischer"),
        ("Carlos", "Diaz"),
    ];
    for i in 0..36usize {
        let (v, s) = match i % 6 {
            0 | 1 => ("01", "02"),
            2 => ("01", "03"),
            3 => ("01", "04"),
            4 => ("02", "02"),
            _ => ("01", "01"),
        };
        let n = i64::try_from(i)?;
        let new = NewLead {
            org: org.clone(),
            embedding: WidgetVersion::new(1),
            v: Some(v.to_owned()),
            s: Some(s.to_owned()),
            page_url: Some(format!(
                "https://acme-roofing.example/?roof-estimate=open&v={v}&s={s}"
            )),
            referrer: (s == "01").then(|| "https://www.google.com/".to_owned()),
            utm: Utm::default(),
            first_touch: None,
            address: Address::parse(
                &format!("{} {}", 100 + i, STREETS[i % 6]),
                "Austin",
                "TX",
                "78704",
                None,
            )?,
            idempotency: None,
        };
        let created = match store
            .apply_capture(&[CaptureCommand::CreateLead(Box::new(new))])
            .await?
            .pop()
        {
            Some(Ok(CaptureReply::Created(c))) => c,
            _ => anyhow::bail!("a demo lead was refused"),
        };
        let (first, last) = PEOPLE[i % 6];
        let mut steps = vec![
            Step::ProjectDetails(ProjectDetails::parse(ProjectInput {
                roof_type: ["replacement", "repair", "inspection"][i % 3],
                material: ["asphalt_shingle", "metal", "tile", "unknown"][i % 4],
                stories: 1 + n % 2,
                pitch: Some("medium"),
                urgency: [
                    "emergency",
                    "within_1_month",
                    "within_3_months",
                    "researching",
                ][i % 4],
                roof_age_years: Some(5 + (n * 3) % 30),
                insurance_claim: Some(i % 5 == 0),
                financing_interest: Some(i % 3 == 0),
            })?),
            Step::PersonalInfo(PersonalInfo::parse(
                first,
                last,
                &format!(
                    "{}.{}{i}@example.com",
                    first.to_lowercase(),
                    last.to_lowercase()
                ),
                &format!("512555{:04}", 100 + i),
                i % 7 != 3,
                Some(1400 + (n * 97) % 2400),
            )?),
            Step::ContactPreference(ContactPreference::parse(
                ["phone", "text", "email"][i % 3],
                ["morning", "afternoon", "evening", "anytime"][i % 4],
            )?),
        ];
        // Some homeowners stop early, as they do.
        steps.truncate(i % 4);
        for step in steps {
            let update = StepUpdate {
                lead_id: created.lead_id.clone(),
                capture_token: created.capture_token.clone(),
                step,
                idempotency: None,
            };
            store
                .apply_capture(&[CaptureCommand::Step(Box::new(update))])
                .await?;
        }
    }
    Ok(())
}
