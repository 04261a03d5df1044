//! Widgets: sequential versions per organization, tier limits, status changes with events.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::WriteTx;
use super::events::insert_event;
use super::organizations::insert_widget;
use super::{Conflict, Store, StoreError, Widget, WidgetPatch, now_ms, to_u32};
use crate::domain::event::EventType;
use crate::domain::ids::OrgId;
use crate::domain::organization::SiteUrl;
use crate::domain::self_report::SelfReportSetting;
use crate::domain::tier::{Tier, TierLimits};
use crate::domain::widget::{
    StatusChange, WidgetName, WidgetStatus, WidgetVersion, plan_status_change,
};

pub(super) fn widget_from_row(row: &AnyRow) -> Result<Widget, StoreError> {
    let version = to_u32(row.try_get("version")?, "widget version")?;
    let status: String = row.try_get("status")?;
    Ok(Widget {
        version: WidgetVersion::new(version)
            .ok_or_else(|| StoreError::Corrupt(format!("widget version {version}")))?,
        name: row.try_get("name")?,
        site_url: row.try_get("site_url")?,
        status: WidgetStatus::from_id(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("widget status {status:?}")))?,
        self_report: match row.try_get::<Option<String>, _>("self_report")? {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("self_report: {e}")))?,
            None => SelfReportSetting::default(),
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    pub async fn widgets(&self, org: &OrgId) -> Result<Vec<Widget>, StoreError> {
        let rows = sqlx::query(
            "SELECT version, name, site_url, status, self_report, created_at, updated_at FROM widgets \
             WHERE org_id = $1 ORDER BY version",
        )
        .bind(org.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(widget_from_row).collect()
    }

    pub async fn widget(&self, org: &OrgId, version: WidgetVersion) -> Result<Widget, StoreError> {
        let row = sqlx::query(
            "SELECT version, name, site_url, status, self_report, created_at, updated_at FROM widgets \
             WHERE org_id = $1 AND version = $2",
        )
        .bind(org.as_str())
        .bind(i64::from(version.get()))
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        widget_from_row(&row)
    }

    /// Creates a widget with the next version, `not_configured`, unless the tier is full.
    /// `site_url` defaults to the organization's website.
    pub async fn create_widget(
        &self,
        org: &OrgId,
        name: &WidgetName,
        site_url: Option<&SiteUrl>,
        limits: &TierLimits,
    ) -> Result<Widget, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        // Reserving the version locks the organization row: concurrent creates queue here, so
        // the count below cannot be raced past the tier limit.
        let row = sqlx::query(
            "UPDATE organizations SET next_widget_version = next_widget_version + 1 \
             WHERE id = $1 RETURNING next_widget_version - 1 AS version, tier, website_url",
        )
        .bind(org.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let version = to_u32(row.try_get("version")?, "widget version")?;
        let tier = tier_of(&row)?;
        let website: String = row.try_get("website_url")?;
        ensure_widget_slot(&mut tx, org, limits.widgets_allowed(tier)).await?;
        let version = WidgetVersion::new(version)
            .ok_or_else(|| StoreError::Corrupt(format!("widget version {version}")))?;
        let site = site_url.map_or(website.as_str(), SiteUrl::as_str);
        insert_widget(
            &mut tx,
            org,
            version,
            name.as_str(),
            site,
            WidgetStatus::NotConfigured,
            now,
        )
        .await?;
        tx.commit().await?;
        self.widget(org, version).await
    }

    /// Edits name, site URL and status. A status change writes `widget.status_changed` to the
    /// outbox in the same transaction; leaving the archive re-checks the tier limit.
    pub async fn update_widget(
        &self,
        org: &OrgId,
        version: WidgetVersion,
        patch: WidgetPatch,
        limits: &TierLimits,
    ) -> Result<Widget, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        // Lock the organization first (same order as create_widget) so a revival and a create
        // cannot both take the last slot.
        let org_row = sqlx::query(
            "UPDATE organizations SET next_widget_version = next_widget_version \
             WHERE id = $1 RETURNING tier",
        )
        .bind(org.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let tier = tier_of(&org_row)?;
        let current = sqlx::query(
            "SELECT version, name, site_url, status, self_report, created_at, updated_at FROM widgets \
             WHERE org_id = $1 AND version = $2",
        )
        .bind(org.as_str())
        .bind(i64::from(version.get()))
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let current = widget_from_row(&current)?;
        let target = patch.status.unwrap_or(current.status);
        let change = plan_status_change(version, current.status, target).map_err(|e| {
            StoreError::Conflict(Conflict::PrimaryWidgetImmutable(e.message.clone()))
        })?;
        if change == StatusChange::Revive {
            ensure_widget_slot(&mut tx, org, limits.widgets_allowed(tier)).await?;
        }
        sqlx::query(
            "UPDATE widgets SET name = COALESCE($3, name), site_url = COALESCE($4, site_url), \
             status = $5, updated_at = $6, self_report = COALESCE($7, self_report) \
             WHERE org_id = $1 AND version = $2",
        )
        .bind(org.as_str())
        .bind(i64::from(version.get()))
        .bind(patch.name.as_ref().map(|n| n.as_str().to_owned()))
        .bind(patch.site_url.as_ref().map(|u| u.as_str().to_owned()))
        .bind(target.id())
        .bind(now)
        .bind(
            patch
                .self_report
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        )
        .execute(&mut *tx)
        .await?;
        if change != StatusChange::Unchanged {
            let name = patch
                .name
                .as_ref()
                .map_or(current.name.as_str(), WidgetName::as_str);
            let payload = serde_json::json!({
                "widget_version": version.to_string(),
                "widget_name": name,
                "previous_status": current.status.id(),
                "status": target.id(),
            });
            insert_event(
                &mut tx,
                org,
                EventType::WidgetStatusChanged.id(),
                &payload,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        self.widget(org, version).await
    }
}

fn tier_of(row: &AnyRow) -> Result<Tier, StoreError> {
    let tier: String = row.try_get("tier")?;
    Tier::parse(&tier).map_err(|e| StoreError::Corrupt(e.message))
}

/// Fails with `WidgetLimitReached` when the organization already has `limit` live widgets.
async fn ensure_widget_slot(tx: &mut WriteTx, org: &OrgId, limit: u32) -> Result<(), StoreError> {
    let live: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM widgets WHERE org_id = $1 AND status <> 'archived'")
            .bind(org.as_str())
            .fetch_one(&mut **tx)
            .await?
            .try_get("n")?;
    if live >= i64::from(limit) {
        return Err(Conflict::WidgetLimitReached { limit }.into());
    }
    Ok(())
}
