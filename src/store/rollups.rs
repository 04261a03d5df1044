//! Report rollups: counters per organization, local day (of the organization's time zone),
//! widget, source and what else a report groups by, kept in the same transaction as every
//! write that moves them (a lead, a step, an enrichment, a visit, a correction). Reports over
//! whole local days read these few rows instead of every lead; a change of time zone, a
//! backdating, or `leadtrail rollups rebuild` recomputes an organization's rows from the raw
//! ones.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::Row;

use super::bulk::insert_values;
use super::dispatch::Subscriber;
use super::exec::{Cells, Exec, Named};
use super::{Backend, Store, StoreError, WriteTx};
use crate::domain::attribution::DerivedChannel;
use crate::domain::ids::OrgId;
use crate::domain::multi_touch::{CreditSettings, Model, TouchKey, TouchPoint, apportion, credit};
use crate::domain::time_zone::{DAY_MS, OrgTimeZone};

/// What a rollup row counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// Page views, by the source they came through (and the derived channel of `SRC-01`).
    Visit,
    /// Leads by the source and channel category they are credited with (last touch).
    Lead,
    /// Leads by their first touch.
    First,
    /// Leads' credit under a multi-touch model, in millionths of a lead (value counters in
    /// minor units, apportioned with the same weights), by touch source and derived channel.
    Model(Model),
}

impl Kind {
    pub(crate) fn id(self) -> &'static str {
        match self {
            Self::Visit => "visit",
            Self::Lead => "lead",
            Self::First => "first",
            Self::Model(model) => model.id(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    pub org: String,
    pub day: i64,
    pub kind: Kind,
    pub widget: i64,
    pub source: i64,
    /// Lead rows: the credited channel category; otherwise empty.
    pub category: String,
    /// `SRC-01` rows: the derived channel; otherwise empty.
    pub derived: String,
    /// Lead rows: the source's name when the lead arrived (or was corrected to it).
    pub name: String,
}

/// Changes to a row's counters; negative when a correction moves a lead away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Delta {
    pub n: i64,
    pub project: i64,
    pub personal: i64,
    pub contact: i64,
    pub enriched: i64,
    pub score: i64,
    pub pipeline: i64,
    pub corrected: i64,
    pub won: i64,
    pub revenue: i64,
}

impl Delta {
    pub(crate) fn one() -> Self {
        Self {
            n: 1,
            ..Self::default()
        }
    }

    pub(crate) fn add(&mut self, other: Delta) {
        self.n += other.n;
        self.project += other.project;
        self.personal += other.personal;
        self.contact += other.contact;
        self.enriched += other.enriched;
        self.score += other.score;
        self.pipeline += other.pipeline;
        self.corrected += other.corrected;
        self.won += other.won;
        self.revenue += other.revenue;
    }

    pub(crate) fn negated(self) -> Self {
        Self {
            n: -self.n,
            project: -self.project,
            personal: -self.personal,
            contact: -self.contact,
            enriched: -self.enriched,
            score: -self.score,
            pipeline: -self.pipeline,
            corrected: -self.corrected,
            won: -self.won,
            revenue: -self.revenue,
        }
    }

    /// The delta as each touch's share: counts scaled by the touch's units (so a whole lead
    /// becomes `UNIT`), amounts apportioned so the shares sum to the amount exactly.
    fn spread(self, units: &[i64]) -> Vec<Delta> {
        let score = apportion(self.score, units);
        let pipeline = apportion(self.pipeline, units);
        let revenue = apportion(self.revenue, units);
        units
            .iter()
            .enumerate()
            .map(|(i, u)| Delta {
                n: self.n * u,
                project: self.project * u,
                personal: self.personal * u,
                contact: self.contact * u,
                enriched: self.enriched * u,
                score: score[i],
                pipeline: pipeline[i],
                corrected: self.corrected * u,
                won: self.won * u,
                revenue: revenue[i],
            })
            .collect()
    }

    /// What reaching `step` adds.
    pub(crate) fn step(step: i64) -> Self {
        Self {
            project: i64::from(step == 2),
            personal: i64::from(step == 3),
            contact: i64::from(step == 4),
            ..Self::default()
        }
    }
}

/// A lead's columns that decide its rollup row and its counters.
pub(crate) const LEAD_FACTS: &str = "id, org_id, created_at, widget_version, source_code, \
    source_name, source_category, derived_channel, corrected_source_code, \
    corrected_source_category, corrected_source, step, enrichment_state, score, pipeline_value, \
    first_touch_widget_version, first_touch_source_code, outcome, outcome_value, touches";

pub(crate) struct LeadFacts {
    id: String,
    org: String,
    created_at: i64,
    widget: i64,
    source: i64,
    category: String,
    derived: String,
    name: String,
    step: i64,
    enriched: bool,
    score: i64,
    pipeline: i64,
    corrected: bool,
    /// The (widget, source) of the first touch: the arrival's when there was none.
    first_touch: (i64, i64),
    /// Won or lost: the estimate is no longer pipeline.
    closed: bool,
    /// The job's value when won.
    won: Option<i64>,
    /// The touches gathered at arrival (the arrival last); empty for a lead without history.
    touches: Vec<TouchPoint>,
}

impl LeadFacts {
    /// A lead as it arrives: step 1, credited to its arrival source (its id and touches follow
    /// with `journey`).
    pub(crate) fn arrival(
        org: &OrgId,
        created_at: i64,
        widget: i64,
        source: i64,
        category: &str,
        derived: Option<&str>,
        name: &str,
    ) -> Self {
        Self {
            id: String::new(),
            org: org.as_str().to_owned(),
            created_at,
            widget,
            source,
            category: category.to_owned(),
            derived: derived.unwrap_or_default().to_owned(),
            name: name.to_owned(),
            step: 1,
            enriched: false,
            score: 0,
            pipeline: 0,
            corrected: false,
            first_touch: (widget, source),
            closed: false,
            won: None,
            touches: Vec::new(),
        }
    }

    /// The arriving lead's id and the touches gathered for it.
    pub(crate) fn journey(mut self, id: &str, touches: Vec<TouchPoint>) -> Self {
        self.id = id.to_owned();
        self.touches = touches;
        self
    }

    pub(crate) fn from_row(row: &impl Named) -> Result<Self, StoreError> {
        let corrected_code = row.named_int("corrected_source_code")?;
        let outcome = row.text_of("outcome")?;
        let value = row.named_int("outcome_value")?;
        let widget = row.int_of("widget_version")?;
        let arrival = row.int_of("source_code")?;
        let corrected_name = row
            .named_text("corrected_source")?
            .and_then(|json| serde_json::from_str::<serde_json::Value>(&json).ok())
            .and_then(|v| v["source_label"].as_str().map(str::to_owned));
        // Touches this code did not write (none, or unreadable) leave the arrival alone as the
        // lead's one touch rather than blocking its steps.
        let touches = row
            .named_text("touches")?
            .and_then(|json| serde_json::from_str::<Vec<TouchPoint>>(&json).ok())
            .unwrap_or_default();
        Ok(Self {
            id: row.text_of("id")?,
            org: row.text_of("org_id")?,
            created_at: row.int_of("created_at")?,
            widget,
            source: corrected_code.unwrap_or(arrival),
            category: match row.named_text("corrected_source_category")? {
                Some(c) => c,
                None => row.text_of("source_category")?,
            },
            derived: row.named_text("derived_channel")?.unwrap_or_default(),
            name: match corrected_name {
                Some(name) => name,
                None => row.text_of("source_name")?,
            },
            step: row.int_of("step")?,
            enriched: row.text_of("enrichment_state")? == "done",
            score: row.named_int("score")?.unwrap_or(0),
            pipeline: row.named_int("pipeline_value")?.unwrap_or(0),
            corrected: corrected_code.is_some(),
            first_touch: (
                row.named_int("first_touch_widget_version")?
                    .unwrap_or(widget),
                row.named_int("first_touch_source_code")?.unwrap_or(arrival),
            ),
            closed: matches!(outcome.as_str(), "won" | "lost"),
            won: (outcome == "won").then(|| value.unwrap_or(0)),
            touches,
        })
    }

    /// Where the lead stands in a recount's order.
    fn position(&self) -> (i64, &str) {
        (self.created_at, &self.id)
    }

    /// The touches the models credit: those kept on the lead within the organization's
    /// lookback, ending with the source the lead is credited with (a person's correction
    /// replaces the arrival).
    pub(crate) fn credited_touches(&self, settings: CreditSettings) -> Vec<TouchPoint> {
        let arrival = TouchPoint {
            at: self.created_at,
            key: TouchKey {
                widget: u32::try_from(self.widget).unwrap_or(0),
                source: u32::try_from(self.source).unwrap_or(0),
                channel: if self.source == 1 {
                    DerivedChannel::from_id(&self.derived)
                } else {
                    None
                },
            },
        };
        let from = self.created_at - settings.lookback_ms();
        let before = self.touches.len().saturating_sub(1);
        let mut out: Vec<TouchPoint> = self.touches[..before]
            .iter()
            // Touches were gathered up to the arrival; a lead whose time was moved back
            // (backdated) keeps its journey, within the lookback of its new time.
            .filter(|t| t.at >= from)
            .copied()
            .collect();
        match out.last() {
            Some(last) if last.key == arrival.key => {
                if let Some(last) = out.last_mut() {
                    last.at = arrival.at;
                }
            }
            _ => out.push(arrival),
        }
        out
    }

    /// What its enrichment adds to the lead's row (read after the enrichment is written).
    pub(crate) fn enrichment(&self) -> Delta {
        let whole = self.whole();
        Delta {
            enriched: whole.enriched,
            score: whole.score,
            pipeline: whole.pipeline,
            ..Delta::default()
        }
    }

    /// Everything the lead contributes to its row as it stands.
    pub(crate) fn whole(&self) -> Delta {
        Delta {
            n: 1,
            project: i64::from(self.step >= 2),
            personal: i64::from(self.step >= 3),
            contact: i64::from(self.step >= 4),
            enriched: i64::from(self.enriched),
            score: if self.enriched { self.score } else { 0 },
            pipeline: if self.enriched && !self.closed {
                self.pipeline
            } else {
                0
            },
            corrected: i64::from(self.corrected),
            won: i64::from(self.won.is_some()),
            revenue: self.won.unwrap_or(0),
        }
    }

    /// The lead's whole contribution split over its touch keys under a multi-touch `model`.
    pub(crate) fn credit_of(
        &self,
        model: Model,
        settings: CreditSettings,
    ) -> Vec<(TouchKey, Delta)> {
        self.spread_over_touches(model, self.whole(), settings)
    }

    fn spread_over_touches(
        &self,
        model: Model,
        delta: Delta,
        settings: CreditSettings,
    ) -> Vec<(TouchKey, Delta)> {
        let shares = credit(
            model,
            &self.credited_touches(settings),
            settings.half_life_ms(),
        );
        let units: Vec<i64> = shares.iter().map(|(_, u)| *u).collect();
        shares
            .into_iter()
            .map(|(key, _)| key)
            .zip(delta.spread(&units))
            .collect()
    }

    /// `delta` of the lead's own row, as the rows of its touch keys get it under each
    /// multi-touch model.
    fn model_rows(
        &self,
        delta: Delta,
        settings: CreditSettings,
        zone: &OrgTimeZone,
    ) -> Vec<(Key, Delta)> {
        let day = zone.day_of(self.created_at);
        let mut out = Vec::new();
        for model in Model::MULTI_TOUCH {
            for (key, part) in self.spread_over_touches(model, delta, settings) {
                out.push((
                    Key {
                        org: self.org.clone(),
                        day,
                        kind: Kind::Model(model),
                        widget: i64::from(key.widget),
                        source: i64::from(key.source),
                        category: String::new(),
                        derived: key.channel.map(|c| c.id().to_owned()).unwrap_or_default(),
                        name: String::new(),
                    },
                    part,
                ));
            }
        }
        out
    }
}

/// Rollup changes of one write transaction, added up and written when it commits.
#[derive(Default)]
pub(crate) struct Pending {
    rows: BTreeMap<Key, Delta>,
    /// Model rows, with the position of the lead they are for: a recount in progress counts
    /// leads past its cursor itself, so their changes are left out when the transaction ends.
    credits: Vec<((i64, String), Key, Delta)>,
    orgs: HashMap<String, (OrgTimeZone, CreditSettings)>,
    /// Each organization's catalog version as this transaction read it.
    catalog_versions: HashMap<String, i64>,
    /// Organizations whose rollup lock this transaction holds shared (PostgreSQL).
    locked: HashSet<String>,
    /// Recount cursors this transaction read under that lock.
    cursors: HashMap<String, RecountCursor>,
    /// Enabled endpoints of the organizations a capture batch read (see `catalog_version`).
    subscribers: HashMap<String, Vec<Subscriber>>,
}

/// What a capture batch reads of an organization, in one statement: its facts, catalog
/// version and recount cursor, and one row per enabled endpoint (or one row without).
const CAPTURE_FACTS: &str = "SELECT o.time_zone, o.credit_lookback_days, o.credit_half_life_days, \
     o.catalog_version, o.credit_recount_requested_at, o.credit_recount_at, \
     o.credit_recount_lead, e.id, e.events \
     FROM organizations o LEFT JOIN webhook_endpoints e ON e.org_id = o.id AND e.enabled = 1 \
     WHERE o.id = $1";

/// How far a recount of an organization's model rows has come: `None` when none is running;
/// `Some(None)` when nothing is counted yet; else the last lead counted.
type RecountCursor = Option<Option<(i64, String)>>;

impl Pending {
    /// The organization's time zone and credit settings, read once per transaction.
    async fn org_facts<E: Exec>(
        &mut self,
        db: &mut E,
        org: &str,
    ) -> Result<(OrgTimeZone, CreditSettings), StoreError> {
        if let Some(facts) = self.orgs.get(org) {
            return Ok(facts.clone());
        }
        Ok(self.read_org_facts(db, org).await?.0)
    }

    /// The version of the organization's catalog (its widgets and sources) this transaction
    /// sees, read with everything else a capture batch needs of the organization, in one
    /// statement: the time zone and credit settings, the recount cursor, the enabled endpoints
    /// its events fan out to. On PostgreSQL the organization's rollup lock is taken (shared)
    /// first, so the cursor is read under it as `flush` needs, and `flush` takes neither again:
    /// each of those was a round trip of its own, paid by every batch.
    pub(crate) async fn catalog_version<E: Exec>(
        &mut self,
        db: &mut E,
        org: &str,
    ) -> Result<i64, StoreError> {
        if let Some(version) = self.catalog_versions.get(org) {
            return Ok(*version);
        }
        self.lock_shared(db, org).await?;
        let rows = db.rows(CAPTURE_FACTS, vec![org.into()]).await?;
        let row = rows.first().ok_or(StoreError::NotFound)?;
        let (_, version) = self.keep_org_facts(org, row)?;
        self.cursors
            .insert(org.to_owned(), recount_cursor_of(row, 4)?);
        let subscribers = rows
            .iter()
            .filter_map(|r| Subscriber::from_cells(r, 7).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        self.subscribers.insert(org.to_owned(), subscribers);
        Ok(version)
    }

    /// The enabled endpoints of each organization whose catalog version this transaction
    /// read: its events' fan-out needs no read of its own.
    pub(super) fn subscribers(&self) -> &HashMap<String, Vec<Subscriber>> {
        &self.subscribers
    }

    /// Takes the organization's rollup lock shared, once per transaction (PostgreSQL).
    async fn lock_shared<E: Exec>(&mut self, db: &mut E, org: &str) -> Result<(), StoreError> {
        if !self.locked.contains(org) {
            rollup_lock(db, org, LockMode::Shared).await?;
            self.locked.insert(org.to_owned());
        }
        Ok(())
    }

    async fn read_org_facts<E: Exec>(
        &mut self,
        db: &mut E,
        org: &str,
    ) -> Result<((OrgTimeZone, CreditSettings), i64), StoreError> {
        let rows = db
            .rows(
                "SELECT time_zone, credit_lookback_days, credit_half_life_days, catalog_version \
                 FROM organizations WHERE id = $1",
                vec![org.into()],
            )
            .await?;
        self.keep_org_facts(org, rows.first().ok_or(StoreError::NotFound)?)
    }

    /// Keeps the time zone, credit settings and catalog version of a row that starts with them.
    fn keep_org_facts(
        &mut self,
        org: &str,
        row: &impl Cells,
    ) -> Result<((OrgTimeZone, CreditSettings), i64), StoreError> {
        let zone = OrgTimeZone::parse(&row.text(0)?).map_err(|e| StoreError::Corrupt(e.message))?;
        let settings = CreditSettings::new(row.int(1)?, row.int(2)?)
            .map_err(|e| StoreError::Corrupt(e.message))?;
        let version = row.int(3)?;
        self.orgs.insert(org.to_owned(), (zone.clone(), settings));
        self.catalog_versions.insert(org.to_owned(), version);
        Ok(((zone, settings), version))
    }

    async fn recount_cursor<E: Exec>(db: &mut E, org: &str) -> Result<RecountCursor, StoreError> {
        let rows = db
            .rows(
                "SELECT credit_recount_requested_at, credit_recount_at, credit_recount_lead \
                 FROM organizations WHERE id = $1",
                vec![org.into()],
            )
            .await?;
        recount_cursor_of(rows.first().ok_or(StoreError::NotFound)?, 0)
    }

    /// Counts one more of `kind` (a visit, a first touch) on the day of `at`.
    pub(crate) async fn roll<E: Exec>(
        &mut self,
        db: &mut E,
        org: &str,
        at: i64,
        kind: Kind,
        (widget, source): (i64, i64),
        derived: Option<&str>,
    ) -> Result<(), StoreError> {
        let day = self.org_facts(db, org).await?.0.day_of(at);
        let key = Key {
            org: org.to_owned(),
            day,
            kind,
            widget,
            source,
            category: String::new(),
            derived: derived.unwrap_or_default().to_owned(),
            name: String::new(),
        };
        self.rows.entry(key).or_default().add(Delta::one());
        Ok(())
    }

    /// Adds `delta` to the lead's (last-touch) row and its model rows.
    pub(crate) async fn roll_lead<E: Exec>(
        &mut self,
        db: &mut E,
        lead: &LeadFacts,
        delta: Delta,
    ) -> Result<(), StoreError> {
        let (zone, settings) = self.org_facts(db, &lead.org).await?;
        let key = Key {
            org: lead.org.clone(),
            day: zone.day_of(lead.created_at),
            kind: Kind::Lead,
            widget: lead.widget,
            source: lead.source,
            category: lead.category.clone(),
            derived: if lead.source == 1 {
                lead.derived.clone()
            } else {
                String::new()
            },
            name: lead.name.clone(),
        };
        self.rows.entry(key).or_default().add(delta);
        let (at, id) = lead.position();
        for (key, part) in lead.model_rows(delta, settings, &zone) {
            self.credits.push(((at, id.to_owned()), key, part));
        }
        Ok(())
    }

    async fn roll_first_touch<E: Exec>(
        &mut self,
        db: &mut E,
        lead: &LeadFacts,
        delta: Delta,
    ) -> Result<(), StoreError> {
        let day = self
            .org_facts(db, &lead.org)
            .await?
            .0
            .day_of(lead.created_at);
        let key = Key {
            org: lead.org.clone(),
            day,
            kind: Kind::First,
            widget: lead.first_touch.0,
            source: lead.first_touch.1,
            category: String::new(),
            derived: String::new(),
            name: String::new(),
        };
        self.rows.entry(key).or_default().add(delta);
        Ok(())
    }

    /// Writes the transaction's rollup changes (just before it commits).
    pub(crate) async fn flush<E: Exec>(&mut self, db: &mut E) -> Result<(), StoreError> {
        let mut rows = std::mem::take(&mut self.rows);
        let credits = std::mem::take(&mut self.credits);
        let mut orgs: Vec<String> = rows.keys().map(|k| k.org.clone()).collect();
        orgs.dedup();
        for org in &orgs {
            self.lock_shared(db, org).await?;
        }
        // Read under the lock (or kept from a read under it): a recount step commits before
        // this transaction or waits for it.
        for (position, key, delta) in credits {
            if !self.cursors.contains_key(&key.org) {
                let cursor = Self::recount_cursor(db, &key.org).await?;
                self.cursors.insert(key.org.clone(), cursor);
            }
            let counted = match self.cursors.get(&key.org) {
                Some(None) => true,
                Some(Some(Some((at, id)))) => {
                    (position.0, position.1.as_str()) <= (*at, id.as_str())
                }
                // Nothing counted yet: the recount's first step clears the model rows and
                // counts every lead itself.
                _ => false,
            };
            if counted {
                rows.entry(key).or_default().add(delta);
            }
        }
        write_rollups(db, rows, Writing::Changes).await
    }
}

/// The recount cursor in a row's columns `at..at + 3` (`credit_recount_requested_at`,
/// `credit_recount_at`, `credit_recount_lead`).
fn recount_cursor_of(row: &impl Cells, at: usize) -> Result<RecountCursor, StoreError> {
    if row.opt_int(at)?.is_none() {
        return Ok(None);
    }
    Ok(Some(row.opt_int(at + 1)?.zip(row.opt_text(at + 2)?)))
}

/// How a transaction's rollup changes reach the rollups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writing {
    /// A writer of changes, beside others (the rollup lock held shared). SQLite runs one writer
    /// at a time, which adds to the rows themselves. On PostgreSQL every capture of an
    /// organization's day changes the same few rows, so concurrent writers (several nodes)
    /// would queue on their row locks, commit after commit: each appends its changes to
    /// `rollup_deltas` instead, which `Store::fold_rollups` folds in later and reports read
    /// through `rollup_totals` meanwhile (migration 0016).
    Changes,
    /// A rebuild or a recount, alone (the rollup lock held exclusively): adds to the rows.
    Alone,
}

async fn write_rollups<E: Exec>(
    db: &mut E,
    rows: BTreeMap<Key, Delta>,
    writing: Writing,
) -> Result<(), StoreError> {
    let rows = rows
        .into_iter()
        .filter(|(_, delta)| *delta != Delta::default())
        .map(|(key, delta)| {
            vec![
                key.org.into(),
                key.day.into(),
                key.kind.id().into(),
                key.widget.into(),
                key.source.into(),
                key.category.into(),
                key.derived.into(),
                key.name.into(),
                delta.n.into(),
                delta.project.into(),
                delta.personal.into(),
                delta.contact.into(),
                delta.enriched.into(),
                delta.score.into(),
                delta.pipeline.into(),
                delta.corrected.into(),
                delta.won.into(),
                delta.revenue.into(),
            ]
        });
    if db.backend() == Backend::Postgres && writing == Writing::Changes {
        let columns: Vec<&str> = ROLLUP_COLUMNS.split(", ").collect();
        return insert_values(db, "rollup_deltas", &columns, rows.collect()).await;
    }
    let sql = format!(
        "INSERT INTO report_rollups ({ROLLUP_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
         {UPSERT}"
    );
    for params in rows {
        db.exec(&sql, params).await?;
    }
    Ok(())
}

/// On PostgreSQL, many nodes write rollups at once; a recount deletes and rebuilds an
/// organization's rows from what is committed, so a change committed in between would be
/// counted twice (or lost). Writers of changes hold the organization's rollup lock shared
/// and a recount holds it alone, both until their transaction ends. SQLite transactions
/// already run one at a time.
async fn rollup_lock<E: Exec>(db: &mut E, org: &str, mode: LockMode) -> Result<(), StoreError> {
    if db.backend() != Backend::Postgres {
        return Ok(());
    }
    let sql = match mode {
        LockMode::Shared => {
            "SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock_shared(hashtext($1))) AS l"
        }
        LockMode::Exclusive => {
            "SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock(hashtext($1))) AS l"
        }
    };
    db.rows(sql, vec![org.into()]).await?;
    Ok(())
}

/// The same for a `WriteTx`, whose pending rollups sit beside its connection.
impl WriteTx {
    async fn org_facts(&mut self, org: &str) -> Result<(OrgTimeZone, CreditSettings), StoreError> {
        let mut p = self.parts();
        p.rollups.org_facts(&mut p.db, org).await
    }

    /// The organization's time zone, read once per transaction.
    pub(crate) async fn zone(&mut self, org: &str) -> Result<OrgTimeZone, StoreError> {
        Ok(self.org_facts(org).await?.0)
    }

    async fn recount_cursor(&mut self, org: &str) -> Result<RecountCursor, StoreError> {
        Pending::recount_cursor(self, org).await
    }

    async fn rollup_lock(&mut self, org: &str, mode: LockMode) -> Result<(), StoreError> {
        rollup_lock(self, org, mode).await
    }

    /// For a rebuild or a recount, which hold the rollup lock alone.
    async fn write_rollups(&mut self, rows: BTreeMap<Key, Delta>) -> Result<(), StoreError> {
        write_rollups(self, rows, Writing::Alone).await
    }

    /// Adds `delta` to the lead's (last-touch) row.
    pub(crate) async fn roll_lead(
        &mut self,
        lead: &LeadFacts,
        delta: Delta,
    ) -> Result<(), StoreError> {
        let mut p = self.parts();
        p.rollups.roll_lead(&mut p.db, lead, delta).await
    }

    /// Moves a lead's whole contribution (last and first touch) from the day it was on to the
    /// day of `moved` (the same lead after its time changed).
    pub(crate) async fn move_lead(
        &mut self,
        was: &LeadFacts,
        moved: &LeadFacts,
    ) -> Result<(), StoreError> {
        let mut p = self.parts();
        p.rollups
            .roll_lead(&mut p.db, was, was.whole().negated())
            .await?;
        p.rollups.roll_lead(&mut p.db, moved, moved.whole()).await?;
        p.rollups
            .roll_first_touch(&mut p.db, was, Delta::one().negated())
            .await?;
        p.rollups
            .roll_first_touch(&mut p.db, moved, Delta::one())
            .await
    }

    /// Counts a lead that arrives whole (an import): every step, enrichment and outcome it
    /// has, under last touch, first touch and the models.
    pub(crate) async fn add_lead(&mut self, lead: &LeadFacts) -> Result<(), StoreError> {
        let mut p = self.parts();
        p.rollups.roll_lead(&mut p.db, lead, lead.whole()).await?;
        p.rollups
            .roll_first_touch(&mut p.db, lead, Delta::one())
            .await
    }

    /// Recomputes the organization's rollups from its raw rows, in `zone`'s days.
    pub(crate) async fn rebuild_rollups(
        &mut self,
        org: &OrgId,
        zone: &OrgTimeZone,
    ) -> Result<(), StoreError> {
        self.rollup_lock(org.as_str(), LockMode::Exclusive).await?;
        self.rollups.rows.retain(|k, _| k.org != org.as_str());
        self.rollups
            .credits
            .retain(|(_, k, _)| k.org != org.as_str());
        self.rollups.orgs.remove(org.as_str());
        let (_, settings) = self.org_facts(org.as_str()).await?;
        self.rollups
            .orgs
            .insert(org.as_str().to_owned(), (zone.clone(), settings));
        for table in ["report_rollups", "rollup_deltas"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE org_id = $1"
            )))
            .bind(org.as_str())
            .execute(&mut **self)
            .await?;
        }
        // Everything is counted anew here, model rows included: a recount in progress ends.
        sqlx::query(
            "UPDATE organizations SET credit_recount_requested_at = NULL, \
             credit_recount_at = NULL, credit_recount_lead = NULL, credit_recount_done = 0 \
             WHERE id = $1",
        )
        .bind(org.as_str())
        .execute(&mut **self)
        .await?;
        // Model rows of every lead, added up in memory (a few per local day, model, source
        // and channel) and written once.
        let mut rows: BTreeMap<Key, Delta> = BTreeMap::new();
        let mut after = None;
        loop {
            let (n, last) = self
                .count_model_rows(org, zone, settings, after, REBUILD_CHUNK, &mut rows)
                .await?;
            if n < REBUILD_CHUNK as usize {
                break;
            }
            after = last;
        }
        self.write_rollups(rows).await?;
        let mut bounds: Option<(i64, i64)> = None;
        for table in ["leads", "visits"] {
            let sql = format!(
                "SELECT MIN(created_at) AS a, MAX(created_at) AS b FROM {table} WHERE org_id = $1"
            );
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(org.as_str())
                .fetch_one(&mut **self)
                .await?;
            if let (Some(a), Some(b)) = (
                row.try_get::<Option<i64>, _>("a")?,
                row.try_get::<Option<i64>, _>("b")?,
            ) {
                bounds = Some(bounds.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
            }
        }
        let Some((first, last)) = bounds else {
            return Ok(());
        };
        let label = match self.backend {
            Backend::Sqlite => "json_extract(corrected_source, '$.source_label')",
            Backend::Postgres => "(corrected_source::json ->> 'source_label')",
        };
        for span in zone.offset_spans(first, last + 1) {
            let day = format!("((created_at + ({})) / {DAY_MS})", span.offset_ms);
            let credited = "COALESCE(corrected_source_code, source_code)";
            let statements = [
                format!(
                    "INSERT INTO report_rollups ({ROLLUP_COLUMNS}) \
                     SELECT org_id, {day}, 'lead', widget_version, {credited}, \
                     COALESCE(corrected_source_category, source_category), \
                     CASE WHEN {credited} = 1 THEN COALESCE(derived_channel, '') ELSE '' END, \
                     CASE WHEN corrected_source IS NULL THEN source_name ELSE {label} END, \
                     COUNT(*), \
                     SUM(CASE WHEN step >= 2 THEN 1 ELSE 0 END), \
                     SUM(CASE WHEN step >= 3 THEN 1 ELSE 0 END), \
                     SUM(CASE WHEN step >= 4 THEN 1 ELSE 0 END), \
                     SUM(CASE WHEN enrichment_state = 'done' THEN 1 ELSE 0 END), \
                     SUM(CASE WHEN enrichment_state = 'done' THEN COALESCE(score, 0) ELSE 0 END), \
                     SUM(CASE WHEN enrichment_state = 'done' AND outcome NOT IN ('won', 'lost') \
                         THEN COALESCE(pipeline_value, 0) ELSE 0 END), \
                     SUM(CASE WHEN corrected_source_code IS NULL THEN 0 ELSE 1 END), \
                     SUM(CASE WHEN outcome = 'won' THEN 1 ELSE 0 END), \
                     SUM(CASE WHEN outcome = 'won' THEN COALESCE(outcome_value, 0) ELSE 0 END) \
                     FROM leads WHERE org_id = $1 AND created_at >= $2 AND created_at < $3 \
                     GROUP BY org_id, {day}, widget_version, {credited}, \
                     COALESCE(corrected_source_category, source_category), \
                     CASE WHEN {credited} = 1 THEN COALESCE(derived_channel, '') ELSE '' END, \
                     CASE WHEN corrected_source IS NULL THEN source_name ELSE {label} END \
                     {UPSERT}"
                ),
                format!(
                    "INSERT INTO report_rollups ({ROLLUP_COLUMNS}) \
                     SELECT org_id, {day}, 'first', \
                     COALESCE(first_touch_widget_version, widget_version), \
                     COALESCE(first_touch_source_code, source_code), '', '', '', \
                     COUNT(*), 0, 0, 0, 0, 0, 0, 0, 0, 0 \
                     FROM leads WHERE org_id = $1 AND created_at >= $2 AND created_at < $3 \
                     GROUP BY org_id, {day}, COALESCE(first_touch_widget_version, widget_version), \
                     COALESCE(first_touch_source_code, source_code) {UPSERT}"
                ),
                format!(
                    "INSERT INTO report_rollups ({ROLLUP_COLUMNS}) \
                     SELECT org_id, {day}, 'visit', widget_version, source_code, '', \
                     CASE WHEN source_code = 1 THEN COALESCE(derived_channel, '') ELSE '' END, '', \
                     COUNT(*), 0, 0, 0, 0, 0, 0, 0, 0, 0 \
                     FROM visits WHERE org_id = $1 AND created_at >= $2 AND created_at < $3 \
                     GROUP BY org_id, {day}, widget_version, source_code, \
                     CASE WHEN source_code = 1 THEN COALESCE(derived_channel, '') ELSE '' END \
                     {UPSERT}"
                ),
            ];
            for sql in statements {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(org.as_str())
                    .bind(span.start_ms)
                    .bind(span.end_ms)
                    .execute(&mut **self)
                    .await?;
            }
        }
        Ok(())
    }

    /// Adds the model rows of up to `limit` leads after `after` in (created_at, id) order to
    /// `rows` (the caller holds the organization's rollup lock alone, and writes them);
    /// returns how many leads there were and the last of them.
    async fn count_model_rows(
        &mut self,
        org: &OrgId,
        zone: &OrgTimeZone,
        settings: CreditSettings,
        after: Option<(i64, String)>,
        limit: i64,
        rows: &mut BTreeMap<Key, Delta>,
    ) -> Result<(usize, Option<(i64, String)>), StoreError> {
        // A row-value bound, so each chunk is a range of the (org_id, created_at, id) index,
        // not a scan of the organization's leads.
        let leads = match after {
            None => {
                let sql = format!(
                    "SELECT {LEAD_FACTS} FROM leads WHERE org_id = $1 \
                     ORDER BY created_at, id LIMIT $2"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(org.as_str())
                    .bind(limit)
                    .fetch_all(&mut **self)
                    .await?
            }
            Some((at, id)) => {
                let sql = format!(
                    "SELECT {LEAD_FACTS} FROM leads WHERE org_id = $1 \
                     AND (created_at, id) > ($2, $3) ORDER BY created_at, id LIMIT $4"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(org.as_str())
                    .bind(at)
                    .bind(id)
                    .bind(limit)
                    .fetch_all(&mut **self)
                    .await?
            }
        };
        let mut last = None;
        for row in &leads {
            let lead = LeadFacts::from_row(row)?;
            for (key, delta) in lead.model_rows(lead.whole(), settings, zone) {
                rows.entry(key).or_default().add(delta);
            }
            last = Some((lead.created_at, lead.id));
        }
        Ok((leads.len(), last))
    }
}

/// Leads read at a time when model rows are counted.
const REBUILD_CHUNK: i64 = 5_000;

/// Where a recount of model rows stands, for the pages that show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecountProgress {
    /// Leads counted so far.
    pub done: u64,
    /// Leads of the organization.
    pub total: u64,
}

/// What one step of the recount did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecountStep {
    /// Counted this many leads of the organization; `finished` when its recount is done.
    Counted {
        org: OrgId,
        leads: usize,
        finished: bool,
    },
    /// No organization waits for a recount.
    Idle,
}

impl Store {
    /// Changes the lookback and half-life the models use; the organization's model rows are
    /// then recounted in the background (`recount_credit_step`). Unchanged settings change
    /// nothing.
    pub async fn update_credit_settings(
        &self,
        org: &OrgId,
        settings: CreditSettings,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        tx.rollup_lock(org.as_str(), LockMode::Exclusive).await?;
        let (_, current) = tx.org_facts(org.as_str()).await?;
        let retention: Option<i64> =
            sqlx::query_scalar("SELECT raw_data_retention_days FROM organizations WHERE id = $1")
                .bind(org.as_str())
                .fetch_one(&mut *tx)
                .await?;
        if let Some(days) = retention
            && i64::from(settings.lookback_days()) > days
        {
            // Touches are gathered from visits, whose visitor ids go after the retention.
            return Err(crate::domain::DomainError::new(
                "lookback_days",
                format!(
                    "the lookback cannot be longer than raw data is kept ({days} days; see the \
                     organization's raw_data_retention_days)"
                ),
            )
            .into());
        }
        if current != settings {
            sqlx::query(
                "UPDATE organizations SET credit_lookback_days = $2, credit_half_life_days = $3, \
                 credit_recount_requested_at = $4, credit_recount_at = NULL, \
                 credit_recount_lead = NULL, credit_recount_done = 0 WHERE id = $1",
            )
            .bind(org.as_str())
            .bind(i64::from(settings.lookback_days()))
            .bind(i64::from(settings.half_life_days()))
            .bind(super::now_ms())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    /// The organization's credit settings.
    pub async fn credit_settings(&self, org: &OrgId) -> Result<CreditSettings, StoreError> {
        let row = sqlx::query(
            "SELECT credit_lookback_days, credit_half_life_days FROM organizations WHERE id = $1",
        )
        .bind(org.as_str())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        CreditSettings::new(
            row.try_get("credit_lookback_days")?,
            row.try_get("credit_half_life_days")?,
        )
        .map_err(|e| StoreError::Corrupt(e.message))
    }

    /// How far the organization's recount has come; `None` when none is waiting or running.
    pub async fn credit_recount(&self, org: &OrgId) -> Result<Option<RecountProgress>, StoreError> {
        let row = sqlx::query(
            "SELECT credit_recount_requested_at, credit_recount_done FROM organizations \
             WHERE id = $1",
        )
        .bind(org.as_str())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        if row
            .try_get::<Option<i64>, _>("credit_recount_requested_at")?
            .is_none()
        {
            return Ok(None);
        }
        let done: i64 = row.try_get("credit_recount_done")?;
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM leads WHERE org_id = $1")
            .bind(org.as_str())
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        Ok(Some(RecountProgress {
            done: u64::try_from(done).unwrap_or(0),
            total: u64::try_from(total).unwrap_or(0),
        }))
    }

    /// Counts the model rows of the next `limit` leads of the organization that has waited
    /// longest for a recount, in one transaction that holds its rollup lock alone. Any node
    /// may run it: a step reads where the last one stopped under that lock.
    pub async fn recount_credit_step(&self, limit: i64) -> Result<RecountStep, StoreError> {
        let waiting: Option<String> = sqlx::query(
            "SELECT id FROM organizations WHERE credit_recount_requested_at IS NOT NULL \
             ORDER BY credit_recount_requested_at, id LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?
        .map(|row| row.try_get("id"))
        .transpose()?;
        let Some(id) = waiting else {
            return Ok(RecountStep::Idle);
        };
        let org = OrgId::from_stored(id);
        let mut tx = self.begin_write().await?;
        tx.rollup_lock(org.as_str(), LockMode::Exclusive).await?;
        let Some(cursor) = tx.recount_cursor(org.as_str()).await? else {
            // Another node finished it meanwhile.
            tx.commit().await?;
            return Ok(RecountStep::Counted {
                org,
                leads: 0,
                finished: true,
            });
        };
        if cursor.is_none() {
            let kinds: Vec<String> = Model::MULTI_TOUCH
                .iter()
                .map(|m| format!("'{}'", m.id()))
                .collect();
            // Changes not folded yet are rows of these kinds too.
            for table in ["report_rollups", "rollup_deltas"] {
                let sql = format!(
                    "DELETE FROM {table} WHERE org_id = $1 AND kind IN ({})",
                    kinds.join(", ")
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(org.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let (zone, settings) = tx.org_facts(org.as_str()).await?;
        let mut rows = BTreeMap::new();
        let (leads, last) = tx
            .count_model_rows(&org, &zone, settings, cursor, limit, &mut rows)
            .await?;
        tx.write_rollups(rows).await?;
        let finished = leads < usize::try_from(limit).unwrap_or(usize::MAX);
        match last.filter(|_| !finished) {
            Some((at, lead)) => {
                sqlx::query(
                    "UPDATE organizations SET credit_recount_at = $2, credit_recount_lead = $3, \
                     credit_recount_done = credit_recount_done + $4 WHERE id = $1",
                )
                .bind(org.as_str())
                .bind(at)
                .bind(lead)
                .bind(i64::try_from(leads).unwrap_or(0))
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query(
                    "UPDATE organizations SET credit_recount_requested_at = NULL, \
                     credit_recount_at = NULL, credit_recount_lead = NULL, \
                     credit_recount_done = 0 WHERE id = $1",
                )
                .bind(org.as_str())
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(RecountStep::Counted {
            org,
            leads,
            finished,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LockMode {
    /// Adding changes: any number of transactions at once.
    Shared,
    /// Recounting: alone.
    Exclusive,
}

/// A rollup row's columns, keys then counters, in the order every insert gives them.
const ROLLUP_COLUMNS: &str = "org_id, day, kind, widget_version, source_code, category, \
    derived_channel, source_name, n, project, personal, contact, enriched, score_sum, \
    pipeline_value, corrected, won, revenue";

/// Adds to a row that a day cut by a daylight-saving change already started.
const UPSERT: &str = "ON CONFLICT (org_id, day, kind, widget_version, source_code, category, \
    derived_channel, source_name) DO UPDATE SET \
    n = report_rollups.n + excluded.n, \
    project = report_rollups.project + excluded.project, \
    personal = report_rollups.personal + excluded.personal, \
    contact = report_rollups.contact + excluded.contact, \
    enriched = report_rollups.enriched + excluded.enriched, \
    score_sum = report_rollups.score_sum + excluded.score_sum, \
    pipeline_value = report_rollups.pipeline_value + excluded.pipeline_value, \
    corrected = report_rollups.corrected + excluded.corrected, \
    won = report_rollups.won + excluded.won, \
    revenue = report_rollups.revenue + excluded.revenue";

impl Store {
    /// Recomputes the rollups of one organization, or of all, from the raw rows: after an
    /// upgrade, or to audit them. Returns how many organizations were rebuilt.
    pub async fn rebuild_rollups(&self, org: Option<&OrgId>) -> Result<usize, StoreError> {
        let orgs: Vec<String> = match org {
            Some(org) => vec![org.as_str().to_owned()],
            None => sqlx::query("SELECT id FROM organizations ORDER BY id")
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.try_get("id"))
                .collect::<Result<_, _>>()?,
        };
        for id in &orgs {
            let org = OrgId::from_stored(id.clone());
            let mut tx = self.begin_write().await?;
            let zone = tx.zone(id).await?;
            tx.rebuild_rollups(&org, &zone).await?;
            tx.commit().await?;
        }
        Ok(orgs.len())
    }
}

/// Rollup changes folded per transaction at most.
pub const FOLD_BATCH: i64 = 10_000;

/// What one pass of `Store::fold_rollups` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Folded {
    /// Changes folded into the rollups.
    pub changes: u64,
    /// An organization had more than one transaction's worth: fold again at once.
    pub more: bool,
}

impl Store {
    /// Folds the rollup changes that PostgreSQL writers append (see `write_rollups`) into
    /// `report_rollups`, up to `limit` changes per organization in one transaction each. The
    /// organization's rollup lock is held shared, as by any writer of changes, so a rebuild or
    /// a recount (which clear rows and count them anew) never runs halfway through a fold. Only
    /// one node folds an organization at a time; another node skips it rather than wait.
    /// Reports read the same totals before and after. Nothing to do on SQLite.
    pub async fn fold_rollups(&self, limit: i64) -> Result<Folded, StoreError> {
        let mut folded = Folded::default();
        if self.backend != Backend::Postgres {
            return Ok(folded);
        }
        let orgs: Vec<String> = sqlx::query_scalar("SELECT DISTINCT org_id FROM rollup_deltas")
            .fetch_all(&self.pool)
            .await?;
        for org in orgs {
            let mut tx = self.begin_write().await?;
            tx.rollup_lock(&org, LockMode::Shared).await?;
            let mine: bool = sqlx::query_scalar(
                "SELECT pg_try_advisory_xact_lock(hashtext('rollup fold ' || $1))",
            )
            .bind(&org)
            .fetch_one(&mut *tx)
            .await?;
            if !mine {
                continue;
            }
            // Grouped by key, so each rollup row is added to once, in key order, so two
            // transactions adding to the same rows take their locks in the same order.
            let sql = format!(
                "WITH moved AS (DELETE FROM rollup_deltas WHERE id IN \
                   (SELECT id FROM rollup_deltas WHERE org_id = $1 ORDER BY id LIMIT $2) \
                   RETURNING {ROLLUP_COLUMNS}), \
                 added AS (INSERT INTO report_rollups ({ROLLUP_COLUMNS}) \
                   SELECT {KEYS}, SUM(n), SUM(project), SUM(personal), SUM(contact), SUM(enriched), \
                     SUM(score_sum), SUM(pipeline_value), SUM(corrected), SUM(won), SUM(revenue) \
                   FROM moved GROUP BY {KEYS} ORDER BY {KEYS} {UPSERT} RETURNING 1) \
                 SELECT (SELECT COUNT(*) FROM moved), (SELECT COUNT(*) FROM added)",
                KEYS = "org_id, day, kind, widget_version, source_code, category, \
                        derived_channel, source_name"
            );
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&org)
                .bind(limit)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            let changes: i64 = row.try_get(0)?;
            let changes = u64::try_from(changes).unwrap_or(0);
            metrics::counter!("rollup_changes_folded_total").increment(changes);
            folded.changes += changes;
            folded.more |= changes >= u64::try_from(limit).unwrap_or(u64::MAX);
        }
        Ok(folded)
    }
}
