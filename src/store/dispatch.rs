//! A dispatcher's round, written once over `Exec`: record the attempts that finished, fan new
//! events out, claim what is due. On SQLite it runs on the native connection, on PostgreSQL
//! through sqlx; the SQL text is the same.

use std::collections::{HashMap, HashSet};

use super::deliveries::{
    ClaimRequest, Claimed, DueDelivery, Finished, NextDue, PARKED, Recorded, RoundDone,
};
use super::exec::{Cells, Exec, Val};
use super::{Backend, StoreError, rfc3339};
use crate::domain::ids::{DeliveryId, EndpointId};
use crate::webhooks::envelope::envelope_text;
use crate::webhooks::fairness::{Demand, allocate};
use crate::webhooks::policy::Verdict;

/// Ids per `IN (…)` list: well inside either database's parameter limit.
const IN_LIST_CHUNK: usize = 900;

/// What a round is asked to do, owned (it may run on another thread).
#[derive(Debug, Clone)]
pub(super) struct RoundInput {
    pub finished: Vec<Finished>,
    pub disable_after_ms: i64,
    pub fan_out: Option<i64>,
    pub claim: Option<ClaimRequest>,
}

pub(super) async fn run_round<E: Exec>(
    db: &mut E,
    input: &RoundInput,
    now: i64,
) -> Result<RoundDone, StoreError> {
    let recorded = record(db, &input.finished, input.disable_after_ms, now).await?;
    let fanned = match input.fan_out {
        Some(limit) => fan_out(db, limit, now).await?,
        None => (0, 0),
    };
    let claimed = match input.claim {
        Some(request) if !request.only_if_released || recorded.released > 0 => {
            claim(db, request, now).await?
        }
        _ => Claimed::default(),
    };
    let retried = input
        .finished
        .iter()
        .any(|f| matches!(f.verdict, Verdict::RetryAt(_)));
    let next_due = if retried || input.claim.is_some_and(|c| c.sweep) {
        next_due(db, now).await?
    } else {
        NextDue::NotLooked
    };
    Ok(RoundDone {
        recorded,
        fanned,
        claimed,
        next_due,
    })
}

/// `($3), ($4)`-style lists: `rows` tuples of `width` numbered placeholders from `first`.
fn numbered(first: usize, rows: usize, width: usize) -> String {
    super::bulk::tuples(Backend::Postgres, first, rows, width)
}

// ---- recording -------------------------------------------------------------------------

async fn record<E: Exec>(
    db: &mut E,
    finished: &[Finished],
    disable_after_ms: i64,
    now: i64,
) -> Result<Recorded, StoreError> {
    if finished.is_empty() {
        return Ok(Recorded::default());
    }
    insert_attempts(db, finished).await?;
    let delivered: Vec<&Finished> = finished
        .iter()
        .filter(|f| f.verdict == Verdict::Delivered)
        .collect();
    let recorded = Recorded {
        released: record_delivered(db, &delivered, now).await?,
    };
    // An endpoint that was failing when these were claimed has succeeded since.
    let mut healthy: Vec<&EndpointId> = delivered
        .iter()
        .filter(|f| f.delivery.endpoint_failing)
        .map(|f| &f.delivery.endpoint_id)
        .collect();
    healthy.sort_unstable();
    healthy.dedup();
    for endpoint in healthy {
        db.exec(
            "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1",
            vec![endpoint.as_str().into()],
        )
        .await?;
    }
    for f in finished.iter().filter(|f| f.verdict != Verdict::Delivered) {
        record_failure(db, f, disable_after_ms, now).await?;
    }
    Ok(recorded)
}

async fn insert_attempts<E: Exec>(db: &mut E, finished: &[Finished]) -> Result<(), StoreError> {
    const WIDTH: usize = 7;
    for chunk in finished.chunks(IN_LIST_CHUNK / WIDTH) {
        let sql = format!(
            "INSERT INTO delivery_attempts (delivery_id, endpoint_id, attempted_at, status_code, \
             duration_ms, error_class, response_excerpt) VALUES {}",
            numbered(1, chunk.len(), WIDTH)
        );
        let mut params = Vec::with_capacity(chunk.len() * WIDTH);
        for f in chunk {
            params.extend([
                f.delivery.id.as_str().into(),
                f.delivery.endpoint_id.as_str().into(),
                f.attempt.attempted_at.into(),
                f.attempt.status_code.map(i64::from).into(),
                f.attempt.duration_ms.into(),
                f.attempt.error_class.as_deref().into(),
                f.attempt.response_excerpt.as_str().into(),
            ]);
        }
        db.exec(&sql, params).await?;
    }
    Ok(())
}

/// Marks delivered deliveries so (a statement per distinct status code, not per delivery), and
/// releases the successors of their leads at once; returns how many were released.
async fn record_delivered<E: Exec>(
    db: &mut E,
    delivered: &[&Finished],
    now: i64,
) -> Result<u64, StoreError> {
    let mut by_outcome: HashMap<(Option<u16>, i64), Vec<&str>> = HashMap::new();
    for f in delivered {
        by_outcome
            .entry((f.attempt.status_code, f.delivery.lease))
            .or_default()
            .push(f.delivery.id.as_str());
    }
    for ((status, lease), ids) in by_outcome {
        for chunk in ids.chunks(IN_LIST_CHUNK) {
            let sql = format!(
                "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, next_attempt_at = $1, \
                 lease_until = 0, last_status = $2, last_error = NULL, delivered_at = $1 \
                 WHERE lease_until = $3 AND id IN {}",
                numbered(4, 1, chunk.len())
            );
            let mut params = vec![now.into(), status.map(i64::from).into(), lease.into()];
            params.extend(chunk.iter().map(|id| Val::from(*id)));
            db.exec(&sql, params).await?;
        }
    }
    // Successors: every pending delivery of the same endpoint, lead and stream is due now,
    // whether it was parked behind its predecessor (waiting for a time) or only held by the
    // order while the predecessor was in flight; each counts as released, so the round claims
    // it at once instead of at the next poll.
    let mut leads: Vec<(&str, &str, &str)> = delivered
        .iter()
        .filter_map(|f| {
            let d = &f.delivery;
            d.lead_id
                .as_deref()
                .map(|lead| (d.endpoint_id.as_str(), lead, d.stream.as_str()))
        })
        .collect();
    leads.sort_unstable();
    leads.dedup();
    let mut released = 0;
    for chunk in leads.chunks(IN_LIST_CHUNK / 3) {
        let sql = format!(
            "UPDATE deliveries SET next_attempt_at = CASE WHEN next_attempt_at > $1 THEN $1 ELSE next_attempt_at END \
             WHERE status = 'pending' AND (endpoint_id, lead_id, stream) IN (VALUES {})",
            numbered(2, chunk.len(), 3)
        );
        let mut params = vec![now.into()];
        for (endpoint, lead, stream) in chunk {
            params.extend([Val::from(*endpoint), Val::from(*lead), Val::from(*stream)]);
        }
        released += db.exec(&sql, params).await?;
    }
    Ok(released)
}

/// A failed attempt: the delivery waits for its retry (or, exhausted, for a person), and the
/// endpoint's health moves on — disabled after 410 Gone or after failing long enough.
async fn record_failure<E: Exec>(
    db: &mut E,
    f: &Finished,
    disable_after_ms: i64,
    now: i64,
) -> Result<(), StoreError> {
    let (status, next) = match f.verdict {
        Verdict::RetryAt(at) => ("pending", at),
        Verdict::Delivered | Verdict::Exhausted | Verdict::Gone => ("failed", PARKED),
    };
    db.exec(
        "UPDATE deliveries SET status = $2, attempts = attempts + 1, next_attempt_at = $3, lease_until = 0, \
         last_status = $4, last_error = $5 WHERE id = $1 AND lease_until = $6",
        vec![
            f.delivery.id.as_str().into(),
            status.into(),
            next.into(),
            f.attempt.status_code.map(i64::from).into(),
            f.attempt.error_class.as_deref().into(),
            f.delivery.lease.into(),
        ],
    )
    .await?;
    let endpoint = &f.delivery.endpoint_id;
    if f.verdict == Verdict::Gone {
        return disable(db, endpoint, "the endpoint answered 410 Gone", now).await;
    }
    let error = f.attempt.error_class.as_deref().unwrap_or("failed");
    let since = note_failure(db, endpoint, error, now).await?;
    if f.verdict == Verdict::Exhausted && since.is_some_and(|s| now - s >= disable_after_ms) {
        let reason = "deliveries kept failing past the retry window with no success";
        disable(db, endpoint, reason, now).await?;
    }
    Ok(())
}

/// Remembers the endpoint's latest error and since when it has been failing; returns that.
async fn note_failure<E: Exec>(
    db: &mut E,
    endpoint: &EndpointId,
    error: &str,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let rows = db
        .rows(
            "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2), last_error = $3, \
             last_error_at = $2 WHERE id = $1 RETURNING failing_since",
            vec![endpoint.as_str().into(), now.into(), error.into()],
        )
        .await?;
    match rows.first() {
        Some(row) => row.opt_int(0),
        None => Ok(None),
    }
}

/// Disables an endpoint and parks its queue, so no claim looks at it until it is enabled.
pub(super) async fn disable<E: Exec>(
    db: &mut E,
    endpoint: &EndpointId,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    db.exec(
        "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = $2, updated_at = $3 WHERE id = $1",
        vec![endpoint.as_str().into(), reason.into(), now.into()],
    )
    .await?;
    park_endpoint(db, endpoint).await
}

/// Parks every pending delivery of a (disabled) endpoint.
pub(super) async fn park_endpoint<E: Exec>(
    db: &mut E,
    endpoint: &EndpointId,
) -> Result<(), StoreError> {
    db.exec(
        "UPDATE deliveries SET next_attempt_at = $2 WHERE endpoint_id = $1 AND status = 'pending' \
         AND next_attempt_at < $2",
        vec![endpoint.as_str().into(), PARKED.into()],
    )
    .await?;
    Ok(())
}

/// Makes an (enabled again) endpoint's whole queue due now; held order still applies.
pub(super) async fn unpark_endpoint<E: Exec>(
    db: &mut E,
    endpoint: &EndpointId,
    now: i64,
) -> Result<(), StoreError> {
    db.exec(
        "UPDATE deliveries SET next_attempt_at = $2 WHERE endpoint_id = $1 AND status = 'pending' \
         AND next_attempt_at > $2",
        vec![endpoint.as_str().into(), now.into()],
    )
    .await?;
    Ok(())
}

// ---- fan-out ---------------------------------------------------------------------------

/// A delivery to insert.
pub(super) struct NewDelivery {
    pub id: DeliveryId,
    pub org: String,
    pub endpoint_id: EndpointId,
    pub event_id: Option<String>,
    pub event_type: String,
    pub lead_id: Option<String>,
    pub sequence: Option<i64>,
    pub stream: String,
    pub body: String,
}

/// An outbox event, as fan-out and replay read it.
pub(super) struct EventRow {
    pub id: String,
    pub org: String,
    pub event_type: String,
    pub lead_id: Option<String>,
    pub sequence: Option<i64>,
    pub payload: String,
}

/// The columns `EventRow::read` expects, in order.
pub(super) const EVENT_COLUMNS: &str = "id, org_id, event_type, lead_id, sequence, payload";

impl EventRow {
    pub(super) fn read(row: &impl Cells) -> Result<EventRow, StoreError> {
        Ok(EventRow {
            id: row.text(0)?,
            org: row.text(1)?,
            event_type: row.text(2)?,
            lead_id: row.opt_text(3)?,
            sequence: row.opt_int(4)?,
            payload: row.text(5)?,
        })
    }
}

/// An endpoint as fan-out needs it: which event types it takes.
pub(super) struct Subscriber {
    pub id: EndpointId,
    pub events: Vec<String>,
}

impl Subscriber {
    /// The endpoint in a row's columns `at` (id) and `at + 1` (its event types); `None` where
    /// the id is NULL (an outer join that found no endpoint).
    pub(super) fn from_cells(row: &impl Cells, at: usize) -> Result<Option<Self>, StoreError> {
        let Some(id) = row.opt_text(at)? else {
            return Ok(None);
        };
        Ok(Some(Subscriber {
            id: EndpointId::from_stored(id),
            events: serde_json::from_str(&row.text(at + 1)?)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        }))
    }
}

/// The safety net's fan-out: up to `limit` events no transaction fanned out (an older version
/// left that to the dispatcher), oldest first; returns the events and the deliveries made.
async fn fan_out<E: Exec>(db: &mut E, limit: i64, now: i64) -> Result<(usize, usize), StoreError> {
    let lock = db.skip_locked("");
    let claim = format!(
        "UPDATE events SET fanned_out = 1 WHERE id IN (SELECT id FROM events WHERE fanned_out = 0 \
         ORDER BY created_at, id LIMIT $1 {lock}) RETURNING {EVENT_COLUMNS}"
    );
    let events = db
        .rows(&claim, vec![limit.into()])
        .await?
        .iter()
        .map(EventRow::read)
        .collect::<Result<Vec<_>, _>>()?;
    if events.is_empty() {
        return Ok((0, 0));
    }
    let deliveries = fan_out_events(db, &events, &HashMap::new(), now).await?;
    Ok((events.len(), deliveries))
}

/// Fans out events just written in this transaction (see `WriteTx::commit`); returns how many
/// deliveries they made. One lookup of subscribed endpoints per organization.
pub(super) async fn fan_out_events<E: Exec>(
    db: &mut E,
    events: &[EventRow],
    known: &HashMap<String, Vec<Subscriber>>,
    now: i64,
) -> Result<usize, StoreError> {
    let mut read: HashMap<&str, Vec<Subscriber>> = HashMap::new();
    let mut rows = Vec::new();
    for event in events {
        let org = event.org.as_str();
        if !known.contains_key(org) && !read.contains_key(org) {
            read.insert(org, subscribers_of(db, org).await?);
        }
        let subscribed = known
            .get(org)
            .or_else(|| read.get(org))
            .map(Vec::as_slice)
            .unwrap_or_default();
        rows.extend(deliveries_for_event(event, subscribed, ""));
    }
    insert_deliveries(db, &rows, now).await?;
    Ok(rows.len())
}

/// The organization's enabled endpoints and the event types each takes.
async fn subscribers_of<E: Exec>(db: &mut E, org: &str) -> Result<Vec<Subscriber>, StoreError> {
    db.rows(
        "SELECT id, events FROM webhook_endpoints WHERE org_id = $1 AND enabled = 1",
        vec![org.into()],
    )
    .await?
    .iter()
    .filter_map(|r| Subscriber::from_cells(r, 0).transpose())
    .collect()
}

/// The deliveries one event makes: one per endpoint subscribed to its type.
pub(super) fn deliveries_for_event(
    event: &EventRow,
    endpoints: &[Subscriber],
    stream: &str,
) -> Vec<NewDelivery> {
    let subscribed: Vec<&Subscriber> = endpoints
        .iter()
        .filter(|e| e.events.contains(&event.event_type))
        .collect();
    subscribed
        .into_iter()
        .map(|endpoint| NewDelivery {
            id: DeliveryId::generate(),
            org: event.org.clone(),
            endpoint_id: endpoint.id.clone(),
            event_id: Some(event.id.clone()),
            event_type: event.event_type.clone(),
            lead_id: event.lead_id.clone(),
            sequence: event.sequence,
            stream: stream.to_owned(),
            // The body is the event's, built when the delivery is claimed: not one copy per
            // endpoint in the table.
            body: String::new(),
        })
        .collect()
}

pub(super) async fn insert_deliveries<E: Exec>(
    db: &mut E,
    rows: &[NewDelivery],
    now: i64,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    const WIDTH: usize = 12;
    for chunk in rows.chunks(IN_LIST_CHUNK / WIDTH) {
        let sql = format!(
            "INSERT INTO deliveries (id, org_id, endpoint_id, event_id, event_type, lead_id, sequence, \
             stream, body, status, next_attempt_at, created_at) VALUES {}",
            numbered(1, chunk.len(), WIDTH)
        );
        let mut params = Vec::with_capacity(chunk.len() * WIDTH);
        for d in chunk {
            params.extend([
                d.id.as_str().into(),
                d.org.as_str().into(),
                d.endpoint_id.as_str().into(),
                d.event_id.as_deref().into(),
                d.event_type.as_str().into(),
                d.lead_id.as_deref().into(),
                d.sequence.into(),
                d.stream.as_str().into(),
                d.body.as_str().into(),
                "pending".into(),
                now.into(),
                now.into(),
            ]);
        }
        db.exec(&sql, params).await?;
    }
    Ok(())
}

// ---- claiming --------------------------------------------------------------------------

/// A pending delivery is held while an earlier event of the same lead, in the same stream, to
/// the same endpoint is undelivered — or not even fanned out yet (another node may be fanning
/// it out right now; its delivery row appears when that commits).
const NOT_HELD: &str = "(d.lead_id IS NULL OR (\
      NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.endpoint_id = d.endpoint_id AND p.lead_id = d.lead_id \
                  AND p.stream = d.stream AND p.sequence < d.sequence AND p.status <> 'delivered') \
      AND NOT EXISTS (SELECT 1 FROM events e WHERE e.lead_id = d.lead_id AND e.sequence < d.sequence \
                  AND e.fanned_out = 0)))";

async fn claim<E: Exec>(
    db: &mut E,
    request: ClaimRequest,
    now: i64,
) -> Result<Claimed, StoreError> {
    if request.sweep {
        park_held(db, now).await?;
    }
    // Counted one past the bound, so "more is due than was granted" can be told.
    let (found, contended) = demands(db, now, request.per_endpoint + 1).await?;
    let (demands, targets): (Vec<_>, Vec<_>) = found.into_iter().unzip();
    let granted = allocate(
        &demands,
        request.per_endpoint,
        request.free,
        request.rotation,
    );
    let mut claimed = Claimed {
        contended,
        ..Claimed::default()
    };
    for ((demand, target), n) in demands.iter().zip(&targets).zip(granted) {
        if n < demand.due {
            claimed.more_due = true;
        }
        if n == 0 {
            continue;
        }
        let lock = db.skip_locked("OF d");
        // In index order (`deliveries_endpoint_due`), so the scan stops at the LIMIT: the held
        // check runs on the rows looked at, not on the endpoint's whole backlog before a sort.
        let sql = format!(
            "UPDATE deliveries SET lease_until = $1 WHERE id IN (\
               SELECT d.id FROM deliveries d WHERE d.endpoint_id = $2 AND d.status = 'pending' \
               AND d.next_attempt_at <= $3 AND d.lease_until < $3 AND {NOT_HELD} \
               ORDER BY d.next_attempt_at LIMIT $4 {lock}) \
             RETURNING id, event_type, body, attempts - resend_base, lead_id, sequence, stream, \
               (SELECT e.payload FROM events e WHERE e.id = deliveries.event_id), \
               (SELECT e.created_at FROM events e WHERE e.id = deliveries.event_id)"
        );
        let lease = now.saturating_add(request.lease_ms);
        let params = vec![
            lease.into(),
            demand.key.as_str().into(),
            now.into(),
            i64::try_from(n).unwrap_or(i64::MAX).into(),
        ];
        for row in db.rows(&sql, params).await? {
            let event_type = row.text(1)?;
            let stored = row.text(2)?;
            let body = match (row.opt_text(7)?, row.opt_int(8)?) {
                (Some(data), Some(at)) if stored.is_empty() => {
                    envelope_text(&event_type, &rfc3339(at), &data)
                }
                _ => stored,
            };
            claimed.due.push(DueDelivery {
                id: DeliveryId::from_stored(row.text(0)?),
                endpoint_id: demand.key.clone(),
                event_type,
                body,
                attempts: row.int(3)?,
                lead_id: row.opt_text(4)?,
                sequence: row.opt_int(5)?,
                stream: row.text(6)?,
                url: target.url.clone(),
                secret: target.secret.clone(),
                previous_secret: target.previous_secret.clone(),
                endpoint_failing: target.failing,
                lease,
            });
        }
    }
    Ok(claimed)
}

/// Held deliveries that came due are set to wait until the earliest their predecessor can be
/// delivered, so claims stop looking at them in the meantime.
async fn park_held<E: Exec>(db: &mut E, now: i64) -> Result<(), StoreError> {
    let lock = db.skip_locked("OF d");
    let sql = format!(
        "UPDATE deliveries SET next_attempt_at = (SELECT MAX(p.next_attempt_at) FROM deliveries p \
           WHERE p.endpoint_id = deliveries.endpoint_id AND p.lead_id = deliveries.lead_id \
           AND p.stream = deliveries.stream AND p.sequence < deliveries.sequence AND p.status <> 'delivered') \
         WHERE id IN (SELECT d.id FROM webhook_endpoints w JOIN deliveries d ON d.endpoint_id = w.id \
           WHERE w.enabled = 1 AND d.status = 'pending' AND d.next_attempt_at <= $1 \
           AND d.lease_until < $1 AND d.lead_id IS NOT NULL \
           AND EXISTS (SELECT 1 FROM deliveries p WHERE p.endpoint_id = d.endpoint_id AND p.lead_id = d.lead_id \
             AND p.stream = d.stream AND p.sequence < d.sequence AND p.status <> 'delivered' \
             AND p.next_attempt_at > $1) {lock})"
    );
    db.exec(&sql, vec![now.into()]).await?;
    Ok(())
}

/// An endpoint's URL and the secrets that sign for it now.
struct Target {
    url: String,
    secret: String,
    previous_secret: Option<String>,
    /// It had a failure without a success since, when claimed.
    failing: bool,
}

/// Enabled endpoints with deliveries due now: how many (counted up to `cap`), how many in
/// flight on any node, and where and how to send. One probe per enabled endpoint, so the cost
/// follows the number of endpoints, not the length of a slow endpoint's backlog. On PostgreSQL
/// each endpoint row is locked first for the rest of the claim, so two nodes never count and
/// claim the same endpoint at once (one skips it this round): that keeps the in-flight bound
/// across nodes. The lock is `FOR NO KEY UPDATE`: a capture fanning out to the endpoint (its
/// foreign-key check takes `FOR KEY SHARE`) does not wait for the claim to commit. Also says
/// whether an endpoint with deliveries due was skipped because another node held it.
async fn demands<E: Exec>(
    db: &mut E,
    now: i64,
    cap: usize,
) -> Result<(Vec<(Demand<EndpointId>, Target)>, bool), StoreError> {
    const HAS_DUE: &str = "EXISTS (SELECT 1 FROM deliveries e WHERE e.endpoint_id = w.id \
        AND e.status = 'pending' AND e.next_attempt_at <= $1 AND e.lease_until < $1)";
    let locked: Option<HashSet<String>> = match db.backend() {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let sql = format!(
                "SELECT w.id FROM webhook_endpoints w WHERE w.enabled = 1 AND {HAS_DUE} \
                 FOR NO KEY UPDATE SKIP LOCKED"
            );
            let rows = db.rows(&sql, vec![now.into()]).await?;
            Some(rows.iter().map(|r| r.text(0)).collect::<Result<_, _>>()?)
        }
    };
    let sql = format!(
        "SELECT w.id, w.org_id, w.url, w.secret, w.previous_secret, w.previous_secret_expires_at, \
         w.failing_since, \
         (SELECT COUNT(*) FROM (SELECT 1 FROM deliveries d WHERE d.endpoint_id = w.id \
            AND d.status = 'pending' AND d.next_attempt_at <= $1 AND d.lease_until < $1 LIMIT $2) AS due_rows), \
         (SELECT COUNT(*) FROM deliveries l WHERE l.endpoint_id = w.id AND l.lease_until > 0 \
            AND l.lease_until >= $1 AND l.status = 'pending') \
         FROM webhook_endpoints w WHERE w.enabled = 1 AND {HAS_DUE}"
    );
    let params = vec![now.into(), i64::try_from(cap).unwrap_or(i64::MAX).into()];
    let (mut out, mut contended) = (Vec::new(), false);
    for r in db.rows(&sql, params).await? {
        let id = r.text(0)?;
        if locked.as_ref().is_some_and(|l| !l.contains(&id)) {
            contended = true;
            continue;
        }
        let count =
            |i: usize| -> Result<usize, StoreError> { Ok(usize::try_from(r.int(i)?).unwrap_or(0)) };
        let expires = r.opt_int(5)?;
        let demand = Demand {
            key: EndpointId::from_stored(id),
            org: r.text(1)?,
            due: count(7)?,
            in_flight: count(8)?,
        };
        let target = Target {
            url: r.text(2)?,
            secret: r.text(3)?,
            previous_secret: r.opt_text(4)?.filter(|_| expires.is_some_and(|t| t > now)),
            failing: r.opt_int(6)?.is_some(),
        };
        out.push((demand, target));
    }
    Ok((out, contended))
}

/// The earliest future attempt of any enabled endpoint: a seek per endpoint in its due index.
async fn next_due<E: Exec>(db: &mut E, now: i64) -> Result<NextDue, StoreError> {
    let rows = db
        .rows(
            "SELECT MIN((SELECT MIN(d.next_attempt_at) FROM deliveries d WHERE d.endpoint_id = w.id \
               AND d.status = 'pending' AND d.next_attempt_at > $1)) FROM webhook_endpoints w WHERE w.enabled = 1",
            vec![now.into()],
        )
        .await?;
    let at = match rows.first() {
        Some(row) => row.opt_int(0)?,
        None => None,
    };
    Ok(at.map_or(NextDue::Nothing, NextDue::At))
}
