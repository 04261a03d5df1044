//! Demo leads: a few hundred homeowners over the last ninety days, spread across the sources,
//! stopping at every step as real ones do, enriched, and dated in the past.

use crate::domain::attribution::Arrival;
use crate::domain::attribution::Utm;
use crate::domain::estimate::enrich;
use crate::domain::ids::LeadId;
use crate::domain::ids::OrgId;
use crate::domain::lead::{
    Address, ContactPreference, PersonalInfo, ProjectDetails, ProjectInput, Step,
};
use crate::domain::outcome::{ListedReason, LostReason, Outcome};
use crate::domain::source::SourceCode;
use crate::domain::spend::{Month, SpendEntry};
use crate::domain::widget::WidgetVersion;
use crate::store::{
    CaptureCommand, CaptureReply, HeardAbout, NewLead, NewVisit, StepUpdate, Store, now_ms,
};

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
    let now = now_ms();
    seed_journeys(store, org, now).await?;
    let creates: Vec<CaptureCommand> = (0..DEMO_LEADS)
        .map(|i| {
            let (v, s) = source_of(i);
            Ok(CaptureCommand::CreateLead(Box::new(NewLead {
                org: org.clone(),
                arrival: Arrival {
                    embedding: WidgetVersion::new(v.parse()?),
                    v: Some(v.to_owned()),
                    s: Some(s.to_owned()),
                    page_url: Some(format!(
                        "https://acme-roofing.example/?roof-estimate=open&v={v}&s={s}"
                    )),
                    referrer: (s == "01").then(|| "https://www.google.com/".to_owned()),
                    utm: Utm::default(),
                    visitor_id: Some(format!("demo-visitor-{i}")),
                },
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
            .enumerate()
            .filter_map(|(i, (lead, plan))| {
                plan.get(step).map(|s| {
                    CaptureCommand::Step(Box::new(StepUpdate {
                        heard_about: heard_about(i, step),
                        lead_id: lead.lead_id.clone(),
                        capture_token: lead.capture_token.clone(),
                        step: s.clone(),
                        idempotency: None,
                    }))
                })
            })
            .collect();
        for reply in store.apply_capture(&batch).await? {
            if let Err(refusal) = reply {
                anyhow::bail!("a demo step was refused: {refusal:?}");
            }
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
    let dated: Vec<(LeadId, i64)> = leads
        .iter()
        .enumerate()
        .map(|(i, lead)| (lead.lead_id.clone(), arrival_time(i, now)))
        .collect();
    store.backdate_leads(org, &dated).await?;
    seed_outcomes(store, org, &leads, &plans).await?;
    seed_spend(store, org, now).await?;
    seed_visits(store, org, now).await
}

/// When the i-th lead arrived: spread over the days with a mild upward trend, in business
/// hours.
fn arrival_time(i: usize, now: i64) -> i64 {
    let n = i64::try_from(i).unwrap_or(0);
    let total = i64::try_from(DEMO_LEADS).unwrap_or(1);
    let day = DAYS - 1 - ((n * n) % (total * 3)) * DAYS / (total * 3);
    now - day * DAY_MS - ((n * 7919) % 36_000) * 1000 - 3_600_000
}

/// Journeys for the multi-touch reports: before the i-th lead, its homeowner came through
/// none, one or two other sources (a few days apart, in the days before the lead).
async fn seed_journeys(store: &Store, org: &OrgId, now: i64) -> anyhow::Result<()> {
    let mut visits = Vec::new();
    for i in 0..DEMO_LEADS {
        let at = arrival_time(i, now);
        for k in 0..i % 3 {
            let (v, s) = source_of(i + 17 * (k + 1));
            let days_before = i64::try_from(2 + (i + 5 * k) % 9)?;
            visits.push(demo_visit(
                org,
                (v, s),
                Some("https://www.google.com/"),
                Some(format!("demo-visitor-{i}")),
                at - days_before * DAY_MS * i64::try_from(k + 1)?,
            )?);
        }
    }
    store.insert_visits(&visits).await?;
    Ok(())
}

/// What happened to the i-th lead, by its source: yard signs close often at good values (cheap
/// and profitable), Facebook brings many leads that rarely close (expensive), Google sits in
/// between. Only leads that left contact details can be worked; the rest were never reached.
fn outcome_of(i: usize, reached_contact: bool) -> Option<Outcome> {
    let cycle = i / 10;
    let lost = |r: ListedReason| Outcome::Lost {
        reason: LostReason::Listed(r),
    };
    let won = |dollars: i64| Outcome::Won {
        value: (dollars + i64::try_from(cycle % 7).unwrap_or(0) * 450) * 100,
    };
    if !reached_contact {
        return cycle
            .is_multiple_of(2)
            .then(|| lost(ListedReason::NoResponse));
    }
    Some(match (source_of(i), cycle % 5) {
        (("01", "04"), 0 | 1) => won(11_500),
        (("01", "04"), 2) => Outcome::Quoted,
        (("01", "04"), 3) => lost(ListedReason::Price),
        (("01", "04"), _) => Outcome::Contacted,
        (("01", "02"), 0) if cycle.is_multiple_of(4) => won(6_800),
        (("01", "02"), 0 | 1) => lost(ListedReason::NoResponse),
        (("01", "02"), 2) => lost(ListedReason::Timing),
        (("01", "02"), 3) => Outcome::Contacted,
        (("01", "02"), _) => return None,
        (("01", "03"), 0) => won(12_400),
        (("01", "03"), 1) => lost(ListedReason::Competitor),
        (("01", "03"), _) => Outcome::Quoted,
        (_, 0) => won(9_200),
        (_, 1) => lost(ListedReason::Timing),
        (_, 2) => Outcome::Contacted,
        _ => return None,
    })
}

async fn seed_outcomes(
    store: &Store,
    org: &OrgId,
    leads: &[crate::store::LeadCreated],
    plans: &[Vec<Step>],
) -> anyhow::Result<()> {
    for (i, (lead, plan)) in leads.iter().zip(plans).enumerate() {
        if let Some(outcome) = outcome_of(i, plan.len() >= 2) {
            store
                .set_outcome(
                    org,
                    &lead.lead_id,
                    outcome,
                    "user:demo@acme-roofing.example",
                    None,
                )
                .await?;
        }
    }
    Ok(())
}

/// Four months of spend: Facebook Ads costs the most for what it brings, yard signs little.
async fn seed_spend(store: &Store, org: &OrgId, now: i64) -> anyhow::Result<()> {
    let zone = store.organization(org).await?.time_zone;
    let amounts: [(u32, u32, i64); 4] = [
        (1, 2, 400_000),
        (1, 3, 145_000),
        (1, 4, 150_000),
        (2, 3, 90_000),
    ];
    for back in 0..4 {
        let month = Month::of(zone.date_of(now - back * 31 * DAY_MS));
        for (widget, source, amount) in amounts {
            let (Some(widget), Some(source)) =
                (WidgetVersion::new(widget), SourceCode::new(source))
            else {
                continue;
            };
            let entry = SpendEntry {
                widget,
                source,
                month,
                amount,
            };
            store
                .set_spend(org, &entry, "user:demo@acme-roofing.example")
                .await?;
        }
    }
    Ok(())
}

/// What two in three homeowners on Primary answer in step 3 (when asked, the others skip).
fn heard_about(i: usize, step: usize) -> Option<HeardAbout> {
    let (v, s) = source_of(i);
    if step != 1 || v != "01" || i % 3 == 2 {
        return None;
    }
    let choice = match (s, i % 4) {
        ("02", 0..=2) => "Facebook or Instagram",
        ("04", 0..=2) => "Yard sign",
        ("01", 0 | 1) => "Google search",
        ("01", 2) => "Friend, family or neighbor",
        (_, 3) => "Nextdoor",
        _ => "Other",
    };
    Some(HeardAbout {
        choice: choice.to_owned(),
        other: (choice == "Other").then(|| "Saw your truck at a neighbor's".to_owned()),
    })
}

/// Visits per lead by source, so conversion differs the way it does in life: yard signs and
/// referrals convert well, paid social needs many visits per lead.
fn visits_per_lead(v: &str, s: &str) -> i64 {
    match (v, s) {
        ("01", "02") => 14,
        ("01", "04") => 4,
        ("01", "03") => 9,
        ("01", "05") => 6,
        ("02", _) => 11,
        _ => 7,
    }
}

/// A page view through widget `v`'s source `s`; `referrer` counts only for the Website source
/// (a tracked link is its own channel).
fn demo_visit(
    org: &OrgId,
    (v, s): (&str, &str),
    referrer: Option<&str>,
    visitor_id: Option<String>,
    at: i64,
) -> anyhow::Result<NewVisit> {
    Ok(NewVisit {
        org: org.clone(),
        arrival: Arrival {
            embedding: WidgetVersion::new(v.parse()?),
            v: Some(v.to_owned()),
            s: Some(s.to_owned()),
            page_url: Some(format!("https://acme-roofing.example/?v={v}&s={s}")),
            referrer: referrer.filter(|_| s == "01").map(str::to_owned),
            utm: Utm::default(),
            visitor_id,
        },
        at,
    })
}

/// Page views over the same ninety days through the same sources as the leads (so many per
/// lead of each source); Website traffic arrives from search, from social and directly.
async fn seed_visits(store: &Store, org: &OrgId, now: i64) -> anyhow::Result<()> {
    let mut visits = Vec::new();
    for i in 0..DEMO_LEADS {
        let (v, s) = source_of(i);
        let n = i64::try_from(i)?;
        for k in 0..visits_per_lead(v, s) {
            let day = (n * 7 + k * 13) % DAYS;
            let referrer = ["https://www.google.com/", "https://www.facebook.com/", ""]
                [usize::try_from((n + k) % 3)?];
            visits.push(demo_visit(
                org,
                (v, s),
                Some(referrer).filter(|r| !r.is_empty()),
                None,
                now - day * DAY_MS - ((n * 7919 + k * 104_729) % 36_000) * 1000 - 3_600_000,
            )?);
        }
    }
    for chunk in visits.chunks(1000) {
        store.insert_visits(chunk).await?;
    }
    Ok(())
}
