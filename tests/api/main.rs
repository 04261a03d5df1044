//! Black-box tests of the HTTP API over a real socket, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod attribution;
#[path = "../common/mod.rs"]
mod common;
mod helpers;
mod isolation;
mod lead_data;

mod bad_input;
mod capture;
mod dashboard;
mod dispatch;
mod docs;
mod multi_touch;
mod no_5xx;
mod operations;
mod organizations;
mod outcomes;
mod qr;
mod receiver;
mod reports;
mod scale;
mod slow_clients;
mod sources;
mod webhook_isolation;
mod webhooks;
mod widgets;
