//! The only place that speaks SQL. One `Store` over sqlx's `Any` driver: the same SQL text
//! runs on SQLite (embedded default) and PostgreSQL (scale-out), each with its own migrations;
//! the few real dialect differences live in `Backend`.

mod accounts;
mod backup;
mod bulk;
mod capture;
mod catalog;
mod corrections;
mod deliveries;
mod dispatch;
mod enrichment;
mod events;
mod exec;
mod import;
mod leads;
mod organizations;
mod outcomes;
mod privacy;
mod records;
mod reports;
mod rollups;
mod sources;
mod spend;
mod visits;
mod webhooks;
mod widgets;

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, Transaction};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use accounts::{Invite, Membership, PendingInvite, SessionRecord, User};
pub use backup::BackupSummary;
pub use capture::{
    ArrivalPreparer, CaptureCommand, CaptureRefusal, CaptureReply, CaptureResult, FirstTouch,
    HeardAbout, Idempotency, LeadCreated, NewLead, PreparedLead, StepRecorded, StepUpdate,
};
pub use corrections::Correction;
pub use deliveries::{
    Attempt, Backlog, ClaimRequest, Claimed, DeliveryRecord, DueDelivery, Finished, Lag, NextDue,
    PARKED, Recorded, ReplayQueued, Round, RoundDone,
};
pub use enrichment::EnrichmentJob;
pub use events::StoredEvent;
pub use import::{ImportOptions, LeadImport};
pub use leads::{LeadFilter, LeadRecord};
pub use outcomes::{OutcomeChange, OutcomeView};
pub use privacy::{Erasure, RETENTION_BATCH, VisitRecord};
pub use records::*;
pub use reports::{Counts, GroupCounts, Interval, ReportFilter};
pub use rollups::{FOLD_BATCH, Folded, RecountProgress, RecountStep};
pub use spend::{SpendImport, SpendRow};
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
    #[error("that address is already a member of this organization")]
    AlreadyMember,
    #[error(
        "this address already has a leadtrail login: log in with it, then open this link again to join"
    )]
    LoginExists,
    #[error("this link is for another address than the one you are logged in with")]
    InviteForAnotherLogin,
    #[error("the organization's last owner cannot be removed")]
    LastOwner,
    #[error("this organization already has {limit} webhook endpoints; delete one to add another")]
    EndpointLimitReached { limit: u32 },
    #[error(
        "the {tier} tier allows {allowed} live widget(s), and {} are live: archive some of them first: {}",
        live.len(),
        live.join(", ")
    )]
    TierTooSmall {
        tier: String,
        allowed: u32,
        live: Vec<String>,
    },
    #[error(transparent)]
    OutcomeRefused(#[from] crate::domain::outcome::OutcomeRefusal),
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
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
    Database(sqlx::Error),
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// The database could not be reached (down, restarting, out of connections): a moment's
    /// trouble to retry after, not a fault in the request or the data.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_),
            ) => true,
            // Connection exceptions (08…), the server shutting down or starting (57P0…), and
            // this node's own limits: a statement past `statement_timeout` (57014) or a lock
            // not granted within `lock_timeout` (55P03) — worth retrying, not a fault.
            StoreError::Database(sqlx::Error::Database(db)) => db.code().is_some_and(|c| {
                c.starts_with("08") || c.starts_with("57P0") || c == "57014" || c == "55P03"
            }),
            _ => false,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    /// Text PostgreSQL cannot hold (a NUL character) is the caller's input, not a failure of
    /// ours: a 422, whichever path let it through.
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("22021") => {
                StoreError::Invalid(DomainError::new(
                    "text",
                    "text must not contain NUL characters",
                ))
            }
            _ => StoreError::Database(e),
        }
    }
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite: this process's queue of writers to the file (see `begin_write`).
    gate: Option<Arc<Semaphore>>,
    /// SQLite: the file's path, and a native connection to it, opened on first use (see
    /// `native_write`).
    sqlite_path: Option<Arc<str>>,
    native: Arc<tokio::sync::OnceCell<exec::Native>>,
    /// What every new connection runs first (`session_sql`), the native one included.
    session: Arc<str>,
    /// Woken after a commit that made deliveries due (this node's dispatcher).
    wake: Option<Arc<tokio::sync::Notify>>,
    /// Organizations' widgets and sources as capture last read them (see `catalog`).
    catalogs: Arc<catalog::CatalogCache>,
}

/// A write transaction. On SQLite it also holds this process's turn to write the file, given
/// back when it commits or is dropped.
pub(crate) struct WriteTx {
    tx: Transaction<'static, Any>,
    backend: Backend,
    _turn: Option<OwnedSemaphorePermit>,
    /// Events written in this transaction, fanned out to their endpoints just before it
    /// commits: an event and its deliveries exist together or not at all.
    outbox: Vec<dispatch::EventRow>,
    /// Deliveries became due in this transaction (a resend, a test, a replay).
    queued: bool,
    wake: Option<Arc<tokio::sync::Notify>>,
    /// Report rollup changes of this transaction, written just before it commits.
    rollups: rollups::Pending,
}

/// A write transaction taken apart: where its statements run (sqlx, or SQLite's native
/// connection), and the rollup changes and events that wait for its end. Code written against
/// it runs on either.
struct TxParts<'t, E> {
    db: E,
    rollups: &'t mut rollups::Pending,
    /// Events written, fanned out to their endpoints just before the commit.
    outbox: &'t mut Vec<dispatch::EventRow>,
}

impl<E: exec::Exec> TxParts<'_, E> {
    /// What every write transaction does last: writes its rollup changes and fans its events
    /// out to their endpoints. Returns how many deliveries became due.
    ///
    /// The rollups go last: their rows are the ones every writer of an organization adds to
    /// (every capture of a day updates the same few counters), so each transaction holds their
    /// row locks for as short a time as it can, from the upsert to the commit.
    async fn before_commit(&mut self, now: i64) -> Result<usize, StoreError> {
        let outbox = std::mem::take(self.outbox);
        let made = if outbox.is_empty() {
            0
        } else {
            dispatch::fan_out_events(&mut self.db, &outbox, self.rollups.subscribers(), now).await?
        };
        self.rollups.flush(&mut self.db).await?;
        Ok(made)
    }
}

impl WriteTx {
    /// Fans this transaction's events out, commits, and wakes this node's dispatcher if any
    /// delivery became due.
    pub(crate) async fn commit(mut self) -> Result<(), StoreError> {
        let made = self.parts().before_commit(now_ms()).await?;
        self.queued |= made > 0;
        if self.queued && self.backend == Backend::Postgres && self.wake.is_none() {
            // A writer without a dispatcher of its own (a tool, a node that only writes) tells
            // the other nodes, when (and only if) this commits. A serving node wakes its own
            // dispatcher instead, which asks the others for help when it has more due than it
            // can take (`announce_deliveries`): waking every node for every commit would make
            // them all race for the same rows.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(crate::workers::wakeups::CHANNEL)
                .bind(crate::workers::wakeups::DELIVERIES)
                .execute(&mut *self.tx)
                .await?;
        }
        let WriteTx {
            tx, queued, wake, ..
        } = self;
        tx.commit().await?;
        if queued && let Some(wake) = wake {
            wake.notify_one();
        }
        Ok(())
    }

    /// The connection, and beside it what waits for the commit.
    fn parts(&mut self) -> TxParts<'_, exec::SqlxDb<'_>> {
        TxParts {
            db: exec::SqlxDb {
                conn: &mut self.tx,
                backend: self.backend,
            },
            rollups: &mut self.rollups,
            outbox: &mut self.outbox,
        }
    }

    /// Says this transaction made deliveries due, so the dispatcher is woken after commit.
    pub(crate) fn queued_deliveries(&mut self) {
        self.queued = true;
    }
}

impl Deref for WriteTx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

/// What every new connection runs first: SQLite's pragmas, PostgreSQL's timeouts.
fn session_sql(backend: Backend, settings: DatabaseSettings) -> String {
    let ms = |d: Duration| d.as_millis().max(1);
    match backend {
        Backend::Sqlite => format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
             PRAGMA busy_timeout = {}; PRAGMA cache_size = -65536; PRAGMA secure_delete = FAST;",
            settings.lock_timeout.map_or(10_000, ms)
        ),
        Backend::Postgres => format!(
            "SET statement_timeout = {}; SET lock_timeout = {};",
            settings.statement_timeout.map_or(0, ms),
            settings.lock_timeout.map_or(0, ms)
        ),
    }
}

/// `sqlite://path/to/file.db?mode=rwc` → `path/to/file.db`.
fn sqlite_file(url: &str) -> String {
    url.trim_start_matches("sqlite:")
        .trim_start_matches("//")
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// One writer queue per SQLite file and process, shared by every `Store` opened on it (the
/// service opens two: the capture writer's and everyone else's). SQLite lets one connection
/// write at a time and makes the others poll with growing sleeps (1, 2, 5 … 100 ms); under a
/// steady stream of captures, a waiting dispatcher could lose that race for a second or more.
/// Queueing here first hands the file over in arrival order, the moment it is free.
fn write_gate(url: &str) -> Arc<Semaphore> {
    static GATES: OnceLock<Mutex<HashMap<String, Weak<Semaphore>>>> = OnceLock::new();
    let file = sqlite_file(url);
    let gates = GATES.get_or_init(Mutex::default);
    let mut gates = gates
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    gates.retain(|_, gate| gate.strong_count() > 0);
    if let Some(gate) = gates.get(&file).and_then(Weak::upgrade) {
        return gate;
    }
    let gate = Arc::new(Semaphore::new(1));
    gates.insert(file, Arc::downgrade(&gate));
    gate
}

/// How this node uses the database: connections, and how long a statement or a lock wait may
/// take before it is given up (so a stuck query or a held lock surfaces as an error, not as a
/// request that hangs past its deadline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// Connections in this node's pool; `None`: 8 on SQLite, 16 on PostgreSQL.
    pub pool_size: Option<u32>,
    /// PostgreSQL `statement_timeout`; `None`: no limit (migrations, rebuilds, the CLI).
    pub statement_timeout: Option<Duration>,
    /// PostgreSQL `lock_timeout`, SQLite's busy timeout; `None`: PostgreSQL waits as long as
    /// it takes, SQLite 10 s.
    pub lock_timeout: Option<Duration>,
}

impl DatabaseSettings {
    /// No limits beyond SQLite's default busy timeout: for migrations and one-off commands.
    pub const UNBOUNDED: DatabaseSettings = DatabaseSettings {
        pool_size: None,
        statement_timeout: None,
        lock_timeout: None,
    };
}

impl Store {
    /// Connects by URL scheme, without statement or lock limits (see `connect_with`).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, DatabaseSettings::UNBOUNDED).await
    }

    /// A pool of two connections, for a single sequential writer.
    pub async fn connect_small(url: &str, settings: DatabaseSettings) -> Result<Self, StoreError> {
        Self::connect_with(
            url,
            DatabaseSettings {
                pool_size: Some(2),
                ..settings
            },
        )
        .await
    }

    /// Connects by URL scheme. A SQLite file is created if missing and runs in WAL mode with
    /// `synchronous=FULL`, so a commit that returned is on disk; `secure_delete=FAST` zeroes
    /// what a change frees inside a page, so erased personal data does not linger in the file.
    /// Every PostgreSQL connection gets the settings' statement and lock timeouts.
    pub async fn connect_with(url: &str, settings: DatabaseSettings) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let gate = (backend == Backend::Sqlite).then(|| write_gate(url));
        let sqlite_path = (backend == Backend::Sqlite).then(|| Arc::from(sqlite_file(url)));
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let session = session_sql(backend, settings);
        let native_session = Arc::from(session.as_str());
        let pool = AnyPoolOptions::new()
            .max_connections(settings.pool_size.unwrap_or(match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            }))
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                let session = session.clone();
                Box::pin(async move {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(session))
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            backend,
            gate,
            sqlite_path,
            session: native_session,
            native: Arc::default(),
            wake: None,
            catalogs: Arc::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A commit outside a `WriteTx` (the native connection's) made deliveries due.
    fn deliveries_due(&self) {
        if let Some(wake) = &self.wake {
            wake.notify_one();
        }
    }

    /// Wakes `dispatcher` after every commit of this store that made deliveries due.
    pub fn waking(mut self, dispatcher: Arc<tokio::sync::Notify>) -> Self {
        self.wake = Some(dispatcher);
        self
    }

    /// Brings the schema up to this version. A database migrated by a newer leadtrail (it has a
    /// migration this binary does not know) is refused before anything runs: an older node must
    /// not serve a schema it does not understand (rolling upgrades add columns first and stop
    /// old nodes before anything they rely on goes).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        match migrator.run(&self.pool).await {
            Err(sqlx::migrate::MigrateError::VersionMissing(version)) => {
                Err(StoreError::Config(format!(
                    "this database was migrated by a newer leadtrail (it has migration {version}, \
                     which this version does not know); run that version or a newer one — this \
                     one will not serve or change it"
                )))
            }
            other => Ok(other?),
        }
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

    /// Starts a transaction that will write. On SQLite it first waits its turn in this
    /// process's writer queue, then takes the write lock up front (`BEGIN IMMEDIATE`), so it
    /// never fails to upgrade a read lock and never polls for one another writer of this
    /// process holds; on PostgreSQL row locks taken by the first UPDATE serialize writers of
    /// the same widget or organization.
    async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        let turn = match &self.gate {
            Some(gate) => Some(
                gate.clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| StoreError::Config("the writer queue is closed".into()))?,
            ),
            None => None,
        };
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(WriteTx {
            tx,
            backend: self.backend,
            _turn: turn,
            outbox: Vec::new(),
            queued: false,
            wake: self.wake.clone(),
            rollups: rollups::Pending::default(),
        })
    }
}

impl Store {
    /// Asks the other nodes' dispatchers for help (PostgreSQL): more deliveries are due than
    /// this node can take now. A no-op on SQLite, where one process does all the work.
    pub async fn announce_deliveries(&self) -> Result<(), StoreError> {
        self.announce(crate::workers::wakeups::DELIVERIES).await
    }

    /// Asks the other nodes' enrichment workers for help (PostgreSQL): this node's worker
    /// took a full batch and more may be waiting.
    pub async fn announce_enrichment(&self) -> Result<(), StoreError> {
        self.announce(crate::workers::wakeups::ENRICHMENT).await
    }

    async fn announce(&self, payload: &str) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(crate::workers::wakeups::CHANNEL)
                .bind(payload)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// PostgreSQL's `statement_timeout` and `lock_timeout` as a connection of this pool really
    /// has them (`None` on SQLite): read back, not taken from the settings, so the log and the
    /// tests say what is in force.
    pub async fn postgres_limits(&self) -> Result<Option<(String, String)>, StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut conn = self.pool.acquire().await?;
        let statement: String = sqlx::query_scalar("SHOW statement_timeout")
            .fetch_one(&mut *conn)
            .await?;
        let lock: String = sqlx::query_scalar("SHOW lock_timeout")
            .fetch_one(&mut *conn)
            .await?;
        Ok(Some((statement, lock)))
    }
}

/// How durable a commit on one SQLite connection is, as it really runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteDurability {
    /// `pool` (sqlx) or `native` (the dispatcher's connection).
    pub connection: &'static str,
    pub journal_mode: String,
    /// 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA.
    pub synchronous: i64,
}

impl Store {
    /// The journal mode and `synchronous` level of each kind of connection this store writes
    /// through (SQLite; empty on PostgreSQL). Read back from the connections, not from the
    /// configuration, so what a commit's "on disk" means can be logged and tested.
    pub async fn sqlite_durability(&self) -> Result<Vec<SqliteDurability>, StoreError> {
        let Some(path) = &self.sqlite_path else {
            return Ok(Vec::new());
        };
        let mut conn = self.pool.acquire().await?;
        let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await?;
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await?;
        let native = self
            .native
            .get_or_try_init(|| async { exec::Native::open(path, &self.session) })
            .await?;
        let (native_journal, native_sync) = native
            .run(|conn| {
                let journal: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
                let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
                Ok((journal, sync))
            })
            .await?;
        Ok(vec![
            SqliteDurability {
                connection: "pool",
                journal_mode,
                synchronous,
            },
            SqliteDurability {
                connection: "native",
                journal_mode: native_journal,
                synchronous: native_sync,
            },
        ])
    }

    /// Runs `body` as one write transaction (`BEGIN IMMEDIATE`) on this file's native SQLite
    /// connection, after waiting its turn in the file's writer queue like every other writer.
    /// SQLite only. The time of the body and of the commit (the fsync) are histograms
    /// `sqlite_write_seconds{what, part}`: where a writer's time goes.
    async fn native_write<R, F>(&self, what: &'static str, body: F) -> Result<R, StoreError>
    where
        F: FnOnce(&rusqlite::Transaction<'_>, i64) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let (Some(gate), Some(path)) = (&self.gate, &self.sqlite_path) else {
            return Err(StoreError::Config("native writes are for SQLite".into()));
        };
        let native = self
            .native
            .get_or_try_init(|| async { exec::Native::open(path, &self.session) })
            .await?;
        let _turn = gate
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Config("the writer queue is closed".into()))?;
        native
            .run(move |conn| {
                let started = std::time::Instant::now();
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let done = body(&tx, now_ms())?;
                let worked = started.elapsed();
                tx.commit()?;
                metrics::histogram!("sqlite_write_seconds", "what" => what, "part" => "work")
                    .record(worked.as_secs_f64());
                metrics::histogram!("sqlite_write_seconds", "what" => what, "part" => "commit")
                    .record((started.elapsed() - worked).as_secs_f64());
                Ok(done)
            })
            .await
    }
}

impl Store {
    /// Runs `batch` (code written over `TxParts`) as one write transaction on the native
    /// connection, ending it as `WriteTx::commit` does: its rollup changes written, its events
    /// fanned out, this node's dispatcher woken if deliveries became due. SQLite only.
    async fn native_batch<R, F>(&self, what: &'static str, batch: F) -> Result<R, StoreError>
    where
        F: AsyncFnOnce(&mut TxParts<'_, exec::NativeTx<'_>>, i64) -> Result<R, StoreError>
            + Send
            + 'static,
        R: Send + 'static,
    {
        let (done, made) = self
            .native_write(what, move |tx, now| {
                let (mut rollups, mut outbox) = (rollups::Pending::default(), Vec::new());
                let mut parts = TxParts {
                    db: exec::NativeTx { tx },
                    rollups: &mut rollups,
                    outbox: &mut outbox,
                };
                futures::executor::block_on(async {
                    let done = batch(&mut parts, now).await?;
                    let made = parts.before_commit(now).await?;
                    Ok((done, made))
                })
            })
            .await?;
        if made > 0 {
            self.deliveries_due();
        }
        Ok(done)
    }
}

pub use crate::domain::time_zone::rfc3339;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_names_its_backend_by_scheme() {
        let backend = |url| Backend::from_url(url).ok();
        assert_eq!(backend("sqlite://leadtrail.db"), Some(Backend::Sqlite));
        assert_eq!(backend("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(backend("postgres://db/leads"), Some(Backend::Postgres));
        assert_eq!(backend("postgresql://db/leads"), Some(Backend::Postgres));
        assert_eq!(backend("mysql://db/leads"), None);
        assert_eq!(backend("leadtrail.db"), None);
    }

    /// Every store opened on one SQLite file in this process queues behind one gate, and a
    /// gate no store holds any more is not handed out again.
    #[test]
    fn stores_on_one_file_share_one_writer_queue() {
        let first = write_gate("sqlite://gate-test-a.db?mode=rwc");
        let again = write_gate("sqlite:gate-test-a.db");
        let other = write_gate("sqlite://gate-test-b.db");
        assert!(Arc::ptr_eq(&first, &again), "one file, one queue");
        assert!(!Arc::ptr_eq(&first, &other), "another file, another queue");
        let weak = Arc::downgrade(&first);
        drop((first, again));
        let reopened = write_gate("sqlite://gate-test-a.db");
        assert!(weak.upgrade().is_none() && reopened.available_permits() == 1);
    }
}
