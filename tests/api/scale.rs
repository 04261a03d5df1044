//! Many nodes on one PostgreSQL: work committed by one node wakes the others at once
//! (`LISTEN/NOTIFY`), with polling only as the safety net, and the listening connection comes
//! back by itself when it is killed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Connection;

use crate::common::leads::{arrival, create};
use crate::common::{Backend, TestDb};
use crate::helpers::TestApp;
use crate::receiver::Receiver;
use leadtrail::domain::ids::OrgId;
use leadtrail::store::Store;

/// Far longer than any wait below: a delivery seen in time was woken, not polled for.
const POLL: Duration = Duration::from_secs(120);
const IN_TIME: Duration = Duration::from_secs(15);

async fn delivered_in_time(receiver: &Receiver, count: usize, since: Instant) {
    let deadline = since + IN_TIME;
    while receiver.delivered().len() < count {
        assert!(
            Instant::now() < deadline,
            "delivery {count} did not arrive within {IN_TIME:?} (poll every {POLL:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The backends listening on this database (other than the asking one).
async fn listeners(url: &str) -> Vec<i32> {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
         AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_another_nodes_deliveries_wake_this_node_and_the_listener_comes_back() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let app = TestApp::spawn_with(db, |c| {
        c.allow_private_webhook_targets = true;
        c.webhook_poll_interval = Some(POLL);
    })
    .await;
    let org = app.create_org("starter").await;
    let receiver = Receiver::start(Arc::new(|_, _| 200)).await;
    let (status, body) = org
        .post(
            "/api/v1/webhooks",
            json!({"url": receiver.url, "events": ["lead.address_preview"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // Another node that only writes: its commits reach this node by NOTIFY alone.
    let other_node = Store::connect(app.database_url()).await.unwrap();
    let org_id = OrgId::parse(&org.id).unwrap();
    let lead = || arrival(&org_id, Some(1), None, None);

    let at = Instant::now();
    create(&other_node, lead()).await.unwrap();
    delivered_in_time(&receiver, 1, at).await;
    // Now the listener is surely up: this one can only come by its wake-up.
    let at = Instant::now();
    create(&other_node, lead()).await.unwrap();
    delivered_in_time(&receiver, 2, at).await;

    // Kill the listening connection; the node listens again by itself.
    let before = listeners(app.database_url()).await;
    assert_eq!(before.len(), 1, "one listener per node: {before:?}");
    let mut admin = sqlx::PgConnection::connect(app.database_url())
        .await
        .unwrap();
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(before[0])
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(killed);
    let deadline = Instant::now() + IN_TIME;
    loop {
        let now = listeners(app.database_url()).await;
        if now.len() == 1 && now[0] != before[0] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the listener never came back: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let at = Instant::now();
    create(&other_node, lead()).await.unwrap();
    delivered_in_time(&receiver, 3, at).await;
    other_node.close().await;
}

/// Whether `notify` is woken (or was, its permit kept) within `within`.
async fn woken(notify: &tokio::sync::Notify, within: Duration) -> bool {
    tokio::time::timeout(within, notify.notified())
        .await
        .is_ok()
}

/// The listener on its own: it wakes the worker a notification names (both for a payload it
/// does not know), and both after every (re)connect, since what was sent while it was down is
/// lost. Each wake-up is awaited; a worker not to be woken is given a moment more, long after
/// the other was woken in the same call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_listener_wakes_the_worker_named_and_both_after_it_connects() {
    use leadtrail::workers::wakeups::{self, CHANNEL, DELIVERIES, ENRICHMENT, Wake};
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let url = db.url().to_owned();
    let wake = Wake {
        dispatcher: Arc::new(tokio::sync::Notify::new()),
        enrichment: Arc::new(tokio::sync::Notify::new()),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let listening = tokio::spawn(wakeups::listen(url.clone(), wake.clone(), stopped));
    let both_woken =
        async || woken(&wake.dispatcher, IN_TIME).await && woken(&wake.enrichment, IN_TIME).await;
    assert!(both_woken().await, "connected: both workers look once");

    let mut sender = sqlx::PgConnection::connect(&url).await.unwrap();
    let moment = Duration::from_millis(300);
    for (payload, dispatcher, enrichment) in [
        (DELIVERIES, true, false),
        (ENRICHMENT, false, true),
        ("something newer", true, true),
    ] {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload)
            .execute(&mut sender)
            .await
            .unwrap();
        let wait = |wanted: bool| if wanted { IN_TIME } else { moment };
        // The one to be woken first: the other is checked after the call that woke it.
        let order = if dispatcher {
            [
                (&wake.dispatcher, dispatcher),
                (&wake.enrichment, enrichment),
            ]
        } else {
            [
                (&wake.enrichment, enrichment),
                (&wake.dispatcher, dispatcher),
            ]
        };
        for (notify, wanted) in order {
            assert_eq!(woken(notify, wait(wanted)).await, wanted, "{payload}");
        }
    }

    let before = listeners(&url).await;
    assert_eq!(before.len(), 1, "{before:?}");
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(before[0])
        .fetch_one(&mut sender)
        .await
        .unwrap();
    assert!(killed);
    assert!(both_woken().await, "after losing its connection");

    stop.send(true).unwrap();
    tokio::time::timeout(IN_TIME, listening)
        .await
        .expect("the listener stops when asked")
        .unwrap();
}
