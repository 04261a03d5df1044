//! Organizations, their API keys and users.

use crate::domain::time_zone::OrgTimeZone;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::WriteTx;
use super::accounts::insert_user;
use super::{
    ApiKeyInfo, Conflict, CreatedOrganization, NewOrganization, Organization, OrganizationPatch,
    Store, StoreError, User, now_ms, to_u32,
};
use crate::domain::DomainError;
use crate::domain::ids::{OrgId, prefixed_id};
use crate::domain::keys::{NewApiKey, new_api_key, new_public_key};
use crate::domain::source::{SYSTEM_SOURCE_CATEGORY, SYSTEM_SOURCE_NAME, SourceCode};
use crate::domain::tier::{Tier, TierLimits};
use crate::domain::user::Role;
use crate::domain::widget::{WidgetStatus, WidgetVersion};

pub(super) fn org_from_row(row: &AnyRow) -> Result<Organization, StoreError> {
    let tier: String = row.try_get("tier")?;
    Ok(Organization {
        id: OrgId::from_stored(row.try_get("id")?),
        name: row.try_get("name")?,
        website_url: row.try_get("website_url")?,
        brand_color: row.try_get("brand_color")?,
        tier: Tier::parse(&tier).map_err(|e| StoreError::Corrupt(e.message))?,
        public_key: row.try_get("public_key")?,
        time_zone: OrgTimeZone::parse(&row.try_get::<String, _>("time_zone")?)
            .map_err(|e| StoreError::Corrupt(e.message))?,
        raw_data_retention_days: row
            .try_get::<Option<i64>, _>("raw_data_retention_days")?
            .map(|d| to_u32(d, "raw_data_retention_days"))
            .transpose()?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The name every organization's first widget gets.
pub const PRIMARY_WIDGET_NAME: &str = "Primary";

impl Store {
    /// Creates the organization with its Primary widget (`01`, configured, on the website),
    /// that widget's system source, a first API key and, if given, its owner — all or nothing.
    pub async fn create_organization(
        &self,
        new: NewOrganization,
    ) -> Result<CreatedOrganization, StoreError> {
        let now = now_ms();
        let id = OrgId::generate();
        let public_key = new_public_key();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO organizations \
             (id, name, website_url, brand_color, tier, public_key, next_widget_version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 2, $7, $7)",
        )
        .bind(id.as_str())
        .bind(new.name.as_str())
        .bind(new.website_url.as_str())
        .bind(new.brand_color.to_string())
        .bind(new.tier.id())
        .bind(&public_key)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_widget(
            &mut tx,
            &id,
            WidgetVersion::PRIMARY,
            PRIMARY_WIDGET_NAME,
            new.website_url.as_str(),
            WidgetStatus::Configured,
            now,
        )
        .await?;
        let key = new_api_key();
        insert_api_key(&mut tx, &id, &key, "default", now).await?;
        if let Some(owner) = &new.owner {
            let user = User::new(&id, &owner.email, &owner.password_hash, Role::Owner, now);
            insert_user(&mut tx, &user).await?;
        }
        tx.commit().await?;
        let organization = self.organization(&id).await?;
        let primary_widget = self.widget(&id, WidgetVersion::PRIMARY).await?;
        Ok(CreatedOrganization {
            organization,
            primary_widget,
            api_key: key.plain,
        })
    }

    pub async fn organization(&self, org: &OrgId) -> Result<Organization, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, website_url, brand_color, tier, public_key, time_zone, \
             raw_data_retention_days, created_at, updated_at FROM organizations WHERE id = $1",
        )
        .bind(org.as_str())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        org_from_row(&row)
    }

    pub async fn update_organization(
        &self,
        org: &OrgId,
        patch: OrganizationPatch,
    ) -> Result<Organization, StoreError> {
        let mut tx = self.begin_write().await?;
        let previous =
            sqlx::query("SELECT time_zone, credit_lookback_days FROM organizations WHERE id = $1")
                .bind(org.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
        let previous_zone: String = previous.try_get("time_zone")?;
        let lookback: i64 = previous.try_get("credit_lookback_days")?;
        if let Some(Some(retention)) = patch.raw_data_retention
            && i64::from(retention.days()) < lookback
        {
            // New leads gather their touches from visits within the lookback.
            return Err(DomainError::new(
                "raw_data_retention_days",
                format!(
                    "keep raw data at least as long as the attribution lookback window \
                     ({lookback} days): touches are gathered from it"
                ),
            )
            .into());
        }
        let done = sqlx::query(
            "UPDATE organizations SET \
               name = COALESCE($2, name), \
               website_url = COALESCE($3, website_url), \
               brand_color = COALESCE($4, brand_color), \
               time_zone = COALESCE($6, time_zone), \
               raw_data_retention_days = CASE WHEN $7 THEN $8 ELSE raw_data_retention_days END, \
               updated_at = $5 \
             WHERE id = $1",
        )
        .bind(org.as_str())
        .bind(patch.name.as_ref().map(|n| n.as_str().to_owned()))
        .bind(patch.website_url.as_ref().map(|u| u.as_str().to_owned()))
        .bind(patch.brand_color.map(|c| c.to_string()))
        .bind(now_ms())
        .bind(patch.time_zone.as_ref().map(|z| z.name().to_owned()))
        .bind(patch.raw_data_retention.is_some())
        .bind(
            patch
                .raw_data_retention
                .flatten()
                .map(|d| i64::from(d.days())),
        )
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        // Report days follow the zone: the rollups are recounted in the new one, in this
        // transaction, so a report never mixes the two.
        if let Some(zone) = &patch.time_zone
            && previous_zone != zone.name()
        {
            tx.rebuild_rollups(org, zone).await?;
        }
        tx.commit().await?;
        self.organization(org).await
    }

    /// Moves the organization to another tier (an operator's act). A tier that allows fewer
    /// live widgets than the organization has is refused with the list of widgets to archive
    /// first; the count and the change share the organization's row lock.
    pub async fn change_tier(
        &self,
        org: &OrgId,
        tier: Tier,
        limits: &TierLimits,
    ) -> Result<Organization, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE organizations SET updated_at = $2 WHERE id = $1")
            .bind(org.as_str())
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let live = sqlx::query(
            "SELECT version, name FROM widgets WHERE org_id = $1 AND status <> 'archived' ORDER BY version",
        )
        .bind(org.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let allowed = limits.widgets_allowed(tier);
        if live.len() > allowed as usize {
            let widgets = live
                .iter()
                .map(|r| {
                    let version = to_u32(r.try_get("version")?, "widget version")?;
                    let name: String = r.try_get("name")?;
                    Ok(format!("{version:02} {name}"))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            return Err(Conflict::TierTooSmall {
                tier: tier.id().to_owned(),
                allowed,
                live: widgets,
            }
            .into());
        }
        sqlx::query("UPDATE organizations SET tier = $2 WHERE id = $1")
            .bind(org.as_str())
            .bind(tier.id())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.organization(org).await
    }

    /// The organization a secret API key belongs to, if the key exists and is not revoked.
    pub async fn org_for_api_key(&self, digest: &str) -> Result<Option<OrgId>, StoreError> {
        Ok(self.api_key_owner(digest).await?.map(|(org, _)| org))
    }

    /// The organization and the id of a secret API key that exists and is not revoked: who
    /// made a change, for the changes that record it.
    pub async fn api_key_owner(&self, digest: &str) -> Result<Option<(OrgId, String)>, StoreError> {
        let row =
            sqlx::query("SELECT org_id, id FROM api_keys WHERE digest = $1 AND revoked_at IS NULL")
                .bind(digest)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| Ok((OrgId::from_stored(r.try_get("org_id")?), r.try_get("id")?)))
            .transpose()
    }

    /// The organization behind an embed snippet's public key.
    pub async fn org_for_public_key(&self, public_key: &str) -> Result<Option<OrgId>, StoreError> {
        let row = sqlx::query("SELECT id FROM organizations WHERE public_key = $1")
            .bind(public_key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .map(|r| r.try_get::<String, _>("id"))
            .transpose()?
            .map(OrgId::from_stored))
    }

    /// Mints another key; returns its listing and the plain secret (shown once).
    pub async fn create_api_key(
        &self,
        org: &OrgId,
        label: &str,
    ) -> Result<(ApiKeyInfo, String), StoreError> {
        let now = now_ms();
        let key = new_api_key();
        let mut tx = self.begin_write().await?;
        let id = insert_api_key(&mut tx, org, &key, label, now).await?;
        tx.commit().await?;
        let info = ApiKeyInfo {
            id,
            hint: key.hint,
            label: label.to_owned(),
            created_at: now,
            revoked_at: None,
        };
        Ok((info, key.plain))
    }

    pub async fn api_keys(&self, org: &OrgId) -> Result<Vec<ApiKeyInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, hint, label, created_at, revoked_at FROM api_keys \
             WHERE org_id = $1 ORDER BY created_at, id",
        )
        .bind(org.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ApiKeyInfo {
                    id: r.try_get("id")?,
                    hint: r.try_get("hint")?,
                    label: r.try_get("label")?,
                    created_at: r.try_get("created_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            })
            .collect()
    }

    /// Revokes a key; revoking twice is harmless, another tenant's key is not found.
    pub async fn revoke_api_key(&self, org: &OrgId, key_id: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3) WHERE org_id = $1 AND id = $2",
        )
        .bind(org.as_str())
        .bind(key_id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_api_key(
    tx: &mut WriteTx,
    org: &OrgId,
    key: &NewApiKey,
    label: &str,
    now: i64,
) -> Result<String, StoreError> {
    let id = prefixed_id("key_");
    sqlx::query(
        "INSERT INTO api_keys (id, org_id, digest, hint, label, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(org.as_str())
    .bind(&key.digest)
    .bind(&key.hint)
    .bind(label)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// Inserts a widget and its system source. The caller has reserved `version`.
pub(super) async fn insert_widget(
    tx: &mut WriteTx,
    org: &OrgId,
    version: WidgetVersion,
    name: &str,
    site_url: &str,
    status: WidgetStatus,
    now: i64,
) -> Result<(), StoreError> {
    let row = sqlx::query(
        "INSERT INTO widgets (org_id, version, name, site_url, status, next_source_code, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 2, $6, $6) RETURNING id",
    )
    .bind(org.as_str())
    .bind(i64::from(version.get()))
    .bind(name)
    .bind(site_url)
    .bind(status.id())
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    let widget_id: i64 = row.try_get("id")?;
    sqlx::query(
        "INSERT INTO sources (org_id, widget_id, code, name, name_key, channel_category, status, is_system, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'active', 1, $7, $7)",
    )
    .bind(org.as_str())
    .bind(widget_id)
    .bind(i64::from(SourceCode::SYSTEM.get()))
    .bind(SYSTEM_SOURCE_NAME)
    .bind(SYSTEM_SOURCE_NAME.to_lowercase())
    .bind(SYSTEM_SOURCE_CATEGORY.id())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
