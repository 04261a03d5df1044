//! The outbound event catalogue and the payloads each event carries.

use serde::Serialize;
use serde_json::{Value, json};

use super::attribution::Attribution;
use super::estimate::Enrichment;
use super::lead::{Address, ContactPreference, PersonalInfo, ProjectDetails, RecordSource};
use super::self_report::SelfReported;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    LeadAddressPreview,
    LeadEnriched,
    LeadRentalAlert,
    LeadContactRequested,
    LeadSourceCorrected,
    LeadOutcomeChanged,
    WidgetStatusChanged,
}

impl EventType {
    pub const ALL: [EventType; 7] = [
        Self::LeadAddressPreview,
        Self::LeadEnriched,
        Self::LeadRentalAlert,
        Self::LeadContactRequested,
        Self::LeadSourceCorrected,
        Self::LeadOutcomeChanged,
        Self::WidgetStatusChanged,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Self::LeadAddressPreview => "lead.address_preview",
            Self::LeadEnriched => "lead.enriched",
            Self::LeadRentalAlert => "lead.rental_alert",
            Self::LeadContactRequested => "lead.contact_requested",
            Self::LeadSourceCorrected => "lead.source_corrected",
            Self::LeadOutcomeChanged => "lead.outcome_changed",
            Self::WidgetStatusChanged => "widget.status_changed",
        }
    }

    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.id() == id)
    }

    /// `lead.enriched` is part of every subscription and cannot be deselected.
    pub fn is_required(self) -> bool {
        self == Self::LeadEnriched
    }
}

/// Which widget and source produced the lead, as they were when it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SourceTracking {
    pub widget_version: String,
    pub widget_name: String,
    pub source_code: String,
    /// The source's name at arrival, not today's name.
    pub source_label: String,
}

/// A person re-assigned the lead to another source of its widget; `source_tracking` keeps the
/// arrival.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct CorrectedSource {
    pub source_code: String,
    /// The source's name when the correction was made.
    pub source_label: String,
    pub reason: String,
    pub corrected_at: String,
}

/// What every lead event carries beside `source_tracking` (which stays exactly as it was):
/// the attribution detail, how the lead entered, what the homeowner said brought them, and a
/// person's correction of the credited source.
#[derive(Serialize)]
pub struct LeadContext<'a> {
    pub attribution: &'a Attribution,
    pub record_source: RecordSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_reported: Option<&'a SelfReported>,
    #[serde(rename = "corrected_source", skip_serializing_if = "Option::is_none")]
    pub corrected: Option<&'a CorrectedSource>,
}

/// An event's data as sent: its own fields with the lead's context beside them, written as
/// JSON text in one pass (no intermediate `Value` for the capture path to allocate).
pub fn with_lead_context(data: &impl Serialize, context: &LeadContext<'_>) -> String {
    #[derive(Serialize)]
    struct Sent<'a, D: Serialize> {
        #[serde(flatten)]
        data: &'a D,
        #[serde(flatten)]
        context: &'a LeadContext<'a>,
    }
    json_text(&Sent { data, context })
}

/// JSON text of a value made of structs, strings, numbers and string-keyed maps. Writing such
/// a value into a `String` cannot fail (serde_json fails only on non-string map keys or a
/// failing `Serialize`, and the domain has neither), as `json!` assumes too.
pub fn json_text(value: &impl Serialize) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|e| unreachable!("a domain value always serializes: {e}"))
}

/// Lead created: the property only — no name, e-mail, phone or other personal data.
#[derive(Serialize)]
pub struct AddressPreview<'a> {
    pub lead_id: &'a str,
    pub status: &'static str,
    pub created_at: &'a str,
    pub address: &'a Address,
    pub source_tracking: &'a SourceTracking,
}

pub fn address_preview<'a>(
    lead_id: &'a str,
    created_at: &'a str,
    address: &'a Address,
    tracking: &'a SourceTracking,
) -> AddressPreview<'a> {
    AddressPreview {
        lead_id,
        status: "address_info_provided",
        created_at,
        address,
        source_tracking: tracking,
    }
}

pub struct EnrichedLead<'a> {
    pub lead_id: &'a str,
    pub created_at: &'a str,
    pub address: &'a Address,
    pub project: &'a ProjectDetails,
    pub personal: &'a PersonalInfo,
    pub enrichment: &'a Enrichment,
    pub tracking: &'a SourceTracking,
}

/// Enrichment written back: the whole lead as a CRM needs it.
pub fn enriched(lead: &EnrichedLead<'_>) -> Value {
    json!({
        "lead_id": lead.lead_id,
        "status": "personal_info_and_estimate_provided",
        "created_at": lead.created_at,
        "address": lead.address,
        "project": lead.project,
        "contact": {
            "first_name": lead.personal.first_name,
            "last_name": lead.personal.last_name,
            "email": lead.personal.email,
            "phone": lead.personal.phone,
        },
        "owner_occupied": lead.personal.owner_occupied,
        "home_sqft": lead.personal.home_sqft,
        "score": lead.enrichment.score,
        "score_reasons": lead.enrichment.score_reasons,
        "insights": lead.enrichment.insights,
        "estimate": lead.enrichment.estimate,
        "source_tracking": lead.tracking,
    })
}

/// With `lead.enriched`, when the home is not owner-occupied.
pub fn rental_alert(lead: &EnrichedLead<'_>) -> Value {
    json!({
        "lead_id": lead.lead_id,
        "owner_occupied": false,
        "address": lead.address,
        "contact": {
            "first_name": lead.personal.first_name,
            "last_name": lead.personal.last_name,
        },
        "source_tracking": lead.tracking,
    })
}

/// The optional contact step, done.
pub fn contact_requested(
    lead_id: &str,
    personal: &PersonalInfo,
    contact: &ContactPreference,
    tracking: &SourceTracking,
) -> Value {
    json!({
        "lead_id": lead_id,
        "status": "contact_info_provided",
        "contact_method": contact.contact_method,
        "contact_time": contact.contact_time,
        "contact": {
            "first_name": personal.first_name,
            "last_name": personal.last_name,
            "email": personal.email,
            "phone": personal.phone,
        },
        "source_tracking": tracking,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lead_enriched_is_required() {
        let required: Vec<_> = EventType::ALL
            .into_iter()
            .filter(|e| e.is_required())
            .collect();
        assert_eq!(required, vec![EventType::LeadEnriched]);
        assert_eq!(
            EventType::from_id("lead.rental_alert"),
            Some(EventType::LeadRentalAlert)
        );
    }

    #[test]
    fn address_preview_carries_no_personal_data() {
        let address = Address::parse("1 Main St", "Austin", "TX", "78701", None)
            .unwrap_or_else(|e| panic!("{e}"));
        let tracking = SourceTracking {
            widget_version: "01".into(),
            widget_name: "Primary".into(),
            source_code: "02".into(),
            source_label: "Facebook Ads".into(),
        };
        let text = json_text(&address_preview(
            "lead_1",
            "2026-01-01T00:00:00Z",
            &address,
            &tracking,
        ));
        for personal in ["email", "phone", "first_name", "last_name"] {
            assert!(!text.contains(personal), "{personal} in {text}");
        }
        let payload: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(payload["source_tracking"]["source_label"], "Facebook Ads");
    }
}
