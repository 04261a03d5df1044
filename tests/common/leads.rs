//! Leads as the capture writer receives them, for tests that need leads with events.

use leadtrail::domain::attribution::Arrival;
use leadtrail::domain::ids::OrgId;
use leadtrail::domain::lead::{
    Address, ContactPreference, PersonalInfo, ProjectDetails, ProjectInput, Step,
};
use leadtrail::domain::widget::WidgetVersion;
use leadtrail::store::{
    CaptureCommand, CaptureRefusal, CaptureReply, Idempotency, LeadCreated, NewLead, StepRecorded,
    StepUpdate, Store,
};

pub fn arrival(org: &OrgId, embedding: Option<u32>, v: Option<&str>, s: Option<&str>) -> NewLead {
    NewLead {
        org: org.clone(),
        arrival: Arrival {
            embedding: embedding.and_then(WidgetVersion::new),
            v: v.map(str::to_owned),
            s: s.map(str::to_owned),
            page_url: Some("https://acme.example/".into()),
            ..Arrival::default()
        },
        first_touch: None,
        address: Address::parse("1 Main St", "Austin", "TX", "78701", None).unwrap(),
        idempotency: None,
        record_source: leadtrail::domain::lead::RecordSource::Widget,
    }
}

pub async fn create(store: &Store, new: NewLead) -> Result<LeadCreated, CaptureRefusal> {
    let mut results = store
        .apply_capture(&[CaptureCommand::CreateLead(Box::new(new))])
        .await
        .unwrap();
    match results.pop().unwrap() {
        Ok(CaptureReply::Created(c)) => Ok(c),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(r) => Err(r),
    }
}

pub async fn step(
    store: &Store,
    lead: &LeadCreated,
    step: Step,
    key: Option<&str>,
) -> Result<StepRecorded, CaptureRefusal> {
    let update = StepUpdate {
        heard_about: None,
        lead_id: lead.lead_id.clone(),
        capture_token: lead.capture_token.clone(),
        step,
        idempotency: key.map(|k| Idempotency {
            key: k.into(),
            request_hash: format!("hash-{k}"),
        }),
    };
    let mut results = store
        .apply_capture(&[CaptureCommand::Step(Box::new(update))])
        .await
        .unwrap();
    match results.pop().unwrap() {
        Ok(CaptureReply::Step(s)) => Ok(s),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(r) => Err(r),
    }
}

pub fn project() -> Step {
    Step::ProjectDetails(
        ProjectDetails::parse(ProjectInput {
            roof_type: "replacement",
            material: "asphalt_shingle",
            stories: 1,
            pitch: Some("medium"),
            urgency: "within_1_month",
            roof_age_years: Some(18),
            insurance_claim: None,
            financing_interest: None,
        })
        .unwrap(),
    )
}

pub fn personal(owner_occupied: bool) -> Step {
    Step::PersonalInfo(
        PersonalInfo::parse(
            "Ann",
            "Lee",
            "ann@example.com",
            "5125550100",
            owner_occupied,
            Some(2000),
        )
        .unwrap(),
    )
}

pub fn contact() -> Step {
    Step::ContactPreference(ContactPreference::parse("phone", "morning").unwrap())
}
