//! The raw-insert baseline for lead capture: what SQLite itself does with the very rows the
//! service wrote, without the service around it.
//!
//! After the service captured its leads, a sample of what it stored is read back from its file:
//! lead rows, their outbox events, and the report rollup rows a capture batch upserts. They are
//! written again, through rusqlite with prepared statements, into a fresh file that has the
//! service's schema (its `sqlite_master`, statement by statement) and the service's pragmas,
//! one `BEGIN IMMEDIATE` transaction per batch of the size the service formed. Each batch
//! writes its leads and events and upserts every rollup row once, as a batch of the service
//! does. Reads the service makes (attribution, the visitor's touches) are not in the baseline:
//! it is the cost of the writes alone.
#![allow(dead_code, reason = "each benchmark uses a part")]

use std::path::Path;
use std::time::Instant;

use rusqlite::types::Value;

use super::harness::{BenchResult, Sched};

/// The service's pragmas (`Store`'s connection setup).
const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
    PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; PRAGMA cache_size = -65536; \
    PRAGMA secure_delete = FAST;";

struct Table {
    name: &'static str,
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

impl Table {
    /// Up to `limit` rows of `name` matching `filter`, every column.
    fn read(
        db: &rusqlite::Connection,
        name: &'static str,
        filter: &str,
        limit: usize,
    ) -> BenchResult<Table> {
        let mut statement = db.prepare(&format!(
            "SELECT * FROM {name} WHERE {filter} LIMIT {limit}"
        ))?;
        let columns: Vec<String> = statement
            .column_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let width = columns.len();
        let rows = statement
            .query_map([], |row| (0..width).map(|i| row.get(i)).collect())?
            .collect::<Result<Vec<Vec<Value>>, _>>()?;
        Ok(Table {
            name,
            columns,
            rows,
        })
    }

    fn insert_sql(&self, suffix: &str) -> String {
        let marks: Vec<String> = (1..=self.columns.len()).map(|i| format!("?{i}")).collect();
        format!(
            "INSERT INTO {} ({}) VALUES ({}) {suffix}",
            self.name,
            self.columns.join(", "),
            marks.join(", ")
        )
    }

    fn column(&self, name: &str) -> BenchResult<usize> {
        self.columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| format!("{}.{name} missing", self.name).into())
    }
}

/// The service's rollup upsert: every counter after the key columns adds up.
fn upsert(rollups: &Table) -> BenchResult<String> {
    const KEY: &[&str] = &[
        "org_id",
        "day",
        "kind",
        "widget_version",
        "source_code",
        "category",
        "derived_channel",
        "source_name",
    ];
    let counters: Vec<String> = rollups
        .columns
        .iter()
        .filter(|c| !KEY.contains(&c.as_str()))
        .map(|c| format!("{c} = report_rollups.{c} + excluded.{c}"))
        .collect();
    if counters.is_empty() {
        return Err("report_rollups has no counters".into());
    }
    Ok(format!(
        "ON CONFLICT ({}) DO UPDATE SET {}",
        KEY.join(", "),
        counters.join(", ")
    ))
}

/// What the service stored for its captures, ready to be written again.
pub struct Sample {
    schema: Vec<String>,
    /// The parents the rows' foreign keys point at.
    organizations: Table,
    leads: Table,
    events: Table,
    rollups: Table,
}

impl Sample {
    /// Reads up to `limit` leads captured through the widget, their first events and the
    /// organization's lead rollup rows from the service's file (a WAL reader beside it).
    pub fn read(service_db: &Path, limit: usize) -> BenchResult<Sample> {
        let db = rusqlite::Connection::open_with_flags(
            service_db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        let schema = db
            .prepare(
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL \
                 AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
            )?
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        let organizations = Table::read(&db, "organizations", "1 = 1", 100)?;
        let leads = Table::read(&db, "leads", "record_source = 'widget'", limit)?;
        let events = Table::read(
            &db,
            "events",
            "event_type = 'lead.address_preview' AND sequence = 1",
            limit,
        )?;
        let rollups = Table::read(&db, "report_rollups", "kind <> 'visit'", 1000)?;
        if leads.rows.is_empty() || events.rows.is_empty() {
            return Err("the service stored no leads to copy".into());
        }
        Ok(Sample {
            schema,
            organizations,
            leads,
            events,
            rollups,
        })
    }

    /// Writes `total` leads in transactions of `batch` into a fresh file in `dir`; returns
    /// leads per second and the share of the time spent committing.
    pub fn write(&self, dir: &Path, batch: usize, total: usize) -> BenchResult<RawRun> {
        let path = dir.join(format!("raw-{batch}.db"));
        let _ = std::fs::remove_file(&path);
        let mut db = rusqlite::Connection::open(&path)?;
        db.execute_batch(PRAGMAS)?;
        for statement in &self.schema {
            db.execute_batch(statement)?;
        }
        for row in &self.organizations.rows {
            db.execute(
                &self.organizations.insert_sql(""),
                rusqlite::params_from_iter(row.iter()),
            )?;
        }
        let (lead_id, event_id, event_lead) = (
            self.leads.column("id")?,
            self.events.column("id")?,
            self.events.column("lead_id")?,
        );
        let n_col = self.rollups.column("n")?;
        let lead_sql = self.leads.insert_sql("");
        let event_sql = self.events.insert_sql("");
        let rollup_sql = self.rollups.insert_sql(&upsert(&self.rollups)?);
        let started = Instant::now();
        let sched = Sched::this_thread();
        let mut committing = std::time::Duration::ZERO;
        let mut written = 0;
        while written < total {
            let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let size = batch.min(total - written);
            for i in written..written + size {
                let id = Value::Text(format!("lead_raw{i:010}"));
                let mut lead = self.leads.rows[i % self.leads.rows.len()].clone();
                lead[lead_id] = id.clone();
                tx.prepare_cached(&lead_sql)?
                    .execute(rusqlite::params_from_iter(lead.iter()))?;
                let mut event = self.events.rows[i % self.events.rows.len()].clone();
                event[event_id] = Value::Text(format!("evt_raw{i:010}"));
                event[event_lead] = id;
                tx.prepare_cached(&event_sql)?
                    .execute(rusqlite::params_from_iter(event.iter()))?;
            }
            for row in &self.rollups.rows {
                let mut row = row.clone();
                row[n_col] = Value::Integer(i64::try_from(size)?);
                tx.prepare_cached(&rollup_sql)?
                    .execute(rusqlite::params_from_iter(row.iter()))?;
            }
            let commit = Instant::now();
            tx.commit()?;
            committing += commit.elapsed();
            written += size;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let sched = Sched::this_thread() - sched;
        drop(db);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        Ok(RawRun {
            leads_per_second: total as f64 / elapsed,
            commit_share: committing.as_secs_f64() / elapsed,
            on_cpu_share: sched.on_cpu / elapsed,
            waiting_share: sched.waiting / elapsed,
        })
    }
}

/// One run of the SQLite baseline.
pub struct RawRun {
    pub leads_per_second: f64,
    /// Of the run's time, the part spent in `COMMIT` (the WAL written and synced).
    pub commit_share: f64,
    /// Of the run's time, the part the writing thread was on a CPU, and the part it was
    /// runnable but waiting for one.
    pub on_cpu_share: f64,
    pub waiting_share: f64,
}

/// The same baseline on PostgreSQL: the rows the service stored, read back as JSON, written into
/// a fresh database migrated by this leadtrail, one transaction per batch, each table's rows of a
/// batch in one multi-row statement (`json_populate_recordset` of one parameter: the rows as
/// they are, converted by the server to the table's own column types). The rollup rows are
/// appended to `rollup_deltas`, as the service's writers do on PostgreSQL (its fold runs
/// elsewhere, in the background, and is not in the baseline).
pub struct PgSample {
    organizations: String,
    leads: Vec<serde_json::Value>,
    events: Vec<serde_json::Value>,
    rollups: String,
    rollup_columns: String,
}

async fn rows_as_json(conn: &mut sqlx::PgConnection, sql: &str) -> BenchResult<String> {
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COALESCE(json_agg(t), '[]')::text FROM ({sql}) AS t"
    )))
    .fetch_one(conn)
    .await?)
}

impl PgSample {
    pub async fn read(service_url: &str, limit: usize) -> BenchResult<PgSample> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(service_url).await?;
        let organizations = rows_as_json(&mut conn, "SELECT * FROM organizations").await?;
        let leads: Vec<serde_json::Value> = serde_json::from_str(
            &rows_as_json(
                &mut conn,
                &format!("SELECT * FROM leads WHERE record_source = 'widget' LIMIT {limit}"),
            )
            .await?,
        )?;
        let events: Vec<serde_json::Value> = serde_json::from_str(
            &rows_as_json(
                &mut conn,
                &format!(
                    "SELECT * FROM events WHERE event_type = 'lead.address_preview' \
                     AND sequence = 1 LIMIT {limit}"
                ),
            )
            .await?,
        )?;
        let rollups = rows_as_json(
            &mut conn,
            "SELECT * FROM rollup_totals WHERE kind <> 'visit' LIMIT 1000",
        )
        .await?;
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_name = 'report_rollups' ORDER BY ordinal_position",
        )
        .fetch_all(&mut conn)
        .await?;
        conn.close().await?;
        if leads.is_empty() || events.is_empty() {
            return Err("the service stored no leads to copy".into());
        }
        Ok(PgSample {
            organizations,
            leads,
            events,
            rollups,
            rollup_columns: columns.join(", "),
        })
    }

    /// Writes `total` leads in transactions of `batch` into the empty database at `url`
    /// (migrated here); returns leads per second.
    pub async fn write(&self, url: &str, batch: usize, total: usize) -> BenchResult<f64> {
        use sqlx::Connection;
        let store = leadtrail::store::Store::connect(url).await?;
        store.migrate().await?;
        store.close().await;
        let mut conn = sqlx::PgConnection::connect(url).await?;
        sqlx::query(
            "INSERT INTO organizations \
             SELECT * FROM json_populate_recordset(NULL::organizations, $1::json)",
        )
        .bind(&self.organizations)
        .execute(&mut conn)
        .await?;
        let (leads_sql, events_sql, rollups_sql) = (
            "INSERT INTO leads SELECT * FROM json_populate_recordset(NULL::leads, $1::json)",
            "INSERT INTO events SELECT * FROM json_populate_recordset(NULL::events, $1::json)",
            format!(
                "INSERT INTO rollup_deltas ({columns}) SELECT {columns} \
                 FROM json_populate_recordset(NULL::report_rollups, $1::json)",
                columns = self.rollup_columns
            ),
        );
        let started = Instant::now();
        let mut written = 0;
        while written < total {
            let size = batch.min(total - written);
            let mut leads = Vec::with_capacity(size);
            let mut events = Vec::with_capacity(size);
            for i in written..written + size {
                let id = format!("lead_raw{i:010}");
                let mut lead = self.leads[i % self.leads.len()].clone();
                lead["id"] = id.clone().into();
                leads.push(lead);
                let mut event = self.events[i % self.events.len()].clone();
                event["id"] = format!("evt_raw{i:010}").into();
                event["lead_id"] = id.into();
                events.push(event);
            }
            let mut rollups: Vec<serde_json::Value> = serde_json::from_str(&self.rollups)?;
            for row in &mut rollups {
                row["n"] = size.into();
            }
            let mut tx = conn.begin().await?;
            for (sql, rows) in [
                (leads_sql, serde_json::to_string(&leads)?),
                (events_sql, serde_json::to_string(&events)?),
                (rollups_sql.as_str(), serde_json::to_string(&rollups)?),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(rows)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            written += size;
        }
        let rate = total as f64 / started.elapsed().as_secs_f64();
        conn.close().await?;
        Ok(rate)
    }
}
