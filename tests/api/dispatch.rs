//! The dispatcher as several nodes run it: no duplicates, and crash recovery with the same id.

use leadtrail::domain::attribution::Arrival;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::common::TestDb;
use crate::on_both_backends;
use crate::receiver::Receiver;
use leadtrail::domain::ids::{EndpointId, OrgId};
use leadtrail::domain::lead::Address;
use leadtrail::domain::organization::{BrandColor, OrgName, SiteUrl};
use leadtrail::domain::tier::Tier;
use leadtrail::domain::widget::WidgetVersion;
use leadtrail::store::ClaimRequest;
use leadtrail::store::{CaptureCommand, NewLead, NewOrganization, Store};
use leadtrail::webhooks::dispatcher::{DispatchSettings, Dispatcher, Progress};
use leadtrail::webhooks::policy::RetryPolicy;
use leadtrail::webhooks::signing::Secret;
use leadtrail::webhooks::target::TargetPolicy;

async fn node(db: &TestDb) -> Store {
    let store = Store::connect(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// What the service would use, towards loopback receivers with quick retries.
pub fn settings() -> DispatchSettings {
    let config = leadtrail::config::Config::with_database("sqlite://unused.db").unwrap();
    DispatchSettings {
        targets: TargetPolicy::permissive(),
        retry: RetryPolicy {
            schedule: vec![Duration::from_millis(50); 3],
        },
        disable_after: Duration::from_secs(3600),
        ..DispatchSettings::from_config(&config)
    }
}

fn dispatcher(store: &Store) -> Dispatcher {
    Dispatcher::new(store.clone(), settings()).unwrap()
}

/// An organization with one endpoint at `url` subscribed to `events`.
async fn org_subscribed(store: &Store, url: &str, events: &[&str]) -> (OrgId, EndpointId) {
    let org = store
        .create_organization(NewOrganization {
            name: OrgName::parse("Acme").unwrap(),
            website_url: SiteUrl::parse("website_url", "https://acme.example").unwrap(),
            brand_color: BrandColor::parse("#000000").unwrap(),
            tier: Tier::Starter,
            owner: None,
        })
        .await
        .unwrap()
        .organization
        .id;
    let (_, secret) = Secret::generate();
    let events: Vec<String> = events.iter().map(|e| (*e).to_owned()).collect();
    let endpoint = store
        .create_endpoint(&org, url, "", &events, &secret, 20)
        .await
        .unwrap();
    (org, endpoint.id)
}

/// An organization subscribed to `lead.address_preview` at `url`, with `leads` new leads.
async fn org_with_leads(store: &Store, url: &str, leads: usize) -> OrgId {
    let (org, _) = org_subscribed(store, url, &["lead.enriched", "lead.address_preview"]).await;
    new_leads(store, &org, leads).await;
    org
}

/// `leads` new leads (one `lead.address_preview` each).
async fn new_leads(store: &Store, org: &OrgId, leads: usize) {
    let commands: Vec<_> = (0..leads)
        .map(|_| {
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
        })
        .collect();
    store.apply_capture(&commands).await.unwrap();
}

/// A claim as another node makes it, for whatever is due, holding it for `lease`.
fn claim_as_another_node(lease: Duration) -> ClaimRequest {
    ClaimRequest {
        free: 10,
        per_endpoint: 16,
        lease_ms: lease.as_millis() as i64,
        rotation: 0,
        sweep: true,
        only_if_released: false,
    }
}

async fn two_dispatchers_on_one_database_deliver_each_message_once(db: TestDb) {
    let receiver = Receiver::ok().await;
    let (a, b) = (node(&db).await, node(&db).await);
    org_with_leads(&a, &receiver.url, 60).await;
    let run = |store: Store| async move {
        let d = dispatcher(&store);
        let mut idle = 0;
        while idle < 3 {
            match d.run_once().await.unwrap() {
                Progress::Idle => {
                    idle += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Progress::Worked { .. } => idle = 0,
            }
        }
    };
    tokio::join!(run(a), run(b));
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in receiver.all() {
        *counts.entry(r.id).or_default() += 1;
    }
    assert_eq!(counts.len(), 60, "every lead's address preview arrived");
    assert!(
        counts.values().all(|n| *n == 1),
        "a message was delivered twice"
    );
}

async fn a_dispatcher_killed_mid_flight_is_redelivered_with_the_same_webhook_id(db: TestDb) {
    let receiver = Receiver::ok().await;
    let store = node(&db).await;
    org_with_leads(&store, &receiver.url, 1).await;
    store.fan_out(100).await.unwrap();
    // The first dispatcher claims the delivery, sends it, and dies before recording anything.
    // The lease is long enough that sending and opening another node on a slow machine stay
    // well inside it.
    let lease = Duration::from_secs(3);
    let claimed_at = std::time::Instant::now();
    let claimed = store
        .claim_deliveries(claim_as_another_node(lease))
        .await
        .unwrap()
        .due;
    assert_eq!(claimed.len(), 1);
    reqwest::Client::new()
        .post(&claimed[0].url)
        .header("webhook-id", claimed[0].id.as_str())
        .body(claimed[0].body.clone())
        .send()
        .await
        .unwrap();
    // Another node: nothing to do while the lease holds, then the same message again.
    let survivor = dispatcher(&node(&db).await);
    assert_eq!(survivor.run_once().await.unwrap(), Progress::Idle);
    tokio::time::sleep((lease + Duration::from_millis(100)).saturating_sub(claimed_at.elapsed()))
        .await;
    assert_eq!(
        survivor.run_once().await.unwrap(),
        Progress::Worked { fanned: 0, sent: 1 }
    );
    let ids: Vec<String> = receiver.all().into_iter().map(|r| r.id).collect();
    let id = claimed[0].id.to_string();
    assert_eq!(ids, vec![id.clone(), id]);
}

async fn a_target_no_longer_allowed_is_refused_at_delivery_time(db: TestDb) {
    // Saved while private targets were allowed; the operator has since turned that off.
    let receiver = Receiver::ok().await;
    let store = node(&db).await;
    let org = org_with_leads(&store, &receiver.url, 1).await;
    let strict = Dispatcher::new(
        store.clone(),
        DispatchSettings {
            targets: TargetPolicy::default(),
            ..settings()
        },
    )
    .unwrap();
    assert!(matches!(
        strict.run_once().await.unwrap(),
        Progress::Worked { sent: 1, .. }
    ));
    assert!(
        receiver.all().is_empty(),
        "nothing reached the private address"
    );
    let endpoint = store.endpoints(&org).await.unwrap().remove(0);
    let log = store.deliveries(&org, &endpoint.id, 10).await.unwrap();
    assert_eq!(
        log[0].log[0].error_class.as_deref(),
        Some("target_refused"),
        "{log:?}"
    );
}

/// `n` leads walked through every step and enriched: four events each, in this order.
async fn leads_with_four_events(store: &Store, org: &OrgId, n: usize) {
    use crate::common::leads::{arrival, contact, create, personal, project, step};
    for _ in 0..n {
        let lead = create(store, arrival(org, Some(1), None, None))
            .await
            .unwrap();
        for s in [project(), personal(false), contact()] {
            step(store, &lead, s, None).await.unwrap();
        }
    }
    let worker = leadtrail::workers::enrichment::EnrichmentWorker::new(store.clone(), None);
    while worker.run_once().await.unwrap() != leadtrail::workers::enrichment::Progress::Idle {}
}

const FOUR: [&str; 4] = [
    "lead.address_preview",
    "lead.enriched",
    "lead.rental_alert",
    "lead.contact_requested",
];

/// Runs both dispatchers side by side until `done` holds (30 s at most).
async fn run_both(a: &Dispatcher, b: &Dispatcher, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    let turn = |d: &Dispatcher| {
        let d = d.clone();
        async move {
            if d.run_once().await.unwrap() == Progress::Idle {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "the dispatchers never finished"
        );
        tokio::join!(turn(a), turn(b));
    }
}

async fn two_dispatchers_keep_each_leads_order_through_failures_and_a_resend(db: TestDb) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    // Every address preview fails until `fixed`; besides, every third request fails.
    let fixed = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let (f, c) = (fixed.clone(), count.clone());
    let receiver = Receiver::start(Arc::new(move |event, _| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        if (event == "lead.address_preview" && !f.load(Ordering::SeqCst)) || n.is_multiple_of(3) {
            503
        } else {
            200
        }
    }))
    .await;
    let (a, b) = (node(&db).await, node(&db).await);
    let (org, endpoint) = org_subscribed(&a, &receiver.url, &FOUR).await;
    leads_with_four_events(&a, &org, 8).await;
    // Retries enough that the every-third failures never use up a schedule; the previews'
    // constant failures use theirs up in under a second.
    let patient = |store: &Store| {
        let settings = DispatchSettings {
            retry: RetryPolicy {
                schedule: vec![Duration::from_millis(20); 12],
            },
            ..settings()
        };
        Dispatcher::new(store.clone(), settings).unwrap()
    };
    let (da, db_) = (patient(&a), patient(&b));
    // Every lead's first event uses up its retries; nothing behind it may go out meanwhile.
    let failed = || {
        let a = a.clone();
        let (org, id) = (org.clone(), endpoint.clone());
        async move {
            a.deliveries(&org, &id, 100)
                .await
                .unwrap()
                .iter()
                .filter(|d| d.status == "failed")
                .count()
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while failed().await < 8 {
        assert!(
            std::time::Instant::now() < deadline,
            "previews never failed"
        );
        tokio::join!(async { da.run_once().await.unwrap() }, async {
            db_.run_once().await.unwrap()
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        receiver
            .all()
            .iter()
            .all(|r| r.json["type"] == "lead.address_preview"),
        "a successor overtook its failed predecessor"
    );
    // Repaired, and the failed ones resent: everything arrives, each lead in order.
    fixed.store(true, Ordering::SeqCst);
    assert_eq!(a.resend_failed_since(&org, &endpoint, 0).await.unwrap(), 8);
    run_both(&da, &db_, || {
        receiver
            .delivered()
            .iter()
            .filter(|r| r.json["type"] == "lead.contact_requested")
            .count()
            == 8
    })
    .await;
    let all = receiver.all();
    let delivered = receiver.delivered();
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in &delivered {
        *per_id.entry(r.id.clone()).or_default() += 1;
    }
    assert_eq!(per_id.len(), 32, "every event of every lead");
    assert!(
        per_id.values().all(|n| *n == 1),
        "delivered twice: {per_id:?}"
    );
    let mut leads: Vec<&str> = delivered
        .iter()
        .filter_map(|r| r.json["data"]["lead_id"].as_str())
        .collect();
    leads.sort_unstable();
    leads.dedup();
    for lead in leads {
        let mine: Vec<&crate::receiver::Received> = delivered
            .iter()
            .filter(|r| r.json["data"]["lead_id"] == lead)
            .collect();
        let types: Vec<&str> = mine
            .iter()
            .map(|r| r.json["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, FOUR, "lead {lead}");
        for pair in mine.windows(2) {
            let early = all.iter().any(|r| {
                r.json["data"]["lead_id"] == lead
                    && r.json["type"] == pair[1].json["type"]
                    && r.at < pair[0].at
            });
            assert!(
                !early,
                "lead {lead}: {} attempted before {} succeeded",
                pair[1].json["type"], pair[0].json["type"]
            );
        }
    }
    assert!(
        count.load(Ordering::SeqCst) > 32,
        "there were failures to retry"
    );
}

/// Runs a dispatcher as the service does (its loop, woken by nothing, the safety-net poll an
/// hour away) until the receiver's requests satisfy `done`, then stops it. What happens before
/// the deadline is what the loop decides to claim by itself: the deadline (8 s, where these
/// runs take well under one) stays below the lag report's 10 s cadence, whose wake-up would
/// otherwise hide a claim the loop forgot to make.
async fn run_loop_until(
    store: &Store,
    settings: DispatchSettings,
    receiver: &Receiver,
    what: &str,
    done: impl Fn(&[crate::receiver::Received]) -> bool,
) {
    let wake = Arc::new(tokio::sync::Notify::new());
    run_woken_loop_until(store, settings, wake, receiver, what, done).await;
}

/// `run_loop_until` with the wake-up the service's own captures would ring.
async fn run_woken_loop_until(
    store: &Store,
    settings: DispatchSettings,
    wake: Arc<tokio::sync::Notify>,
    receiver: &Receiver,
    what: &str,
    done: impl Fn(&[crate::receiver::Received]) -> bool,
) {
    let settings = DispatchSettings {
        poll: Duration::from_secs(3600),
        ..settings
    };
    let dispatcher = Dispatcher::new(store.clone(), settings).unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(dispatcher.run(wake, stopped));
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while !done(&receiver.all()) {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never happened: {:?}",
            receiver
                .all()
                .iter()
                .map(|r| (r.json["type"].clone(), r.answered))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    running.await.unwrap();
}

/// A delivered event releases its lead's next one (held until then by per-lead order): the
/// loop claims it at once.
async fn a_running_dispatcher_sends_a_leads_next_event_once_the_one_before_is_delivered(
    db: TestDb,
) {
    let receiver = Receiver::ok().await;
    let store = node(&db).await;
    let (org, _) = org_subscribed(&store, &receiver.url, &FOUR).await;
    leads_with_four_events(&store, &org, 1).await;
    run_loop_until(&store, settings(), &receiver, "all four events", |seen| {
        seen.len() == 4
    })
    .await;
    let types: Vec<_> = receiver
        .delivered()
        .iter()
        .map(|r| r.json["type"].clone())
        .collect();
    assert_eq!(types, FOUR, "in the lead's order");
}

/// With one slot per endpoint, a failed attempt (its retry an hour away) frees the slot for
/// the next lead's delivery, which the loop claims at once.
async fn a_running_dispatcher_gives_a_failed_attempts_slot_to_the_next_waiting_delivery(
    db: TestDb,
) {
    let receiver = Receiver::start(Arc::new(|_, _| 503)).await;
    let store = node(&db).await;
    let (org, _) = org_subscribed(&store, &receiver.url, &["lead.address_preview"]).await;
    new_leads(&store, &org, 3).await;
    let settings = DispatchSettings {
        endpoint_concurrency: 1,
        retry: RetryPolicy {
            schedule: vec![Duration::from_secs(3600)],
        },
        ..settings()
    };
    run_loop_until(
        &store,
        settings,
        &receiver,
        "a first attempt of each lead's preview",
        |seen| seen.len() == 3,
    )
    .await;
    let leads: std::collections::HashSet<String> = receiver
        .all()
        .iter()
        .map(|r| r.json["data"]["lead_id"].to_string())
        .collect();
    assert_eq!(leads.len(), 3, "three leads, one attempt each");
}

/// A failed attempt's retry is sent when it falls due, not at the next poll (an hour away
/// here): the loop sets its timer from the round's look at the next due attempt.
async fn a_running_dispatcher_sends_a_retry_when_it_falls_due(db: TestDb) {
    let receiver = Receiver::start(Arc::new(|_, seen| if seen == 0 { 503 } else { 200 })).await;
    let store = node(&db).await;
    let (org, _) = org_subscribed(&store, &receiver.url, &["lead.address_preview"]).await;
    new_leads(&store, &org, 1).await;
    let delay = Duration::from_secs(1);
    let settings = DispatchSettings {
        retry: RetryPolicy {
            schedule: vec![delay],
        },
        ..settings()
    };
    run_loop_until(&store, settings, &receiver, "the retry", |seen| {
        seen.len() == 2
    })
    .await;
    let seen = receiver.all();
    assert_eq!((seen[0].answered, seen[1].answered), (503, 200));
    assert_eq!(seen[0].id, seen[1].id, "the same message");
    assert!(
        seen[1].at - seen[0].at >= delay,
        "retried after {:?}, before the schedule's {delay:?}",
        seen[1].at - seen[0].at
    );
}

/// A node never has more attempts in flight than its concurrency, however often it is woken
/// meanwhile, and it uses all of them. The receiver answers each request after `answer`, so
/// a request is in flight from its arrival until `answer` later: the log's arrival times
/// show how many overlapped.
async fn a_node_keeps_exactly_its_concurrency_in_flight_while_woken(db: TestDb) {
    let answer = Duration::from_millis(600);
    let receiver = Receiver::slow(answer).await;
    let store = node(&db).await;
    let (org, _) = org_subscribed(&store, &receiver.url, &["lead.address_preview"]).await;
    new_leads(&store, &org, 6).await;
    let settings = DispatchSettings {
        concurrency: 2,
        endpoint_concurrency: 16,
        ..settings()
    };
    // Woken every 50 ms, as a node taking captures wakes its own dispatcher.
    let wake = Arc::new(tokio::sync::Notify::new());
    let ringing = tokio::spawn({
        let wake = wake.clone();
        async move {
            loop {
                wake.notify_one();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    run_woken_loop_until(
        &store,
        settings,
        wake,
        &receiver,
        "six deliveries",
        |seen| seen.len() == 6,
    )
    .await;
    ringing.abort();
    let arrivals: Vec<_> = receiver.all().iter().map(|r| r.at).collect();
    let most = arrivals
        .iter()
        .map(|at| {
            let started_before = arrivals.iter().filter(|a| *a <= at);
            started_before
                .filter(|a| at.duration_since(**a) < answer)
                .count()
        })
        .max();
    assert_eq!(most, Some(2), "attempts in flight at once: {arrivals:?}");
}

/// Starts a dispatcher's loop as the service does, waits until `receiver` got its first
/// request, and stops the loop: what the dispatcher does with an attempt still in flight.
async fn stop_mid_attempt(store: &Store, receiver: &Receiver) -> std::time::Duration {
    let dispatcher = dispatcher(store);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(dispatcher.run(Arc::new(tokio::sync::Notify::new()), stopped));
    receiver.wait_for_attempts(1).await;
    let stopping = std::time::Instant::now();
    stop.send(true).unwrap();
    running.await.unwrap();
    stopping.elapsed()
}

/// Stopped while an answer is on its way (the receiver takes half a second), the dispatcher waits
/// for it and records it: the delivery reads delivered, and no other node sends it again.
async fn a_stopping_dispatcher_records_the_attempt_in_flight(db: TestDb) {
    // Well inside the 3 s grace on a loaded machine, and long enough that the stop (sent as
    // soon as the request is seen) comes while the answer is still on its way.
    let receiver = Receiver::slow(Duration::from_millis(500)).await;
    let store = node(&db).await;
    let (org, endpoint) = org_subscribed(&store, &receiver.url, &["lead.address_preview"]).await;
    new_leads(&store, &org, 1).await;
    stop_mid_attempt(&store, &receiver).await;
    let log = store.deliveries(&org, &endpoint, 10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].status.as_str(), log[0].attempts, log[0].last_status),
        ("delivered", 1, Some(200)),
        "the answer that came during the shutdown grace was recorded"
    );
    let other = dispatcher(&node(&db).await);
    assert_eq!(other.run_once().await.unwrap(), Progress::Idle);
    assert_eq!(receiver.all().len(), 1, "sent once");
}

/// Stopped while an endpoint never answers, the dispatcher gives up after its grace and
/// hands the lease back: another node can claim the message at once (with the same id), not
/// when the minute-long lease would have run out.
async fn a_stopping_dispatcher_hands_back_an_attempt_that_does_not_finish(db: TestDb) {
    let receiver = Receiver::hanging().await;
    let store = node(&db).await;
    let (org, endpoint) = org_subscribed(&store, &receiver.url, &["lead.address_preview"]).await;
    new_leads(&store, &org, 1).await;
    let took = stop_mid_attempt(&store, &receiver).await;
    assert!(took < Duration::from_secs(30), "stopping took {took:?}");
    let log = store.deliveries(&org, &endpoint, 10).await.unwrap();
    assert_eq!(
        (log[0].status.as_str(), log[0].delivered_at),
        ("pending", None)
    );
    // Another node can claim it now (sending it would only hang again).
    let claimed = node(&db)
        .await
        .claim_deliveries(claim_as_another_node(Duration::from_secs(60)))
        .await
        .unwrap()
        .due;
    assert_eq!(claimed.len(), 1, "the lease was handed back");
    assert_eq!(
        claimed[0].id.to_string(),
        receiver.all()[0].id,
        "the same message"
    );
}

on_both_backends!(
    a_running_dispatcher_sends_a_retry_when_it_falls_due,
    a_node_keeps_exactly_its_concurrency_in_flight_while_woken,
    a_stopping_dispatcher_records_the_attempt_in_flight,
    a_stopping_dispatcher_hands_back_an_attempt_that_does_not_finish,
    a_running_dispatcher_sends_a_leads_next_event_once_the_one_before_is_delivered,
    a_running_dispatcher_gives_a_failed_attempts_slot_to_the_next_waiting_delivery,
    two_dispatchers_keep_each_leads_order_through_failures_and_a_resend,
    a_target_no_longer_allowed_is_refused_at_delivery_time,
    two_dispatchers_on_one_database_deliver_each_message_once,
    a_dispatcher_killed_mid_flight_is_redelivered_with_the_same_webhook_id,
);
