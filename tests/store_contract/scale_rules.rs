//! What lets many nodes share one database safely: the connection limits each node sets, and
//! an older binary refusing a schema a newer one migrated.

use std::time::Duration;

use leadtrail::store::{DatabaseSettings, Store, StoreError};

use crate::common::TestDb;
use crate::on_both_backends;
use crate::store;

async fn every_connection_carries_the_configured_limits(db: TestDb) {
    let _migrated = store(&db).await;
    let serving = Store::connect_with(
        db.url(),
        DatabaseSettings {
            pool_size: Some(3),
            statement_timeout: Some(Duration::from_secs(30)),
            lock_timeout: Some(Duration::from_millis(2_500)),
        },
    )
    .await
    .unwrap();
    let unbounded = Store::connect(db.url()).await.unwrap();
    if db.url().starts_with("postgres") {
        let limits = serving.postgres_limits().await.unwrap();
        assert_eq!(limits, Some(("30s".to_owned(), "2500ms".to_owned())));
        assert_eq!(
            unbounded.postgres_limits().await.unwrap(),
            Some(("0".to_owned(), "0".to_owned()))
        );
    } else {
        assert_eq!(serving.postgres_limits().await.unwrap(), None);
        serving.ping().await.unwrap();
    }
}

async fn a_schema_from_a_newer_version_is_refused(db: TestDb) {
    let store = store(&db).await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(db.url()).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990001, 'from a newer leadtrail', TRUE, $1, 1)",
    )
    .bind(vec![0_u8; 48])
    .execute(&pool)
    .await
    .unwrap();
    match store.migrate().await {
        Err(StoreError::Config(message)) => {
            assert!(message.contains("newer leadtrail"), "{message}");
            assert!(message.contains("99990001"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

on_both_backends!(
    every_connection_carries_the_configured_limits,
    a_schema_from_a_newer_version_is_refused,
);
