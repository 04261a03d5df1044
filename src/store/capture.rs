//! Capture writes: lead creation and later steps, applied in batches (group commit) so many
//! requests share one transaction and one fsync. Expected refusals (bad token, steps out of
//! order) are decided by reads before any write, so one refused request never spoils a batch.

use super::rollups::{Delta, Kind, LEAD_FACTS, LeadFacts};
use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::bulk::{Rows, insert_together};
use super::catalog::CatalogCache;
use super::dispatch::EventRow as OutboxEvent;
use super::events::write_lead_event;
use super::exec::{Cells, Exec, Named, Val};
use super::visits::visitors_touches;
use super::{Backend, Store, StoreError, now_ms};
use super::{TxParts, WriteTx};
use crate::domain::attribution::{Attribution, AttributionNote, DerivedChannel, Touch};
use crate::domain::capture::{
    ArrivalDecision, CreditedSnapshot, decide_arrival, lead_touches, new_capture_token,
};
pub use crate::domain::capture::{
    CaptureRefusal, CaptureReply, CaptureResult, FirstTouch, HeardAbout, Idempotency, LeadCreated,
    NewLead, StepRecorded,
};
use crate::domain::capture::{StepBlocked, StepDecision, StepWrite, SteppedLead, decide_step};
use crate::domain::catalog::Catalog;
use crate::domain::event::{self, CorrectedSource, EventType, LeadContext, SourceTracking};
use crate::domain::ids::{LeadId, OrgId, prefixed_id};
use crate::domain::keys::api_key_digest;
use crate::domain::lead::{LeadStatus, RecordSource, Step};
use crate::domain::multi_touch::{CreditSettings, TouchPoint, VisitTouch};
use crate::domain::self_report::{SelfReportSetting, SelfReported};
use crate::domain::source::SourceCode;
use crate::domain::widget::WidgetVersion;

#[derive(Debug, Clone)]
pub struct StepUpdate {
    pub lead_id: LeadId,
    pub capture_token: String,
    /// With step 3, when the widget asked "How did you hear about us?" and it was answered;
    /// checked against the widget's choices.
    pub heard_about: Option<HeardAbout>,
    pub step: Step,
    pub idempotency: Option<Idempotency>,
}

#[derive(Debug, Clone)]
pub enum CaptureCommand {
    CreateLead(Box<NewLead>),
    /// A new lead decided before its batch (`ArrivalPreparer`).
    Prepared(Box<PreparedLead>),
    Step(Box<StepUpdate>),
}

impl CaptureCommand {
    /// The new lead this command creates, if it creates one.
    fn new_lead(&self) -> Option<&NewLead> {
        match self {
            CaptureCommand::CreateLead(new) => Some(new),
            CaptureCommand::Prepared(prepared) => Some(&prepared.new),
            CaptureCommand::Step(_) => None,
        }
    }
}

/// A new lead decided and turned into its rows before its batch, on the request's own task,
/// against the organization's catalog as this process keeps it: all the batch's writer has
/// left to do for it is gather its touches from the visits it reads for the whole batch. The
/// writer is the one thread every capture of the file waits for; the decision (attribution,
/// snapshot, event payload, the JSON of the row) was about a quarter of its time.
///
/// The batch uses the rows only if it reads the very catalog they were decided against (the
/// version unchanged since); else, or if its batch failed and is retried, it decides again.
pub struct PreparedLead {
    new: NewLead,
    catalog: Arc<Catalog>,
    /// When it was decided: the lead's `created_at` and every time in its rows.
    now: i64,
    /// Taken by the first batch that writes it.
    arrived: std::sync::Mutex<Option<Arrived>>,
}

impl PreparedLead {
    /// The prepared rows, if `catalog` is the one they were decided against and no batch took
    /// them yet.
    fn take_if_decided_by(&self, catalog: &Arc<Catalog>) -> Option<Arrived> {
        if !Arc::ptr_eq(&self.catalog, catalog) {
            return None;
        }
        self.arrived
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

impl Clone for PreparedLead {
    /// A copy decides again in its batch (the rows and their ids are for one lead).
    fn clone(&self) -> Self {
        PreparedLead {
            new: self.new.clone(),
            catalog: self.catalog.clone(),
            now: self.now,
            arrived: std::sync::Mutex::new(None),
        }
    }
}

impl std::fmt::Debug for PreparedLead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedLead")
            .field("new", &self.new)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// Decides new leads before their batch (`PreparedLead`), from the catalogs the capture
/// writer's store keeps.
#[derive(Clone)]
pub struct ArrivalPreparer {
    catalogs: Arc<CatalogCache>,
}

impl ArrivalPreparer {
    /// `command`, with a new lead decided if its organization's catalog is kept; unchanged
    /// otherwise (the batch reads the catalog and decides).
    pub fn prepare(&self, command: CaptureCommand) -> CaptureCommand {
        let CaptureCommand::CreateLead(new) = command else {
            return command;
        };
        let Some(catalog) = self.catalogs.latest(&new.org) else {
            return CaptureCommand::CreateLead(new);
        };
        let now = now_ms();
        let arrived = decide_arrival(&catalog, &new, now)
            .map_err(StoreError::from)
            .and_then(|decided| Arrived::of(&new, decided, now));
        match arrived {
            Ok(arrived) => CaptureCommand::Prepared(Box::new(PreparedLead {
                new: *new,
                catalog,
                now,
                arrived: std::sync::Mutex::new(Some(arrived)),
            })),
            // The batch decides again and reports what is wrong.
            Err(_) => CaptureCommand::CreateLead(new),
        }
    }
}

impl Store {
    /// Decides new leads before their batches from this store's kept catalogs.
    pub fn arrival_preparer(&self) -> ArrivalPreparer {
        ArrivalPreparer {
            catalogs: self.catalogs.clone(),
        }
    }
}

pub(super) fn json_text<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("serialize: {e}")))
}

pub(super) fn from_json<T: for<'de> Deserialize<'de>>(
    text: &str,
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// Retries come within minutes; a day is ample, and keeps the table from growing forever.
pub const IDEMPOTENCY_KEY_TTL_MS: i64 = 24 * 3600 * 1000;

impl Store {
    /// Forgets idempotency keys older than `IDEMPOTENCY_KEY_TTL_MS` at `now_ms` (the sweep
    /// passes the clock; tests pass a later time); returns how many.
    pub async fn forget_old_idempotency_keys(&self, now_ms: i64) -> Result<u64, StoreError> {
        self.forget_idempotency_keys_before(now_ms - IDEMPOTENCY_KEY_TTL_MS)
            .await
    }

    /// Forgets idempotency keys created before `cutoff_ms`; returns how many.
    pub async fn forget_idempotency_keys_before(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(cutoff_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Applies a batch of capture commands in one transaction; each gets its own answer.
    /// An `Err` means the batch as a whole failed (nothing was written). The commands are
    /// copied, so a prepared lead among them is decided again (see `apply_capture_batch`).
    pub async fn apply_capture(
        &self,
        commands: &[CaptureCommand],
    ) -> Result<Vec<CaptureResult>, StoreError> {
        self.apply_capture_batch(Arc::from(commands)).await
    }

    /// `apply_capture` for a batch shared with the caller (the capture writer keeps it to
    /// retry command by command if the batch fails). On SQLite the whole transaction runs on
    /// the native connection's thread, statement after statement without a hop between
    /// threads (see `exec`); on PostgreSQL through sqlx.
    pub async fn apply_capture_batch(
        &self,
        commands: Arc<[CaptureCommand]>,
    ) -> Result<Vec<CaptureResult>, StoreError> {
        match self.backend {
            Backend::Sqlite => {
                let catalogs = self.catalogs.clone();
                self.native_batch("capture", async move |parts, now| {
                    capture_batch(parts, &catalogs, &commands, now).await
                })
                .await
            }
            Backend::Postgres => {
                let now = now_ms();
                let mut tx = self.begin_write().await?;
                let results =
                    capture_batch(&mut tx.parts(), &self.catalogs, &commands, now).await?;
                tx.commit().await?;
                Ok(results)
            }
        }
    }
}

/// One batch of captures in one transaction: reads for the whole batch, each command in order,
/// then the new leads' rows.
async fn capture_batch<E: Exec>(
    w: &mut TxParts<'_, E>,
    catalogs: &CatalogCache,
    commands: &[CaptureCommand],
    now: i64,
) -> Result<Vec<CaptureResult>, StoreError> {
    let reads = BatchReads::load(w, catalogs, commands, now).await?;
    let mut pending = PendingRows::default();
    let mut results = Vec::with_capacity(commands.len());
    for command in commands {
        let result = match command {
            CaptureCommand::CreateLead(new) => {
                create_lead(w, &reads, new, None, &mut pending, now).await?
            }
            CaptureCommand::Prepared(prepared) => {
                create_lead(w, &reads, &prepared.new, Some(prepared), &mut pending, now).await?
            }
            CaptureCommand::Step(update) => apply_step(w, update, now).await?,
        };
        results.push(result);
    }
    pending.flush(w, now).await?;
    Ok(results)
}

/// What a batch's new leads read, read for the whole batch at its start: each organization's
/// catalog once (from the cache when its version says it is current), and the visits of every
/// visitor of an organization in one statement. Visits are written by the visit buffer, never
/// by a capture batch, so reading them first sees what reading them lead by lead would.
struct BatchReads {
    catalogs: HashMap<OrgId, Arc<Catalog>>,
    visits: HashMap<OrgId, HashMap<String, Vec<VisitTouch>>>,
}

impl BatchReads {
    async fn load<E: Exec>(
        w: &mut TxParts<'_, E>,
        catalogs: &CatalogCache,
        commands: &[CaptureCommand],
        now: i64,
    ) -> Result<Self, StoreError> {
        let mut visitors: HashMap<&OrgId, Vec<&str>> = HashMap::new();
        for command in commands {
            if let Some(new) = command.new_lead() {
                let of_org = visitors.entry(&new.org).or_default();
                if let Some(visitor) = new.arrival.visitor_id.as_deref()
                    && !of_org.contains(&visitor)
                {
                    of_org.push(visitor);
                }
            }
        }
        let mut reads = Self {
            catalogs: HashMap::with_capacity(visitors.len()),
            visits: HashMap::with_capacity(visitors.len()),
        };
        let lookback = CreditSettings::MAX_LOOKBACK_MS;
        for (org, visitors) in visitors {
            let catalog = catalogs.get(&mut w.db, w.rollups, org).await?;
            reads.catalogs.insert(org.clone(), catalog);
            if !visitors.is_empty() {
                let visits =
                    visitors_touches(&mut w.db, org, &visitors, now - lookback, now).await?;
                reads.visits.insert(org.clone(), visits);
            }
        }
        Ok(reads)
    }

    fn catalog(&self, org: &OrgId) -> Result<&Arc<Catalog>, StoreError> {
        self.catalogs
            .get(org)
            .ok_or_else(|| StoreError::Corrupt("catalog not read for the batch".into()))
    }

    /// The visitor's visits in the longest lookback an organization can choose.
    fn visits(&self, org: &OrgId, visitor: Option<&str>) -> &[VisitTouch] {
        visitor
            .and_then(|v| self.visits.get(org)?.get(v))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// Looks up a stored answer for a retried request; `Some(Err)` when the key was reused.
pub(super) async fn replay<T: for<'de> Deserialize<'de>, E: Exec>(
    db: &mut E,
    org: &OrgId,
    idempotency: Option<&Idempotency>,
) -> Result<Option<Result<T, CaptureRefusal>>, StoreError> {
    let Some(idem) = idempotency else {
        return Ok(None);
    };
    let rows = db
        .rows(
            "SELECT request_hash, response FROM idempotency_keys WHERE org_id = $1 AND key = $2",
            vec![org.as_str().into(), idem.key.as_str().into()],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    if row.text(0)? != idem.request_hash {
        return Ok(Some(Err(CaptureRefusal::IdempotencyKeyReused)));
    }
    Ok(Some(Ok(from_json(&row.text(1)?, "idempotent response")?)))
}

pub(super) async fn remember<E: Exec>(
    db: &mut E,
    org: &OrgId,
    idempotency: Option<&Idempotency>,
    response: &impl Serialize,
    now: i64,
) -> Result<(), StoreError> {
    if let Some(idem) = idempotency {
        db.exec(
            "INSERT INTO idempotency_keys (org_id, key, request_hash, status, response, created_at) \
             VALUES ($1, $2, $3, 200, $4, $5)",
            vec![
                org.as_str().into(),
                idem.key.as_str().into(),
                idem.request_hash.as_str().into(),
                json_text(response)?.into(),
                now.into(),
            ],
        )
        .await?;
    }
    Ok(())
}

/// New leads of a batch, written with one multi-row INSERT per table when the batch ends.
#[derive(Default)]
struct PendingRows {
    leads: Vec<LeadRow>,
    events: Vec<EventRow>,
    /// Idempotency keys answered in this batch, so a duplicate inside the batch is a replay.
    answered: HashMap<(OrgId, String), (String, String)>,
}

struct LeadRow {
    id: String,
    org: OrgId,
    token_digest: String,
    widget_version: i64,
    widget_name: String,
    source_code: i64,
    source_name: String,
    source_category: &'static str,
    derived_channel: Option<&'static str>,
    first_touch_widget_version: Option<i64>,
    first_touch_source_code: Option<i64>,
    first_touch: Option<String>,
    raw_params: String,
    address: String,
    attribution: String,
    attribution_note: Option<&'static str>,
    record_source: &'static str,
    visitor_id: Option<String>,
    touches: String,
    /// When it was decided (also its `updated_at`).
    created_at: i64,
}

struct EventRow {
    id: String,
    org: OrgId,
    event_type: &'static str,
    lead_id: String,
    payload: String,
    created_at: i64,
}

impl PendingRows {
    async fn flush<E: Exec>(self, w: &mut TxParts<'_, E>, now: i64) -> Result<(), StoreError> {
        const LEAD_COLUMNS: &[&str] = &[
            "id",
            "org_id",
            "capture_token_digest",
            "status",
            "step",
            "widget_version",
            "widget_name",
            "source_code",
            "source_name",
            "source_category",
            "derived_channel",
            "first_touch_widget_version",
            "first_touch_source_code",
            "first_touch",
            "raw_params",
            "address",
            "attribution",
            "attribution_note",
            "record_source",
            "visitor_id",
            "touches",
            "event_sequence",
            "created_at",
            "updated_at",
        ];
        let leads = self
            .leads
            .into_iter()
            .map(|r| {
                vec![
                    r.id.into(),
                    r.org.as_str().into(),
                    r.token_digest.into(),
                    LeadStatus::AddressInfoProvided.id().into(),
                    1_i64.into(),
                    r.widget_version.into(),
                    r.widget_name.into(),
                    r.source_code.into(),
                    r.source_name.into(),
                    r.source_category.into(),
                    r.derived_channel.into(),
                    r.first_touch_widget_version.into(),
                    r.first_touch_source_code.into(),
                    r.first_touch.into(),
                    r.raw_params.into(),
                    r.address.into(),
                    r.attribution.into(),
                    r.attribution_note.into(),
                    r.record_source.into(),
                    r.visitor_id.into(),
                    r.touches.into(),
                    1_i64.into(),
                    r.created_at.into(),
                    r.created_at.into(),
                ]
            })
            .collect();
        const EVENT_COLUMNS: &[&str] = &[
            "id",
            "org_id",
            "event_type",
            "lead_id",
            "sequence",
            "payload",
            "created_at",
            "fanned_out",
        ];
        let events = self
            .events
            .iter()
            .map(|e| {
                vec![
                    e.id.as_str().into(),
                    e.org.as_str().into(),
                    e.event_type.into(),
                    e.lead_id.as_str().into(),
                    1_i64.into(),
                    e.payload.as_str().into(),
                    e.created_at.into(),
                    1_i64.into(),
                ]
            })
            .collect();
        // Fanned out to the subscribed endpoints when the batch commits.
        w.outbox
            .extend(self.events.into_iter().map(|e| OutboxEvent {
                id: e.id,
                org: e.org.as_str().to_owned(),
                event_type: e.event_type.to_owned(),
                lead_id: Some(e.lead_id),
                sequence: Some(1),
                payload: e.payload,
            }));
        const KEY_COLUMNS: &[&str] = &[
            "org_id",
            "key",
            "request_hash",
            "status",
            "response",
            "created_at",
        ];
        let keys = self
            .answered
            .into_iter()
            .map(|((org, key), (hash, response))| {
                vec![
                    org.as_str().into(),
                    key.into(),
                    hash.into(),
                    200_i64.into(),
                    response.into(),
                    now.into(),
                ]
            })
            .collect();
        let table = |table, columns, rows| Rows {
            table,
            columns,
            rows,
        };
        insert_together(
            &mut w.db,
            vec![
                table("leads", LEAD_COLUMNS, leads),
                table("events", EVENT_COLUMNS, events),
                table("idempotency_keys", KEY_COLUMNS, keys),
            ],
        )
        .await
    }
}

async fn create_lead<E: Exec>(
    w: &mut TxParts<'_, E>,
    reads: &BatchReads,
    new: &NewLead,
    prepared: Option<&PreparedLead>,
    pending: &mut PendingRows,
    now: i64,
) -> Result<CaptureResult, StoreError> {
    if let Some(idem) = &new.idempotency
        && let Some((hash, response)) = pending.answered.get(&(new.org.clone(), idem.key.clone()))
    {
        if *hash != idem.request_hash {
            return Ok(Err(CaptureRefusal::IdempotencyKeyReused));
        }
        let mut reply: LeadCreated = from_json(response, "idempotent response")?;
        let (token, digest) = new_capture_token();
        if let Some(row) = pending
            .leads
            .iter_mut()
            .find(|r| r.id == reply.lead_id.as_str())
        {
            row.token_digest = digest;
        }
        reply.capture_token = token;
        return Ok(Ok(CaptureReply::Created(reply)));
    }
    if let Some(previous) =
        replay::<LeadCreated, _>(&mut w.db, &new.org, new.idempotency.as_ref()).await?
    {
        let mut reply = match previous {
            Ok(reply) => reply,
            Err(refused) => return Ok(Err(refused)),
        };
        // The stored answer keeps no token (a secret in plain text for a day): the retry gets
        // a fresh one, which replaces the first.
        let (token, digest) = new_capture_token();
        w.db.exec(
            "UPDATE leads SET capture_token_digest = $1 WHERE org_id = $2 AND id = $3",
            vec![
                digest.into(),
                new.org.as_str().into(),
                reply.lead_id.as_str().into(),
            ],
        )
        .await?;
        reply.capture_token = token;
        return Ok(Ok(CaptureReply::Created(reply)));
    }
    let catalog = reads.catalog(&new.org)?;
    let arrived = match prepared.and_then(|p| p.take_if_decided_by(catalog)) {
        Some(arrived) => arrived,
        None => {
            let at = prepared.map_or(now, |p| p.now);
            Arrived::of(new, decide_arrival(catalog, new, at)?, at)?
        }
    };
    let arrived =
        arrived.with_touches(reads.visits(&new.org, new.arrival.visitor_id.as_deref()))?;
    w.rollups
        .roll_lead(&mut w.db, &arrived.facts, Delta::one())
        .await?;
    w.rollups
        .roll(
            &mut w.db,
            new.org.as_str(),
            arrived.row.created_at,
            Kind::First,
            arrived.first_touch,
            None,
        )
        .await?;
    pending.leads.push(arrived.row);
    pending.events.push(arrived.event);
    let reply = arrived.reply;
    if let Some(idem) = &new.idempotency {
        let kept = LeadCreated {
            capture_token: String::new(),
            ..reply.clone()
        };
        pending.answered.insert(
            (new.org.clone(), idem.key.clone()),
            (idem.request_hash.clone(), json_text(&kept)?),
        );
    }
    Ok(Ok(CaptureReply::Created(reply)))
}

/// A new lead's decision (`decide_arrival`) as the batch persists it: its row, its first
/// event's row, what it counts in the rollups; its touches once its visits are read
/// (`with_touches`).
struct Arrived {
    row: LeadRow,
    event: EventRow,
    facts: LeadFacts,
    /// The (widget, source) of the first touch, counted under first-touch attribution.
    first_touch: (i64, i64),
    /// The arrival as a touch, the last of the lead's touches.
    point: TouchPoint,
    reply: LeadCreated,
}

impl Arrived {
    /// The lead's touches gathered from its visitor's visits, in its row and its facts.
    fn with_touches(mut self, visits: &[VisitTouch]) -> Result<Self, StoreError> {
        let touches = lead_touches(&self.point, visits);
        self.row.touches = json_text(&touches)?;
        self.facts = self.facts.journey(&self.row.id, touches);
        Ok(self)
    }

    fn of(new: &NewLead, decided: ArrivalDecision, now: i64) -> Result<Self, StoreError> {
        let ArrivalDecision {
            credited,
            derived,
            attribution,
            raw_params,
            point,
            first_touch,
            token_digest,
            address_preview,
            reply,
        } = decided;
        let CreditedSnapshot {
            widget,
            source,
            note,
        } = credited;
        let lead_id = reply.lead_id.to_string();
        let facts = LeadFacts::arrival(
            &new.org,
            now,
            i64::from(widget.version.get()),
            i64::from(source.code.get()),
            source.category.id(),
            derived.map(DerivedChannel::id),
            &source.name,
        )
        .journey(&lead_id, Vec::new());
        // The first touch's own columns, only when there was one.
        let first = attribution
            .first_touch
            .is_some()
            .then(|| (i64::from(first_touch.0), i64::from(first_touch.1)));
        let event = EventRow {
            id: prefixed_id("evt_"),
            org: new.org.clone(),
            event_type: EventType::LeadAddressPreview.id(),
            lead_id: lead_id.clone(),
            payload: address_preview,
            created_at: now,
        };
        let row = LeadRow {
            id: lead_id,
            org: new.org.clone(),
            token_digest,
            widget_version: i64::from(widget.version.get()),
            widget_name: widget.name,
            source_code: i64::from(source.code.get()),
            source_name: source.name,
            source_category: source.category.id(),
            derived_channel: derived.map(DerivedChannel::id),
            first_touch_widget_version: first.map(|(widget, _)| widget),
            first_touch_source_code: first.map(|(_, source)| source),
            first_touch: new.first_touch.as_ref().map(json_text).transpose()?,
            raw_params,
            address: json_text(&new.address)?,
            attribution: json_text(&attribution)?,
            attribution_note: note.map(AttributionNote::id),
            record_source: new.record_source.id(),
            visitor_id: new.arrival.visitor_id.clone(),
            touches: String::new(),
            created_at: now,
        };
        Ok(Self {
            row,
            event,
            facts,
            first_touch: (i64::from(first_touch.0), i64::from(first_touch.1)),
            point,
            reply,
        })
    }
}

/// A step: the lead's row locked and read, a retry answered from its key, the decision made by
/// `decide_step` from the lead and the request, then persisted and counted.
async fn apply_step<E: Exec>(
    w: &mut TxParts<'_, E>,
    update: &StepUpdate,
    now: i64,
) -> Result<CaptureResult, StoreError> {
    // A no-op UPDATE takes the row lock on PostgreSQL (SQLite's writer lock is already held),
    // so a concurrent step and the enrichment write-back see each other's committed state.
    let rows =
        w.db.rows(
            &format!(
                "UPDATE leads SET updated_at = updated_at WHERE id = $1 \
                 RETURNING capture_token_digest, status, project, personal, widget_name, \
                 {LEAD_FACTS}"
            ),
            vec![update.lead_id.as_str().into()],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(Err(CaptureRefusal::LeadNotFound));
    };
    let digest = row.text_of("capture_token_digest")?;
    if !crate::domain::keys::tokens_match(&api_key_digest(&update.capture_token), &digest) {
        return Ok(Err(CaptureRefusal::BadToken));
    }
    let org = OrgId::from_stored(row.text_of("org_id")?);
    if let Some(previous) =
        replay::<StepRecorded, _>(&mut w.db, &org, update.idempotency.as_ref()).await?
    {
        return Ok(previous.map(CaptureReply::Step));
    }
    let lead = stepped_lead(row, &update.lead_id)?;
    let question = match (&update.heard_about, &update.step) {
        (Some(_), Step::PersonalInfo(_)) => Some(self_report_of(&mut w.db, &update.lead_id).await?),
        _ => None,
    };
    let heard_about = update.heard_about.as_ref().zip(question.as_ref());
    let decided = match decide_step(&lead, &update.step, heard_about) {
        Ok(decided) => decided,
        Err(StepBlocked::Refused(refusal)) => return Ok(Err(refusal)),
        Err(StepBlocked::Inconsistent(what)) => return Err(StoreError::Corrupt(what.into())),
    };
    write_step(&mut w.db, &lead.id, &decided, now).await?;
    if let Some(emitted) = &decided.event {
        next_lead_event(
            w,
            &org,
            lead.id.as_str(),
            emitted.event_type,
            &emitted.payload,
            now,
        )
        .await?;
    }
    // The step moves the lead's report counters in the same transaction.
    let facts = LeadFacts::from_row(row)?;
    w.rollups
        .roll_lead(
            &mut w.db,
            &facts,
            Delta::step(i64::from(decided.status.step())),
        )
        .await?;
    remember(
        &mut w.db,
        &org,
        update.idempotency.as_ref(),
        &decided.reply,
        now,
    )
    .await?;
    Ok(Ok(CaptureReply::Step(decided.reply)))
}

/// The lead as a step finds it, from its locked row.
fn stepped_lead(row: &impl Named, id: &LeadId) -> Result<SteppedLead, StoreError> {
    Ok(SteppedLead {
        id: id.clone(),
        status: LeadStatus::from_id(&row.text_of("status")?)
            .ok_or_else(|| StoreError::Corrupt("lead status".into()))?,
        project: row.named_json("project")?,
        personal: row.named_json("personal")?,
        enriched: row.text_of("enrichment_state")? == "done",
        tracking: tracking_from_row(row)?,
    })
}

/// Persists what `decide_step` decided on the lead's row.
async fn write_step<E: Exec>(
    db: &mut E,
    lead: &LeadId,
    decided: &StepDecision<'_>,
    now: i64,
) -> Result<(), StoreError> {
    let (id, status, step) = (
        Val::from(lead.as_str()),
        Val::from(decided.status.id()),
        Val::from(i64::from(decided.status.step())),
    );
    match &decided.write {
        StepWrite::Project(project) => db.exec(
            "UPDATE leads SET project = $2, status = $3, step = $4, updated_at = $5 WHERE id = $1",
            vec![id, json_text(project)?.into(), status, step, now.into()],
        ),
        StepWrite::Personal {
            personal,
            self_reported,
        } => db.exec(
            "UPDATE leads SET personal = $2, status = $3, step = $4, updated_at = $5, \
             owner_occupied = $6, self_reported = $7, \
             enrichment_state = 'pending', enrichment_lease_until = 0 WHERE id = $1",
            vec![
                id,
                json_text(personal)?.into(),
                status,
                step,
                now.into(),
                i64::from(personal.owner_occupied).into(),
                self_reported.as_ref().map(json_text).transpose()?.into(),
            ],
        ),
        StepWrite::Contact(contact) => db.exec(
            "UPDATE leads SET contact = $2, status = $3, step = $4, updated_at = $5 WHERE id = $1",
            vec![id, json_text(contact)?.into(), status, step, now.into()],
        ),
    }
    .await?;
    Ok(())
}

/// The "How did you hear about us?" setting of the widget a lead arrived on.
async fn self_report_of<E: Exec>(
    db: &mut E,
    lead_id: &LeadId,
) -> Result<SelfReportSetting, StoreError> {
    let rows = db
        .rows(
            "SELECT w.self_report FROM leads l JOIN widgets w ON w.org_id = l.org_id \
             AND w.version = l.widget_version WHERE l.id = $1",
            vec![lead_id.as_str().into()],
        )
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| StoreError::Corrupt("the lead's widget is gone".into()))?;
    match row.opt_text(0)? {
        Some(text) => from_json(&text, "self_report"),
        None => Ok(SelfReportSetting::default()),
    }
}

pub(super) fn tracking_from_row(row: &impl Named) -> Result<SourceTracking, StoreError> {
    let version = super::to_u32(row.int_of("widget_version")?, "widget version")?;
    let code = super::to_u32(row.int_of("source_code")?, "source code")?;
    Ok(SourceTracking {
        widget_version: WidgetVersion::new(version)
            .ok_or_else(|| StoreError::Corrupt("widget version".into()))?
            .to_string(),
        widget_name: row.text_of("widget_name")?,
        source_code: SourceCode::new(code)
            .ok_or_else(|| StoreError::Corrupt("source code".into()))?
            .to_string(),
        source_label: row.text_of("source_name")?,
    })
}

/// Every lead event after the first: it takes the lead's next sequence number (gap-free),
/// and carries the lead's context (attribution, record source, self-reported source,
/// correction) beside the payload's own fields, read from the lead in the same statement.
pub(super) async fn emit_next(
    tx: &mut WriteTx,
    org: &OrgId,
    lead_id: &str,
    event_type: EventType,
    payload: &(impl Serialize + Sync),
    now: i64,
) -> Result<(), StoreError> {
    next_lead_event(&mut tx.parts(), org, lead_id, event_type, payload, now).await
}

/// `emit_next` through any connection.
async fn next_lead_event<E: Exec>(
    w: &mut TxParts<'_, E>,
    org: &OrgId,
    lead_id: &str,
    event_type: EventType,
    payload: &(impl Serialize + Sync),
    now: i64,
) -> Result<(), StoreError> {
    let rows =
        w.db.rows(
            "UPDATE leads SET event_sequence = event_sequence + 1 WHERE id = $1 \
             RETURNING event_sequence, widget_version, source_code, attribution, record_source, \
             self_reported, corrected_source",
            vec![lead_id.into()],
        )
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| StoreError::Corrupt("the lead of an event is gone".into()))?;
    let sequence = row.int_of("event_sequence")?;
    let context = StoredContext::from_row(row)?;
    let sent = event::with_lead_context(payload, &context.borrowed());
    write_lead_event(w, org, event_type, lead_id, sequence, sent, now).await
}

/// A lead's context as stored (see `event::LeadContext`).
pub(super) struct StoredContext {
    pub attribution: Attribution,
    pub record_source: RecordSource,
    pub self_reported: Option<SelfReported>,
    pub corrected: Option<CorrectedSource>,
}

impl StoredContext {
    /// From a row with `widget_version`, `source_code`, `attribution`, `record_source`,
    /// `self_reported` and `corrected_source`. A lead stored before attribution detail was
    /// kept gets the part its snapshot knows.
    pub(super) fn from_row(row: &impl Named) -> Result<Self, StoreError> {
        let attribution = match row.named_text("attribution")? {
            Some(text) => from_json(&text, "attribution")?,
            None => {
                let version = super::to_u32(row.int_of("widget_version")?, "widget version")?;
                let code = super::to_u32(row.int_of("source_code")?, "source code")?;
                Attribution {
                    last_touch: Touch {
                        widget_version: WidgetVersion::new(version)
                            .map(|w| w.to_string())
                            .unwrap_or_default(),
                        source_code: SourceCode::new(code)
                            .map(|c| c.to_string())
                            .unwrap_or_default(),
                        ..Touch::default()
                    },
                    first_touch: None,
                }
            }
        };
        Ok(Self {
            attribution,
            record_source: RecordSource::from_id(&row.text_of("record_source")?)
                .ok_or_else(|| StoreError::Corrupt("record source".into()))?,
            self_reported: row.named_json("self_reported")?,
            corrected: row.named_json("corrected_source")?,
        })
    }

    pub(super) fn borrowed(&self) -> LeadContext<'_> {
        LeadContext {
            attribution: &self.attribution,
            record_source: self.record_source,
            self_reported: self.self_reported.as_ref(),
            corrected: self.corrected.as_ref(),
        }
    }
}
