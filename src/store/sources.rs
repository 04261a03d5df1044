//! Lead sources: sequential never-reused codes, the 10-active limit, the immutable system source.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::WriteTx;
use super::{
    Conflict, NewSource, Source, SourceFilter, SourcePatch, Store, StoreError, is_unique_violation,
    now_ms, to_u32,
};
use crate::domain::channel::ChannelCategory;
use crate::domain::ids::OrgId;
use crate::domain::source::{
    MAX_ACTIVE_SOURCES, SourceCode, SourceName, SourceStatus, source_limit_message,
    system_source_is_immutable,
};
use crate::domain::widget::WidgetVersion;

const SOURCE_SELECT: &str = "SELECT w.version AS widget_version, w.site_url, s.code, s.name, s.channel_category, \
     s.status, s.is_system, s.qr_generated, s.created_at, s.updated_at, \
     (SELECT CAST(COALESCE(SUM(r.n), 0) AS BIGINT) FROM rollup_totals r \
        WHERE r.org_id = s.org_id AND r.kind = 'lead' AND r.widget_version = w.version \
        AND r.source_code = s.code) AS lead_count \
     FROM sources s JOIN widgets w ON w.id = s.widget_id";

fn source_from_row(row: &AnyRow) -> Result<Source, StoreError> {
    let version = to_u32(row.try_get("widget_version")?, "widget version")?;
    let code = to_u32(row.try_get("code")?, "source code")?;
    let category: String = row.try_get("channel_category")?;
    let status: String = row.try_get("status")?;
    let corrupt = |what: &str| StoreError::Corrupt(what.to_owned());
    Ok(Source {
        widget_version: WidgetVersion::new(version).ok_or_else(|| corrupt("widget version"))?,
        site_url: row.try_get("site_url")?,
        code: SourceCode::new(code).ok_or_else(|| corrupt("source code"))?,
        name: row.try_get("name")?,
        channel_category: ChannelCategory::from_id(&category)
            .ok_or_else(|| corrupt("channel category"))?,
        status: SourceStatus::from_id(&status).ok_or_else(|| corrupt("source status"))?,
        is_system: row.try_get::<i64, _>("is_system")? != 0,
        qr_generated: row.try_get::<i64, _>("qr_generated")? != 0,
        lead_count: u64::try_from(row.try_get::<i64, _>("lead_count")?).unwrap_or(0),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    pub async fn sources(
        &self,
        org: &OrgId,
        version: WidgetVersion,
        filter: SourceFilter,
    ) -> Result<Vec<Source>, StoreError> {
        // Confirms the widget is this organization's: an empty list and "no such widget" differ.
        self.widget(org, version).await?;
        let status = match filter {
            SourceFilter::Active => Some("active"),
            SourceFilter::Archived => Some("archived"),
            SourceFilter::All => None,
        };
        let sql = sqlx::AssertSqlSafe(format!(
            "{SOURCE_SELECT} WHERE s.org_id = $1 AND w.version = $2 \
             AND ($3 IS NULL OR s.status = $3) ORDER BY s.code"
        ));
        let rows = sqlx::query(sql)
            .bind(org.as_str())
            .bind(i64::from(version.get()))
            .bind(status)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(source_from_row).collect()
    }

    /// Codes and names of a widget's sources (active and archived), for menus: no lead counts,
    /// so it stays cheap however many leads there are.
    pub async fn source_labels(
        &self,
        org: &OrgId,
        version: WidgetVersion,
    ) -> Result<Vec<(SourceCode, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.code, s.name FROM sources s JOIN widgets w ON w.id = s.widget_id \
             WHERE s.org_id = $1 AND w.version = $2 ORDER BY s.code",
        )
        .bind(org.as_str())
        .bind(i64::from(version.get()))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let code = to_u32(r.try_get("code")?, "source code")?;
                Ok((
                    SourceCode::new(code)
                        .ok_or_else(|| StoreError::Corrupt("source code".into()))?,
                    r.try_get("name")?,
                ))
            })
            .collect()
    }

    pub async fn source(
        &self,
        org: &OrgId,
        version: WidgetVersion,
        code: SourceCode,
    ) -> Result<Source, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{SOURCE_SELECT} WHERE s.org_id = $1 AND w.version = $2 AND s.code = $3"
        ));
        let row = sqlx::query(sql)
            .bind(org.as_str())
            .bind(i64::from(version.get()))
            .bind(i64::from(code.get()))
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        source_from_row(&row)
    }

    /// Creates a custom source with the next code. Refused, with nothing changed, when the widget
    /// already has ten active sources or an active source of the same name (ignoring case).
    pub async fn create_source(
        &self,
        org: &OrgId,
        version: WidgetVersion,
        new: NewSource,
    ) -> Result<Source, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        lock_organization(&mut tx, org).await?;
        // Reserving the code locks the widget row, serializing creates on one widget. If the
        // transaction is refused below, the reservation rolls back with it, so codes stay gap-free
        // among sources that were actually created and are still never reused.
        let row = sqlx::query(
            "UPDATE widgets SET next_source_code = next_source_code + 1, updated_at = $3 \
             WHERE org_id = $1 AND version = $2 RETURNING id, next_source_code - 1 AS code",
        )
        .bind(org.as_str())
        .bind(i64::from(version.get()))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let widget_id: i64 = row.try_get("id")?;
        let code: i64 = row.try_get("code")?;
        ensure_active_slot(&mut tx, widget_id).await?;
        ensure_name_free(&mut tx, widget_id, &new.name, None).await?;
        let inserted = sqlx::query(
            "INSERT INTO sources (org_id, widget_id, code, name, name_key, channel_category, status, \
             is_system, qr_generated, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'active', 0, $7, $8, $8)",
        )
        .bind(org.as_str())
        .bind(widget_id)
        .bind(code)
        .bind(new.name.as_str())
        .bind(new.name.uniqueness_key())
        .bind(new.channel_category.id())
        .bind(i64::from(new.generate_qr))
        .bind(now)
        .execute(&mut *tx)
        .await;
        map_name_violation(inserted, &new.name)?;
        tx.commit().await?;
        let code = SourceCode::new(to_u32(code, "source code")?)
            .ok_or_else(|| StoreError::Corrupt("source code".into()))?;
        self.source(org, version, code).await
    }

    /// Edits name and category of a custom source; the system source refuses.
    pub async fn update_source(
        &self,
        org: &OrgId,
        version: WidgetVersion,
        code: SourceCode,
        patch: SourcePatch,
    ) -> Result<Source, StoreError> {
        let mut tx = self.begin_write().await?;
        let (widget_id, status) = lock_custom_source(&mut tx, org, version, code).await?;
        if let Some(name) = &patch.name
            && status == SourceStatus::Active
        {
            ensure_name_free(&mut tx, widget_id, name, Some(code)).await?;
        }
        let updated = sqlx::query(
            "UPDATE sources SET name = COALESCE($3, name), name_key = COALESCE($4, name_key), \
             channel_category = COALESCE($5, channel_category), updated_at = $6 \
             WHERE widget_id = $1 AND code = $2",
        )
        .bind(widget_id)
        .bind(i64::from(code.get()))
        .bind(patch.name.as_ref().map(|n| n.as_str().to_owned()))
        .bind(patch.name.as_ref().map(SourceName::uniqueness_key))
        .bind(patch.channel_category.map(|c| c.id()))
        .bind(now_ms())
        .execute(&mut *tx)
        .await;
        if let Some(name) = &patch.name {
            map_name_violation(updated, name)?;
        } else {
            updated?;
        }
        tx.commit().await?;
        self.source(org, version, code).await
    }

    /// Moves a custom source to the archived list. Archiving twice is a no-op.
    pub async fn archive_source(
        &self,
        org: &OrgId,
        version: WidgetVersion,
        code: SourceCode,
    ) -> Result<Source, StoreError> {
        let mut tx = self.begin_write().await?;
        let (widget_id, _) = lock_custom_source(&mut tx, org, version, code).await?;
        set_status(&mut tx, widget_id, code, SourceStatus::Archived).await?;
        tx.commit().await?;
        self.source(org, version, code).await
    }

    /// Brings an archived source back, subject to the same limit and name rules as creating one.
    pub async fn restore_source(
        &self,
        org: &OrgId,
        version: WidgetVersion,
        code: SourceCode,
    ) -> Result<Source, StoreError> {
        let mut tx = self.begin_write().await?;
        let (widget_id, status) = lock_custom_source(&mut tx, org, version, code).await?;
        if status == SourceStatus::Archived {
            ensure_active_slot(&mut tx, widget_id).await?;
            let name: String =
                sqlx::query("SELECT name FROM sources WHERE widget_id = $1 AND code = $2")
                    .bind(widget_id)
                    .bind(i64::from(code.get()))
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("name")?;
            let name = SourceName::parse(&name).map_err(|e| StoreError::Corrupt(e.message))?;
            ensure_name_free(&mut tx, widget_id, &name, Some(code)).await?;
            set_status(&mut tx, widget_id, code, SourceStatus::Active).await?;
        }
        tx.commit().await?;
        self.source(org, version, code).await
    }

    /// Records that a custom source's QR code was generated (it is rendered on demand).
    pub async fn mark_qr_generated(
        &self,
        org: &OrgId,
        version: WidgetVersion,
        code: SourceCode,
    ) -> Result<Source, StoreError> {
        let mut tx = self.begin_write().await?;
        let (widget_id, _) = lock_custom_source(&mut tx, org, version, code).await?;
        sqlx::query("UPDATE sources SET qr_generated = 1, updated_at = $3 WHERE widget_id = $1 AND code = $2")
            .bind(widget_id)
            .bind(i64::from(code.get()))
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.source(org, version, code).await
    }
}

/// Locks the organization's row (PostgreSQL). A change to a source moves the organization's
/// catalog version (a trigger, see migration 0015), which locks that row; taking it first keeps
/// the order of every catalog change organization, widget, source, as widget changes already
/// take it, so two changes never wait for each other in a circle.
async fn lock_organization(tx: &mut WriteTx, org: &OrgId) -> Result<(), StoreError> {
    sqlx::query("UPDATE organizations SET catalog_version = catalog_version WHERE id = $1")
        .bind(org.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Locks the organization's and the widget's rows, then finds the source; the system source
/// is refused.
async fn lock_custom_source(
    tx: &mut WriteTx,
    org: &OrgId,
    version: WidgetVersion,
    code: SourceCode,
) -> Result<(i64, SourceStatus), StoreError> {
    lock_organization(tx, org).await?;
    let widget_id: i64 = sqlx::query(
        "UPDATE widgets SET next_source_code = next_source_code \
         WHERE org_id = $1 AND version = $2 RETURNING id",
    )
    .bind(org.as_str())
    .bind(i64::from(version.get()))
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound)?
    .try_get("id")?;
    let row =
        sqlx::query("SELECT status, is_system FROM sources WHERE widget_id = $1 AND code = $2")
            .bind(widget_id)
            .bind(i64::from(code.get()))
            .fetch_optional(&mut **tx)
            .await?
            .ok_or(StoreError::NotFound)?;
    if row.try_get::<i64, _>("is_system")? != 0 {
        return Err(Conflict::SystemSourceImmutable(system_source_is_immutable().message).into());
    }
    let status: String = row.try_get("status")?;
    let status = SourceStatus::from_id(&status)
        .ok_or_else(|| StoreError::Corrupt(format!("source status {status:?}")))?;
    Ok((widget_id, status))
}

async fn ensure_active_slot(tx: &mut WriteTx, widget_id: i64) -> Result<(), StoreError> {
    let active: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM sources WHERE widget_id = $1 AND status = 'active'")
            .bind(widget_id)
            .fetch_one(&mut **tx)
            .await?
            .try_get("n")?;
    if active >= i64::from(MAX_ACTIVE_SOURCES) {
        return Err(Conflict::SourceLimitReached(source_limit_message()).into());
    }
    Ok(())
}

async fn ensure_name_free(
    tx: &mut WriteTx,
    widget_id: i64,
    name: &SourceName,
    except: Option<SourceCode>,
) -> Result<(), StoreError> {
    let taken = sqlx::query(
        "SELECT code FROM sources WHERE widget_id = $1 AND status = 'active' AND name_key = $2 \
         AND code <> $3",
    )
    .bind(widget_id)
    .bind(name.uniqueness_key())
    .bind(except.map_or(0, |c| i64::from(c.get())))
    .fetch_optional(&mut **tx)
    .await?;
    if taken.is_some() {
        return Err(Conflict::DuplicateSourceName(name.as_str().to_owned()).into());
    }
    Ok(())
}

/// The unique index is the last word on name clashes; it turns a race into the same 409.
fn map_name_violation<T>(
    result: Result<T, sqlx::Error>,
    name: &SourceName,
) -> Result<T, StoreError> {
    match result {
        Err(e) if is_unique_violation(&e) => {
            Err(Conflict::DuplicateSourceName(name.as_str().to_owned()).into())
        }
        other => Ok(other?),
    }
}

async fn set_status(
    tx: &mut WriteTx,
    widget_id: i64,
    code: SourceCode,
    status: SourceStatus,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE sources SET status = $3, updated_at = $4 WHERE widget_id = $1 AND code = $2",
    )
    .bind(widget_id)
    .bind(i64::from(code.get()))
    .bind(status.id())
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
