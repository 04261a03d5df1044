//! SQL for the hot write paths, written once and run on either backend: through sqlx on
//! PostgreSQL, and on SQLite through a native connection on a thread of its own.
//!
//! Why a second way to reach SQLite: sqlx runs each SQLite statement on its worker thread and
//! hands the answer back, two thread wake-ups a statement. A dispatcher round is a dozen
//! statements; measured here, those hops made a round ~3.5 ms where SQLite itself needs a few
//! hundred microseconds. On the native thread a whole transaction runs back to back.

use std::sync::mpsc;

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use tokio::sync::oneshot;

use super::{Backend, StoreError, WriteTx};

/// A parameter. Nulls carry their type: PostgreSQL wants to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Val {
    Int(i64),
    Text(String),
    NullInt,
    NullText,
}

impl From<i64> for Val {
    fn from(v: i64) -> Self {
        Val::Int(v)
    }
}

impl From<&str> for Val {
    fn from(v: &str) -> Self {
        Val::Text(v.to_owned())
    }
}

impl From<String> for Val {
    fn from(v: String) -> Self {
        Val::Text(v)
    }
}

impl From<Option<i64>> for Val {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Val::NullInt, Val::Int)
    }
}

impl From<Option<String>> for Val {
    fn from(v: Option<String>) -> Self {
        v.map_or(Val::NullText, Val::Text)
    }
}

impl From<Option<&str>> for Val {
    fn from(v: Option<&str>) -> Self {
        v.map_or(Val::NullText, Val::from)
    }
}

/// A result row, read by column position.
pub(crate) trait Cells {
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError>;

    fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.opt_int(i)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {i} is NULL")))
    }

    fn text(&self, i: usize) -> Result<String, StoreError> {
        self.opt_text(i)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {i} is NULL")))
    }
}

/// A result row, read by column name (rows whose columns come from shared lists such as
/// `LEAD_FACTS`).
pub(crate) trait Named {
    fn named_int(&self, name: &str) -> Result<Option<i64>, StoreError>;
    fn named_text(&self, name: &str) -> Result<Option<String>, StoreError>;

    fn int_of(&self, name: &str) -> Result<i64, StoreError> {
        self.named_int(name)?
            .ok_or_else(|| StoreError::Corrupt(format!("{name} is NULL")))
    }

    fn text_of(&self, name: &str) -> Result<String, StoreError> {
        self.named_text(name)?
            .ok_or_else(|| StoreError::Corrupt(format!("{name} is NULL")))
    }

    /// A JSON column read back into its type; `None` when NULL.
    fn named_json<T: for<'de> serde::Deserialize<'de>>(
        &self,
        name: &str,
    ) -> Result<Option<T>, StoreError> {
        self.named_text(name)?
            .map(|text| super::capture::from_json(&text, name))
            .transpose()
    }
}

impl Named for AnyRow {
    fn named_int(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(name)?)
    }

    fn named_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(name)?)
    }
}

/// Somewhere a transaction's statements run.
#[allow(
    async_fn_in_trait,
    reason = "used only through concrete types inside this crate"
)]
pub(crate) trait Exec {
    type Row: Cells + Named;

    fn backend(&self) -> Backend;

    async fn rows(&mut self, sql: &str, params: Vec<Val>) -> Result<Vec<Self::Row>, StoreError>;

    async fn exec(&mut self, sql: &str, params: Vec<Val>) -> Result<u64, StoreError>;

    /// `FOR NO KEY UPDATE SKIP LOCKED` (optionally `OF` a table) on PostgreSQL; nothing on
    /// SQLite, where the write transaction already excludes every other writer. A claim only
    /// changes a row's lease, never its key: the weaker lock still keeps two claimers apart,
    /// but does not hold up the `FOR KEY SHARE` of a foreign-key check (a capture inserting a
    /// delivery or an attempt that references the claimed row) until the claim commits.
    fn skip_locked(&self, of: &str) -> String {
        match self.backend() {
            Backend::Postgres => format!("FOR NO KEY UPDATE {of} SKIP LOCKED"),
            Backend::Sqlite => String::new(),
        }
    }
}

fn bind<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    params: Vec<Val>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for p in params {
        query = match p {
            Val::Int(v) => query.bind(v),
            Val::Text(v) => query.bind(v),
            Val::NullInt => query.bind(None::<i64>),
            Val::NullText => query.bind(None::<String>),
        };
    }
    query
}

/// A connection reached through sqlx (a `WriteTx`'s, without its pending state).
pub(crate) struct SqlxDb<'c> {
    pub(crate) conn: &'c mut sqlx::AnyConnection,
    pub(crate) backend: Backend,
}

impl Exec for SqlxDb<'_> {
    type Row = AnyRow;

    fn backend(&self) -> Backend {
        self.backend
    }

    async fn rows(&mut self, sql: &str, params: Vec<Val>) -> Result<Vec<AnyRow>, StoreError> {
        let sql = dialect(self.backend, sql);
        let query = bind(sqlx::query(AssertSqlSafe(sql)), params);
        Ok(query.fetch_all(&mut *self.conn).await?)
    }

    async fn exec(&mut self, sql: &str, params: Vec<Val>) -> Result<u64, StoreError> {
        let sql = dialect(self.backend, sql);
        let query = bind(sqlx::query(AssertSqlSafe(sql)), params);
        Ok(query.execute(&mut *self.conn).await?.rows_affected())
    }
}

impl Exec for WriteTx {
    type Row = AnyRow;

    fn backend(&self) -> Backend {
        self.backend
    }

    async fn rows(&mut self, sql: &str, params: Vec<Val>) -> Result<Vec<AnyRow>, StoreError> {
        self.parts().db.rows(sql, params).await
    }

    async fn exec(&mut self, sql: &str, params: Vec<Val>) -> Result<u64, StoreError> {
        self.parts().db.exec(sql, params).await
    }
}

impl Cells for AnyRow {
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(i)?)
    }

    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(i)?)
    }
}

/// A transaction on the native SQLite connection.
pub(crate) struct NativeTx<'c> {
    pub(crate) tx: &'c rusqlite::Transaction<'c>,
}

/// The same SQL text as PostgreSQL gets: `$N` becomes `?N`, which SQLite numbers directly
/// (a bare `$N` is a *named* parameter to it, looked up by name among all the others while
/// preparing: quadratic in long lists).
fn sqlite_text(sql: &str) -> String {
    sql.replace('$', "?")
}

fn dialect(backend: Backend, sql: &str) -> String {
    match backend {
        Backend::Sqlite => sqlite_text(sql),
        Backend::Postgres => sql.to_owned(),
    }
}

impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Val::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Val::Text(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Val::NullInt | Val::NullText => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

/// A row of the native connection: its values and the statement's column names.
pub(crate) struct NativeRow {
    names: std::sync::Arc<[String]>,
    values: Vec<rusqlite::types::Value>,
}

impl Named for NativeRow {
    fn named_int(&self, name: &str) -> Result<Option<i64>, StoreError> {
        self.opt_int(self.position(name)?)
    }

    fn named_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.opt_text(self.position(name)?)
    }
}

impl NativeRow {
    fn position(&self, name: &str) -> Result<usize, StoreError> {
        self.names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| StoreError::Corrupt(format!("no column {name}")))
    }
}

impl Exec for NativeTx<'_> {
    type Row = NativeRow;

    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn rows(&mut self, sql: &str, params: Vec<Val>) -> Result<Vec<Self::Row>, StoreError> {
        let mut statement = self.tx.prepare_cached(&sqlite_text(sql))?;
        let names: std::sync::Arc<[String]> = statement
            .column_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let columns = names.len();
        let rows = statement.query_map(rusqlite::params_from_iter(params.iter()), |row| {
            Ok(NativeRow {
                names: names.clone(),
                values: (0..columns).map(|i| row.get(i)).collect::<Result<_, _>>()?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    async fn exec(&mut self, sql: &str, params: Vec<Val>) -> Result<u64, StoreError> {
        let mut statement = self.tx.prepare_cached(&sqlite_text(sql))?;
        let changed = statement.execute(rusqlite::params_from_iter(params.iter()))?;
        Ok(u64::try_from(changed).unwrap_or(u64::MAX))
    }
}

impl Cells for NativeRow {
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        use rusqlite::types::Value;
        match self.values.get(i) {
            Some(Value::Integer(v)) => Ok(Some(*v)),
            Some(Value::Null) => Ok(None),
            other => Err(StoreError::Corrupt(format!(
                "column {i}: not an integer: {other:?}"
            ))),
        }
    }

    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        use rusqlite::types::Value;
        match self.values.get(i) {
            Some(Value::Text(v)) => Ok(Some(v.clone())),
            Some(Value::Null) => Ok(None),
            other => Err(StoreError::Corrupt(format!(
                "column {i}: not text: {other:?}"
            ))),
        }
    }
}

type Job = Box<dyn FnOnce(&mut rusqlite::Connection) + Send>;

/// A SQLite connection on a thread of its own, running whole jobs (transactions) at a time.
pub(crate) struct Native {
    jobs: mpsc::Sender<Job>,
}

impl Native {
    /// Opens the file and runs `session` on it: the pragmas every connection of the store
    /// gets (WAL, `synchronous=FULL`, the busy timeout of the settings).
    pub(crate) fn open(path: &str, session: &str) -> Result<Native, StoreError> {
        let conn = rusqlite::Connection::open(path)?;
        conn.execute_batch(session)?;
        conn.set_prepared_statement_cache_capacity(64);
        let (jobs, inbox) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-native".into())
            .spawn(move || {
                let mut conn = conn;
                // Ends when every `Native` handle is gone.
                for job in inbox {
                    job(&mut conn);
                }
            })
            .map_err(|e| StoreError::Config(format!("native SQLite thread: {e}")))?;
        Ok(Native { jobs })
    }

    /// Runs `job` on the connection and waits for its answer without blocking the runtime.
    pub(crate) async fn run<R, F>(&self, job: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut rusqlite::Connection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        self.jobs
            .send(Box::new(move |conn| {
                let _ = answer.send(job(conn));
            }))
            .map_err(|_| StoreError::Config("the native SQLite thread stopped".into()))?;
        answered
            .await
            .map_err(|_| StoreError::Config("the native SQLite thread stopped".into()))?
    }
}
