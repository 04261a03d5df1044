//! Seeding shared by the benchmarks that need many leads.

use leadtrail::domain::attribution::Arrival;
use leadtrail::domain::ids::OrgId;
use leadtrail::domain::lead::Address;
use leadtrail::domain::widget::WidgetVersion;
use leadtrail::store::{CaptureCommand, NewLead};

pub type BoxError = Box<dyn std::error::Error>;

/// A lead on the Primary widget through source `code`.
pub fn new_lead(org: &OrgId, code: usize, address: &Address) -> CaptureCommand {
    CaptureCommand::CreateLead(Box::new(NewLead {
        org: org.clone(),
        arrival: Arrival {
            embedding: Some(WidgetVersion::PRIMARY),
            v: Some("01".into()),
            s: Some(format!("{code:02}")),
            ..Arrival::default()
        },
        first_touch: None,
        address: address.clone(),
        idempotency: None,
        record_source: leadtrail::domain::lead::RecordSource::Widget,
    }))
}
