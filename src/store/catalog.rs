//! An organization's catalog (`domain::catalog`: its widgets and sources, against which
//! attribution resolves), kept in memory between capture batches and read again only when the
//! organization's catalog version (moved by every change to its widgets or sources, in the
//! changing transaction) says it changed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::exec::{Cells, Exec};
use super::rollups::Pending;
use super::{StoreError, to_u32};
use crate::domain::attribution::{SourceFacts, WidgetFacts};
use crate::domain::catalog::{Catalog, CatalogGap};
use crate::domain::channel::ChannelCategory;
use crate::domain::ids::OrgId;
use crate::domain::source::{SourceCode, SourceStatus};
use crate::domain::widget::{WidgetStatus, WidgetVersion};

impl From<CatalogGap> for StoreError {
    fn from(gap: CatalogGap) -> Self {
        StoreError::Corrupt(gap.0)
    }
}

/// The catalogs this process read last, each with the version it was read at.
#[derive(Default)]
pub(crate) struct CatalogCache {
    entries: Mutex<HashMap<OrgId, (i64, Arc<Catalog>)>>,
}

/// Organizations kept; past it the cache starts over (each organization costs one read again).
const CACHED_ORGANIZATIONS: usize = 10_000;

impl CatalogCache {
    /// The organization's catalog as `tx` sees it: the kept copy if the version `tx` reads is
    /// the one it was read at, else read now. The version is read before the catalog, so a
    /// copy is never older than the version it is kept under.
    pub(super) async fn get<E: Exec>(
        &self,
        db: &mut E,
        facts: &mut Pending,
        org: &OrgId,
    ) -> Result<Arc<Catalog>, StoreError> {
        let version = facts.catalog_version(db, org.as_str()).await?;
        if let Some(catalog) = self.kept(org, version) {
            return Ok(catalog);
        }
        let catalog = Arc::new(load(db, org).await?);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CACHED_ORGANIZATIONS {
            entries.clear();
        }
        entries.insert(org.clone(), (version, catalog.clone()));
        Ok(catalog)
    }

    /// The organization's catalog as last read, whatever its version now: for deciding ahead
    /// of a transaction, which checks the version it reads against the copy's (`get` returns
    /// the same `Arc` only if it is current).
    pub(super) fn latest(&self, org: &OrgId) -> Option<Arc<Catalog>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(org).map(|(_, catalog)| catalog.clone())
    }

    fn kept(&self, org: &OrgId, version: i64) -> Option<Arc<Catalog>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(org) {
            Some((kept, catalog)) if *kept == version => Some(catalog.clone()),
            _ => None,
        }
    }
}

/// The organization's catalog as `db` sees it.
async fn load<E: Exec>(db: &mut E, org: &OrgId) -> Result<Catalog, StoreError> {
    let widget_rows = db
        .rows(
            "SELECT version, name, status FROM widgets WHERE org_id = $1",
            vec![org.as_str().into()],
        )
        .await?;
    let version_of = |n: i64| {
        WidgetVersion::new(to_u32(n, "widget version")?)
            .ok_or_else(|| StoreError::Corrupt("widget version".into()))
    };
    let mut widgets = Vec::with_capacity(widget_rows.len());
    for row in &widget_rows {
        widgets.push(WidgetFacts {
            version: version_of(row.int(0)?)?,
            name: row.text(1)?,
            status: WidgetStatus::from_id(&row.text(2)?)
                .ok_or_else(|| StoreError::Corrupt("widget status".into()))?,
        });
    }
    let source_rows = db
        .rows(
            "SELECT w.version, s.code, s.name, s.channel_category, s.status \
             FROM sources s JOIN widgets w ON w.id = s.widget_id WHERE s.org_id = $1",
            vec![org.as_str().into()],
        )
        .await?;
    let mut sources = Vec::with_capacity(source_rows.len());
    for row in &source_rows {
        sources.push((
            version_of(row.int(0)?)?,
            SourceFacts {
                code: SourceCode::new(to_u32(row.int(1)?, "source code")?)
                    .ok_or_else(|| StoreError::Corrupt("source code".into()))?,
                name: row.text(2)?,
                category: ChannelCategory::from_id(&row.text(3)?)
                    .ok_or_else(|| StoreError::Corrupt("channel category".into()))?,
                status: SourceStatus::from_id(&row.text(4)?)
                    .ok_or_else(|| StoreError::Corrupt("source status".into()))?,
            },
        ));
    }
    Ok(Catalog::new(widgets, sources))
}
