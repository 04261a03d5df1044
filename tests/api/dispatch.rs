//! The dispatcher as several nodes run it: no duplicates, and crash recovery with the same id.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::TestDb;
use crate::on_both_backends;
use crate::receiver::Receiver;
use leadtrail::domain::ids::OrgId;
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

/// An organization subscribed to `lead.address_preview` at `url`, with `leads` new leads.
async fn org_with_leads(store: &Store, url: &str, leads: usize) -> OrgId {
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
    let events = vec![
        "lead.enriched".to_owned(),
        "lead.address_preview".to_owned(),
    ];
    store
        .create_endpoint(&org, url, "", &events, &secret, 20)
        .await
        .unwrap();
    let commands: Vec<_> = (0..leads)
        .map(|_| {
            CaptureCommand::CreateLead(Box::new(NewLead {
                org: org.clone(),
                embedding: Some(WidgetVersion::PRIMARY),
                v: None,
                s: None,
                page_url: None,
                referrer: None,
                utm: Default::default(),
                first_touch: None,
                address: Address::parse("1 Main St", "Austin", "TX", "78701", None).unwrap(),
                idempotency: None,
            }))
        })
        .collect();
    store.apply_capture(&commands).await.unwrap();
    org
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
        .claim_deliveries(ClaimRequest {
            free: 10,
            per_endpoint: 16,
            lease_ms: lease.as_millis() as i64,
            rotation: 0,
            sweep: true,
            only_if_released: false,
        })
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

on_both_backends!(
    a_target_no_longer_allowed_is_refused_at_delivery_time,
    two_dispatchers_on_one_database_deliver_each_message_once,
    a_dispatcher_killed_mid_flight_is_redelivered_with_the_same_webhook_id,
);
