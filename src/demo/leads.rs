//! Demo leads: a few hundred homeowners over the last ninety days, spread across the sources,
//! stopping at every step as real ones do, enriched, and dated in the past.

use crate::domain::attribution::Utm;
use crate::domain::estimate::enrich;
use crate::domain::ids::OrgId;
use crate::domain::lead::{
    Address, ContactPreference, PersonalInfo, ProjectDetails, ProjectInput, Step,
};
use crate::domain::widget::WidgetVersion;
use crate::store::{CaptureCommand, CaptureReply, NewLead, StepUpdate, Store, now_ms};

pub const DEMO_LEADS: usize = 320;
const DAYS: i64 = 90;
const DAY_MS: i64 = 24 * 3600 * 1000;

const STREETS: [&str; 8] = [
    "Oak Lane",
    "Maple Ave",
    "Cedar St",
    "Elm Ct",
    "Pine Rd",
    "Birch Way",
    "Willow Dr",
    "Pecan St",
];
const PEOPLE: [(&str, &str); 8] = [
    ("Maria", "Garcia"),
    ("James", "Smith"),
    ("Aisha", "Khan"),
    ("Tom", "Nguyen"),
    ("Lena", "Fischer"),
    ("Carlos", "Diaz"),
    ("Grace", "Okafor"),
    ("Ben", "Walker"),
];

/// Which (widget, source) the i-th lead came through: paid social and yard signs bring the
/// most, the system source catches the untagged rest.
fn source_of(i: usize) -> (&'static str, &'static str) {
    match i % 10 {
        0..=2 => ("01", "02"),
        3 | 4 => ("01", "04"),
        5 => ("01", "03"),
        6 => ("01", "05"),
        7 => ("02", "02"),
        8 => ("02", "03"),
        _ => ("01", "01"),
    }
}

fn steps_for(i: usize) -> anyhow::Result<Vec<Step>> {
    let n = i64::try_from(i)?;
    let (first, last) = PEOPLE[i % PEOPLE.len()];
    let all = vec![
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
            insurance_claim: Some(i.is_multiple_of(5)),
            financing_interest: Some(i.is_multiple_of(3)),
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
    // Roughly: a fifth stop after the address, a tenth after the project, the rest go on.
    let keep = match i % 10 {
        0 | 5 => 0,
        3 => 1,
        7 => 2,
        _ => 3,
    };
    Ok(all.into_iter().take(keep).collect())
}

/// Creates the leads and their steps in a few large batches (one transaction each), enriches
/// them, then moves each lead's history to its day in the last ninety.
pub async fn seed(store: &Store, org: &OrgId) -> anyhow::Result<()> {
    let creates: Vec<CaptureCommand> = (0..DEMO_LEADS)
        .map(|i| {
            let (v, s) = source_of(i);
            Ok(CaptureCommand::CreateLead(Box::new(NewLead {
                org: org.clone(),
                embedding: WidgetVersion::new(v.parse()?),
                v: Some(v.to_owned()),
                s: Some(s.to_owned()),
                page_url: Some(format!(
                    "https://acme-roofing.example/?roof-estimate=open&v={v}&s={s}"
                )),
                referrer: (s == "01").then(|| "https://www.google.com/".to_owned()),
                utm: Utm::default(),
                first_touch: None,
                address: Address::parse(
                    &format!("{} {}", 100 + i, STREETS[i % STREETS.len()]),
                    "Austin",
                    "TX",
                    "78704",
                    None,
                )?,
                idempotency: None,
                record_source: crate::domain::lead::RecordSource::Widget,
            })))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut leads = Vec::with_capacity(DEMO_LEADS);
    for reply in store.apply_capture(&creates).await? {
        match reply {
            Ok(CaptureReply::Created(c)) => leads.push(c),
            _ => anyhow::bail!("a demo lead was refused"),
        }
    }
    let plans: Vec<Vec<Step>> = (0..DEMO_LEADS).map(steps_for).collect::<Result<_, _>>()?;
    for step in 0..3 {
        let batch: Vec<CaptureCommand> = leads
            .iter()
            .zip(&plans)
            .filter_map(|(lead, plan)| {
                plan.get(step).map(|s| {
                    CaptureCommand::Step(Box::new(StepUpdate {
                        heard_about: None,
                        lead_id: lead.lead_id.clone(),
                        capture_token: lead.capture_token.clone(),
                        step: s.clone(),
                        idempotency: None,
                    }))
                })
            })
            .collect();
        store.apply_capture(&batch).await?;
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
    // Spread over the days with a mild upward trend, in business hours.
    let now = now_ms();
    let dated: Vec<(String, i64)> = leads
        .iter()
        .enumerate()
        .map(|(i, lead)| {
            let n = i64::try_from(i).unwrap_or(0);
            let total = i64::try_from(DEMO_LEADS).unwrap_or(1);
            let day = DAYS - 1 - ((n * n) % (total * 3)) * DAYS / (total * 3);
            let at = now - day * DAY_MS - ((n * 7919) % 36_000) * 1000 - 3_600_000;
            (lead.lead_id.clone(), at)
        })
        .collect();
    store.backdate_leads(org, &dated).await?;
    Ok(())
}
