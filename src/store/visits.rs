//! Visit beacons, written in batches by the visit buffer.

use super::rollups::Kind;
use std::collections::HashMap;
use std::sync::Arc;

use super::bulk::insert_values;
use super::catalog::CatalogCache;
use super::exec::{Cells, Exec, Val};
use super::{Backend, Store, StoreError, TxParts, to_u32};
use crate::domain::attribution::{Arrival, DerivedChannel, Utm, is_internal_navigation};
use crate::domain::catalog::Catalog;
use crate::domain::ids::OrgId;
use crate::domain::multi_touch::{TouchKey, VisitTouch};
use crate::domain::widget::WidgetVersion;

#[derive(Debug, Clone)]
pub struct NewVisit {
    pub org: OrgId,
    pub arrival: Arrival,
    pub at: i64,
}

/// Visits of one visitor read for a lead's touches, most recent first.
const VISITS_PER_LEAD: i64 = 500;

/// Visitor ids looked up in one statement.
const VISITORS_PER_QUERY: usize = 256;

/// Each of `visitors`' visits to the organization in `[from, until]`, as touches (the most
/// recent `VISITS_PER_LEAD` of each, oldest first; visits of one millisecond in the order they
/// were written): one statement for a whole capture batch instead of one per lead. Scoped by
/// organization: a visitor id sent with another organization's key names other visits.
pub(super) async fn visitors_touches<E: Exec>(
    db: &mut E,
    org: &OrgId,
    visitors: &[&str],
    from: i64,
    until: i64,
) -> Result<HashMap<String, Vec<VisitTouch>>, StoreError> {
    let mut touches: HashMap<String, Vec<VisitTouch>> = HashMap::new();
    for chunk in visitors.chunks(VISITORS_PER_QUERY) {
        let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 4)).collect();
        let sql = format!(
            "SELECT visitor_id, widget_version, source_code, derived_channel, page_url, referrer, \
             created_at FROM (SELECT visitor_id, widget_version, source_code, derived_channel, \
             page_url, referrer, created_at, id, ROW_NUMBER() OVER (PARTITION BY visitor_id \
             ORDER BY created_at DESC, id DESC) AS nth FROM visits WHERE org_id = $1 \
             AND visitor_id IS NOT NULL AND visitor_id IN ({}) AND created_at >= $2 \
             AND created_at <= $3) AS recent WHERE nth <= {VISITS_PER_LEAD} \
             ORDER BY visitor_id, created_at, id",
            list.join(", ")
        );
        let mut params: Vec<Val> = vec![org.as_str().into(), from.into(), until.into()];
        params.extend(chunk.iter().map(|v| Val::from(*v)));
        for row in db.rows(&sql, params).await? {
            let source = to_u32(row.int(2)?, "source")?;
            let channel = row.opt_text(3)?;
            let (page, referrer) = (row.opt_text(4)?, row.opt_text(5)?);
            touches.entry(row.text(0)?).or_default().push(VisitTouch {
                at: row.int(6)?,
                key: TouchKey {
                    widget: to_u32(row.int(1)?, "widget")?,
                    source,
                    channel: if source == 1 {
                        channel.as_deref().and_then(DerivedChannel::from_id)
                    } else {
                        None
                    },
                },
                internal: source == 1
                    && is_internal_navigation(referrer.as_deref(), page.as_deref()),
            });
        }
    }
    Ok(touches)
}

impl Store {
    /// Resolves and stores a batch of visits in one transaction.
    pub async fn insert_visits(&self, visits: &[NewVisit]) -> Result<(), StoreError> {
        self.insert_visit_batch(visits.to_vec()).await
    }

    /// `insert_visits` for a batch the caller gives away (the visit buffer's). On SQLite the
    /// transaction runs on the native connection, like a capture batch.
    pub async fn insert_visit_batch(&self, visits: Vec<NewVisit>) -> Result<(), StoreError> {
        if visits.is_empty() {
            return Ok(());
        }
        match self.backend {
            Backend::Sqlite => {
                let catalogs = self.catalogs.clone();
                self.native_batch("visits", async move |parts, _| {
                    visit_batch(parts, &catalogs, &visits).await
                })
                .await?;
            }
            Backend::Postgres => {
                let mut tx = self.begin_write().await?;
                visit_batch(&mut tx.parts(), &self.catalogs, &visits).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Visits recorded for a widget and source (tests and reports).
    pub async fn visit_count(
        &self,
        org: &OrgId,
        version: WidgetVersion,
        code: crate::domain::source::SourceCode,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM visits WHERE org_id = $1 AND widget_version = $2 AND source_code = $3",
        )
        .bind(org.as_str())
        .bind(i64::from(version.get()))
        .bind(i64::from(code.get()))
        .fetch_one(&self.pool)
        .await?;
        Ok(sqlx::Row::try_get(&row, "n")?)
    }
}

/// One batch of visits: each attributed by its organization's catalog, stored, and counted.
async fn visit_batch<E: Exec>(
    w: &mut TxParts<'_, E>,
    catalogs: &CatalogCache,
    visits: &[NewVisit],
) -> Result<(), StoreError> {
    let mut of_org: HashMap<OrgId, Arc<Catalog>> = HashMap::new();
    let mut rows = Vec::with_capacity(visits.len());
    let mut counted = Vec::with_capacity(visits.len());
    for visit in visits {
        let catalog = match of_org.get(&visit.org) {
            Some(catalog) => catalog.clone(),
            None => {
                let catalog = catalogs.get(&mut w.db, w.rollups, &visit.org).await?;
                of_org.insert(visit.org.clone(), catalog.clone());
                catalog
            }
        };
        let (arrival, derived) = catalog.resolve(&visit.arrival)?;
        let derived = derived.map(DerivedChannel::id);
        let utm = if visit.arrival.utm == Utm::default() {
            None
        } else {
            serde_json::to_string(&visit.arrival.utm).ok()
        };
        let (widget, source) = (
            i64::from(arrival.widget.version.get()),
            i64::from(arrival.source.code.get()),
        );
        rows.push(vec![
            visit.org.as_str().into(),
            widget.into(),
            source.into(),
            derived.into(),
            visit.arrival.visitor_id.as_deref().into(),
            visit.arrival.page_url.as_deref().into(),
            visit.arrival.referrer.as_deref().into(),
            utm.into(),
            visit.at.into(),
        ]);
        counted.push((visit, (widget, source), derived));
    }
    const COLUMNS: &[&str] = &[
        "org_id",
        "widget_version",
        "source_code",
        "derived_channel",
        "visitor_id",
        "page_url",
        "referrer",
        "utm",
        "created_at",
    ];
    insert_values(&mut w.db, "visits", COLUMNS, rows).await?;
    for (visit, key, derived) in counted {
        w.rollups
            .roll(
                &mut w.db,
                visit.org.as_str(),
                visit.at,
                Kind::Visit,
                key,
                derived,
            )
            .await?;
    }
    Ok(())
}
