//! Capture: attribution at arrival, the frozen snapshot, steps, idempotency, events, enrichment.

use leadtrail::domain::attribution::Arrival;
use std::time::Duration;

use crate::common::TestDb;
use crate::on_both_backends;
use crate::{PRIMARY, code, new_source, org, store, version};
use leadtrail::domain::attribution::Utm;
use leadtrail::domain::channel::ChannelCategory;
use leadtrail::domain::ids::{LeadId, OrgId};
use leadtrail::domain::lead::LeadStatus;
use leadtrail::domain::lead_import::parse_lead_import;
use leadtrail::domain::source::SourceName;
use leadtrail::domain::tier::{Tier, TierLimits};
use leadtrail::domain::widget::{WidgetName, WidgetStatus, WidgetVersion};
use leadtrail::store::{
    CaptureCommand, CaptureRefusal, CaptureReply, FirstTouch, Idempotency, ImportOptions,
    LeadCreated, LeadFilter, LeadImport, LeadRecord, NewVisit, SourcePatch, Store, WidgetPatch,
};
use leadtrail::workers::enrichment::{EnrichmentWorker, Progress};

pub(crate) use crate::common::leads::{arrival, contact, create, personal, project, step};

/// A Premium organization with a second, configured widget: sources 01/01 and 01/02
/// (Facebook Ads) on the primary, 02/01, 02/02 (Google Ads) and 02/03 (Instagram) on the second.
pub(crate) async fn two_widgets(store: &Store) -> OrgId {
    let (org, _) = org(store, Tier::Premium).await;
    let limits = TierLimits::default();
    let w2 = store
        .create_widget(
            &org,
            &WidgetName::parse("New Spark 02").unwrap(),
            None,
            &limits,
        )
        .await
        .unwrap();
    store
        .update_widget(
            &org,
            w2.version,
            WidgetPatch {
                status: Some(WidgetStatus::Configured),
                ..WidgetPatch::default()
            },
            &limits,
        )
        .await
        .unwrap();
    store
        .create_source(&org, PRIMARY, new_source("Facebook Ads"))
        .await
        .unwrap(); // 01/02
    store
        .create_source(&org, version(2), new_source("Google Ads"))
        .await
        .unwrap(); // 02/02
    store
        .create_source(&org, version(2), new_source("Instagram"))
        .await
        .unwrap(); // 02/03
    org
}

async fn snapshot(
    store: &Store,
    org: &OrgId,
    lead: &LeadCreated,
) -> (String, String, String, String) {
    let l = store.lead(org, &lead.lead_id).await.unwrap();
    (
        l.widget_version.to_string(),
        l.widget_name,
        l.source_code.to_string(),
        l.source_name,
    )
}

async fn arrival_resolves_widget_and_source_by_the_rules(db: TestDb) {
    let store = store(&db).await;
    let org = two_widgets(&store).await;
    // 01: SRC-01, SRC-02 Facebook Ads. 02: SRC-01, SRC-02 Google Ads, SRC-03 Instagram.
    let cases = [
        // (embedding, v, s) → (widget, source, note)
        ((Some(1), Some("02"), Some("03")), ("02", "03", None)),
        ((Some(1), Some("2"), Some("SRC-03")), ("02", "03", None)),
        ((Some(2), None, Some("02")), ("02", "02", None)),
        // `v` names no widget: `s` belongs to another numbering, never to 01's SRC-02.
        (
            (Some(1), Some("09"), Some("02")),
            ("01", "01", Some("unknown_widget")),
        ),
        (
            (Some(2), Some("junk"), Some("03")),
            ("02", "01", Some("unknown_widget")),
        ),
        (
            (Some(1), Some("01"), Some("99")),
            ("01", "01", Some("unknown_source")),
        ),
        ((Some(1), Some("02"), None), ("02", "01", None)),
        ((Some(1), None, None), ("01", "01", None)),
        ((None, None, Some("02")), ("01", "02", None)),
        (
            (Some(1), None, Some("03")),
            ("01", "01", Some("unknown_source")),
        ),
        (
            (Some(7), None, Some("<x>")),
            ("01", "01", Some("unknown_source")),
        ),
        (
            (Some(7), None, None),
            ("01", "01", Some("unknown_embedding_widget")),
        ),
    ];
    for ((embedding, v, s), (want_widget, want_source, want_note)) in cases {
        let lead = create(&store, arrival(&org, embedding, v, s))
            .await
            .unwrap();
        let (w, _, src, _) = snapshot(&store, &org, &lead).await;
        let note = store
            .lead(&org, &lead.lead_id)
            .await
            .unwrap()
            .attribution_note
            .map(|n| n.id());
        assert_eq!(
            (w.as_str(), src.as_str(), note),
            (want_widget, want_source, want_note),
            "{embedding:?} {v:?} {s:?}"
        );
    }
}

async fn a_link_of_an_archived_widget_still_credits_that_widgets_own_source(db: TestDb) {
    let store = store(&db).await;
    let org = two_widgets(&store).await;
    // Widget 02 and its Instagram source are archived; the printed link ?v=02&s=03 is still
    // out in the world and must not land on 01's SRC-02 (or anything of 01).
    store
        .archive_source(&org, version(2), code(3))
        .await
        .unwrap();
    store
        .update_widget(
            &org,
            version(2),
            WidgetPatch {
                status: Some(WidgetStatus::Archived),
                ..WidgetPatch::default()
            },
            &TierLimits::default(),
        )
        .await
        .unwrap();
    let lead = create(&store, arrival(&org, Some(1), Some("02"), Some("03")))
        .await
        .unwrap();
    let (w, widget_name, src, name) = snapshot(&store, &org, &lead).await;
    assert_eq!(
        (
            w.as_str(),
            widget_name.as_str(),
            src.as_str(),
            name.as_str()
        ),
        ("02", "New Spark 02", "03", "Instagram")
    );
    let record = store.lead(&org, &lead.lead_id).await.unwrap();
    assert_eq!(record.attribution_note, None);
    assert_eq!(record.attribution.last_touch.source_code, "03");
}

async fn first_touch_follows_the_same_rule_and_keeps_its_detail(db: TestDb) {
    let store = store(&db).await;
    let org = two_widgets(&store).await;
    let touch = |v: Option<&str>, s: Option<&str>| leadtrail::store::FirstTouch {
        v: v.map(str::to_owned),
        s: s.map(str::to_owned),
        at: Some("2026-11-01T10:00:00Z".into()),
        utm: Utm {
            utm_source: Some("google".into()),
            utm_medium: Some("cpc".into()),
            gclid: Some("gclid-first".into()),
            ..Utm::default()
        },
        referrer: Some("https://www.google.com/".into()),
        page_url: Some("https://acme.example/roofs?gclid=gclid-first".into()),
    };
    for ((v, s), (want_widget, want_source, want_note)) in [
        ((Some("02"), Some("03")), ("02", "03", None)),
        (
            (Some("09"), Some("02")),
            ("01", "01", Some("unknown_widget")),
        ),
        ((None, Some("02")), ("01", "02", None)),
    ] {
        let mut new = arrival(&org, Some(1), Some("01"), Some("02"));
        new.first_touch = Some(touch(v, s));
        let lead = create(&store, new).await.unwrap();
        let record = store.lead(&org, &lead.lead_id).await.unwrap();
        let first = record.attribution.first_touch.clone().unwrap();
        assert_eq!(
            (
                first.widget_version.as_str(),
                first.source_code.as_str(),
                first.note.map(|n| n.id())
            ),
            (want_widget, want_source, want_note),
            "{v:?} {s:?}"
        );
        assert_eq!(first.utm.gclid.as_deref(), Some("gclid-first"));
        assert_eq!(
            first.landing_page_url.as_deref(),
            Some("https://acme.example/roofs?gclid=gclid-first")
        );
        assert_eq!(first.at.as_deref(), Some("2026-11-01T10:00:00Z"));
        // Untagged first touches get a channel, like arrivals.
        let derived = first.derived_channel.map(|d| d.id());
        if want_source == "01" {
            assert_eq!(derived, Some("paid_search"));
        } else {
            assert_eq!(derived, None);
        }
        assert_eq!(
            record
                .first_touch_source_code
                .map(|c| c.to_string())
                .as_deref(),
            Some(want_source)
        );
    }
}

async fn an_archived_source_still_attributes(db: TestDb) {
    let store = store(&db).await;
    let org = two_widgets(&store).await;
    store.archive_source(&org, PRIMARY, code(2)).await.unwrap();
    let lead = create(&store, arrival(&org, Some(1), Some("01"), Some("02")))
        .await
        .unwrap();
    let (_, _, src, name) = snapshot(&store, &org, &lead).await;
    assert_eq!((src.as_str(), name.as_str()), ("02", "Facebook Ads"));
}

async fn the_snapshot_never_changes_after_renames_recategorising_or_archiving(db: TestDb) {
    let store = store(&db).await;
    let org = two_widgets(&store).await;
    let lead = create(&store, arrival(&org, Some(1), Some("02"), Some("03")))
        .await
        .unwrap();
    let before = snapshot(&store, &org, &lead).await;
    assert_eq!(
        before,
        (
            "02".into(),
            "New Spark 02".into(),
            "03".into(),
            "Instagram".into()
        )
    );
    store
        .update_source(
            &org,
            version(2),
            code(3),
            SourcePatch {
                name: Some(SourceName::parse("IG Reels").unwrap()),
                channel_category: Some(ChannelCategory::Video),
            },
        )
        .await
        .unwrap();
    store
        .archive_source(&org, version(2), code(3))
        .await
        .unwrap();
    store
        .update_widget(
            &org,
            version(2),
            WidgetPatch {
                name: Some(WidgetName::parse("Renamed").unwrap()),
                ..WidgetPatch::default()
            },
            &TierLimits::default(),
        )
        .await
        .unwrap();
    assert_eq!(snapshot(&store, &org, &lead).await, before);
    let l = store.lead(&org, &lead.lead_id).await.unwrap();
    assert_eq!(l.source_category, ChannelCategory::PaidSocial);
    let preview = &store
        .events(&org)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.event_type == "lead.address_preview")
        .unwrap();
    assert_eq!(
        preview.payload["source_tracking"]["source_label"],
        "Instagram"
    );
}

async fn untagged_leads_get_a_derived_channel_and_raw_parameters_are_kept(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let mut new = arrival(&org, Some(1), None, None);
    new.arrival.referrer = Some("https://www.google.com/".into());
    new.arrival.utm.utm_campaign = Some("spring".into());
    let lead = create(&store, new).await.unwrap();
    let l = store.lead(&org, &lead.lead_id).await.unwrap();
    assert_eq!(l.derived_channel.map(|c| c.id()), Some("organic_search"));
    assert_eq!(l.raw_params["referrer"], "https://www.google.com/");
    assert_eq!(l.raw_params["utm"]["utm_campaign"], "spring");
}

async fn first_touch_is_resolved_and_kept_beside_last_touch(db: TestDb) {
    let store = store(&db).await;
    let org = two_widgets(&store).await;
    let mut new = arrival(&org, Some(1), Some("01"), Some("02"));
    new.first_touch = Some(FirstTouch {
        v: Some("02".into()),
        s: Some("03".into()),
        ..FirstTouch::default()
    });
    let lead = create(&store, new).await.unwrap();
    let l = store.lead(&org, &lead.lead_id).await.unwrap();
    assert_eq!(
        l.first_touch_widget_version
            .map(|v| v.to_string())
            .as_deref(),
        Some("02")
    );
    assert_eq!(
        l.first_touch_source_code.map(|c| c.to_string()).as_deref(),
        Some("03")
    );
    assert_eq!(l.source_code.to_string(), "02");
}

async fn a_retried_step_returns_the_first_answer_and_writes_nothing_twice(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let mut new = arrival(&org, Some(1), None, None);
    new.idempotency = Some(Idempotency {
        key: "k1".into(),
        request_hash: "h1".into(),
    });
    let first = create(&store, new.clone()).await.unwrap();
    let again = create(&store, new.clone()).await.unwrap();
    assert_eq!(
        (&first.lead_id, first.status),
        (&again.lead_id, again.status)
    );
    // The answer was kept without its token: the retry carries a fresh one, which replaces it.
    assert_ne!(first.capture_token, again.capture_token);
    assert_eq!(
        step(&store, &first, project(), None).await,
        Err(CaptureRefusal::BadToken)
    );
    new.idempotency = Some(Idempotency {
        key: "k1".into(),
        request_hash: "different".into(),
    });
    assert_eq!(
        create(&store, new).await,
        Err(CaptureRefusal::IdempotencyKeyReused)
    );
    let leads = store
        .leads(
            &org,
            &leadtrail::store::LeadFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(leads.len(), 1);

    let s1 = step(&store, &again, project(), Some("s2")).await.unwrap();
    let s2 = step(&store, &again, project(), Some("s2")).await.unwrap();
    assert_eq!(s1, s2, "the retry is answered, not refused as out of order");
    let events = store.events(&org).await.unwrap();
    assert_eq!(events.len(), 1, "one address_preview, nothing twice");
}

async fn steps_only_move_forward_and_need_the_lead_token(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let lead = create(&store, arrival(&org, Some(1), None, None))
        .await
        .unwrap();
    assert!(
        matches!(step(&store, &lead, personal(true), None).await, Err(CaptureRefusal::Invalid(e)) if e.field == "step")
    );
    step(&store, &lead, project(), None).await.unwrap();
    assert!(matches!(
        step(&store, &lead, project(), None).await,
        Err(CaptureRefusal::Invalid(_))
    ));
    let forged = LeadCreated {
        capture_token: "ct_forged".into(),
        ..lead.clone()
    };
    assert_eq!(
        step(&store, &forged, personal(true), None).await,
        Err(CaptureRefusal::BadToken)
    );
    let missing = LeadCreated {
        lead_id: LeadId::generate(),
        ..lead.clone()
    };
    assert_eq!(
        step(&store, &missing, personal(true), None).await,
        Err(CaptureRefusal::LeadNotFound)
    );
    let done = step(&store, &lead, personal(true), None).await.unwrap();
    assert_eq!(done.status, LeadStatus::PersonalInfoAndEstimateProvided);
    let estimate = done
        .estimate
        .expect("the instant estimate comes with step 3");
    assert!(estimate.price_low > 0 && estimate.price_low < estimate.price_high);
    step(&store, &lead, contact(), None).await.unwrap();
    assert!(step(&store, &lead, contact(), None).await.is_err());
}

async fn events_follow_the_catalogue_with_gap_free_per_lead_sequences(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let worker = EnrichmentWorker::new(store.clone(), None);
    let lead = create(&store, arrival(&org, Some(1), None, None))
        .await
        .unwrap();
    step(&store, &lead, project(), None).await.unwrap();
    step(&store, &lead, personal(false), None).await.unwrap();
    assert_eq!(worker.run_once().await.unwrap(), Progress::Enriched(1));
    step(&store, &lead, contact(), None).await.unwrap();
    let events: Vec<(String, i64)> = store
        .events(&org)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.event_type, e.sequence.unwrap_or(0)))
        .collect();
    assert_eq!(
        events,
        vec![
            ("lead.address_preview".into(), 1),
            ("lead.enriched".into(), 2),
            ("lead.rental_alert".into(), 3),
            ("lead.contact_requested".into(), 4),
        ]
    );
}

async fn contact_requested_waits_for_enrichment_when_step_four_comes_first(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let lead = create(&store, arrival(&org, Some(1), None, None))
        .await
        .unwrap();
    step(&store, &lead, project(), None).await.unwrap();
    step(&store, &lead, personal(true), None).await.unwrap();
    step(&store, &lead, contact(), None).await.unwrap();
    let before: Vec<String> = store
        .events(&org)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        before,
        vec!["lead.address_preview"],
        "held back until enrichment is written"
    );
    EnrichmentWorker::new(store.clone(), None)
        .run_once()
        .await
        .unwrap();
    let after: Vec<(String, i64)> = store
        .events(&org)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.event_type, e.sequence.unwrap_or(0)))
        .collect();
    assert_eq!(
        after,
        vec![
            ("lead.address_preview".into(), 1),
            ("lead.enriched".into(), 2),
            ("lead.contact_requested".into(), 3),
        ]
    );
    let enriched = store
        .events(&org)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.event_type == "lead.enriched")
        .unwrap();
    assert_eq!(enriched.payload["source_tracking"]["source_code"], "01");
    assert!(enriched.payload["estimate"]["price_high"].as_u64().unwrap() > 0);
}

async fn enrichment_interrupted_by_a_restart_is_finished_after_the_lease(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let lead = create(&store, arrival(&org, Some(1), None, None))
        .await
        .unwrap();
    step(&store, &lead, project(), None).await.unwrap();
    step(&store, &lead, personal(true), None).await.unwrap();
    // A worker claims the job and dies before writing back. The lease is long enough that
    // reopening the database (migrations included) on a slow machine stays well inside it.
    let lease = Duration::from_secs(3);
    let claimed_at = std::time::Instant::now();
    let claimed = store
        .claim_enrichment(10, lease.as_millis() as i64)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    drop(claimed);
    // A fresh process (new pool) sees the job held until the lease runs out, then finishes it.
    store.close().await;
    let restarted = crate::store(&db).await;
    let worker = EnrichmentWorker::new(restarted.clone(), None);
    assert_eq!(worker.run_once().await.unwrap(), Progress::Idle);
    tokio::time::sleep((lease + Duration::from_millis(100)).saturating_sub(claimed_at.elapsed()))
        .await;
    assert_eq!(worker.run_once().await.unwrap(), Progress::Enriched(1));
    let l = restarted.lead(&org, &lead.lead_id).await.unwrap();
    assert!(l.enrichment.is_some());
    assert_eq!(worker.run_once().await.unwrap(), Progress::Idle);
}

async fn a_second_write_back_of_the_same_job_changes_nothing(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let lead = create(&store, arrival(&org, Some(1), None, None))
        .await
        .unwrap();
    step(&store, &lead, project(), None).await.unwrap();
    step(&store, &lead, personal(true), None).await.unwrap();
    let job = store
        .claim_enrichment(10, 60_000)
        .await
        .unwrap()
        .pop()
        .unwrap();
    let result = leadtrail::domain::estimate::enrich(&job.project, &job.personal);
    assert!(store.write_enrichment(&job, &result).await.unwrap());
    assert!(!store.write_enrichment(&job, &result).await.unwrap());
    let enriched = store
        .events(&org)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "lead.enriched")
        .count();
    assert_eq!(enriched, 1);
}

async fn concurrent_creates_in_one_batch_each_get_their_own_lead(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let commands: Vec<_> = (0..50)
        .map(|_| CaptureCommand::CreateLead(Box::new(arrival(&org, Some(1), None, None))))
        .collect();
    let results = store.apply_capture(&commands).await.unwrap();
    let ids: std::collections::BTreeSet<_> = results
        .into_iter()
        .map(|r| match r {
            Ok(CaptureReply::Created(c)) => c.lead_id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids.len(), 50);
    let sources = store
        .sources(&org, PRIMARY, leadtrail::store::SourceFilter::Active)
        .await
        .unwrap();
    assert_eq!(sources[0].lead_count, 50);
}

/// PostgreSQL takes at most 65,535 parameters in one statement. A batch whose rows need more
/// (here 2,000 leads with their events and keys, ~76,000 values, and 8,000 visits, 72,000) is
/// written in several statements, each within the limit, and none of it is lost.
async fn a_batch_past_one_statements_parameters_is_written_whole(db: TestDb) {
    const LEADS: usize = 2_000;
    const VISITS: usize = 8_000;
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let keyed = |i: usize| {
        let mut new = arrival(&org, Some(1), None, None);
        new.idempotency = Some(Idempotency {
            key: format!("k{i}"),
            request_hash: "h".into(),
        });
        new
    };
    let commands: Vec<_> = (0..LEADS)
        .map(|i| CaptureCommand::CreateLead(Box::new(keyed(i))))
        .collect();
    let ids: Vec<LeadId> = store
        .apply_capture(&commands)
        .await
        .unwrap()
        .into_iter()
        .map(|r| match r {
            Ok(CaptureReply::Created(c)) => c.lead_id,
            other => panic!("{other:?}"),
        })
        .collect();
    let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), LEADS);
    let sources = store
        .sources(&org, PRIMARY, leadtrail::store::SourceFilter::Active)
        .await
        .unwrap();
    assert_eq!(sources[0].lead_count, LEADS as u64);
    assert_eq!(store.events(&org).await.unwrap().len(), LEADS);
    // The keys of the first and the last lead were written too: a retry is answered from them.
    for i in [0, LEADS - 1] {
        let again = create(&store, keyed(i)).await.unwrap();
        assert_eq!(again.lead_id, ids[i], "key k{i}");
    }
    let at = leadtrail::store::now_ms();
    let visits: Vec<NewVisit> = (0..VISITS)
        .map(|i| NewVisit {
            org: org.clone(),
            arrival: Arrival {
                embedding: WidgetVersion::new(1),
                visitor_id: Some(format!("visitor-{i}")),
                ..Arrival::default()
            },
            at,
        })
        .collect();
    store.insert_visits(&visits).await.unwrap();
    assert_eq!(
        store.visit_count(&org, PRIMARY, code(1)).await.unwrap(),
        VISITS as i64
    );
}

/// Holds back every capture write of an organization from outside the writer: SQLite's write
/// lock on the file, or the organization's row on PostgreSQL (a new lead's foreign key check
/// waits for it).
enum Blocker {
    Sqlite(rusqlite::Connection),
    Postgres(sqlx::PgConnection),
}

impl Blocker {
    async fn hold(db: &TestDb, org: &OrgId) -> Blocker {
        use sqlx::Connection;
        match db {
            TestDb::Sqlite { url, .. } => {
                let path = url.trim_start_matches("sqlite://");
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                Blocker::Sqlite(conn)
            }
            TestDb::Postgres { url, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::raw_sql("BEGIN").execute(&mut conn).await.unwrap();
                sqlx::query("SELECT 1 FROM organizations WHERE id = $1 FOR UPDATE")
                    .bind(org.as_str())
                    .execute(&mut conn)
                    .await
                    .unwrap();
                Blocker::Postgres(conn)
            }
        }
    }

    async fn release(self) {
        match self {
            Blocker::Sqlite(conn) => conn.execute_batch("ROLLBACK").unwrap(),
            Blocker::Postgres(mut conn) => {
                sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
            }
        }
    }
}

/// A writer that cannot keep up (here: held back by a lock) queues a bounded number of
/// captures; past that a capture hears `Busy` at once (503 with `Retry-After` at the edge)
/// instead of waiting in memory, and every capture it did take is written once it can go on.
async fn a_full_capture_queue_refuses_at_once_and_writes_everything_it_took(db: TestDb) {
    use leadtrail::workers::capture_writer::{CaptureWriter, MAX_BATCH, QUEUE, WriteError};
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let settings = leadtrail::store::DatabaseSettings {
        lock_timeout: Some(Duration::from_secs(120)),
        ..leadtrail::store::DatabaseSettings::UNBOUNDED
    };
    let (writer, thread) =
        CaptureWriter::start(db.url(), settings, Default::default(), Default::default())
            .await
            .unwrap();
    let blocker = Blocker::hold(&db, &org).await;
    // More than the queue and the batch the writer may already hold can take.
    let over = 20;
    let total = QUEUE + MAX_BATCH + over;
    let (done, mut answers) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..total {
        let (writer, done) = (writer.clone(), done.clone());
        let command = CaptureCommand::CreateLead(Box::new(arrival(&org, Some(1), None, None)));
        tokio::spawn(async move {
            let _ = done.send(writer.submit(command).await);
        });
    }
    drop(done);
    let mut results = Vec::with_capacity(total);
    // The refusals come while the writer is still held.
    let mut busy = 0;
    while busy < over {
        let answer = tokio::time::timeout(Duration::from_secs(60), answers.recv())
            .await
            .expect("refusals come at once")
            .expect("an answer");
        if matches!(answer, Err(WriteError::Busy)) {
            busy += 1;
        } else {
            panic!("nothing is written while the writer is held: {answer:?}");
        }
        results.push(answer);
    }
    blocker.release().await;
    while let Some(answer) = answers.recv().await {
        results.push(answer);
    }
    assert_eq!(results.len(), total);
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(WriteError::Busy)))
        .count();
    let written = results
        .iter()
        .filter(|r| matches!(r, Ok(Ok(CaptureReply::Created(_)))))
        .count();
    assert_eq!(refused + written, total, "every other answer is a lead");
    assert!(written >= QUEUE, "a full queue was taken: {written}");
    let sources = store
        .sources(&org, PRIMARY, leadtrail::store::SourceFilter::Active)
        .await
        .unwrap();
    assert_eq!(sources[0].lead_count, written as u64);
    drop(writer);
    thread.join().unwrap();
}

/// Capture keeps each organization's catalog in memory between batches; a change made through
/// another connection (another node) is seen by the very next capture: a new source credits
/// its leads and visits, a rename and a new category are in the next snapshot, a new widget's
/// links resolve, and a change that rolled back (a refused create) changes nothing.
/// Renames the Primary widget's source 02 to "Meta Ads", recategorised as paid search.
async fn rename_to_meta_ads(store: &Store, org: &OrgId) {
    store
        .update_source(
            org,
            PRIMARY,
            code(2),
            SourcePatch {
                name: Some(SourceName::parse("Meta Ads").unwrap()),
                channel_category: Some(ChannelCategory::PaidSearch),
            },
        )
        .await
        .unwrap();
}

async fn a_catalog_change_by_another_node_is_seen_by_the_next_capture(db: TestDb) {
    let node_a = store(&db).await;
    let node_b = Store::connect(db.url()).await.unwrap();
    let (org, _) = org(&node_a, Tier::Premium).await;
    // Node A reads and keeps the catalog: 01 has only SRC-01.
    let before = create(&node_a, arrival(&org, Some(1), Some("01"), Some("02")))
        .await
        .unwrap();
    assert_eq!(snapshot(&node_a, &org, &before).await.2, "01");
    node_b
        .create_source(&org, PRIMARY, new_source("Facebook Ads"))
        .await
        .unwrap();
    let after = create(&node_a, arrival(&org, Some(1), Some("01"), Some("02")))
        .await
        .unwrap();
    assert_eq!(
        snapshot(&node_a, &org, &after).await,
        (
            "01".into(),
            "Primary".into(),
            "02".into(),
            "Facebook Ads".into()
        )
    );
    rename_to_meta_ads(&node_b, &org).await;
    let renamed = create(&node_a, arrival(&org, Some(1), Some("01"), Some("02")))
        .await
        .unwrap();
    assert_eq!(snapshot(&node_a, &org, &renamed).await.3, "Meta Ads");
    let record = node_a.lead(&org, &renamed.lead_id).await.unwrap();
    assert_eq!(record.source_category, ChannelCategory::PaidSearch);
    let limits = TierLimits::default();
    let w2 = node_b
        .create_widget(&org, &WidgetName::parse("Second").unwrap(), None, &limits)
        .await
        .unwrap();
    let on_two = create(&node_a, arrival(&org, Some(1), Some("02"), None))
        .await
        .unwrap();
    assert_eq!(
        snapshot(&node_a, &org, &on_two).await.0,
        w2.version.to_string()
    );
    // A refused change rolls its version back with it; the catalog is the same.
    node_b
        .create_source(&org, PRIMARY, new_source("Meta Ads"))
        .await
        .unwrap_err();
    let again = create(&node_a, arrival(&org, Some(1), Some("01"), Some("02")))
        .await
        .unwrap();
    assert_eq!(snapshot(&node_a, &org, &again).await.3, "Meta Ads");
    // Visits resolve against the same kept catalog.
    node_b
        .create_source(&org, PRIMARY, new_source("Yard Signs"))
        .await
        .unwrap();
    node_a
        .insert_visits(&[NewVisit {
            org: org.clone(),
            arrival: Arrival {
                embedding: WidgetVersion::new(1),
                v: Some("01".into()),
                s: Some("03".into()),
                ..Arrival::default()
            },
            at: leadtrail::store::now_ms(),
        }])
        .await
        .unwrap();
    assert_eq!(node_a.visit_count(&org, PRIMARY, code(3)).await.unwrap(), 1);
    node_b.close().await;
}

/// The capture writer decides a new lead on the request's task, against the catalog it keeps,
/// before the lead's batch; a rename committed in between must still reach the snapshot.
async fn a_lead_decided_before_a_catalog_change_is_decided_again_in_its_batch(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Premium).await;
    store
        .create_source(&org, PRIMARY, new_source("Facebook Ads"))
        .await
        .unwrap();
    let preparer = store.arrival_preparer();
    let to_prepare =
        || CaptureCommand::CreateLead(Box::new(arrival(&org, Some(1), Some("01"), Some("02"))));
    assert!(
        matches!(
            preparer.prepare(to_prepare()),
            CaptureCommand::CreateLead(_)
        ),
        "nothing is decided ahead before a batch has read the catalog"
    );
    create(&store, arrival(&org, Some(1), Some("01"), Some("02")))
        .await
        .unwrap();
    let current = preparer.prepare(to_prepare());
    let stale = preparer.prepare(to_prepare());
    assert!(matches!(stale, CaptureCommand::Prepared(_)));
    let created = |mut results: Vec<leadtrail::store::CaptureResult>| match results.pop() {
        Some(Ok(CaptureReply::Created(lead))) => lead,
        other => panic!("unexpected {other:?}"),
    };
    // As the writer hands its batch over: the commands themselves, not copies (a copy of a
    // prepared lead decides again).
    let kept = created(
        store
            .apply_capture_batch(vec![current].into())
            .await
            .unwrap(),
    );
    assert_eq!(snapshot(&store, &org, &kept).await.3, "Facebook Ads");
    rename_to_meta_ads(&store, &org).await;
    let renamed = created(store.apply_capture_batch(vec![stale].into()).await.unwrap());
    assert_eq!(snapshot(&store, &org, &renamed).await.3, "Meta Ads");
    let record = store.lead(&org, &renamed.lead_id).await.unwrap();
    assert_eq!(record.source_category, ChannelCategory::PaidSearch);
    let preview = store
        .events(&org)
        .await
        .unwrap()
        .into_iter()
        .find(|e| {
            e.event_type == "lead.address_preview"
                && e.payload["lead_id"] == renamed.lead_id.as_str()
        })
        .unwrap();
    assert_eq!(
        preview.payload["source_tracking"]["source_label"],
        "Meta Ads"
    );
}

async fn visits_are_attributed_like_leads(db: TestDb) {
    let store = store(&db).await;
    let org = two_widgets(&store).await;
    let visit = |v: Option<&str>, s: Option<&str>| NewVisit {
        org: org.clone(),
        arrival: Arrival {
            embedding: WidgetVersion::new(1),
            v: v.map(str::to_owned),
            s: s.map(str::to_owned),
            visitor_id: Some("vis_1".into()),
            ..Arrival::default()
        },
        at: leadtrail::store::now_ms(),
    };
    store
        .insert_visits(&[
            visit(Some("02"), Some("03")),
            visit(Some("02"), Some("03")),
            visit(None, Some("77")),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.visit_count(&org, version(2), code(3)).await.unwrap(),
        2
    );
    assert_eq!(store.visit_count(&org, PRIMARY, code(1)).await.unwrap(), 1);
}

/// The lead list, against a filter of every lead in memory: each filter alone and all of them
/// at once give exactly the matching leads, newest first (ties in time by id), and pages of two
/// walk the whole list without a gap or a repeat, across two leads of the same moment.
async fn the_lead_list_filters_by_every_field_and_pages_newest_first(db: TestDb) {
    use leadtrail::domain::outcome::{Outcome, OutcomeKind};
    let store = store(&db).await;
    let org = two_widgets(&store).await;
    let hour = 3_600_000;
    let start = leadtrail::store::now_ms() - 10 * 24 * hour;
    // (widget, source, hour, stepped to project details, quoted): the 5th and 6th arrive in
    // the same moment.
    let shape = [
        ("01", "01", 0, true, true),
        ("01", "02", 1, false, false),
        ("02", "02", 2, true, true),
        ("02", "02", 3, true, false),
        ("01", "02", 4, false, true),
        ("02", "03", 4, true, false),
        ("02", "02", 5, false, true),
    ];
    let mut made = Vec::new();
    for (v, s, at, stepped, quoted) in shape {
        let created = create(&store, arrival(&org, Some(1), Some(v), Some(s)))
            .await
            .unwrap();
        if stepped {
            step(&store, &created, project(), None).await.unwrap();
        }
        if quoted {
            store
                .set_outcome(
                    &org,
                    &created.lead_id,
                    Outcome::Quoted,
                    "user:a@acme.example",
                    None,
                )
                .await
                .unwrap();
        }
        made.push((created.lead_id, start + at * hour));
    }
    store.backdate_leads(&org, &made).await.unwrap();
    let mut all: Vec<LeadRecord> = Vec::new();
    for (id, _) in &made {
        all.push(store.lead(&org, id).await.unwrap());
    }
    all.sort_by(|a, b| (b.created_at, b.id.as_str()).cmp(&(a.created_at, a.id.as_str())));
    let ids =
        |leads: &[LeadRecord]| -> Vec<String> { leads.iter().map(|l| l.id.to_string()).collect() };
    let everything = LeadFilter {
        limit: 100,
        ..LeadFilter::default()
    };
    // Pages of two, each continuing after the last lead of the one before.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .leads(
                &org,
                &LeadFilter {
                    after: after.clone(),
                    limit: 2,
                    ..everything.clone()
                },
            )
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.created_at, last.id.to_string()));
        paged.extend(page);
    }
    assert_eq!(ids(&paged), ids(&all), "pages of two");

    let third = &all[2];
    let filters = [
        LeadFilter {
            widget: Some(version(2)),
            ..everything.clone()
        },
        LeadFilter {
            source: Some(code(2)),
            ..everything.clone()
        },
        LeadFilter {
            status: Some(LeadStatus::ProjectDetailsProvided),
            ..everything.clone()
        },
        LeadFilter {
            outcome: Some(OutcomeKind::Quoted),
            ..everything.clone()
        },
        LeadFilter {
            from_ms: Some(start + 2 * hour),
            ..everything.clone()
        },
        LeadFilter {
            to_ms: Some(start + 4 * hour),
            ..everything.clone()
        },
        LeadFilter {
            after: Some((third.created_at, third.id.to_string())),
            ..everything.clone()
        },
        LeadFilter {
            widget: Some(version(2)),
            source: Some(code(2)),
            status: Some(LeadStatus::ProjectDetailsProvided),
            outcome: Some(OutcomeKind::Quoted),
            from_ms: Some(start + hour),
            to_ms: Some(start + 5 * hour),
            after: Some((start + 5 * hour, "lead_~".into())),
            limit: 100,
        },
    ];
    for filter in filters {
        let expected: Vec<LeadRecord> = all
            .iter()
            .filter(|l| filter.widget.is_none_or(|w| l.widget_version == w))
            .filter(|l| filter.source.is_none_or(|s| l.source_code == s))
            .filter(|l| filter.status.is_none_or(|s| l.status == s))
            .filter(|l| filter.outcome.is_none_or(|o| l.outcome.kind() == o))
            .filter(|l| filter.from_ms.is_none_or(|t| l.created_at >= t))
            .filter(|l| filter.to_ms.is_none_or(|t| l.created_at < t))
            .filter(|l| {
                filter
                    .after
                    .as_ref()
                    .is_none_or(|(at, id)| (l.created_at, l.id.as_str()) < (*at, id.as_str()))
            })
            .cloned()
            .collect();
        assert!(!expected.is_empty(), "{filter:?} matches a lead");
        assert!(expected.len() < all.len(), "{filter:?} leaves a lead out");
        let listed = store.leads(&org, &filter).await.unwrap();
        assert_eq!(ids(&listed), ids(&expected), "{filter:?}");
    }
}

/// A lead stored before attribution detail was kept (migration 0009 added the column, empty
/// for older leads) is announced with the widget and source its snapshot names.
async fn a_lead_from_before_attribution_detail_is_announced_with_its_snapshot(db: TestDb) {
    let store = store(&db).await;
    let org = two_widgets(&store).await;
    let created = create(&store, arrival(&org, Some(1), Some("02"), Some("03")))
        .await
        .unwrap();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(db.url()).await.unwrap();
    sqlx::query("UPDATE leads SET attribution = NULL WHERE id = $1")
        .bind(created.lead_id.as_str())
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    store
        .set_outcome(
            &org,
            &created.lead_id,
            leadtrail::domain::outcome::Outcome::Contacted,
            "user:a@acme.example",
            None,
        )
        .await
        .unwrap();
    let events = store.lead_events(&org, &created.lead_id).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.event_type, "lead.outcome_changed");
    let touch = &last.payload["attribution"];
    assert_eq!(touch["widget_version"], "02", "{}", last.payload);
    assert_eq!(touch["source_code"], "03", "{}", last.payload);
}

/// A lead's corrections are kept, each with the source it moved the credit from and to, why
/// and by whom; another tenant reads none of them.
async fn a_leads_corrections_are_kept_with_their_reason_and_actor(db: TestDb) {
    let store = store(&db).await;
    let (rival, _) = org(&store, Tier::Starter).await;
    let org = two_widgets(&store).await;
    let lead = create(&store, arrival(&org, Some(1), Some("01"), Some("01")))
        .await
        .unwrap();
    store
        .correct_source(
            &org,
            &lead.lead_id,
            code(2),
            "caller said Facebook",
            "user:a@acme.example",
        )
        .await
        .unwrap();
    store
        .correct_source(
            &org,
            &lead.lead_id,
            code(1),
            "the website after all",
            "api_key:key_1",
        )
        .await
        .unwrap();
    // Two corrections may share a millisecond: compared without their order.
    let mut kept: Vec<(u32, u32, String, String)> = store
        .corrections(&org, &lead.lead_id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.from_code.get(), c.to_code.get(), c.reason, c.actor))
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        vec![
            (
                1,
                2,
                "caller said Facebook".into(),
                "user:a@acme.example".into()
            ),
            (2, 1, "the website after all".into(), "api_key:key_1".into()),
        ]
    );
    assert!(
        store
            .corrections(&rival, &lead.lead_id)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Imports `csv`, every line of which reads, as a user of the organization; with the leads'
/// events if `events`.
async fn import(store: &Store, org: &OrgId, csv: &str, events: bool) -> LeadImport {
    let file = parse_lead_import(csv, leadtrail::store::now_ms());
    assert_eq!(file.refused, vec![], "every line reads");
    let options = ImportOptions {
        dry_run: false,
        events,
    };
    store
        .import_leads(org, &file, "user:a@acme.example", options)
        .await
        .unwrap()
}

/// The organization's leads (up to 100), newest first.
async fn all_leads(store: &Store, org: &OrgId) -> Vec<LeadRecord> {
    let all = LeadFilter {
        limit: 100,
        ..LeadFilter::default()
    };
    store.leads(org, &all).await.unwrap()
}

/// An import is taken whole or not at all: each line naming a widget, a source, a credited
/// source or a first touch the organization does not have is refused with its line and why,
/// and nothing is written; the same file without those lines is imported, its first touch
/// kept.
async fn an_import_refuses_lines_naming_what_the_organization_lacks_and_writes_nothing(db: TestDb) {
    let store = store(&db).await;
    let org = two_widgets(&store).await;
    let header = "created_at,widget_version,source_code,street,city,state,postal_code,\
        credited_source_code,first_touch_widget_version,first_touch_source_code,landing_page_url,\
        referrer,utm_source,outcome,outcome_value";
    let good = [
        "2025-03-04T15:00:00Z,01,02,1 Main St,Austin,TX,78701,01,02,03,\
         https://acme.example/roofs,https://www.facebook.com/,spring,,",
        "2025-03-05T15:00:00Z,02,03,2 Main St,Austin,TX,78701,,,,,,,won,1250000",
        "2025-03-03T15:00:00Z,01,01,4 Main St,Austin,TX,78701,,,,https://acme.example/,\
         https://www.google.com/,,,",
    ];
    let bad = [
        (
            "2025-03-06T15:00:00Z,07,01,3 Main St,Austin,TX,78701,,,,,,,,",
            "no widget 07",
        ),
        (
            "2025-03-06T15:00:00Z,01,09,3 Main St,Austin,TX,78701,,,,,,,,",
            "no source 09",
        ),
        (
            "2025-03-06T15:00:00Z,01,01,3 Main St,Austin,TX,78701,09,,,,,,,",
            "no source 09 to credit",
        ),
        (
            "2025-03-06T15:00:00Z,01,01,3 Main St,Austin,TX,78701,,02,09,,,,,",
            "first touch",
        ),
    ];
    let mut text = format!("{header}\n{}\n", good.join("\n"));
    for (line, _) in bad {
        text.push_str(line);
        text.push('\n');
    }
    match import(&store, &org, &text, false).await {
        LeadImport::Refused(lines) => {
            let got: Vec<u64> = lines.iter().map(|l| l.line).collect();
            assert_eq!(got, vec![5, 6, 7, 8], "{lines:?}");
            for (refused, (_, why)) in lines.iter().zip(bad) {
                assert!(refused.reason.contains(why), "{refused:?} says {why:?}");
            }
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(all_leads(&store, &org).await.is_empty());

    let text = format!("{header}\n{}\n", good.join("\n"));
    assert_eq!(
        import(&store, &org, &text, false).await,
        LeadImport::Imported {
            leads: 3,
            dry_run: false
        }
    );
    let leads = all_leads(&store, &org).await;
    let touched: Vec<_> = leads
        .iter()
        .map(|l| (l.first_touch_widget_version, l.first_touch_source_code))
        .collect();
    assert_eq!(
        touched,
        vec![
            (None, None),
            (Some(version(2)), Some(code(3))),
            (None, None)
        ]
    );
    // The arrival as the file tells it, in the lead's attribution.
    let arrival = &leads[1].attribution.last_touch;
    assert_eq!(
        (
            arrival.widget_version.as_str(),
            arrival.source_code.as_str()
        ),
        ("01", "02")
    );
    assert!(
        arrival
            .at
            .as_deref()
            .is_some_and(|at| at.starts_with("2025-03-04T15:00:00")),
        "{arrival:?}"
    );
    assert_eq!(
        (
            arrival.landing_page_url.as_deref(),
            arrival.referrer.as_deref(),
            arrival.utm.utm_source.as_deref(),
            arrival.derived_channel
        ),
        (
            Some("https://acme.example/roofs"),
            Some("https://www.facebook.com/"),
            Some("spring"),
            None
        )
    );
    // A lead imported as won was won when it arrived, with that one change in its history.
    let won = &leads[0];
    assert_eq!(won.outcome_changed_at, Some(won.created_at));
    let history = store.outcome_history(&org, &won.id).await.unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(
        history[0].from,
        leadtrail::domain::outcome::OutcomeKind::Open
    );
    assert_eq!(history[0].to.value(), Some(1_250_000));
    assert_eq!(leads[1].outcome_changed_at, None);
    assert!(
        store
            .outcome_history(&org, &leads[1].id)
            .await
            .unwrap()
            .is_empty()
    );
    // An untagged arrival on the website gets its channel from the referrer, as a capture does.
    assert!(
        leads[2].attribution.last_touch.derived_channel.is_some(),
        "{:?}",
        leads[2].attribution
    );
}

/// An import asked for events sends each lead's as its steps would have: the preview, the
/// enrichment, a rental alert only for a home its owner does not live in, the contact request.
async fn an_import_with_events_sends_what_each_leads_steps_would_have(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let text = "created_at,widget_version,source_code,street,city,state,postal_code,roof_type,\
        material,stories,urgency,first_name,last_name,email,phone,owner_occupied,contact_method,\
        contact_time\n\
        2025-03-04T15:00:00Z,01,01,1 Main St,Austin,TX,78701,replacement,metal,2,within_1_month,\
        Ann,Lee,ann@example.com,5125550100,yes,phone,morning\n\
        2025-03-05T15:00:00Z,01,01,2 Main St,Austin,TX,78701,replacement,metal,2,within_1_month,\
        Bob,Ray,bob@example.com,5125550101,no,,\n";
    assert_eq!(
        import(&store, &org, text, true).await,
        LeadImport::Imported {
            leads: 2,
            dry_run: false
        }
    );
    let mut sent = Vec::new();
    for lead in all_leads(&store, &org).await {
        let events = store.lead_events(&org, &lead.id).await.unwrap();
        sent.push(events.into_iter().map(|e| e.event_type).collect::<Vec<_>>());
    }
    assert_eq!(
        sent,
        vec![
            vec!["lead.address_preview", "lead.enriched", "lead.rental_alert"],
            vec![
                "lead.address_preview",
                "lead.enriched",
                "lead.contact_requested"
            ],
        ]
    );
}

on_both_backends!(
    arrival_resolves_widget_and_source_by_the_rules,
    a_link_of_an_archived_widget_still_credits_that_widgets_own_source,
    first_touch_follows_the_same_rule_and_keeps_its_detail,
    an_archived_source_still_attributes,
    the_snapshot_never_changes_after_renames_recategorising_or_archiving,
    untagged_leads_get_a_derived_channel_and_raw_parameters_are_kept,
    first_touch_is_resolved_and_kept_beside_last_touch,
    a_retried_step_returns_the_first_answer_and_writes_nothing_twice,
    steps_only_move_forward_and_need_the_lead_token,
    events_follow_the_catalogue_with_gap_free_per_lead_sequences,
    contact_requested_waits_for_enrichment_when_step_four_comes_first,
    enrichment_interrupted_by_a_restart_is_finished_after_the_lease,
    a_second_write_back_of_the_same_job_changes_nothing,
    concurrent_creates_in_one_batch_each_get_their_own_lead,
    a_batch_past_one_statements_parameters_is_written_whole,
    visits_are_attributed_like_leads,
    a_catalog_change_by_another_node_is_seen_by_the_next_capture,
    a_lead_decided_before_a_catalog_change_is_decided_again_in_its_batch,
    a_full_capture_queue_refuses_at_once_and_writes_everything_it_took,
    the_lead_list_filters_by_every_field_and_pages_newest_first,
    a_lead_from_before_attribution_detail_is_announced_with_its_snapshot,
    a_leads_corrections_are_kept_with_their_reason_and_actor,
    an_import_refuses_lines_naming_what_the_organization_lacks_and_writes_nothing,
    an_import_with_events_sends_what_each_leads_steps_would_have,
);

mod housekeeping {
    use crate::common::TestDb;
    use crate::on_both_backends;
    use crate::{org, store};
    use leadtrail::domain::tier::Tier;

    /// A retry within the day gets the first answer; the sweep forgets a key once it is a day
    /// old, and not before.
    async fn idempotency_keys_are_kept_for_a_day_by_the_sweep(db: TestDb) {
        let store = store(&db).await;
        let (org, _) = org(&store, Tier::Starter).await;
        let mut new = super::arrival(&org, Some(1), None, None);
        new.idempotency = Some(leadtrail::store::Idempotency {
            key: "k".into(),
            request_hash: "h".into(),
        });
        let made = leadtrail::store::now_ms();
        let first = super::create(&store, new.clone()).await.unwrap();
        let hour = 3_600_000;
        for hours_later in [0, 1, 23] {
            assert_eq!(
                store
                    .forget_old_idempotency_keys(made + hours_later * hour)
                    .await
                    .unwrap(),
                0,
                "swept {hours_later} h after the key was made"
            );
        }
        assert_eq!(
            super::create(&store, new.clone()).await.unwrap().lead_id,
            first.lead_id,
            "still answered from the key"
        );
        assert_eq!(
            store
                .forget_old_idempotency_keys(made + 25 * hour)
                .await
                .unwrap(),
            1,
            "a day and an hour later"
        );
        assert_ne!(
            super::create(&store, new).await.unwrap().lead_id,
            first.lead_id
        );
    }

    async fn keys_older_than_the_cutoff_are_forgotten_and_then_make_a_new_lead(db: TestDb) {
        let store = store(&db).await;
        let (org, _) = org(&store, Tier::Starter).await;
        let mut new = super::arrival(&org, Some(1), None, None);
        new.idempotency = Some(leadtrail::store::Idempotency {
            key: "k".into(),
            request_hash: "h".into(),
        });
        let first = super::create(&store, new.clone()).await.unwrap();
        let now = leadtrail::store::now_ms();
        // A cutoff before the key was made keeps it; one after it forgets exactly that key.
        assert_eq!(
            store
                .forget_idempotency_keys_before(now - 60_000)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .forget_idempotency_keys_before(now + 60_000)
                .await
                .unwrap(),
            1
        );
        let again = super::create(&store, new).await.unwrap();
        assert_ne!(
            again.lead_id, first.lead_id,
            "a forgotten key answers nothing"
        );
    }

    async fn an_idempotency_key_belongs_to_one_organization(db: TestDb) {
        let store = store(&db).await;
        let (a, _) = org(&store, Tier::Starter).await;
        let (b, _) = org(&store, Tier::Starter).await;
        let keyed = |org: &leadtrail::domain::ids::OrgId, hash: &str| {
            let mut new = super::arrival(org, Some(1), None, None);
            new.idempotency = Some(leadtrail::store::Idempotency {
                key: "same-key".into(),
                request_hash: hash.into(),
            });
            new
        };
        let theirs = super::create(&store, keyed(&a, "body-a")).await.unwrap();
        // Another organization using the same key (even with another body) gets its own lead:
        // neither a refusal for a reused key nor the first organization's answer.
        let mine = super::create(&store, keyed(&b, "body-b")).await.unwrap();
        assert_ne!(mine.lead_id, theirs.lead_id);
        let lead = store.lead(&b, &mine.lead_id).await.unwrap();
        assert_eq!(lead.id, mine.lead_id);
        assert!(store.lead(&a, &mine.lead_id).await.is_err());
    }

    async fn a_key_repeated_inside_one_batch_makes_one_lead(db: TestDb) {
        let store = store(&db).await;
        let (org, _) = org(&store, Tier::Starter).await;
        let mut new = super::arrival(&org, Some(1), None, None);
        new.idempotency = Some(leadtrail::store::Idempotency {
            key: "double-click".into(),
            request_hash: "h".into(),
        });
        let command = || leadtrail::store::CaptureCommand::CreateLead(Box::new(new.clone()));
        let another = leadtrail::store::CaptureCommand::CreateLead(Box::new(super::arrival(
            &org,
            Some(1),
            None,
            None,
        )));
        let replies = store
            .apply_capture(&[command(), another, command()])
            .await
            .unwrap();
        let created: Vec<leadtrail::store::LeadCreated> = replies
            .into_iter()
            .map(|r| match r {
                Ok(leadtrail::store::CaptureReply::Created(c)) => c,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            created[0].lead_id, created[2].lead_id,
            "the third is answered as a retry of the first"
        );
        // The retry's fresh token replaces the first on that lead alone.
        use crate::common::leads::{project, step};
        assert_eq!(
            step(&store, &created[0], project(), None)
                .await
                .unwrap_err(),
            leadtrail::store::CaptureRefusal::BadToken
        );
        step(&store, &created[2], project(), None).await.unwrap();
        step(&store, &created[1], project(), None).await.unwrap();
        let filter = leadtrail::store::LeadFilter {
            widget: None,
            source: None,
            status: None,
            outcome: None,
            from_ms: None,
            to_ms: None,
            after: None,
            limit: 10,
        };
        assert_eq!(store.leads(&org, &filter).await.unwrap().len(), 2);
    }

    on_both_backends!(
        idempotency_keys_are_kept_for_a_day_by_the_sweep,
        keys_older_than_the_cutoff_are_forgotten_and_then_make_a_new_lead,
        an_idempotency_key_belongs_to_one_organization,
        a_key_repeated_inside_one_batch_makes_one_lead,
    );
}
