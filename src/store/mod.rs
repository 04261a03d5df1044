//! The only place that speaks SQL. One `Store` over sqlx's `Any` driver: the same SQL text
//! runs on SQLite (embedded default) and PostgreSQL (scale-out), each with its own migrations;
//! the few real dialect differences live in `Backend`.

mod accounts;
mod bulk;
mod capture;
mod catalog;
mod deliveries;
mod enrichment;
mod events;
mod leads;
mod organizations;
mod records;
mod reports;
mod sources;
mod visits;
mod webhooks;
mod widgets;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Transaction};

pub use accounts::{Invite, SessionRecord, User};
pub use capture::{
    CaptureCommand, CaptureRefusal, CaptureReply, CaptureResult, FirstTouch, Idempotency,
    LeadCreated, NewLead, StepRecorded, StepUpdate,
};
pub use deliveries::{
    Attempt, Backlog, ClaimRequest, Claimed, DeliveryRecord, DueDelivery, Finished, Lag, PARKED,
    Recorded, ReplayQueued,
};
pub use enrichment::EnrichmentJob;
pub use events::StoredEvent;
pub use leads::{LeadFilter, LeadRecord};
pub use records::*;
pub use reports::{Counts, Interval, ReportFilter, Touch};
pub use visits::NewVisit;
pub use webhooks::{Endpoint, EndpointPatch, ROTATION_OVERLAP_MS};

use crate::domain::DomainError;

/// Which database the URL named; decides migrations and how write transactions start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::Config(format!(
                "unsupported database URL {url:?}: use sqlite://FILE or postgres://…"
            )))
        }
    }
}

/// A business rule that could only be checked against stored state (inside the transaction).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("{0}")]
    SourceLimitReached(String),
    #[error("this organization's tier allows {limit} live widget(s); archive one or upgrade")]
    WidgetLimitReached { limit: u32 },
    #[error("an active source named {0:?} already exists on this widget")]
    DuplicateSourceName(String),
    #[error("{0}")]
    SystemSourceImmutable(String),
    #[error("{0}")]
    PrimaryWidgetImmutable(String),
    #[error("a user with this email already exists")]
    DuplicateEmail,
    #[error("the organization's last owner cannot be removed")]
    LastOwner,
    #[error("this organization already has {limit} webhook endpoints; delete one to add another")]
    EndpointLimitReached { limit: u32 },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist *for this organization*; another tenant's object looks the same.
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Conflict(#[from] Conflict),
    #[error(transparent)]
    Invalid(#[from] DomainError),
    #[error("database configuration: {0}")]
    Config(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Connects by URL scheme. A SQLite file is created if missing and runs in WAL mode with
    /// `synchronous=FULL`, so a commit that returned is on disk.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_size(url, None).await
    }

    /// A pool of two connections, for a single sequential writer.
    pub async fn connect_small(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_size(url, Some(2)).await
    }

    async fn connect_with_size(url: &str, size: Option<u32>) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(size.unwrap_or(match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            }))
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                             PRAGMA cache_size = -65536;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Self { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => {
                sqlx::migrate!("./migrations/sqlite")
                    .run(&self.pool)
                    .await?
            }
            Backend::Postgres => {
                sqlx::migrate!("./migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    /// Refreshes the query planner's statistics where that is the application's job (SQLite;
    /// PostgreSQL's autovacuum does it there). Cheap when nothing changed much.
    pub async fn optimize(&self) -> Result<(), StoreError> {
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA optimize = 0x10002")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Readiness: the database answers a query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so concurrent writers queue on the busy timeout instead of failing
    /// to upgrade a read lock; on PostgreSQL row locks taken by the first UPDATE serialize
    /// writers of the same widget or organization.
    async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(tx)
    }
}

/// A stored time (Unix milliseconds) as RFC 3339 UTC, as the API and payloads show times.
pub fn rfc3339(unix_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Now, in Unix milliseconds: the unit every stored time uses.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

pub(crate) fn to_u32(value: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} out of range: {value}")))
}
