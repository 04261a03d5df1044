//! Visit beacons, written in batches by the visit buffer.

use super::rollups::Kind;
use std::collections::HashMap;

use super::bulk::insert_rows;
use super::catalog::OrgCatalog;
use super::{Store, StoreError};
use crate::domain::attribution::{Utm, derive_channel_on_page};
use crate::domain::ids::OrgId;
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

impl Store {
    /// Resolves and stores a batch of visits in one transaction.
    pub async fn insert_visits(&self, visits: &[NewVisit]) -> Result<(), StoreError> {
        if visits.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        let mut catalogs: HashMap<OrgId, OrgCatalog> = HashMap::new();
        let mut rows = Vec::with_capacity(visits.len());
        for visit in visits {
            if !catalogs.contains_key(&visit.org) {
                let catalog = OrgCatalog::load(&mut tx, &visit.org).await?;
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
