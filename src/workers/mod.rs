//! Background work: the capture group-commit writer, the visit buffer, enrichment, the
//! recount of multi-touch credit, the folding of report-rollup changes on PostgreSQL. (The
//! webhook dispatcher lives with the rest of webhooks, in `crate::webhooks`.)
//! Each can be driven step by step from tests (`run_once`, `flush`) instead of by sleeping.

pub mod capture_writer;
pub mod credit_recount;
pub mod enrichment;
pub mod rollup_fold;
pub mod visit_buffer;
pub mod wakeups;
