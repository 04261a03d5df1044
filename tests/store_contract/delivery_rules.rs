//! Deliveries: per-endpoint in-flight bounds across nodes, fair shares, held order and its
//! release, replays as their own stream, leases after a restart, endpoint caps, lag.

use leadtrail::domain::attribution::Arrival;
use std::collections::HashMap;
use std::time::Duration;

use crate::capture_rules::{personal, project};
use crate::common::TestDb;
use crate::on_both_backends;
use crate::{PRIMARY, conflict, new_source, org, store};
use leadtrail::domain::ids::{EndpointId, LeadId, OrgId};
use leadtrail::domain::lead::Address;
use leadtrail::domain::tier::Tier;
use leadtrail::domain::widget::WidgetVersion;
use leadtrail::store::{
    Attempt, Backend, CaptureCommand, CaptureReply, ClaimRequest, Conflict, DueDelivery,
    EndpointPatch, Finished, NewLead, NextDue, Round, RoundDone, StepUpdate, Store, StoreError,
    now_ms,
};
use leadtrail::webhooks::policy::Verdict;
use leadtrail::workers::enrichment::EnrichmentWorker;

const LEASE_MS: i64 = 60_000;

async fn endpoint(store: &Store, org: &OrgId, events: &[&str]) -> EndpointId {
    let events: Vec<String> = events.iter().map(|e| (*e).to_owned()).collect();
    store
        .create_endpoint(
            org,
            "https://hooks.example.com/in",
            "",
            &events,
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            20,
        )
        .await
        .unwrap()
        .id
}

fn arrival(org: &OrgId) -> CaptureCommand {
    CaptureCommand::CreateLead(Box::new(NewLead {
        org: org.clone(),
        arrival: Arrival {
            embedding: Some(WidgetVersion::PRIMARY),
            ..Arrival::default()
        },
        first_touch: None,
        address: Address::parse("1 Main St", "Austin", "TX", "78701", None).unwrap(),
        idempotency: None,
        record_source: leadtrail::domain::lead::RecordSource::Widget,
    }))
}

/// `n` new leads: one `lead.address_preview` each, fanned out to the subscribed endpoints.
async fn leads(store: &Store, org: &OrgId, n: usize) {
    let commands: Vec<_> = (0..n).map(|_| arrival(org)).collect();
    store.apply_capture(&commands).await.unwrap();
    while store.fan_out(500).await.unwrap().0 > 0 {}
}

/// A lead with two events (address preview, then enriched), both fanned out.
async fn lead_with_two_events(store: &Store, org: &OrgId) -> LeadId {
    let created = match store.apply_capture(&[arrival(org)]).await.unwrap().pop() {
        Some(Ok(CaptureReply::Created(c))) => c,
        other => panic!("{other:?}"),
    };
    for step in [project(), personal(true)] {
        let update = StepUpdate {
            heard_about: None,
            lead_id: created.lead_id.clone(),
            capture_token: created.capture_token.clone(),
            step,
            idempotency: None,
        };
        store
            .apply_capture(&[CaptureCommand::Step(Box::new(update))])
            .await
            .unwrap()
            .pop()
            .unwrap()
            .unwrap();
    }
    let worker = EnrichmentWorker::new(store.clone(), None);
    while worker.run_once().await.unwrap() != leadtrail::workers::enrichment::Progress::Idle {}
    while store.fan_out(500).await.unwrap().0 > 0 {}
    created.lead_id
}

/// Events no transaction fanned out (an older version left fan-out to the dispatcher) become
/// deliveries on the sweep, oldest first and each once: one per endpoint subscribed to the
/// event's type, none for another organization's endpoint. On PostgreSQL an event another
/// node's sweep holds is left to that node.
async fn the_sweep_fans_out_events_left_behind_each_once(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let (other, _) = crate::org(&store, Tier::Starter).await;
    let a = endpoint(&store, &org, &["lead.address_preview"]).await;
    let b = endpoint(&store, &org, &["lead.address_preview", "lead.enriched"]).await;
    let unsubscribed = endpoint(&store, &org, &["lead.enriched"]).await;
    let elsewhere = endpoint(&store, &other, &["lead.address_preview"]).await;
    leads(&store, &org, 3).await;
    db.execute("DELETE FROM deliveries").await;
    db.execute("UPDATE events SET fanned_out = 0").await;

    if let TestDb::Postgres { url, .. } = &db {
        // Another node's sweep is fanning out the oldest event: this one takes the other two
        // at once, neither waiting for that node nor fanning its event out a second time.
        use sqlx::Connection;
        let mut other = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql("BEGIN").execute(&mut other).await.unwrap();
        sqlx::query(
            "SELECT 1 FROM events WHERE id = (SELECT id FROM events ORDER BY created_at, id LIMIT 1) \
             FOR NO KEY UPDATE",
        )
        .execute(&mut other)
        .await
        .unwrap();
        let swept = tokio::time::timeout(Duration::from_secs(60), store.fan_out(500))
            .await
            .expect("the sweep waited for the event another node holds");
        assert_eq!(swept.unwrap(), (2, 4));
        sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
        assert_eq!(store.fan_out(500).await.unwrap(), (1, 2));
    } else {
        assert_eq!(store.fan_out(2).await.unwrap(), (2, 4));
        assert_eq!(store.fan_out(500).await.unwrap(), (1, 2));
    }
    assert_eq!(store.fan_out(500).await.unwrap(), (0, 0));
    let pending = |id: &EndpointId| {
        let (store, org) = (&store, &org);
        let id = id.clone();
        async move { store.deliveries(org, &id, 100).await.unwrap().len() }
    };
    assert_eq!((pending(&a).await, pending(&b).await), (3, 3));
    assert_eq!(pending(&unsubscribed).await, 0);
    let theirs = store.deliveries(&other, &elsewhere, 100).await.unwrap();
    assert!(
        theirs.is_empty(),
        "another organization's endpoint got {theirs:?}"
    );
}

/// After a rotation the previous secret signs beside the new one for a day, then no more.
async fn a_rotated_secrets_predecessor_signs_for_one_day(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let id = endpoint(&store, &org, &["lead.address_preview"]).await;
    let old = store.endpoint(&org, &id).await.unwrap().secret;
    let new = "whsec_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    let rotated = store.rotate_endpoint_secret(&org, &id, new).await.unwrap();
    assert_eq!(
        (rotated.secret.as_str(), rotated.previous_secret.as_deref()),
        (new, Some(old.as_str()))
    );
    let day_ms = 24 * 60 * 60 * 1000;
    assert_eq!(
        rotated.previous_secret_expires_at,
        Some(rotated.updated_at + day_ms)
    );
    leads(&store, &org, 1).await;
    let claimed = claim(&store, 10, 16).await;
    assert_eq!(
        (
            claimed[0].secret.as_str(),
            claimed[0].previous_secret.as_deref()
        ),
        (new, Some(old.as_str()))
    );
    // A day later (the expiry moved into the past rather than the clock forward).
    db.execute("UPDATE webhook_endpoints SET previous_secret_expires_at = 1")
        .await;
    leads(&store, &org, 1).await;
    let later = claim(&store, 10, 16).await;
    assert_eq!(
        (
            later[0].secret.as_str(),
            later[0].previous_secret.as_deref()
        ),
        (new, None)
    );
}

/// A delivery an earlier version stored with its body (before bodies were built from the outbox
/// event at claim time) is sent with exactly those bytes, not rebuilt: a retry carries the same
/// payload its earlier attempts were signed over. One stored without a body gets the event's.
async fn a_delivery_stored_with_its_body_is_sent_with_those_bytes(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    endpoint(&store, &org, &["lead.address_preview"]).await;
    leads(&store, &org, 2).await;
    let kept = r#"{"type":"lead.address_preview","timestamp":"2026-01-02T03:04:05Z","data":{"kept":true}}"#;
    db.execute(&format!(
        "UPDATE deliveries SET body = '{kept}' WHERE id = (SELECT MIN(id) FROM deliveries)"
    ))
    .await;
    let mut claimed = claim(&store, 10, 16).await;
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(claimed.len(), 2);
    assert_eq!(claimed[0].body, kept, "the stored body is sent as it is");
    let built: serde_json::Value = serde_json::from_str(&claimed[1].body).unwrap();
    assert_eq!(built["type"], "lead.address_preview", "{built}");
    assert!(built["data"]["lead_id"].is_string(), "{built}");
}

fn request(free: usize, per_endpoint: usize) -> ClaimRequest {
    ClaimRequest {
        free,
        per_endpoint,
        lease_ms: LEASE_MS,
        rotation: 0,
        sweep: true,
        only_if_released: false,
    }
}

async fn claim(store: &Store, free: usize, per_endpoint: usize) -> Vec<DueDelivery> {
    store
        .claim_deliveries(request(free, per_endpoint))
        .await
        .unwrap()
        .due
}

fn finished(delivery: &DueDelivery, verdict: Verdict) -> Finished {
    Finished {
        delivery: delivery.clone(),
        attempt: Attempt {
            attempted_at: now_ms(),
            status_code: Some(if verdict == Verdict::Delivered {
                200
            } else {
                503
            }),
            duration_ms: 3,
            error_class: (verdict != Verdict::Delivered).then(|| "http_503".to_owned()),
            response_excerpt: String::new(),
        },
        verdict,
    }
}

async fn an_endpoint_never_has_more_than_its_bound_in_flight(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    endpoint(&store, &org, &["lead.address_preview"]).await;
    leads(&store, &org, 40).await;
    let first = store.claim_deliveries(request(100, 16)).await.unwrap();
    assert_eq!(first.due.len(), 16);
    assert!(first.more_due, "24 are left waiting for a slot");
    assert!(
        claim(&store, 100, 16).await.is_empty(),
        "all 16 slots are taken"
    );
    let done: Vec<Finished> = first.due[..5]
        .iter()
        .map(|d| finished(d, Verdict::Delivered))
        .collect();
    store.record_attempts(&done, 0).await.unwrap();
    assert_eq!(
        claim(&store, 100, 16).await.len(),
        5,
        "five slots came free"
    );
}

async fn nodes_claiming_at_once_share_one_bound(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    endpoint(&store, &org, &["lead.address_preview"]).await;
    leads(&store, &org, 100).await;
    let mut nodes = Vec::new();
    for _ in 0..4 {
        nodes.push(crate::store(&db).await);
    }
    for round in 0..3 {
        let claims = nodes.iter().map(|n| claim(n, 100, 16));
        let claimed: Vec<DueDelivery> = futures::future::join_all(claims)
            .await
            .into_iter()
            .flatten()
            .collect();
        assert!(
            claimed.len() <= 16,
            "round {round}: {} in flight at once",
            claimed.len()
        );
        assert!(!claimed.is_empty(), "round {round}: someone claimed");
        let done: Vec<Finished> = claimed
            .iter()
            .map(|d| finished(d, Verdict::Delivered))
            .collect();
        store.record_attempts(&done, 0).await.unwrap();
    }
}

async fn scarce_slots_are_shared_across_organizations_before_endpoints(db: TestDb) {
    let store = store(&db).await;
    let (big, _) = org(&store, Tier::Starter).await;
    let (small, _) = org(&store, Tier::Starter).await;
    for _ in 0..3 {
        endpoint(&store, &big, &["lead.address_preview"]).await;
    }
    endpoint(&store, &small, &["lead.address_preview"]).await;
    leads(&store, &big, 20).await;
    leads(&store, &small, 20).await;
    let claimed = claim(&store, 8, 16).await;
    let mut per_endpoint: HashMap<EndpointId, usize> = HashMap::new();
    for d in &claimed {
        *per_endpoint.entry(d.endpoint_id.clone()).or_default() += 1;
    }
    let small_endpoint = store.endpoints(&small).await.unwrap()[0].id.clone();
    assert_eq!(claimed.len(), 8);
    assert_eq!(
        per_endpoint.get(&small_endpoint),
        Some(&4),
        "half the slots for the organization with one endpoint: {per_endpoint:?}"
    );
    assert!(
        per_endpoint.values().all(|n| *n >= 1),
        "each of the big organization's endpoints got a share: {per_endpoint:?}"
    );
}

async fn a_held_delivery_waits_out_its_predecessor_and_is_released_by_its_success(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let id = endpoint(&store, &org, &["lead.address_preview", "lead.enriched"]).await;
    lead_with_two_events(&store, &org).await;
    let first = claim(&store, 10, 16).await;
    assert_eq!(
        first.len(),
        1,
        "the enriched event waits for the address preview"
    );
    assert_eq!(first[0].event_type, "lead.address_preview");
    // It fails, to be retried in a minute: the successor is held meanwhile.
    let retry = Verdict::RetryAt(now_ms() + 60_000);
    store
        .record_attempts(&[finished(&first[0], retry)], i64::MAX)
        .await
        .unwrap();
    assert!(claim(&store, 10, 16).await.is_empty());
    assert!(
        store.delivery_lag().await.unwrap().is_empty(),
        "a held delivery is not late: it waits for its predecessor's retry"
    );
    let backlog = store.backlogs(&org).await.unwrap().remove(&id).unwrap();
    assert_eq!((backlog.pending, backlog.due), (2, 0));
    let log = store.deliveries(&org, &id, 10).await.unwrap();
    let enriched = log
        .iter()
        .find(|d| d.event_type == "lead.enriched")
        .unwrap();
    assert!(enriched.held);
    // Resent by hand, it goes first; its success releases the successor at once.
    store
        .resend_delivery(&org, &id, &first[0].id)
        .await
        .unwrap();
    let again = claim(&store, 10, 16).await;
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].id, first[0].id,
        "the same message, the same webhook-id"
    );
    let recorded = store
        .record_attempts(&[finished(&again[0], Verdict::Delivered)], i64::MAX)
        .await
        .unwrap();
    assert_eq!(recorded.released, 1);
    let next = claim(&store, 10, 16).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].event_type, "lead.enriched");
}

async fn a_replay_is_ordered_within_itself_not_behind_a_live_failure(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let id = endpoint(&store, &org, &["lead.address_preview", "lead.enriched"]).await;
    lead_with_two_events(&store, &org).await;
    let first = claim(&store, 10, 16).await;
    store
        .record_attempts(&[finished(&first[0], Verdict::Exhausted)], i64::MAX)
        .await
        .unwrap();
    assert!(
        claim(&store, 10, 16).await.is_empty(),
        "the live successor stays held"
    );
    let queued = store.replay(&org, &id, 0, now_ms() + 1, 100).await.unwrap();
    assert_eq!(queued.deliveries, 2);
    let replayed = claim(&store, 10, 16).await;
    assert_eq!(
        replayed.len(),
        1,
        "the replay's second event waits for its first"
    );
    assert_eq!(
        (replayed[0].event_type.as_str(), replayed[0].stream.as_str()),
        ("lead.address_preview", queued.replay_id.as_str())
    );
    store
        .record_attempts(&[finished(&replayed[0], Verdict::Delivered)], i64::MAX)
        .await
        .unwrap();
    let next = claim(&store, 10, 16).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].event_type, "lead.enriched");
    assert_eq!(next[0].stream, queued.replay_id);
    // Too long a period is refused, with nothing queued.
    let refused = store.replay(&org, &id, 0, now_ms() + 1, 1).await;
    assert!(refused.is_err());
    assert_eq!(store.deliveries(&org, &id, 100).await.unwrap().len(), 4);
    // A period holding exactly the most a replay sends (the lead's two events) is accepted.
    let exact = store.replay(&org, &id, 0, now_ms() + 1, 2).await.unwrap();
    assert_eq!(exact.deliveries, 2);
}

async fn leases_of_a_previous_process_are_taken_back_at_start_on_sqlite_only(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    endpoint(&store, &org, &["lead.address_preview"]).await;
    leads(&store, &org, 3).await;
    assert_eq!(claim(&store, 10, 16).await.len(), 3);
    assert!(
        claim(&store, 10, 16).await.is_empty(),
        "leased for a minute"
    );
    // The process "restarts": a new store on the same database.
    let restarted = crate::store(&db).await;
    restarted.take_back_leases_after_restart().await.unwrap();
    let after = claim(&restarted, 10, 16).await.len();
    match restarted.backend() {
        Backend::Sqlite => assert_eq!(after, 3, "one process owns a SQLite file"),
        Backend::Postgres => assert_eq!(after, 0, "other nodes may still be working"),
    }
}

async fn endpoints_per_organization_are_capped_even_when_created_at_once(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let creates = (0..8).map(|_| {
        store.create_endpoint(
            &org,
            "https://hooks.example.com/in",
            "",
            &[],
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            3,
        )
    });
    let results = futures::future::join_all(creates).await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(created, 3);
    for r in results.into_iter().filter(Result::is_err) {
        assert_eq!(conflict(r), Conflict::EndpointLimitReached { limit: 3 });
    }
    assert_eq!(store.endpoints(&org).await.unwrap().len(), 3);
}

async fn lag_counts_what_is_due_and_unsent_per_endpoint(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let id = endpoint(&store, &org, &["lead.address_preview"]).await;
    leads(&store, &org, 5).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let lag = store.delivery_lag().await.unwrap();
    assert_eq!(lag.len(), 1);
    assert_eq!((&lag[0].endpoint_id, lag[0].due), (&id, 5));
    assert!(now_ms() - lag[0].oldest_due_at >= 20);
    claim(&store, 2, 16).await;
    assert_eq!(
        store.delivery_lag().await.unwrap()[0].due,
        3,
        "claimed ones are in flight"
    );
    let backlog = store.backlogs(&org).await.unwrap().remove(&id).unwrap();
    assert_eq!((backlog.pending, backlog.due), (5, 3));
    let (other, _) = crate::org(&store, Tier::Starter).await;
    assert!(
        store.backlogs(&other).await.unwrap().is_empty(),
        "scoped to the organization"
    );
}

async fn another_tenant_can_neither_see_nor_change_an_endpoint_or_its_deliveries(db: TestDb) {
    let store = store(&db).await;
    let (mine, _) = org(&store, Tier::Starter).await;
    let (rival, _) = org(&store, Tier::Starter).await;
    let id = endpoint(&store, &mine, &["lead.address_preview"]).await;
    leads(&store, &mine, 1).await;
    let claimed = claim(&store, 10, 16).await;
    store
        .record_attempts(&[finished(&claimed[0], Verdict::Exhausted)], i64::MAX)
        .await
        .unwrap();
    let before = store.endpoint(&mine, &id).await.unwrap();
    let not_found = |r: Result<(), StoreError>, what: &str| {
        assert!(matches!(r, Err(StoreError::NotFound)), "{what}: {r:?}");
    };
    not_found(store.endpoint(&rival, &id).await.map(drop), "read");
    let patch = EndpointPatch {
        url: Some("https://evil.example/".into()),
        description: Some("mine now".into()),
        events: Some(vec!["lead.enriched".into()]),
        enabled: Some(false),
    };
    not_found(
        store.update_endpoint(&rival, &id, patch).await.map(drop),
        "update",
    );
    not_found(
        store
            .rotate_endpoint_secret(&rival, &id, "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .await
            .map(drop),
        "rotate",
    );
    not_found(store.deliveries(&rival, &id, 10).await.map(drop), "log");
    not_found(
        store.resend_delivery(&rival, &id, &claimed[0].id).await,
        "resend",
    );
    not_found(
        store.resend_failed_since(&rival, &id, 0).await.map(drop),
        "resend failed",
    );
    not_found(
        store.queue_test_delivery(&rival, &id).await.map(drop),
        "test",
    );
    not_found(
        store.replay(&rival, &id, 0, now_ms(), 100).await.map(drop),
        "replay",
    );
    not_found(store.delete_endpoint(&rival, &id).await, "delete");
    // Nothing of the victim's changed: not the URL, the secret, the state, nor the log.
    let after = store.endpoint(&mine, &id).await.unwrap();
    assert_eq!(
        (
            &after.url,
            &after.secret,
            &after.previous_secret,
            after.enabled,
            &after.events
        ),
        (&before.url, &before.secret, &None, true, &before.events)
    );
    let log = store.deliveries(&mine, &id, 10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].status.as_str(), log[0].attempts), ("failed", 1));
    assert!(store.backlogs(&rival).await.unwrap().is_empty());
}

async fn failed_deliveries_are_resent_only_from_the_time_asked(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let id = endpoint(&store, &org, &["lead.address_preview"]).await;
    let older = store.queue_test_delivery(&org, &id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let between = now_ms();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let newer = store.queue_test_delivery(&org, &id).await.unwrap();
    let claimed = claim(&store, 10, 16).await;
    let failed: Vec<Finished> = claimed
        .iter()
        .map(|d| finished(d, Verdict::Exhausted))
        .collect();
    store.record_attempts(&failed, i64::MAX).await.unwrap();
    assert_eq!(
        store.resend_failed_since(&org, &id, between).await.unwrap(),
        1
    );
    let log = store.deliveries(&org, &id, 10).await.unwrap();
    let status = |d: &leadtrail::domain::ids::DeliveryId| {
        log.iter().find(|r| &r.id == d).unwrap().status.clone()
    };
    assert_eq!(
        (status(&newer).as_str(), status(&older).as_str()),
        ("pending", "failed")
    );
}

async fn every_sqlite_connection_commits_to_disk_before_returning(db: TestDb) {
    let store = store(&db).await;
    let durability = store.sqlite_durability().await.unwrap();
    match store.backend() {
        Backend::Sqlite => {
            assert_eq!(durability.len(), 2);
            for d in durability {
                // WAL with synchronous=FULL: the WAL is synced at every commit.
                assert_eq!(
                    (d.journal_mode.as_str(), d.synchronous),
                    ("wal", 2),
                    "{} connection",
                    d.connection
                );
            }
        }
        Backend::Postgres => assert!(durability.is_empty()),
    }
}

/// An attempt's outcome moves its delivery only while the delivery still carries that attempt's
/// lease: a resend asked for while the attempt was in flight is sent again whatever the attempt
/// ended in, and an attempt that outlived its lease does not overwrite the claim that took the
/// delivery over.
async fn an_attempts_outcome_never_overwrites_a_resend_or_a_later_claim(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let id = endpoint(&store, &org, &["lead.address_preview"]).await;
    leads(&store, &org, 2).await;
    let mut first = claim(&store, 10, 16).await;
    first.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(first.len(), 2);
    for d in &first {
        store.resend_delivery(&org, &id, &d.id).await.unwrap();
    }
    let outcomes = [
        finished(&first[0], Verdict::Delivered),
        finished(&first[1], Verdict::Exhausted),
    ];
    store.record_attempts(&outcomes, i64::MAX).await.unwrap();
    let log = store.deliveries(&org, &id, 10).await.unwrap();
    for d in &log {
        assert_eq!(
            (d.status.as_str(), d.log.len()),
            ("pending", 1),
            "the attempt is logged and the resend still stands: {d:?}"
        );
    }
    // Claimed again with a lease that has already run out (the attempt hangs past it), then
    // taken over by the next claim.
    let stale = store
        .claim_deliveries(ClaimRequest {
            lease_ms: -1,
            ..request(10, 16)
        })
        .await
        .unwrap()
        .due;
    let mut taken = claim(&store, 10, 16).await;
    taken.sort_by(|a, b| a.id.cmp(&b.id));
    let ids = |ds: &[DueDelivery]| ds.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&taken), ids(&first), "both are sent again");
    assert_eq!(stale.len(), 2);
    let late: Vec<_> = stale
        .iter()
        .map(|d| finished(d, Verdict::Exhausted))
        .collect();
    store.record_attempts(&late, i64::MAX).await.unwrap();
    let done: Vec<_> = taken
        .iter()
        .map(|d| finished(d, Verdict::Delivered))
        .collect();
    store.record_attempts(&done, i64::MAX).await.unwrap();
    for d in store.deliveries(&org, &id, 10).await.unwrap() {
        assert_eq!(
            (d.status.as_str(), d.log.len()),
            ("delivered", 3),
            "the current claim's success counts; the late failure is only logged: {d:?}"
        );
    }
}

/// Another node's claim holds an endpoint (on PostgreSQL its row stays locked until that claim
/// commits): this claim takes none of its deliveries and says it met the other claim, so the
/// dispatcher looks again in a moment instead of leaving its slots idle until the next wake.
/// Meanwhile a capture still fans out to the endpoint. SQLite has no other claim at once.
async fn an_endpoint_held_by_another_nodes_claim_is_skipped_and_said_so(db: TestDb) {
    use sqlx::Connection;
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let id = endpoint(&store, &org, &["lead.address_preview"]).await;
    leads(&store, &org, 3).await;
    let TestDb::Postgres { url, .. } = &db else {
        // A bound of exactly the three due: all granted, so nothing more is due.
        let claimed = store.claim_deliveries(request(100, 3)).await.unwrap();
        assert_eq!(claimed.due.len(), 3);
        assert!(!claimed.contended);
        assert!(!claimed.more_due, "all three due were taken");
        return;
    };
    let mut other = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query("SELECT 1 FROM webhook_endpoints WHERE id = $1 FOR NO KEY UPDATE")
        .bind(id.as_str())
        .execute(&mut other)
        .await
        .unwrap();
    let claimed = store.claim_deliveries(request(100, 16)).await.unwrap();
    assert!(claimed.due.is_empty(), "{:?}", claimed.due);
    assert!(claimed.contended, "the held endpoint had deliveries due");
    tokio::time::timeout(Duration::from_secs(60), leads(&store, &org, 1))
        .await
        .expect("a capture fanning out to the endpoint waited for the other claim");
    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
    let claimed = store.claim_deliveries(request(100, 4)).await.unwrap();
    assert_eq!(claimed.due.len(), 4);
    assert!(!claimed.contended);
    assert!(!claimed.more_due, "all four due were taken");
    assert!(
        !store
            .claim_deliveries(request(100, 16))
            .await
            .unwrap()
            .contended
    );
}

/// One dispatcher round that records `finished` and claims only if that released a successor.
async fn round_after(store: &Store, finished: &[Finished]) -> RoundDone {
    let claim = ClaimRequest {
        sweep: false,
        only_if_released: true,
        ..request(10, 16)
    };
    store
        .dispatch_round(Round {
            finished,
            disable_after_ms: i64::MAX,
            fan_out: None,
            claim: Some(claim),
        })
        .await
        .unwrap()
}

async fn a_round_claims_what_its_recording_released_and_looks_ahead_after_a_retry(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let id = endpoint(&store, &org, &["lead.address_preview", "lead.enriched"]).await;
    for _ in 0..3 {
        lead_with_two_events(&store, &org).await;
    }
    let first = claim(&store, 2, 16).await;
    assert_eq!(first.len(), 2, "two slots: two address previews");
    // One fails, to be retried in a minute, which holds its lead's next event. Nothing was
    // released, so the round claims nothing (the third lead's preview waits for a claim of its
    // own), but a retry was scheduled, so it looks when the next delivery falls due.
    let retry = Verdict::RetryAt(now_ms() + 60_000);
    let failed = round_after(&store, &[finished(&first[0], retry)]).await;
    assert_eq!(failed.recorded.released, 0);
    assert!(
        failed.claimed.due.is_empty(),
        "claimed without a release: {:?}",
        failed.claimed.due
    );
    assert!(
        matches!(failed.next_due, NextDue::At(_)),
        "after scheduling a retry the round says what falls due next: {:?}",
        failed.next_due
    );
    // The next sweep claims the third lead's preview and holds the failed one's next event.
    let swept = claim(&store, 10, 16).await;
    assert_eq!(swept.len(), 1, "{swept:?}");
    // Resent by hand and delivered: the held event is released and claimed in the same round.
    store
        .resend_delivery(&org, &id, &first[0].id)
        .await
        .unwrap();
    let again = claim(&store, 10, 16).await;
    let resent = again.iter().find(|d| d.id == first[0].id).unwrap();
    let delivered = round_after(&store, &[finished(resent, Verdict::Delivered)]).await;
    assert_eq!(delivered.recorded.released, 1);
    let claimed: Vec<&str> = delivered
        .claimed
        .due
        .iter()
        .map(|d| d.event_type.as_str())
        .collect();
    assert_eq!(
        claimed,
        ["lead.enriched"],
        "the released event is claimed at once"
    );
}

async fn only_retries_used_up_past_the_window_disable_an_endpoint(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let id = endpoint(&store, &org, &["lead.address_preview"]).await;
    leads(&store, &org, 3).await;
    let due = claim(&store, 10, 16).await;
    assert_eq!(due.len(), 3);
    let state = async || {
        let endpoints = store.endpoints(&org).await.unwrap();
        let found = endpoints.into_iter().find(|e| e.id == id).unwrap();
        (found.enabled, found.disabled_reason)
    };
    // A window of zero: the endpoint has been failing "long enough" from its first failure.
    let retry = Verdict::RetryAt(now_ms() + 60_000);
    store
        .record_attempts(&[finished(&due[0], retry)], 0)
        .await
        .unwrap();
    assert_eq!(
        state().await,
        (true, None),
        "a failure that will be retried never disables"
    );
    // Retries used up, but the endpoint has been failing for less than the hour-long window.
    store
        .record_attempts(&[finished(&due[1], Verdict::Exhausted)], 3_600_000)
        .await
        .unwrap();
    assert_eq!(state().await, (true, None), "within the window it stays on");
    // Failing for longer than a 2 ms window by now.
    tokio::time::sleep(Duration::from_millis(5)).await;
    store
        .record_attempts(&[finished(&due[2], Verdict::Exhausted)], 2)
        .await
        .unwrap();
    let (enabled, reason) = state().await;
    assert!(!enabled, "retries used up past the window disable it");
    assert!(reason.is_some_and(|r| r.contains("kept failing")));
}

/// A disabled endpoint keeps its queue, parked: nothing of it is claimed or counted as due.
/// Enabled again, its whole queue is due at once, a retry scheduled for later included.
async fn a_disabled_endpoints_queue_waits_and_is_all_due_once_it_is_enabled(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let id = endpoint(&store, &org, &["lead.address_preview"]).await;
    leads(&store, &org, 3).await;
    let first = store.claim_deliveries(request(1, 16)).await.unwrap().due;
    let retry = Verdict::RetryAt(now_ms() + 3_600_000);
    store
        .record_attempts(&[finished(&first[0], retry)], i64::MAX)
        .await
        .unwrap();
    let switch = async |enabled: bool| {
        let patch = EndpointPatch {
            enabled: Some(enabled),
            ..EndpointPatch::default()
        };
        store.update_endpoint(&org, &id, patch).await.unwrap();
    };
    let backlog = async || {
        let b = store.backlogs(&org).await.unwrap().remove(&id).unwrap();
        (b.pending, b.due)
    };
    assert_eq!(backlog().await, (3, 2), "one waits an hour for its retry");

    switch(false).await;
    assert_eq!(
        backlog().await,
        (3, 0),
        "a disabled endpoint's queue is parked"
    );
    assert!(claim(&store, 10, 16).await.is_empty());

    switch(true).await;
    assert_eq!(backlog().await, (3, 3), "the whole queue is due at once");
    let mut claimed: Vec<_> = claim(&store, 10, 16)
        .await
        .into_iter()
        .map(|d| d.id)
        .collect();
    let mut queued: Vec<_> = store
        .deliveries(&org, &id, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    claimed.sort();
    queued.sort();
    assert_eq!(claimed, queued, "each delivery of the queue is claimed");
}

/// A receiver's logged reply that quotes the homeowner (an echo of the body, say) is scrubbed
/// by the lead's erasure and counted.
async fn an_erasure_scrubs_the_receivers_replies_that_quote_the_homeowner(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let id = endpoint(&store, &org, &["lead.address_preview"]).await;
    let lead = lead_with_two_events(&store, &org).await;
    let claimed = claim(&store, 10, 16).await;
    assert_eq!(claimed.len(), 1);
    let mut reply = finished(&claimed[0], Verdict::Delivered);
    reply.attempt.response_excerpt = "{\"thanks\":\"ann@example.com\"}".into();
    store.record_attempts(&[reply], 0).await.unwrap();
    let erased = store
        .erase_lead(&org, &lead, "user:owner@acme.example")
        .await
        .unwrap();
    assert_eq!(erased.attempts, 1, "{erased:?}");
    let log = &store.deliveries(&org, &id, 10).await.unwrap()[0].log;
    assert_eq!(log.len(), 1);
    assert!(
        !log[0].response_excerpt.contains("ann@example.com"),
        "{:?}",
        log[0].response_excerpt
    );
}

/// This node's dispatcher is woken by every commit that makes a delivery due (a capture with a
/// subscriber, a test delivery) and by no other; on PostgreSQL a writer without a dispatcher of
/// its own tells the other nodes instead, and asks for help go out as asked, in commit order.
async fn a_commit_that_makes_deliveries_due_wakes_a_dispatcher(db: TestDb) {
    use futures::FutureExt as _;
    use leadtrail::workers::wakeups::{CHANNEL, DELIVERIES, ENRICHMENT};

    let plain = store(&db).await;
    let woken = std::sync::Arc::new(tokio::sync::Notify::new());
    let serving = plain.clone().waking(woken.clone());
    let was_woken = || woken.notified().now_or_never().is_some();
    let (org, _) = org(&serving, Tier::Premium).await;
    let mut listener = match plain.backend() {
        Backend::Postgres => {
            let mut l = sqlx::postgres::PgListener::connect(db.url()).await.unwrap();
            l.listen(CHANNEL).await.unwrap();
            Some(l)
        }
        Backend::Sqlite => None,
    };

    serving.apply_capture(&[arrival(&org)]).await.unwrap();
    assert!(!was_woken(), "a lead nobody subscribes to made nothing due");
    let id = endpoint(&serving, &org, &["lead.address_preview"]).await;
    assert!(!was_woken(), "an endpoint alone made nothing due");
    serving.apply_capture(&[arrival(&org)]).await.unwrap();
    assert!(was_woken(), "a subscribed lead's delivery is due");
    serving.queue_test_delivery(&org, &id).await.unwrap();
    assert!(was_woken(), "a test delivery is due");

    let Some(listener) = &mut listener else {
        return;
    };
    plain.apply_capture(&[arrival(&org)]).await.unwrap();
    plain
        .create_source(&org, PRIMARY, new_source("Yard signs"))
        .await
        .unwrap();
    plain.announce_enrichment().await.unwrap();
    plain.announce_deliveries().await.unwrap();
    let mut heard = Vec::new();
    for _ in 0..3 {
        let n = tokio::time::timeout(Duration::from_secs(30), listener.recv())
            .await
            .expect("a notification within 30 s")
            .unwrap();
        heard.push(n.payload().to_owned());
    }
    // The serving node's commits told nobody (it woke its own dispatcher); the plain store's
    // capture did, its source did not, and each announcement said what it asked for.
    assert_eq!(heard, [DELIVERIES, ENRICHMENT, DELIVERIES]);
}

on_both_backends!(
    a_commit_that_makes_deliveries_due_wakes_a_dispatcher,
    a_disabled_endpoints_queue_waits_and_is_all_due_once_it_is_enabled,
    a_delivery_stored_with_its_body_is_sent_with_those_bytes,
    an_erasure_scrubs_the_receivers_replies_that_quote_the_homeowner,
    the_sweep_fans_out_events_left_behind_each_once,
    a_rotated_secrets_predecessor_signs_for_one_day,
    every_sqlite_connection_commits_to_disk_before_returning,
    an_endpoint_held_by_another_nodes_claim_is_skipped_and_said_so,
    failed_deliveries_are_resent_only_from_the_time_asked,
    another_tenant_can_neither_see_nor_change_an_endpoint_or_its_deliveries,
    an_endpoint_never_has_more_than_its_bound_in_flight,
    nodes_claiming_at_once_share_one_bound,
    scarce_slots_are_shared_across_organizations_before_endpoints,
    a_held_delivery_waits_out_its_predecessor_and_is_released_by_its_success,
    a_replay_is_ordered_within_itself_not_behind_a_live_failure,
    leases_of_a_previous_process_are_taken_back_at_start_on_sqlite_only,
    endpoints_per_organization_are_capped_even_when_created_at_once,
    lag_counts_what_is_due_and_unsent_per_endpoint,
    an_attempts_outcome_never_overwrites_a_resend_or_a_later_claim,
    a_round_claims_what_its_recording_released_and_looks_ahead_after_a_retry,
    only_retries_used_up_past_the_window_disable_an_endpoint,
);
