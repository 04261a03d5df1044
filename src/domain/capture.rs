//! What a capture request is answered with and what it writes. A new lead is decided here from
//! the organization's catalog and the request (`decide_arrival`), its touches then gathered from
//! the visitor's visits (`ArrivalDecision::touches`); a later step from the lead as the step
//! finds it and the request (`decide_step`). The store reads those facts, persists the decision
//! and counts it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::DomainError;
use super::attribution::{
    Arrival, Attribution, AttributionNote, DerivedChannel, SourceFacts, Touch, Utm, WidgetFacts,
    derive_channel_on_page,
};
use super::catalog::{Catalog, CatalogGap};
use super::estimate::{Estimate, estimate};
use super::event::{self, EventType, SourceTracking};
use super::ids::{LeadId, OrgId};
use super::keys::api_key_digest;
use super::lead::{
    Address, ContactPreference, LeadStatus, PersonalInfo, ProjectDetails, RecordSource, Step,
    check_step_order,
};
use super::multi_touch::{CreditSettings, TouchKey, TouchPoint, VisitTouch, gather};
use super::self_report::{SelfReportSetting, SelfReported};
use super::time_zone::rfc3339;

/// The first tracked touch widget.js remembered for this visitor (first-party storage, 90 days).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FirstTouch {
    pub v: Option<String>,
    pub s: Option<String>,
    /// When the visitor first arrived through it (RFC 3339, as the browser saw it).
    pub at: Option<String>,
    #[serde(default)]
    pub utm: Utm,
    pub referrer: Option<String>,
    /// The page the visitor landed on then.
    #[serde(default)]
    pub page_url: Option<String>,
}

/// A retried request carries the same key; it must also carry the same body.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
}

#[derive(Debug, Clone)]
pub struct NewLead {
    pub org: OrgId,
    /// Where the lead came from; its visitor id's visits are the lead's touches.
    pub arrival: Arrival,
    pub first_touch: Option<FirstTouch>,
    pub address: Address,
    pub idempotency: Option<Idempotency>,
    /// Widget for homeowners; API and import leads are entered by the business.
    pub record_source: RecordSource,
}

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

/// What a new lead writes: the lead with its frozen snapshot and attribution, its first event
/// (`lead.address_preview`), and the answer; its touches once its visitor's visits are known.
/// Only fresh ids and a token are drawn.
#[derive(Debug, Clone)]
pub struct ArrivalDecision {
    /// The widget and source credited, with their names as they are now (the snapshot).
    pub credited: CreditedSnapshot,
    pub derived: Option<DerivedChannel>,
    pub attribution: Attribution,
    /// The tracking parameters as sent, kept for audit (JSON text, as stored).
    pub raw_params: String,
    /// The arrival as a touch: the last of the lead's touches (`touches`).
    pub point: TouchPoint,
    /// The (widget, source) counted under first-touch attribution: the first touch's, else the
    /// arrival's own.
    pub first_touch: (u32, u32),
    /// What the database keeps of the answer's capture token.
    pub token_digest: String,
    /// The data of the lead's first event, `lead.address_preview`, with the lead's context, as
    /// the outbox stores and sends it (JSON text, written in one pass: this is the hot path).
    pub address_preview: String,
    pub reply: LeadCreated,
}

/// The tracking parameters of an arrival as sent, kept for audit (`raw_params`).
#[derive(Serialize)]
struct RawParams<'a> {
    page_url: &'a Option<String>,
    referrer: &'a Option<String>,
    s: &'a Option<String>,
    utm: &'a Utm,
    v: &'a Option<String>,
    widget: Option<String>,
}

/// The widget and source an arrival is credited to, as they are at that moment.
#[derive(Debug, Clone)]
pub struct CreditedSnapshot {
    pub widget: WidgetFacts,
    pub source: SourceFacts,
    pub note: Option<AttributionNote>,
}

/// A lead's capture token, and the digest that is all the database keeps of it.
pub fn new_capture_token() -> (String, String) {
    let token = format!("ct_{}", uuid::Uuid::new_v4().simple());
    let digest = api_key_digest(&token);
    (token, digest)
}

/// The arrival rule (SPEC §3) applied to a new lead: attribution by the catalog (the first touch
/// by the same rule, from the same page's widget), the frozen snapshot, the arrival as a touch,
/// the `lead.address_preview` event.
pub fn decide_arrival(
    catalog: &Catalog,
    new: &NewLead,
    now: i64,
) -> Result<ArrivalDecision, CatalogGap> {
    let (arrival, derived) = catalog.resolve(&new.arrival)?;
    let credited_key = (arrival.widget.version.get(), arrival.source.code.get());
    let (first, first_key) = match &new.first_touch {
        Some(ft) => {
            let (touch, key) = first_touch(catalog, new, ft)?;
            (Some(touch), key)
        }
        None => (None, credited_key),
    };
    let at = rfc3339(now);
    let attribution = Attribution {
        last_touch: Touch {
            widget_version: arrival.widget.version.to_string(),
            source_code: arrival.source.code.to_string(),
            at: Some(at.clone()),
            landing_page_url: new.arrival.page_url.clone(),
            referrer: new.arrival.referrer.clone(),
            utm: new.arrival.utm.clone(),
            derived_channel: derived,
            note: arrival.note,
        },
        first_touch: first,
    };
    let lead = LeadId::generate();
    let (token, token_digest) = new_capture_token();
    let raw_params = RawParams {
        page_url: &new.arrival.page_url,
        referrer: &new.arrival.referrer,
        s: &new.arrival.s,
        utm: &new.arrival.utm,
        v: &new.arrival.v,
        widget: new.arrival.embedding.map(|w| w.to_string()),
    };
    let tracking = SourceTracking {
        widget_version: arrival.widget.version.to_string(),
        widget_name: arrival.widget.name.clone(),
        source_code: arrival.source.code.to_string(),
        source_label: arrival.source.name.clone(),
    };
    let address_preview = event::with_lead_context(
        &event::address_preview(lead.as_str(), &at, &new.address, &tracking),
        &event::LeadContext {
            attribution: &attribution,
            record_source: new.record_source,
            self_reported: None,
            corrected: None,
        },
    );
    Ok(ArrivalDecision {
        point: TouchPoint {
            at: now,
            key: TouchKey {
                widget: arrival.widget.version.get(),
                source: arrival.source.code.get(),
                channel: derived,
            },
        },
        credited: CreditedSnapshot {
            widget: arrival.widget.clone(),
            source: arrival.source.clone(),
            note: arrival.note,
        },
        derived,
        attribution,
        raw_params: event::json_text(&raw_params),
        first_touch: first_key,
        token_digest,
        address_preview,
        reply: LeadCreated {
            lead_id: lead,
            capture_token: token,
            status: LeadStatus::AddressInfoProvided,
        },
    })
}

/// The first touch widget.js remembered, credited by the same rule from the same page's widget,
/// and the (widget, source) it is counted under.
fn first_touch(
    catalog: &Catalog,
    new: &NewLead,
    ft: &FirstTouch,
) -> Result<(Touch, (u32, u32)), CatalogGap> {
    let touch = catalog.attribute(new.arrival.embedding, ft.v.as_deref(), ft.s.as_deref())?;
    let derived =
        touch.source.code.is_system().then(|| {
            derive_channel_on_page(&ft.utm, ft.referrer.as_deref(), ft.page_url.as_deref())
        });
    let key = (touch.widget.version.get(), touch.source.code.get());
    let touch = Touch {
        widget_version: touch.widget.version.to_string(),
        source_code: touch.source.code.to_string(),
        at: ft.at.clone(),
        landing_page_url: ft.page_url.clone(),
        referrer: ft.referrer.clone(),
        utm: ft.utm.clone(),
        derived_channel: derived,
        note: touch.note,
    };
    Ok((touch, key))
}

impl ArrivalDecision {
    /// The lead's touches: its visitor's visits within the longest lookback an organization
    /// can choose (the models apply the organization's own), then the arrival. Apart from the
    /// rest of the decision, which needs no visit: the store decides a lead before its batch
    /// and reads the visits of the whole batch's visitors in it.
    pub fn touches(&self, visits: &[VisitTouch]) -> Vec<TouchPoint> {
        lead_touches(&self.point, visits)
    }
}

/// The touches of a lead that arrived as `point`: see `ArrivalDecision::touches`.
pub fn lead_touches(point: &TouchPoint, visits: &[VisitTouch]) -> Vec<TouchPoint> {
    gather(visits, *point, CreditSettings::MAX_LOOKBACK_MS)
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

    /// Primary (live) with Website and an archived "Yard Signs"; a second widget "Spring
    /// Promo" with Website only.
    fn catalog() -> Catalog {
        use crate::domain::attribution::{SourceFacts, WidgetFacts};
        use crate::domain::channel::ChannelCategory;
        use crate::domain::source::{SourceCode, SourceStatus};
        use crate::domain::widget::{WidgetStatus, WidgetVersion};
        let widget = |n, name: &str| WidgetFacts {
            version: WidgetVersion::new(n).unwrap(),
            name: name.into(),
            status: WidgetStatus::Configured,
        };
        let source = |n, name: &str, category, status| SourceFacts {
            code: SourceCode::new(n).unwrap(),
            name: name.into(),
            category,
            status,
        };
        let website = || source(1, "Website", ChannelCategory::Website, SourceStatus::Active);
        Catalog::new(
            vec![widget(1, "Primary"), widget(2, "Spring Promo")],
            [
                (WidgetVersion::PRIMARY, website()),
                (
                    WidgetVersion::PRIMARY,
                    source(
                        2,
                        "Yard Signs",
                        ChannelCategory::PrintOutdoor,
                        SourceStatus::Archived,
                    ),
                ),
                (WidgetVersion::new(2).unwrap(), website()),
            ],
        )
    }

    fn new_lead(v: &str, s: &str, first_touch: Option<FirstTouch>) -> NewLead {
        NewLead {
            org: OrgId::generate(),
            arrival: Arrival {
                v: Some(v.into()),
                s: Some(s.into()),
                visitor_id: Some("visitor-1".into()),
                ..Arrival::default()
            },
            first_touch,
            address: Address::parse("1 Main St", "Austin", "TX", "78701", None).unwrap(),
            idempotency: None,
            record_source: RecordSource::Widget,
        }
    }

    #[test]
    fn an_arrival_is_credited_by_the_catalog_and_its_snapshot_travels_in_the_first_event() {
        let now = 1_767_225_600_000;
        let decided = decide_arrival(&catalog(), &new_lead("01", "02", None), now).unwrap();
        // An archived source still attributes: its signs are still out there.
        assert_eq!(decided.credited.source.name, "Yard Signs");
        assert_eq!(decided.credited.widget.name, "Primary");
        assert_eq!(
            decided.derived, None,
            "only the system source derives a channel"
        );
        assert_eq!(decided.attribution.last_touch.source_code, "02");
        assert_eq!(
            decided.first_touch,
            (1, 2),
            "no first touch: the arrival's own"
        );
        let preview: Value = serde_json::from_str(&decided.address_preview).unwrap();
        let tracking = &preview["source_tracking"];
        assert_eq!(tracking["source_label"], "Yard Signs", "{preview}");
        assert_eq!(tracking["widget_name"], "Primary");
        assert_eq!(preview["lead_id"], decided.reply.lead_id.as_str());
        assert_eq!(preview["status"], "address_info_provided");
        assert_eq!(preview["attribution"]["source_code"], "02");
        assert_eq!(preview["record_source"], "widget");
        assert!(preview.get("self_reported").is_none() && preview.get("email").is_none());
        let raw: Value = serde_json::from_str(&decided.raw_params).unwrap();
        assert_eq!(
            (&raw["v"], &raw["s"]),
            (&serde_json::json!("01"), &serde_json::json!("02"))
        );
        assert_eq!(decided.reply.status, LeadStatus::AddressInfoProvided);
        assert_eq!(
            decided.token_digest,
            api_key_digest(&decided.reply.capture_token),
            "the row keeps the digest of the token answered"
        );
        let last = *decided.touches(&[]).last().unwrap();
        assert_eq!((last.at, last.key.widget, last.key.source), (now, 1, 2));
    }

    #[test]
    fn a_first_touch_is_credited_by_the_same_rule_and_an_unknown_source_falls_to_website() {
        let first = FirstTouch {
            v: Some("01".into()),
            s: Some("02".into()),
            ..FirstTouch::default()
        };
        let decided = decide_arrival(&catalog(), &new_lead("02", "09", Some(first)), 0).unwrap();
        assert_eq!(decided.credited.widget.name, "Spring Promo");
        assert_eq!(
            decided.credited.source.name, "Website",
            "s=09 is not a source of 02"
        );
        assert!(
            decided.derived.is_some(),
            "the system source derives a channel"
        );
        assert!(
            decided.credited.note.is_some(),
            "why s was not applied is kept"
        );
        assert_eq!(
            decided.first_touch,
            (1, 2),
            "counted under the first touch's source"
        );
        let first = decided.attribution.first_touch.unwrap();
        assert_eq!(
            (first.widget_version.as_str(), first.source_code.as_str()),
            ("01", "02")
        );
    }
}
