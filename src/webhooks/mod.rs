//! Outbound webhooks: Standard Webhooks signing and the SSRF guard every delivery goes through.
//! (Endpoint storage, fan-out and the dispatcher are not built yet.)

pub mod signing;
pub mod target;
