//! Browser tests in a real headless Chromium.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
mod harness;
#[path = "../api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

mod dashboard;
mod widget;
