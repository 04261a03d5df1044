//! Background work: the capture group-commit writer, the visit buffer, enrichment.
//! Each can be driven step by step from tests (`run_once`, `flush`) instead of by sleeping.

pub mod capture_writer;
pub mod dispatcher;
pub mod enrichment;
pub mod visit_buffer;
