//! Visit beacons, written in batches by the visit buffer.

use super::rollups::Kind;
use std::collections::HashMap;
use std::sync::Arc;

use super::bulk::insert_rows;
use super::catalog::OrgCatalog;
use super::exec::{Cells, Exec, Val};
use super::{Store, StoreError, to_u32};
use crate::domain::attribution::{
    DerivedChannel, Utm, derive_channel_on_page, is_internal_navigation,
};
use crate::domain::ids::OrgId;
use crate::domain::multi_touch::{TouchKey, VisitTouch};
use crate::domain::widget::WidgetVersion;

#[derive(Debug, Clone)]
pub struct NewVisit {
    pub org: OrgId,
    pub embedding: Option<WidgetVersion>,
    pub v: Option<String>,
    pub s: Option<String>,
    pub page_url: Option<String>,
    pub referrer: Option<String>,
    pub utm: Utm,
    pub visitor_id: Option<String>,
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
        if visits.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        let mut catalogs: HashMap<OrgId, Arc<OrgCatalog>> = HashMap::new();
        let mut rows = Vec::with_capacity(visits.len());
        for visit in visits {
            if !catalogs.contains_key(&visit.org) {
                let mut parts = tx.parts();
                let catalog = self
                    .catalogs
                    .get(&mut parts.db, parts.rollups, &visit.org)
                    .await?;
                catalogs.insert(visit.org.clone(), catalog);
            }
            let Some(catalog) = catalogs.get(&visit.org) else {
                continue;
            };
            let arrival =
                catalog.attribute(visit.embedding, visit.v.as_deref(), visit.s.as_deref())?;
            let derived = arrival.source.code.is_system().then(|| {
                derive_channel_on_page(
                    &visit.utm,
                    visit.referrer.as_deref(),
                    visit.page_url.as_deref(),
                )
                .id()
            });
            let utm = if visit.utm == Utm::default() {
                None
            } else {
                serde_json::to_string(&visit.utm).ok()
            };
            rows.push((
                visit,
                i64::from(arrival.widget.version.get()),
                i64::from(arrival.source.code.get()),
                derived,
                utm,
            ));
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
        insert_rows(
            self.backend,
            &mut tx,
            "visits",
            COLUMNS,
            &rows,
            |q, (visit, widget, source, derived, utm)| {
                q.bind(visit.org.as_str())
                    .bind(*widget)
                    .bind(*source)
                    .bind(*derived)
                    .bind(visit.visitor_id.as_deref())
                    .bind(visit.page_url.as_deref())
                    .bind(visit.referrer.as_deref())
                    .bind(utm.as_deref())
                    .bind(visit.at)
            },
        )
        .await?;
        for (visit, widget, source, derived, _) in &rows {
            tx.roll(
                visit.org.as_str(),
                visit.at,
                Kind::Visit,
                *widget,
                *source,
                *derived,
            )
            .await?;
        }
        tx.commit().await?;
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
