//! What a capture request is answered with, and what a later step writes. The decision is made
//! here from the lead as the step finds it and the request alone; the store reads those facts
//! under the lead's lock, persists the decision and counts it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::DomainError;
use super::estimate::{Estimate, estimate};
use super::event::{self, EventType, SourceTracking};
use super::ids::LeadId;
use super::lead::{
    ContactPreference, LeadStatus, PersonalInfo, ProjectDetails, Step, check_step_order,
};
use super::self_report::{SelfReportSetting, SelfReported};

/// The answer to a new lead: its id and the token its later steps must carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadCreated {
    pub lead_id: LeadId,
    pub capture_token: String,
    pub status: LeadStatus,
}

/// The answer to a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecorded {
    pub lead_id: LeadId,
    pub status: LeadStatus,
    /// The instant estimate, answered with the personal-info step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate: Option<Estimate>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CaptureReply {
    Created(LeadCreated),
    Step(StepRecorded),
}

/// A capture request refused for what it asked; nothing of it was written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CaptureRefusal {
    #[error("lead not found")]
    LeadNotFound,
    #[error("the capture token does not belong to this lead")]
    BadToken,
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    #[error(transparent)]
    Invalid(#[from] DomainError),
}

pub type CaptureResult = Result<CaptureReply, CaptureRefusal>;

/// An answer to "How did you hear about us?" as sent, before it is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeardAbout {
    pub choice: String,
    pub other: Option<String>,
}

/// A lead as a step finds it, read under the lead's row lock.
#[derive(Debug, Clone)]
pub struct SteppedLead {
    pub id: LeadId,
    pub status: LeadStatus,
    pub project: Option<ProjectDetails>,
    pub personal: Option<PersonalInfo>,
    /// Enrichment has written its result back (`lead.enriched` is in the outbox).
    pub enriched: bool,
    pub tracking: SourceTracking,
}

/// What a step stores on the lead.
#[derive(Debug, Clone, PartialEq)]
pub enum StepWrite<'a> {
    Project(&'a ProjectDetails),
    /// Step 3 also hands the lead to enrichment and keeps the checked self-report.
    Personal {
        personal: &'a PersonalInfo,
        self_reported: Option<SelfReported>,
    },
    Contact(&'a ContactPreference),
}

/// An event a step emits, next in the lead's sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadEvent {
    pub event_type: EventType,
    pub payload: Value,
}

/// Everything an accepted step does: the write, the lead's new status (which moves its report
/// counters), the event it emits if any, and the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct StepDecision<'a> {
    pub write: StepWrite<'a>,
    pub status: LeadStatus,
    pub event: Option<LeadEvent>,
    pub reply: StepRecorded,
}

/// Why a step was not applied: refused for what it asked, or a lead whose stored state breaks
/// the step order's own invariant (a store to report as corrupt, never the caller's fault).
#[derive(Debug, Clone, PartialEq)]
pub enum StepBlocked {
    Refused(CaptureRefusal),
    Inconsistent(&'static str),
}

impl From<DomainError> for StepBlocked {
    fn from(e: DomainError) -> Self {
        Self::Refused(e.into())
    }
}

/// The step rule (SPEC §4): steps in order; step 3 answers the instant estimate and checks the
/// "How did you hear about us?" answer against the question of the lead's widget (`heard_about`
/// pairs them); step 4 emits `lead.contact_requested` only once the lead is enriched, because
/// that event never precedes `lead.enriched` (enrichment's write-back emits it otherwise).
pub fn decide_step<'a>(
    lead: &SteppedLead,
    step: &'a Step,
    heard_about: Option<(&HeardAbout, &SelfReportSetting)>,
) -> Result<StepDecision<'a>, StepBlocked> {
    check_step_order(lead.status, step)?;
    let status = step.status();
    let mut reply = StepRecorded {
        lead_id: lead.id.clone(),
        status,
        estimate: None,
    };
    let mut emitted = None;
    let write = match step {
        Step::ProjectDetails(project) => StepWrite::Project(project),
        Step::PersonalInfo(personal) => {
            let project = lead
                .project
                .as_ref()
                .ok_or(StepBlocked::Inconsistent("step 3 without project details"))?;
            let self_reported = heard_about
                .map(|(answer, question)| question.answer(&answer.choice, answer.other.as_deref()))
                .transpose()?;
            reply.estimate = Some(estimate(project, personal));
            StepWrite::Personal {
                personal,
                self_reported,
            }
        }
        Step::ContactPreference(contact) => {
            if lead.enriched {
                let personal = lead
                    .personal
                    .as_ref()
                    .ok_or(StepBlocked::Inconsistent("step 4 without personal info"))?;
                emitted = Some(LeadEvent {
                    event_type: EventType::LeadContactRequested,
                    payload: event::contact_requested(
                        lead.id.as_str(),
                        personal,
                        contact,
                        &lead.tracking,
                    ),
                });
            }
            StepWrite::Contact(contact)
        }
    };
    Ok(StepDecision {
        write,
        status,
        event: emitted,
        reply,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::lead::tests::project;

    fn personal() -> PersonalInfo {
        PersonalInfo::parse(
            "Ana",
            "Silva",
            "ana@example.com",
            "+1 512 555 0100",
            true,
            Some(2000),
        )
        .unwrap()
    }

    fn contact() -> ContactPreference {
        ContactPreference::parse("phone", "morning").unwrap()
    }

    fn lead(status: LeadStatus) -> SteppedLead {
        SteppedLead {
            id: LeadId::generate(),
            status,
            project: (status >= LeadStatus::ProjectDetailsProvided).then(project),
            personal: (status >= LeadStatus::PersonalInfoAndEstimateProvided).then(personal),
            enriched: false,
            tracking: SourceTracking {
                widget_version: "1".into(),
                widget_name: "Primary".into(),
                source_code: "3".into(),
                source_label: "Facebook Ads".into(),
            },
        }
    }

    #[test]
    fn a_step_out_of_order_is_refused_for_the_step_field() {
        let step = Step::PersonalInfo(personal());
        let Err(StepBlocked::Refused(CaptureRefusal::Invalid(e))) =
            decide_step(&lead(LeadStatus::AddressInfoProvided), &step, None)
        else {
            panic!("expected a refusal");
        };
        assert_eq!(e.field, "step");
        let again = Step::ProjectDetails(project());
        assert!(matches!(
            decide_step(&lead(LeadStatus::ProjectDetailsProvided), &again, None),
            Err(StepBlocked::Refused(_))
        ));
    }

    #[test]
    fn the_personal_step_answers_the_estimate_and_keeps_a_checked_self_report() {
        let step = Step::PersonalInfo(personal());
        let at = lead(LeadStatus::ProjectDetailsProvided);
        let question = SelfReportSetting::parse(true, &["Yard sign".to_owned()]).unwrap();
        let answer = HeardAbout {
            choice: "Yard sign".into(),
            other: None,
        };
        let decided = decide_step(&at, &step, Some((&answer, &question))).unwrap();
        assert_eq!(decided.status, LeadStatus::PersonalInfoAndEstimateProvided);
        assert_eq!(decided.reply.lead_id, at.id);
        assert_eq!(
            decided.reply.estimate,
            Some(estimate(&project(), &personal()))
        );
        assert_eq!(decided.event, None);
        let StepWrite::Personal { self_reported, .. } = decided.write else {
            panic!("expected the personal write");
        };
        assert_eq!(self_reported.unwrap().choice, "Yard sign");

        let unknown = HeardAbout {
            choice: "Carrier pigeon".into(),
            other: None,
        };
        assert!(matches!(
            decide_step(&at, &step, Some((&unknown, &question))),
            Err(StepBlocked::Refused(CaptureRefusal::Invalid(_)))
        ));
    }

    #[test]
    fn contact_requested_is_emitted_only_for_an_enriched_lead() {
        let step = Step::ContactPreference(contact());
        let mut at = lead(LeadStatus::PersonalInfoAndEstimateProvided);
        let waiting = decide_step(&at, &step, None).unwrap();
        assert_eq!(waiting.event, None);
        assert_eq!(waiting.reply.estimate, None);
        assert_eq!(waiting.write, StepWrite::Contact(&contact()));

        at.enriched = true;
        let event = decide_step(&at, &step, None).unwrap().event.unwrap();
        assert_eq!(event.event_type, EventType::LeadContactRequested);
        assert_eq!(event.payload["lead_id"], at.id.as_str());
        assert_eq!(event.payload["source_tracking"]["source_code"], "3");
    }

    #[test]
    fn a_stored_lead_missing_an_earlier_step_is_inconsistent_not_refused() {
        let mut at = lead(LeadStatus::ProjectDetailsProvided);
        at.project = None;
        assert_eq!(
            decide_step(&at, &Step::PersonalInfo(personal()), None),
            Err(StepBlocked::Inconsistent("step 3 without project details"))
        );
        let mut enriched = lead(LeadStatus::PersonalInfoAndEstimateProvided);
        enriched.enriched = true;
        enriched.personal = None;
        assert!(matches!(
            decide_step(&enriched, &Step::ContactPreference(contact()), None),
            Err(StepBlocked::Inconsistent(_))
        ));
    }
}
