//! The store contract: every rule the store enforces, run against SQLite and PostgreSQL alike.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod account_rules;
mod capture_rules;
mod delivery_rules;
mod multi_touch_rules;
mod organization_rules;
mod outcome_rules;
mod privacy_rules;
mod report_rules;
mod scale_rules;

use common::TestDb;
use leadtrail::domain::channel::ChannelCategory;
use leadtrail::domain::ids::OrgId;
use leadtrail::domain::organization::{BrandColor, OrgName, SiteUrl};
use leadtrail::domain::source::{SourceCode, SourceName};
use leadtrail::domain::tier::Tier;
use leadtrail::domain::widget::WidgetVersion;
use leadtrail::store::{Conflict, NewOrganization, NewSource, Store, StoreError};

pub async fn store(db: &TestDb) -> Store {
    let store = Store::connect(db.url()).await.expect("connect");
    store.migrate().await.expect("migrate");
    store
}

pub async fn org(store: &Store, tier: Tier) -> (OrgId, String) {
    let created = store
        .create_organization(NewOrganization {
            name: OrgName::parse("Acme Roofing").unwrap(),
            website_url: SiteUrl::parse("website_url", "https://acme.example/").unwrap(),
            brand_color: BrandColor::parse("#1A73E8").unwrap(),
            tier,
            owner: None,
        })
        .await
        .expect("create organization");
    (created.organization.id, created.api_key)
}

pub fn new_source(name: &str) -> NewSource {
    NewSource {
        name: SourceName::parse(name).unwrap(),
        channel_category: ChannelCategory::PaidSocial,
        generate_qr: false,
    }
}

pub fn code(n: u32) -> SourceCode {
    SourceCode::new(n).unwrap()
}

pub fn version(n: u32) -> WidgetVersion {
    WidgetVersion::new(n).unwrap()
}

pub const PRIMARY: WidgetVersion = WidgetVersion::PRIMARY;

pub fn conflict(result: Result<impl std::fmt::Debug, StoreError>) -> Conflict {
    match result {
        Err(StoreError::Conflict(c)) => c,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

/// Waits (up to 30 s) until `waiting_sql` — a count of blocked lock requests, run on
/// `observer` — reads 1, failing with `went_past` if `task` finishes first and with `never` at
/// the deadline: the task is then seen blocked on a lock the test holds.
pub async fn wait_until_blocked<T>(
    observer: &mut sqlx::PgConnection,
    waiting_sql: &'static str,
    task: &tokio::task::JoinHandle<T>,
    went_past: &str,
    never: &str,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(waiting_sql)
            .fetch_one(&mut *observer)
            .await
            .unwrap();
        if waiting == 1 {
            return;
        }
        assert!(!task.is_finished(), "{went_past}");
        assert!(std::time::Instant::now() < deadline, "{never}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
