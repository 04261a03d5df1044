//! An organization's widgets and sources, against which attribution resolves: kept in memory
//! between capture batches and read again only when the organization's catalog version (moved
//! by every change to its widgets or sources, in the changing transaction) says it changed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::exec::{Cells, Exec};
use super::rollups::Pending;
use super::{StoreError, to_u32};
use crate::domain::attribution::{
    Arrival, AttributionNote, DerivedChannel, SourceFacts, WidgetFacts, derive_channel_on_page,
    resolve_arrival,
};
use crate::domain::channel::ChannelCategory;
use crate::domain::ids::OrgId;
use crate::domain::source::{SourceCode, SourceStatus};
use crate::domain::widget::{WidgetStatus, WidgetVersion};

pub(super) struct OrgCatalog {
    widgets: Vec<WidgetFacts>,
    sources: HashMap<WidgetVersion, Vec<SourceFacts>>,
}

/// The attribution of one arrival, with the names as they are right now (the snapshot), and
/// why a parameter could not be applied, if one could not.
pub(super) struct Attribution<'a> {
    pub widget: &'a WidgetFacts,
    pub source: &'a SourceFacts,
    pub note: Option<AttributionNote>,
}

/// The catalogs this process read last, each with the version it was read at.
#[derive(Default)]
pub(crate) struct CatalogCache {
    entries: Mutex<HashMap<OrgId, (i64, Arc<OrgCatalog>)>>,
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
    ) -> Result<Arc<OrgCatalog>, StoreError> {
        let version = facts.catalog_version(db, org.as_str()).await?;
        if let Some(catalog) = self.kept(org, version) {
            return Ok(catalog);
        }
        let catalog = Arc::new(OrgCatalog::load(db, org).await?);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CACHED_ORGANIZATIONS {
            entries.clear();
        }
        entries.insert(org.clone(), (version, catalog.clone()));
        Ok(catalog)
    }

    fn kept(&self, org: &OrgId, version: i64) -> Option<Arc<OrgCatalog>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(org) {
            Some((kept, catalog)) if *kept == version => Some(catalog.clone()),
            _ => None,
        }
    }
}

impl OrgCatalog {
    async fn load<E: Exec>(db: &mut E, org: &OrgId) -> Result<Self, StoreError> {
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
        let mut sources: HashMap<WidgetVersion, Vec<SourceFacts>> = HashMap::new();
        for row in &source_rows {
            sources
                .entry(version_of(row.int(0)?)?)
                .or_default()
                .push(SourceFacts {
                    code: SourceCode::new(to_u32(row.int(1)?, "source code")?)
                        .ok_or_else(|| StoreError::Corrupt("source code".into()))?,
                    name: row.text(2)?,
                    category: ChannelCategory::from_id(&row.text(3)?)
                        .ok_or_else(|| StoreError::Corrupt("channel category".into()))?,
                    status: SourceStatus::from_id(&row.text(4)?)
                        .ok_or_else(|| StoreError::Corrupt("source status".into()))?,
                });
        }
        Ok(Self { widgets, sources })
    }

    /// Where an arrival is credited (see `attribute`), and for the system source the channel
    /// derived from its page, referrer and UTM tags.
    pub(super) fn resolve(
        &self,
        arrival: &Arrival,
    ) -> Result<(Attribution<'_>, Option<DerivedChannel>), StoreError> {
        let credited = self.attribute(
            arrival.embedding,
            arrival.v.as_deref(),
            arrival.s.as_deref(),
        )?;
        let derived = credited.source.code.is_system().then(|| {
            derive_channel_on_page(
                &arrival.utm,
                arrival.referrer.as_deref(),
                arrival.page_url.as_deref(),
            )
        });
        Ok((credited, derived))
    }

    /// Applies the arrival rule (`domain::attribution::resolve_arrival`); every organization
    /// has a Primary widget with a system source, so resolution always lands somewhere real.
    pub(super) fn attribute(
        &self,
        embedding: Option<WidgetVersion>,
        v: Option<&str>,
        s: Option<&str>,
    ) -> Result<Attribution<'_>, StoreError> {
        let resolution = resolve_arrival(
            &self.widgets,
            |w| self.sources_of(w).iter().map(|src| src.code).collect(),
            embedding,
            v,
            s,
        );
        let version = resolution.widget;
        let widget = self
            .widgets
            .iter()
            .find(|w| w.version == version)
            .ok_or_else(|| StoreError::Corrupt(format!("organization has no widget {version}")))?;
        let code = resolution.source;
        let source = self
            .sources_of(version)
            .iter()
            .find(|src| src.code == code)
            .ok_or_else(|| StoreError::Corrupt(format!("widget {version} has no source {code}")))?;
        Ok(Attribution {
            widget,
            source,
            note: resolution.note,
        })
    }

    fn sources_of(&self, version: WidgetVersion) -> &[SourceFacts] {
        self.sources
            .get(&version)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}
