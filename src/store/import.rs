//! Lead import: every line of a checked file written in one transaction, or none.

use std::collections::HashMap;

use sqlx::Row;

use super::capture::{emit_next, json_text};
use super::rollups::{LEAD_FACTS, LeadFacts};
use super::{Store, StoreError, WriteTx, now_ms, rfc3339};
use crate::domain::attribution::{Attribution, Touch, derive_channel_on_page};
use crate::domain::estimate::enrich;
use crate::domain::event::{self, CorrectedSource, EnrichedLead, EventType, SourceTracking};
use crate::domain::ids::{LeadId, OrgId, prefixed_id};
use crate::domain::lead::RecordSource;
use crate::domain::lead_import::{ImportedLead, LeadImportFile};
use crate::domain::multi_touch::{TouchKey, TouchPoint};
use crate::domain::outcome::OutcomeKind;
use crate::domain::spend::RefusedLine;

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeadImport {
    /// Every lead written (or, in a dry run, every lead could be).
    Imported { leads: usize, dry_run: bool },
    /// Nothing written: these lines cannot be taken.
    Refused(Vec<RefusedLine>),
}

/// How an import runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportOptions {
    /// Check every line against the organization's widgets and sources, write nothing.
    pub dry_run: bool,
    /// Emit each lead's events (address preview, enriched, contact requested) as if it had
    /// just arrived; off by default, so old leads do not flood the webhooks.
    pub events: bool,
}

/// A source as an imported lead's snapshot takes it: as it is called now.
struct CatalogSource {
    widget_name: String,
    name: String,
    category: String,
}

impl Store {
    /// Imports leads with record source `import`, each credited by its widget version and
    /// source code (archived sources included) at its original arrival time, with its steps,
    /// its enrichment (the built-in estimator's, as a fresh arrival would get), a person's
    /// correction and its outcome. Every line or none: a line whose widget or source the
    /// organization does not have refuses the file, with the file's own refusals.
    pub async fn import_leads(
        &self,
        org: &OrgId,
        file: &LeadImportFile,
        actor: &str,
        options: ImportOptions,
    ) -> Result<LeadImport, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let catalog = catalog(&mut tx, org).await?;
        let mut refused = file.refused.clone();
        for lead in &file.lines {
            let known = |w: u32, s: u32| catalog.contains_key(&(w, s));
            let (w, s) = (lead.widget.get(), lead.source.get());
            let problem = if !catalog.keys().any(|(cw, _)| *cw == w) {
                Some(format!("there is no widget {}", lead.widget))
            } else if !known(w, s) {
                Some(format!(
                    "widget {} has no source {}",
                    lead.widget, lead.source
                ))
            } else if let Some(c) = lead.credited.filter(|c| !known(w, c.get())) {
                Some(format!(
                    "widget {} has no source {c} to credit",
                    lead.widget
                ))
            } else if let Some((fw, fs)) = lead
                .first_touch
                .filter(|(fw, fs)| !known(fw.get(), fs.get()))
            {
                Some(format!(
                    "the first touch names widget {fw} source {fs}, which do not exist"
                ))
            } else {
                None
            };
            if let Some(reason) = problem {
                refused.push(RefusedLine {
                    line: lead.line,
                    reason,
                });
            }
        }
        if !refused.is_empty() {
            refused.sort_by_key(|r| r.line);
            return Ok(LeadImport::Refused(refused));
        }
        if options.dry_run {
            return Ok(LeadImport::Imported {
                leads: file.lines.len(),
                dry_run: true,
            });
        }
        for lead in &file.lines {
            insert_imported(&mut tx, org, lead, &catalog, actor, options, now).await?;
        }
        tx.commit().await?;
        Ok(LeadImport::Imported {
            leads: file.lines.len(),
            dry_run: false,
        })
    }
}

/// Every source of the organization, archived ones included, by (widget, code).
async fn catalog(
    tx: &mut WriteTx,
    org: &OrgId,
) -> Result<HashMap<(u32, u32), CatalogSource>, StoreError> {
    let rows = sqlx::query(
        "SELECT w.version, w.name AS widget_name, s.code, s.name, s.channel_category \
         FROM sources s JOIN widgets w ON w.id = s.widget_id WHERE s.org_id = $1",
    )
    .bind(org.as_str())
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| {
            let key = (
                super::to_u32(r.try_get("version")?, "widget version")?,
                super::to_u32(r.try_get("code")?, "source code")?,
            );
            Ok((
                key,
                CatalogSource {
                    widget_name: r.try_get("widget_name")?,
                    name: r.try_get("name")?,
                    category: r.try_get("channel_category")?,
                },
            ))
        })
        .collect()
}

/// Writes one imported lead whole, counts it in the rollups and, when asked, emits its events.
async fn insert_imported(
    tx: &mut WriteTx,
    org: &OrgId,
    lead: &ImportedLead,
    catalog: &HashMap<(u32, u32), CatalogSource>,
    actor: &str,
    options: ImportOptions,
    now: i64,
) -> Result<(), StoreError> {
    let (w, s) = (lead.widget.get(), lead.source.get());
    let source = catalog
        .get(&(w, s))
        .ok_or_else(|| StoreError::Corrupt("an imported source vanished".into()))?;
    let id = LeadId::generate().to_string();
    let derived = lead.source.is_system().then(|| {
        derive_channel_on_page(
            &lead.utm,
            lead.referrer.as_deref(),
            lead.landing_page_url.as_deref(),
        )
    });
    let touch = |widget: u32, code: u32| Touch {
        widget_version: format!("{widget:02}"),
        source_code: format!("{code:02}"),
        ..Touch::default()
    };
    let attribution = Attribution {
        last_touch: Touch {
            at: Some(rfc3339(lead.created_at)),
            landing_page_url: lead.landing_page_url.clone(),
            referrer: lead.referrer.clone(),
            utm: lead.utm.clone(),
            derived_channel: derived,
            ..touch(w, s)
        },
        first_touch: lead.first_touch.map(|(fw, fs)| touch(fw.get(), fs.get())),
    };
    let touches = if lead.touches.is_empty() {
        vec![TouchPoint {
            at: lead.created_at,
            key: TouchKey {
                widget: w,
                source: s,
                channel: derived,
            },
        }]
    } else {
        lead.touches.clone()
    };
    let enrichment = match (&lead.project, &lead.personal) {
        (Some(project), Some(personal)) => Some(enrich(project, personal)),
        _ => None,
    };
    let corrected = match lead.credited.filter(|c| *c != lead.source) {
        Some(code) => {
            let to = catalog
                .get(&(w, code.get()))
                .ok_or_else(|| StoreError::Corrupt("an imported source vanished".into()))?;
            Some((
                code,
                to.category.clone(),
                CorrectedSource {
                    source_code: code.to_string(),
                    source_label: to.name.clone(),
                    reason: "imported".into(),
                    corrected_at: rfc3339(now),
                },
            ))
        }
        None => None,
    };
    let status = lead.status();
    let facts = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO leads (id, org_id, capture_token_digest, status, step, widget_version, \
         widget_name, source_code, source_name, source_category, derived_channel, \
         first_touch_widget_version, first_touch_source_code, raw_params, address, project, \
         personal, contact, owner_occupied, enrichment, enrichment_state, enriched_at, score, \
         pipeline_value, attribution, record_source, self_reported, corrected_source_code, \
         corrected_source, corrected_source_category, outcome, outcome_value, outcome_reason, \
         outcome_changed_at, touches, erased_at, erased_by, event_sequence, created_at, updated_at) \
         VALUES ($1, $2, '', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, '{{}}', $13, $14, $15, \
         $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, \
         $33, $34, $35, 0, $36, $37) RETURNING {LEAD_FACTS}"
    )))
    .bind(&id)
    .bind(org.as_str())
    .bind(status.id())
    .bind(i64::from(status.step()))
    .bind(i64::from(w))
    .bind(&source.widget_name)
    .bind(i64::from(s))
    .bind(&source.name)
    .bind(&source.category)
    .bind(derived.map(|d| d.id()))
    .bind(lead.first_touch.map(|(fw, _)| i64::from(fw.get())))
    .bind(lead.first_touch.map(|(_, fs)| i64::from(fs.get())))
    .bind(json_text(&lead.address)?)
    .bind(lead.project.as_ref().map(json_text).transpose()?)
    .bind(lead.personal.as_ref().map(json_text).transpose()?)
    .bind(lead.contact.as_ref().map(json_text).transpose()?)
    .bind(lead.personal.as_ref().map(|p| i64::from(p.owner_occupied)))
    .bind(enrichment.as_ref().map(json_text).transpose()?)
    .bind(if enrichment.is_some() { "done" } else { "none" })
    .bind(enrichment.as_ref().map(|_| lead.created_at))
    .bind(enrichment.as_ref().map(|e| i64::from(e.score)))
    .bind(enrichment.as_ref().map(|e| e.estimate.midpoint()))
    .bind(json_text(&attribution)?)
    .bind(RecordSource::Import.id())
    .bind(lead.self_reported.as_ref().map(json_text).transpose()?)
    .bind(corrected.as_ref().map(|(code, _, _)| i64::from(code.get())))
    .bind(corrected.as_ref().map(|(_, _, c)| json_text(c)).transpose()?)
    .bind(corrected.as_ref().map(|(_, category, _)| category.clone()))
    .bind(lead.outcome.kind().id())
    .bind(lead.outcome.value())
    .bind(lead.outcome.lost_reason().map(|r| r.as_str().to_owned()))
    .bind((lead.outcome.kind() != OutcomeKind::Open).then_some(lead.created_at))
    .bind(json_text(&touches)?)
    .bind(lead.erased_at)
    .bind(lead.erased_at.map(|_| actor.to_owned()))
    .bind(lead.created_at)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    tx.add_lead(&LeadFacts::from_row(&facts)?).await?;
    if lead.outcome.kind() != OutcomeKind::Open {
        sqlx::query(
            "INSERT INTO outcome_changes (id, org_id, lead_id, from_outcome, to_outcome, value, \
             reason, actor, created_at) VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, $8)",
        )
        .bind(prefixed_id("out_"))
        .bind(org.as_str())
        .bind(&id)
        .bind(lead.outcome.kind().id())
        .bind(lead.outcome.value())
        .bind(lead.outcome.lost_reason().map(|r| r.as_str().to_owned()))
        .bind(actor)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    if options.events && lead.erased_at.is_none() {
        let tracking = SourceTracking {
            widget_version: lead.widget.to_string(),
            widget_name: source.widget_name.clone(),
            source_code: lead.source.to_string(),
            source_label: source.name.clone(),
        };
        emit_arrival(tx, org, &id, lead, enrichment.as_ref(), &tracking, now).await?;
    }
    Ok(())
}

/// The events a lead with these steps would have sent, in their order.
async fn emit_arrival(
    tx: &mut WriteTx,
    org: &OrgId,
    id: &str,
    lead: &ImportedLead,
    enrichment: Option<&crate::domain::estimate::Enrichment>,
    tracking: &SourceTracking,
    now: i64,
) -> Result<(), StoreError> {
    let created = rfc3339(lead.created_at);
    let preview = event::address_preview(id, &created, &lead.address, tracking);
    emit_next(tx, org, id, EventType::LeadAddressPreview, &preview, now).await?;
    let (Some(project), Some(personal), Some(enrichment)) =
        (&lead.project, &lead.personal, enrichment)
    else {
        return Ok(());
    };
    let enriched = EnrichedLead {
        lead_id: id,
        created_at: &created,
        address: &lead.address,
        project,
        personal,
        enrichment,
        tracking,
    };
    emit_next(
        tx,
        org,
        id,
        EventType::LeadEnriched,
        &event::enriched(&enriched),
        now,
    )
    .await?;
    if !personal.owner_occupied {
        let alert = event::rental_alert(&enriched);
        emit_next(tx, org, id, EventType::LeadRentalAlert, &alert, now).await?;
    }
    if let Some(contact) = &lead.contact {
        let payload = event::contact_requested(id, personal, contact, tracking);
        emit_next(tx, org, id, EventType::LeadContactRequested, &payload, now).await?;
    }
    Ok(())
}
