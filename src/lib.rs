//! leadtrail: which marketing source produced each lead, kept true forever.

/// Settings from flags, `LEADTRAIL_…` environment variables and an optional TOML file.
pub mod config;
/// `serve --demo`: a seeded demo organization.
pub mod demo;
/// Pure product rules: organizations, tiers, widgets, sources, tracking URLs.
pub mod domain;
/// The axum application: JSON API, operations endpoints.
pub mod http;
/// QR rendering of tracking URLs (PNG, SVG); no I/O.
pub mod qr;
/// Report rows and the CSV export.
pub mod reports;
/// Running the service: startup, workers, graceful shutdown.
pub mod server;
/// Persistence on SQLite or PostgreSQL behind one `Store`.
pub mod store;
/// Logs and Prometheus metrics.
pub mod telemetry;
/// Webhook signing and the SSRF guard.
pub mod webhooks;
/// Background workers: capture group commit, visit buffer, enrichment.
pub mod workers;
