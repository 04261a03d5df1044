//! A consistent copy of a live SQLite database, taken while the service keeps serving.

use std::path::{Path, PathBuf};

use super::{Backend, Store, StoreError};

/// What a backup wrote, read back from the copy itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub path: PathBuf,
    pub bytes: u64,
    pub organizations: i64,
    pub leads: i64,
}

impl Store {
    /// Writes a copy of the SQLite database to `dest`. `VACUUM INTO` reads one snapshot (a read
    /// transaction on the WAL), so captures carry on while it runs and the copy holds exactly
    /// the transactions committed before it began: every lead acknowledged by then.
    ///
    /// The copy is written beside `dest` under a `.partial` name, checked (`integrity_check`),
    /// flushed to disk, and only then renamed into place, so a file at `dest` is always a
    /// whole backup. An existing `dest` is refused rather than overwritten. PostgreSQL has
    /// its own tools for this (`pg_dump`, base backups); see `docs/operations.md`.
    pub async fn backup_into(&self, dest: &Path) -> Result<BackupSummary, StoreError> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::Config(
                "`leadtrail backup` copies a SQLite database; back up PostgreSQL with pg_dump \
                 or a base backup (docs/operations.md)"
                    .into(),
            ));
        }
        if dest.exists() {
            return Err(StoreError::Config(format!(
                "{} already exists: a backup never overwrites a file",
                dest.display()
            )));
        }
        let mut partial = dest.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        // A `.partial` left by a backup that died is never a backup: start over.
        if partial.exists() {
            std::fs::remove_file(&partial).map_err(io_error(&partial))?;
        }
        let target = partial
            .to_str()
            .ok_or_else(|| StoreError::Config("the backup path must be valid UTF-8".into()))?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(&self.pool)
            .await?;
        let (partial, dest) = (partial.clone(), dest.to_owned());
        tokio::task::spawn_blocking(move || seal(&partial, &dest))
            .await
            .map_err(|e| StoreError::Config(format!("the backup task failed: {e}")))?
    }
}

/// Checks the copy, makes it durable, and moves it into place.
fn seal(partial: &Path, dest: &Path) -> Result<BackupSummary, StoreError> {
    let (organizations, leads) = {
        let copy = rusqlite::Connection::open_with_flags(
            partial,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        let check: String = copy.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(StoreError::Corrupt(format!(
                "the backup failed its integrity check: {check}"
            )));
        }
        let count = |table: &str| -> rusqlite::Result<i64> {
            copy.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        };
        (count("organizations")?, count("leads")?)
    };
    std::fs::File::open(partial)
        .and_then(|f| f.sync_all())
        .map_err(io_error(partial))?;
    std::fs::rename(partial, dest).map_err(io_error(dest))?;
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename itself is durable once the directory is.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error(dir))?;
    }
    let bytes = std::fs::metadata(dest).map_err(io_error(dest))?.len();
    Ok(BackupSummary {
        path: dest.to_owned(),
        bytes,
        organizations,
        leads,
    })
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::Config(format!("{}: {e}", path.display()))
}
