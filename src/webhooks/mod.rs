//! Outbound webhooks, all of it: the envelope, Standard Webhooks signing, where a webhook may
//! go (the address guard and port policy), one attempt over the network, what an answer means
//! (retry schedule, `Retry-After`, disabling), how slots are shared between endpoints, and the
//! dispatcher that drives it. The store only persists what these decide.

pub mod dispatcher;
pub mod envelope;
pub mod fairness;
pub mod limits;
pub mod policy;
pub mod send;
pub mod signing;
pub mod target;
