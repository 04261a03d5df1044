//! Pure product rules: values that exist only by parsing, and the decisions made on them.
//! Nothing here knows about HTTP or SQL.

pub mod attribution;
pub mod capture;
pub mod catalog;
pub mod channel;
pub mod error;
pub mod estimate;
pub mod event;
pub mod ids;
pub mod keys;
pub mod lead;
pub mod lead_import;
pub mod money;
pub mod multi_touch;
pub mod organization;
pub mod outcome;
pub mod privacy;
pub mod self_report;
pub mod source;
pub mod spend;
pub mod tier;
pub mod time_zone;
pub mod tracking_url;
pub mod user;
pub mod widget;

pub use error::{DomainError, parse_display_name};
