//! What lets many nodes share one database safely: the connection limits each node sets, and
//! an older binary refusing a schema a newer one migrated.

use std::time::Duration;

use leadtrail::domain::tier::Tier;
use leadtrail::store::{DatabaseSettings, Store, StoreError};
use sqlx::Connection;

use crate::common::TestDb;
use crate::on_both_backends;
use crate::{PRIMARY, new_source, org, store};

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
        // A URL that names its own mode keeps it: `rw` opens an existing file and never
        // creates a new, empty database where a path was mistyped.
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("mistyped.db");
        let url = format!("sqlite://{}?mode=rw", missing.display());
        assert!(Store::connect(&url).await.is_err(), "{url} opened");
        assert!(!missing.exists(), "{url} was created");
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

/// A database that cannot answer now (closed pool, no server, a lock or statement past this
/// node's limits, a connection lost or a server shutting down) is a moment's trouble: the edge
/// answers 503 with `Retry-After` and the capture writer keeps the batch. A fault in the
/// request or the data is not, and text PostgreSQL cannot hold is the caller's mistake.
async fn a_database_error_says_whether_it_is_worth_retrying(db: TestDb) {
    let closed = store(&db).await;
    closed.close().await;
    let err = closed.ping().await.unwrap_err();
    assert!(err.is_unavailable(), "a closed pool: {err:?}");
    assert!(!StoreError::NotFound.is_unavailable());
    if !db.url().starts_with("postgres") {
        return;
    }
    let err = Store::connect("postgres://postgres@127.0.0.1:1/test")
        .await
        .err()
        .expect("nobody listens on port 1");
    assert!(err.is_unavailable(), "no server: {err:?}");
    limits_past_are_worth_retrying(&db).await;

    // Errors as the server sends them, each raised with its SQLSTATE.
    let mut conn = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let mut raised = async |code: &str| {
        let sql = format!("DO $$ BEGIN RAISE EXCEPTION 'raised' USING ERRCODE = '{code}'; END $$");
        let err = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap_err();
        StoreError::from(err)
    };
    for code in ["08000", "08006", "57P01", "57P03", "57014", "55P03"] {
        let err = raised(code).await;
        assert!(err.is_unavailable(), "{code} is worth retrying: {err:?}");
    }
    for code in ["23505", "40P01", "55000", "57000", "P0001", "22001"] {
        let err = raised(code).await;
        assert!(matches!(err, StoreError::Database(_)), "{code}: {err:?}");
        assert!(!err.is_unavailable(), "{code} is a fault: {err:?}");
    }
    match raised("22021").await {
        StoreError::Invalid(e) => assert!(e.message.contains("NUL"), "{e:?}"),
        other => panic!("a NUL character is the caller's mistake, got {other:?}"),
    }
}

/// A table another connection holds locked: a store with a lock timeout hears 55P03, one with
/// only a statement timeout 57014; both are this node's limits, worth retrying.
async fn limits_past_are_worth_retrying(db: &TestDb) {
    let migrated = store(db).await;
    let (org, _) = org(&migrated, Tier::Premium).await;
    let mut holder = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let mut held = holder.begin().await.unwrap();
    // SHARE lets the checks' SELECTs through and holds the source's INSERT: the wait that
    // times out is the insert's own, whose error is asked whether it was a name clash.
    sqlx::query("LOCK TABLE sources IN SHARE MODE")
        .execute(&mut *held)
        .await
        .unwrap();
    let limited = |statement: Option<u64>, lock: Option<u64>| {
        Store::connect_with(
            db.url(),
            DatabaseSettings {
                pool_size: Some(1),
                statement_timeout: statement.map(Duration::from_millis),
                lock_timeout: lock.map(Duration::from_millis),
            },
        )
    };
    let by_lock = limited(None, Some(200)).await.unwrap();
    let by_statement = limited(Some(200), None).await.unwrap();
    for (store, what) in [
        (by_lock, "lock_timeout"),
        (by_statement, "statement_timeout"),
    ] {
        let err = store
            .create_source(&org, PRIMARY, new_source("Yard signs"))
            .await
            .unwrap_err();
        assert!(err.is_unavailable(), "{what}: {err:?}");
    }
    held.rollback().await.unwrap();
    migrated
        .create_source(&org, PRIMARY, new_source("Yard signs"))
        .await
        .expect("the lock gone, the write goes through");
}

on_both_backends!(
    every_connection_carries_the_configured_limits,
    a_schema_from_a_newer_version_is_refused,
    a_database_error_says_whether_it_is_worth_retrying,
);
