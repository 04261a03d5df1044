//! Crash safety, proven on the real binary: concurrent captures and steps, `kill -9` in the
//! middle of the load (and so in the middle of batched writes, enrichment and dispatch),
//! restart on the same database, several times over. Afterwards every acknowledged lead is
//! there with its source snapshot and the steps that were acknowledged, and each of its events
//! reached a real receiver at least once — a repeat always with the same `webhook-id`.
//! On SQLite and on PostgreSQL. And `leadtrail backup` taken under the same load: the copy,
//! restored, holds every lead acknowledged before the backup began.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;
#[allow(dead_code, reason = "this test uses a part of the shared receiver")]
#[path = "api/receiver.rs"]
mod receiver;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::{Backend, TestDb};
use receiver::Receiver;

const BIN: &str = env!("CARGO_BIN_EXE_leadtrail");
const OPERATOR: &str = "crash-test-operator-token-0123456789";
/// Kills per backend, and acknowledged lead creations between two kills.
const KILLS: usize = 3;
const CREATES_PER_ROUND: usize = 120;
const CLIENTS: usize = 12;
/// Longer than a delivery lease (60 s): a delivery leased by a killed node is retried once it
/// expires (on SQLite at once: a restart takes the old leases back).
const SETTLE: Duration = Duration::from_secs(150);

/// What the service acknowledged: its answer reached the client.
#[derive(Default, Clone)]
struct Acked {
    created: BTreeSet<String>,
    /// Leads whose personal-info step was acknowledged: their enrichment is owed.
    personal: BTreeSet<String>,
    /// Leads whose project step was acknowledged.
    project: BTreeSet<String>,
    /// Leads whose contact step was acknowledged.
    contact: BTreeSet<String>,
}

struct Node {
    child: Child,
    base: String,
}

impl Node {
    async fn start(database_url: &str) -> Node {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(database_url, port).await
    }

    /// A node on a given port (a restarted node takes its old address).
    async fn start_on(database_url: &str, port: u16) -> Node {
        let child = Command::new(BIN)
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .env("LEADTRAIL_DATABASE_URL", database_url)
            .env("LEADTRAIL_ADMIN_TOKEN", OPERATOR)
            .env("LEADTRAIL_ALLOW_PRIVATE_WEBHOOK_TARGETS", "true")
            .env("LEADTRAIL_CAPTURE_RATE_LIMIT", "0")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let node = Node {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while reqwest::get(format!("{}/readyz", node.base)).await.is_err() {
            assert!(Instant::now() < deadline, "the service never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        node
    }

    /// `kill -9`: no shutdown, no flush, leases left held.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn address() -> Value {
    json!({"street": "1 Main St", "city": "Austin", "state": "TX", "postal_code": "78701"})
}

/// The widget's steps after the address: project, contact details, contact preference.
fn steps() -> [Value; 3] {
    [
        json!({"step": "project_details", "roof_type": "replacement",
            "material": "asphalt_shingle", "stories": 2, "urgency": "within_1_month"}),
        json!({"step": "personal_info", "first_name": "Ann", "last_name": "Lee",
            "email": "ann@example.com", "phone": "(512) 555-0100", "owner_occupied": true}),
        json!({"step": "contact_preference", "contact_method": "phone", "contact_time": "morning"}),
    ]
}

/// One homeowner after another through the widget's three steps, until the node dies or the
/// round has enough acknowledged creations.
async fn homeowners(base: String, public_key: String, acked: Arc<Mutex<Acked>>, target: usize) {
    let client = reqwest::Client::new();
    loop {
        if acked.lock().unwrap().created.len() >= target {
            return;
        }
        let created = client
            .post(format!("{base}/c/v1/leads"))
            .json(&json!({"public_key": public_key, "v": "01", "s": "02", "address": address()}))
            .send()
            .await;
        let Ok(created) = created else { return };
        if created.status() != 201 {
            return;
        }
        let Ok(body) = created.json::<Value>().await else {
            return;
        };
        let lead = body["lead_id"].as_str().unwrap().to_owned();
        let token = body["capture_token"].as_str().unwrap().to_owned();
        acked.lock().unwrap().created.insert(lead.clone());
        for (i, step) in steps().iter().take(2).enumerate() {
            let answered = client
                .patch(format!("{base}/c/v1/leads/{lead}"))
                .bearer_auth(&token)
                .json(step)
                .send()
                .await;
            match answered {
                Ok(r) if r.status() == 200 => {
                    let mut acked = acked.lock().unwrap();
                    if i == 0 {
                        acked.project.insert(lead.clone());
                    } else {
                        acked.personal.insert(lead.clone());
                    }
                }
                _ => return,
            }
        }
    }
}

async fn api(base: &str, key: &str, method: reqwest::Method, path: &str, body: Value) -> Value {
    reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// An organization with a Yard Signs source (`02`): its API key and public key.
async fn acme(base: &str) -> (String, String) {
    let org = api(
        base,
        OPERATOR,
        reqwest::Method::POST,
        "/api/v1/organizations",
        json!({"name": "Acme Roofing", "tier": "premium",
            "website_url": "https://acme.example", "brand_color": "#1A73E8"}),
    )
    .await;
    let key = org["api_key"].as_str().unwrap().to_owned();
    let public_key = org["public_key"].as_str().unwrap().to_owned();
    api(
        base,
        &key,
        reqwest::Method::POST,
        "/api/v1/widgets/01/sources",
        json!({"name": "Yard Signs", "channel_category": "print_outdoor"}),
    )
    .await;
    (key, public_key)
}

/// Event types each acknowledged lead is owed, by lead.
fn owed(acked: &Acked) -> BTreeMap<String, Vec<&'static str>> {
    acked
        .created
        .iter()
        .map(|lead| {
            let mut types = vec!["lead.address_preview"];
            if acked.personal.contains(lead) {
                types.push("lead.enriched");
            }
            (lead.clone(), types)
        })
        .collect()
}

/// The acknowledged leads a node does not have; each one it has carries its source snapshot and
/// at least the steps that were acknowledged.
async fn lost_leads(base: &str, key: &str, acked: &Acked) -> Vec<String> {
    let mut lost = Vec::new();
    for lead in &acked.created {
        let res = reqwest::Client::new()
            .get(format!("{base}/api/v1/leads/{lead}"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        if res.status() != 200 {
            lost.push(lead.clone());
            continue;
        }
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["source_tracking"]["source_code"], "02", "{body}");
        assert_eq!(
            body["source_tracking"]["source_label"], "Yard Signs",
            "{body}"
        );
        let status = body["status"].as_str().unwrap();
        if acked.personal.contains(lead) {
            assert_ne!(status, "address_info_provided", "{lead}: {body}");
            assert_ne!(status, "project_details_provided", "{lead}: {body}");
        } else if acked.project.contains(lead) {
            assert_ne!(status, "address_info_provided", "{lead}: {body}");
        }
    }
    lost
}

async fn kill_restart_and_count(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let receiver = Receiver::start(Arc::new(|_, _| 200)).await;
    let mut node = Node::start(db.url()).await;
    let (key, public_key) = acme(&node.base).await;
    api(
        &node.base,
        &key,
        reqwest::Method::POST,
        "/api/v1/webhooks",
        json!({"url": receiver.url, "events": ["lead.address_preview", "lead.enriched"]}),
    )
    .await;

    let acked = Arc::new(Mutex::new(Acked::default()));
    for round in 1..=KILLS {
        let target = round * CREATES_PER_ROUND;
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                tokio::spawn(homeowners(
                    node.base.clone(),
                    public_key.clone(),
                    acked.clone(),
                    target + CREATES_PER_ROUND,
                ))
            })
            .collect();
        // Kill once this round's creations are acknowledged, with the clients still going.
        let deadline = Instant::now() + Duration::from_secs(120);
        while acked.lock().unwrap().created.len() < target {
            assert!(
                Instant::now() < deadline,
                "the load stalled in round {round}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        node.kill();
        for client in clients {
            client.await.unwrap();
        }
        node = Node::start(db.url()).await;
    }

    // Every acknowledged lead, with its snapshot and its acknowledged steps.
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let lost = lost_leads(&node.base, &key, &acked).await;
    assert!(lost.is_empty(), "acknowledged leads lost: {lost:?}");

    // Every event each of them is owed, delivered at least once, repeats with the same id.
    let owed = owed(&acked);
    let deadline = Instant::now() + SETTLE;
    let received = loop {
        let received = receiver.all();
        let got: HashSet<(String, String)> = received
            .iter()
            .filter_map(|r| {
                Some((
                    r.json["data"]["lead_id"].as_str()?.to_owned(),
                    r.json["type"].as_str()?.to_owned(),
                ))
            })
            .collect();
        let missing: Vec<_> = owed
            .iter()
            .flat_map(|(lead, types)| types.iter().map(move |t| (lead.clone(), t.to_string())))
            .filter(|pair| !got.contains(pair))
            .collect();
        if missing.is_empty() {
            break received;
        }
        assert!(
            Instant::now() < deadline,
            "{} owed events never arrived, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut ids: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for r in &received {
        let lead = r.json["data"]["lead_id"].as_str().unwrap_or_default();
        let kind = r.json["type"].as_str().unwrap_or_default();
        ids.entry((lead.to_owned(), kind.to_owned()))
            .or_default()
            .insert(r.id.clone());
    }
    for ((lead, kind), set) in &ids {
        assert_eq!(
            set.len(),
            1,
            "{lead} {kind} arrived under several ids: {set:?}"
        );
    }
    let events: usize = owed.values().map(Vec::len).sum();
    println!(
        "{backend:?}: {KILLS} kills; leads acknowledged {}, lost {}; events owed {events}, \
         requests received {}, repeats (same webhook-id) {}",
        acked.created.len(),
        lost.len(),
        received.len(),
        received.len() - ids.len()
    );
    node.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kill_9_under_load_loses_no_acknowledged_lead_or_event() {
    kill_restart_and_count(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_kill_9_under_load_loses_no_acknowledged_lead_or_event() {
    kill_restart_and_count(Backend::Postgres).await;
}

/// `leadtrail backup` while homeowners keep arriving: the copy, put in place of the database
/// and served, has every lead (and step) acknowledged before the backup started. SQLite only:
/// PostgreSQL is backed up with its own tools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_every_lead_acknowledged_before_it() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let node = Node::start(db.url()).await;
    let (key, public_key) = acme(&node.base).await;
    let acked = Arc::new(Mutex::new(Acked::default()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            tokio::spawn(homeowners(
                node.base.clone(),
                public_key.clone(),
                acked.clone(),
                2 * CREATES_PER_ROUND,
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.lock().unwrap().created.len() < CREATES_PER_ROUND {
        assert!(Instant::now() < deadline, "the load stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = acked.lock().unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("backup.db");
    let backup = |copy: std::path::PathBuf, url: String| {
        tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .args(["backup", "--database-url", &url])
                .arg(&copy)
                .output()
                .unwrap()
        })
    };
    let out = backup(copy.clone(), db.url().to_owned()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("backed up 1 organization(s)"), "{stdout}");
    for client in clients {
        client.await.unwrap();
    }

    // A second backup to the same file is refused, and the first is left as it was.
    let len = std::fs::metadata(&copy).unwrap().len();
    let again = backup(copy.clone(), db.url().to_owned()).await.unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert_eq!(std::fs::metadata(&copy).unwrap().len(), len);
    // So is a backup of a database file that is not there (it is not created empty).
    let missing = dir.path().join("missing.db");
    let none = backup(
        dir.path().join("none.db"),
        format!("sqlite://{}", missing.display()),
    )
    .await
    .unwrap();
    assert!(!none.status.success());
    assert!(!missing.exists() && !dir.path().join("none.db").exists());
    node.kill();

    // Restore: the copy in place of a database file, served.
    let restored = dir.path().join("restored.db");
    std::fs::copy(&copy, &restored).unwrap();
    let node = Node::start(&format!("sqlite://{}", restored.display())).await;
    let lost = lost_leads(&node.base, &key, &before).await;
    assert!(
        lost.is_empty(),
        "acknowledged leads missing from the backup: {lost:?}"
    );
    println!(
        "backup under load: {} leads acknowledged before it, all restored; {} by the end",
        before.created.len(),
        acked.lock().unwrap().created.len()
    );
    node.kill();
}

/// A homeowner whose every request goes to a node picked at random: a lead's steps land on
/// different nodes. A request to a node that is down is not acknowledged; a lead whose step
/// failed takes no further steps (as a homeowner who gave up would).
async fn homeowners_across(
    bases: Arc<Vec<String>>,
    public_key: String,
    acked: Arc<Mutex<Acked>>,
    target: usize,
    seed: u64,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut n = seed;
    let mut pick = || {
        // A small LCG: different nodes per request, no shared state between clients.
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        bases[(n >> 33) as usize % bases.len()].clone()
    };
    while acked.lock().unwrap().created.len() < target {
        let created = client
            .post(format!("{}/c/v1/leads", pick()))
            .json(&json!({"public_key": public_key, "v": "01", "s": "02", "address": address()}))
            .send()
            .await;
        let Ok(created) = created else { continue };
        if created.status() != 201 {
            continue;
        }
        let Ok(body) = created.json::<Value>().await else {
            continue;
        };
        let lead = body["lead_id"].as_str().unwrap().to_owned();
        let token = body["capture_token"].as_str().unwrap().to_owned();
        acked.lock().unwrap().created.insert(lead.clone());
        for (i, step) in steps().iter().enumerate() {
            let answered = client
                .patch(format!("{}/c/v1/leads/{lead}", pick()))
                .bearer_auth(&token)
                .json(step)
                .send()
                .await;
            match answered {
                Ok(r) if r.status() == 200 => {
                    let mut acked = acked.lock().unwrap();
                    match i {
                        0 => acked.project.insert(lead.clone()),
                        1 => acked.personal.insert(lead.clone()),
                        _ => acked.contact.insert(lead.clone()),
                    };
                }
                _ => break,
            }
        }
    }
}

/// Three nodes on one PostgreSQL database, captures and steps sent to all of them at random,
/// one node killed (`kill -9`) mid-run and started again. Then: every lead enriched exactly
/// once; every owed event delivered; nothing delivered twice except what the killed node had
/// in flight when it died; each lead's events in order (preview, enriched, contact requested);
/// and sources created on different nodes at once keep unique codes and the 10-source limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_three_nodes_share_the_work_across_a_node_death() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let receiver = Receiver::start(Arc::new(|_, _| 200)).await;
    let mut nodes = vec![
        Node::start(db.url()).await,
        Node::start(db.url()).await,
        Node::start(db.url()).await,
    ];
    let (key, public_key) = acme(&nodes[0].base).await;
    api(
        &nodes[1].base,
        &key,
        reqwest::Method::POST,
        "/api/v1/webhooks",
        json!({"url": receiver.url,
            "events": ["lead.address_preview", "lead.enriched", "lead.contact_requested"]}),
    )
    .await;
    let bases = Arc::new(nodes.iter().map(|n| n.base.clone()).collect::<Vec<_>>());
    let acked = Arc::new(Mutex::new(Acked::default()));
    let target = 2 * CREATES_PER_ROUND;
    let clients: Vec<_> = (0..CLIENTS as u64)
        .map(|seed| {
            tokio::spawn(homeowners_across(
                bases.clone(),
                public_key.clone(),
                acked.clone(),
                target,
                seed + 1,
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.lock().unwrap().created.len() < CREATES_PER_ROUND {
        assert!(Instant::now() < deadline, "the load stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let dead = nodes.remove(1);
    dead.kill();
    // What the dead node had on the wire may still be read just after: a moment's margin.
    let killed_at = Instant::now() + Duration::from_millis(500);
    // Its address answers nothing for a while, then a new node takes the same address.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let port: u16 = bases[1].rsplit(':').next().unwrap().parse().unwrap();
    nodes.insert(1, Node::start_on(db.url(), port).await);
    for client in clients {
        client.await.unwrap();
    }

    // Sources created on all three nodes at once: unique codes, the limit held.
    let sources = |base: String, key: String| async move {
        api(
            &base,
            &key,
            reqwest::Method::GET,
            "/api/v1/widgets/01/sources",
            json!({}),
        )
        .await
    };
    let active_before = sources(bases[0].clone(), key.clone())
        .await
        .as_array()
        .unwrap()
        .len();
    let attempts: Vec<_> = (0..12)
        .map(|i| {
            let (base, key) = (bases[i % 3].clone(), key.clone());
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(format!("{base}/api/v1/widgets/01/sources"))
                    .bearer_auth(key)
                    .json(&json!({"name": format!("Race {i}"), "channel_category": "other"}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for a in attempts {
        statuses.push(a.await.unwrap());
    }
    let created = statuses.iter().filter(|s| **s == 201).count();
    assert_eq!(created, 10 - active_before, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    let all = api(
        &bases[2],
        &key,
        reqwest::Method::GET,
        "/api/v1/widgets/01/sources?status=all",
        json!({}),
    )
    .await;
    let mut codes: Vec<String> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["code"].as_str().unwrap().to_owned())
        .collect();
    codes.sort();
    let expected: Vec<String> = (1..=codes.len()).map(|c| format!("{c:02}")).collect();
    assert_eq!(codes, expected, "codes unique and never skipped");

    // Every acknowledged lead is there with its steps.
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let lost = lost_leads(&bases[0], &key, &acked).await;
    assert!(lost.is_empty(), "acknowledged leads lost: {lost:?}");

    // Every owed event, in each lead's order; enriched once; no repeats but the dead node's.
    let owed: BTreeMap<String, Vec<&str>> = acked
        .created
        .iter()
        .map(|lead| {
            let mut types = vec!["lead.address_preview"];
            if acked.personal.contains(lead) {
                types.push("lead.enriched");
            }
            if acked.contact.contains(lead) {
                types.push("lead.contact_requested");
            }
            (lead.clone(), types)
        })
        .collect();
    let deadline = Instant::now() + SETTLE;
    let received = loop {
        let received = receiver.delivered();
        let got: HashSet<(String, String)> = received
            .iter()
            .filter_map(|r| {
                Some((
                    r.json["data"]["lead_id"].as_str()?.to_owned(),
                    r.json["type"].as_str()?.to_owned(),
                ))
            })
            .collect();
        let missing = owed
            .iter()
            .flat_map(|(lead, types)| types.iter().map(move |t| (lead.clone(), t.to_string())))
            .filter(|pair| !got.contains(pair))
            .count();
        if missing == 0 {
            break received;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} owed events never arrived"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut ids: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut first_at: BTreeMap<String, Instant> = BTreeMap::new();
    let mut repeats_after_kill = Vec::new();
    for r in &received {
        let lead = r.json["data"]["lead_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let kind = r.json["type"].as_str().unwrap_or_default().to_owned();
        ids.entry((lead, kind)).or_default().insert(r.id.clone());
        match first_at.get(&r.id) {
            // A repeat is allowed only for what the killed node had sent before it died.
            Some(first) if *first > killed_at => repeats_after_kill.push(r.id.clone()),
            Some(_) => {}
            None => {
                first_at.insert(r.id.clone(), r.at);
            }
        }
    }
    assert!(
        repeats_after_kill.is_empty(),
        "delivered twice by healthy nodes: {repeats_after_kill:?}"
    );
    for ((lead, kind), set) in &ids {
        assert_eq!(set.len(), 1, "{lead} {kind} was made {} times", set.len());
    }
    for (lead, types) in &owed {
        let at: Vec<Instant> = types
            .iter()
            .map(|t| {
                let id = ids[&(lead.clone(), (*t).to_owned())].iter().next().unwrap();
                first_at[id]
            })
            .collect();
        assert!(
            at.windows(2).all(|w| w[0] <= w[1]),
            "{lead}: {types:?} out of order"
        );
    }
    println!(
        "three nodes, one killed: leads {}, enriched {}, contact steps {}, requests received {}, repeats {}",
        acked.created.len(),
        acked.personal.len(),
        acked.contact.len(),
        received.len(),
        received.len() - first_at.len()
    );
}
