//! Outcomes and spend: transitions allowed and refused, the audit trail, the event with the
//! arrival snapshot, idempotent retries, tenant isolation; spend entry and all-or-nothing
//! imports; and report figures against hand-computed fixtures.

use crate::common::TestDb;
use crate::common::leads::{arrival, create, personal, project, step};
use crate::on_both_backends;
use crate::{PRIMARY, code, conflict, new_source, org, store, version};
use leadtrail::domain::ids::{LeadId, OrgId};
use leadtrail::domain::multi_touch::{Credit, Model};
use leadtrail::domain::outcome::{LostReason, Outcome, OutcomeKind, OutcomeRefusal};
use leadtrail::domain::spend::{Month, SpendEntry, parse_import};
use leadtrail::domain::tier::Tier;
use leadtrail::domain::time_zone::OrgTimeZone;
use leadtrail::reports::Report;
use leadtrail::store::{
    Conflict, Idempotency, LeadCreated, ReportFilter, SpendImport, Store, StoreError,
};

fn won(dollars: i64) -> Outcome {
    Outcome::Won {
        value: dollars * 100,
    }
}

fn lost(reason: &str) -> Outcome {
    Outcome::Lost {
        reason: LostReason::parse(reason).unwrap(),
    }
}

async fn lead_on(store: &Store, org: &OrgId, source: &str) -> LeadCreated {
    create(store, arrival(org, Some(1), Some("01"), Some(source)))
        .await
        .unwrap()
}

async fn outcome_events(store: &Store, org: &OrgId, lead: &str) -> Vec<serde_json::Value> {
    store
        .events(org)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "lead.outcome_changed" && e.lead_id.as_deref() == Some(lead))
        .map(|e| e.payload)
        .collect()
}

/// A Starter organization whose primary widget has a second source, Yard Signs (02).
async fn org_with_yard_signs(store: &Store) -> OrgId {
    let (org, _) = org(store, Tier::Starter).await;
    store
        .create_source(&org, PRIMARY, new_source("Yard Signs"))
        .await
        .unwrap();
    org
}

async fn outcomes_move_keep_their_history_and_emit_events(db: TestDb) {
    let store = store(&db).await;
    let org = org_with_yard_signs(&store).await;
    let lead = lead_on(&store, &org, "02").await;
    let id = &lead.lead_id;
    // Source renamed after arrival: the event carries the arrival's name.
    store
        .update_source(
            &org,
            PRIMARY,
            code(2),
            leadtrail::store::SourcePatch {
                name: Some(leadtrail::domain::source::SourceName::parse("Signs 2027").unwrap()),
                channel_category: None,
            },
        )
        .await
        .unwrap();
    for (to, actor) in [
        (Outcome::Contacted, "user:a@acme.example"),
        (Outcome::Quoted, "api_key:key_1"),
        (Outcome::Contacted, "user:a@acme.example"),
        (won(12_500), "api_key:key_1"),
        (lost("competitor"), "user:b@acme.example"),
        (won(13_000), "user:b@acme.example"),
        (Outcome::Open, "user:b@acme.example"),
    ] {
        let view = store
            .set_outcome(&org, id, to.clone(), actor, None)
            .await
            .unwrap();
        assert_eq!(view.outcome, to.kind());
        assert_eq!(view.value, to.value());
    }
    // A worked lead does not go back to open; a reopened one may be worked again.
    store
        .set_outcome(&org, id, Outcome::Quoted, "user:a@acme.example", None)
        .await
        .unwrap();
    assert_eq!(
        conflict(
            store
                .set_outcome(&org, id, Outcome::Open, "user:a@acme.example", None)
                .await
        ),
        Conflict::OutcomeRefused(OutcomeRefusal::WorkedLeadReopened("quoted"))
    );
    // The same outcome again writes nothing.
    store
        .set_outcome(&org, id, Outcome::Quoted, "user:a@acme.example", None)
        .await
        .unwrap();

    let history = store.outcome_history(&org, id).await.unwrap();
    let moves: Vec<(OutcomeKind, OutcomeKind, Option<i64>, &str)> = history
        .iter()
        .map(|c| (c.from, c.to.kind(), c.to.value(), c.actor.as_str()))
        .collect();
    use OutcomeKind::*;
    assert_eq!(
        moves,
        vec![
            (Open, Contacted, None, "user:a@acme.example"),
            (Contacted, Quoted, None, "api_key:key_1"),
            (Quoted, Contacted, None, "user:a@acme.example"),
            (Contacted, Won, Some(1_250_000), "api_key:key_1"),
            (Won, Lost, None, "user:b@acme.example"),
            (Lost, Won, Some(1_300_000), "user:b@acme.example"),
            (Won, Open, None, "user:b@acme.example"),
            (Open, Quoted, None, "user:a@acme.example"),
        ]
    );
    assert!(
        history
            .windows(2)
            .all(|w| w[0].created_at <= w[1].created_at)
    );
    assert_eq!(
        history[4].to.lost_reason(),
        Some(&LostReason::parse("competitor").unwrap())
    );

    let events = outcome_events(&store, &org, id.as_str()).await;
    assert_eq!(
        events.len(),
        history.len(),
        "one event per change, none for no change"
    );
    let won_event = &events[3];
    assert_eq!(won_event["outcome"], "won");
    assert_eq!(won_event["previous_outcome"], "contacted");
    assert_eq!(won_event["value"], 1_250_000);
    assert_eq!(won_event["source_tracking"]["source_code"], "02");
    assert_eq!(won_event["source_tracking"]["source_label"], "Yard Signs");
    assert_eq!(events[4]["lost_reason"], "competitor");
    // In the lead's order: each event takes the lead's next sequence number.
    let sequences: Vec<i64> = store
        .events(&org)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.lead_id.as_deref() == Some(id.as_str()))
        .map(|e| e.sequence.unwrap())
        .collect();
    assert_eq!(sequences, (1..=sequences.len() as i64).collect::<Vec<_>>());
    let now = store.lead(&org, id).await.unwrap();
    assert_eq!(now.outcome, Outcome::Quoted);
    assert!(now.outcome_changed_at.is_some());
}

async fn outcome_retries_and_other_tenants(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let (rival, _) = org_named(&store).await;
    let lead = lead_on(&store, &org, "01").await;
    let id = &lead.lead_id;
    let key = |k: &str, body: &str| Idempotency {
        key: k.into(),
        request_hash: format!("hash-{body}"),
    };
    let first = store
        .set_outcome(&org, id, won(9_000), "api_key:k", Some(&key("a", "won")))
        .await
        .unwrap();
    // Moved on since; the retry gets the first answer and changes nothing.
    store
        .set_outcome(&org, id, Outcome::Open, "api_key:k", None)
        .await
        .unwrap();
    let again = store
        .set_outcome(&org, id, won(9_000), "api_key:k", Some(&key("a", "won")))
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(
        store.lead(&org, id).await.unwrap().outcome,
        Outcome::Open,
        "a replay does not apply the change again"
    );
    assert_eq!(
        conflict(
            store
                .set_outcome(&org, id, won(1), "api_key:k", Some(&key("a", "other")))
                .await
        ),
        Conflict::IdempotencyKeyReused
    );
    // Another tenant: not found, and the lead is untouched (state, history, events).
    let events_before = store.events(&org).await.unwrap().len();
    assert!(matches!(
        store
            .set_outcome(&rival, id, won(1), "api_key:r", None)
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(store.outcome_history(&rival, id).await.unwrap().is_empty());
    assert_eq!(store.lead(&org, id).await.unwrap().outcome, Outcome::Open);
    assert_eq!(store.outcome_history(&org, id).await.unwrap().len(), 2);
    assert_eq!(store.events(&org).await.unwrap().len(), events_before);
    // The rival's key for the same Idempotency-Key value is its own.
    let rival_lead = lead_on(&store, &rival, "01").await;
    let theirs = store
        .set_outcome(
            &rival,
            &rival_lead.lead_id,
            Outcome::Contacted,
            "api_key:r",
            Some(&key("a", "contacted")),
        )
        .await
        .unwrap();
    assert_eq!(theirs.outcome, OutcomeKind::Contacted);
}

async fn org_named(store: &Store) -> (OrgId, String) {
    org(store, Tier::Premium).await
}

fn entry(widget: u32, source: u32, month: &str, amount: i64) -> SpendEntry {
    SpendEntry {
        widget: version(widget),
        source: code(source),
        month: Month::parse(month).unwrap(),
        amount,
    }
}

async fn spend_is_entered_and_imported_all_or_nothing(db: TestDb) {
    let store = store(&db).await;
    let org = org_with_yard_signs(&store).await;
    let (rival, _) = org_named(&store).await;
    // The rival has a SRC-03 on its Primary; this organization does not.
    for name in ["Mailer", "Radio"] {
        store
            .create_source(&rival, PRIMARY, new_source(name))
            .await
            .unwrap();
    }
    store
        .set_spend(&org, &entry(1, 2, "2026-09", 30_000), "user:a")
        .await
        .unwrap();
    store
        .set_spend(&org, &entry(1, 2, "2026-09", 45_000), "user:b")
        .await
        .unwrap();
    assert!(matches!(
        store
            .set_spend(&org, &entry(1, 3, "2026-09", 100), "user:a")
            .await,
        Err(StoreError::NotFound)
    ));
    let rows = store.spend(&org, None, None, None).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].entry.amount, rows[0].updated_by.as_str()),
        (45_000, "user:b")
    );
    assert!(
        store
            .spend(&rival, None, None, None)
            .await
            .unwrap()
            .is_empty()
    );

    // A file with a bad line, a duplicate month and another tenant's source writes nothing.
    let file = parse_import(
        "widget_version,source_code,month,amount\n\
         01,SRC-02,2026-10,500\n\
         01,SRC-02,2026-10,600\n\
         01,SRC-03,2026-10,700\n\
         01,SRC-01,2026-1,800\n",
    );
    match store.import_spend(&org, &file, "user:a").await.unwrap() {
        SpendImport::Refused(lines) => {
            let at: Vec<u64> = lines.iter().map(|l| l.line).collect();
            assert_eq!(at, vec![3, 4, 5], "{lines:?}");
            assert!(
                lines[1].reason.contains("has no source SRC-03"),
                "{lines:?}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(store.spend(&org, None, None, None).await.unwrap().len(), 1);
    let good = parse_import(
        "widget_version,source_code,month,amount\n\
         01,SRC-02,2026-10,500\n\
         01,SRC-01,2026-10,\"1,000.50\"\n\
         01,SRC-02,2026-09,400\n",
    );
    assert_eq!(
        store.import_spend(&org, &good, "user:a").await.unwrap(),
        SpendImport::Imported(3)
    );
    let months: Vec<(u32, String, i64)> = store
        .spend(&org, None, Some(Month::parse("2026-09").unwrap()), None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.entry.source.get(),
                r.entry.month.to_string(),
                r.entry.amount,
            )
        })
        .collect();
    assert_eq!(
        months,
        vec![
            (1, "2026-10".into(), 100_050),
            (2, "2026-09".into(), 40_000),
            (2, "2026-10".into(), 50_000),
        ]
    );
    store
        .delete_spend(&org, PRIMARY, code(1), Month::parse("2026-10").unwrap())
        .await
        .unwrap();
    assert!(matches!(
        store
            .delete_spend(&rival, PRIMARY, code(2), Month::parse("2026-10").unwrap())
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.spend(&org, None, None, None).await.unwrap().len(), 2);
}

/// Ten leads in September 2026 (UTC), by hand: Yard Signs (SRC-02) gets 6, Website 4.
async fn report_money_equals_hand_computed_figures(db: TestDb) {
    let store = store(&db).await;
    let org = org_with_yard_signs(&store).await;
    let tz = OrgTimeZone::utc();
    let sept = tz.start_of(jiff::civil::date(2026, 9, 1));
    let oct = tz.start_of(jiff::civil::date(2026, 10, 1));
    let mut signs = Vec::new();
    let mut website = Vec::new();
    for i in 0..10 {
        let source = if i < 6 { "02" } else { "01" };
        let lead = lead_on(&store, &org, source).await;
        step(&store, &lead, project(), None).await.unwrap();
        step(&store, &lead, personal(true), None).await.unwrap();
        if i < 6 {
            signs.push(lead);
        } else {
            website.push(lead);
        }
    }
    let dated: Vec<(LeadId, i64)> = signs
        .iter()
        .chain(&website)
        .enumerate()
        .map(|(i, l)| (l.lead_id.clone(), sept + (i as i64 + 1) * 86_400_000))
        .collect();
    store.backdate_leads(&org, &dated).await.unwrap();
    for job in store.claim_enrichment(100, 60_000).await.unwrap() {
        let e = leadtrail::domain::estimate::enrich(&job.project, &job.personal);
        store.write_enrichment(&job, &e).await.unwrap();
    }
    let set = |lead: &LeadCreated, o: Outcome| {
        let (store, org, id) = (store.clone(), org.clone(), lead.lead_id.clone());
        async move {
            store
                .set_outcome(&org, &id, o, "user:t", None)
                .await
                .unwrap()
        }
    };
    // Signs: two won (10,000 and 14,000), one lost, one moved won → lost → won (8,000).
    set(&signs[0], won(10_000)).await;
    set(&signs[1], won(14_000)).await;
    set(&signs[2], lost("price")).await;
    set(&signs[3], won(5_000)).await;
    set(&signs[3], lost("timing")).await;
    set(&signs[3], won(8_000)).await;
    set(&signs[4], Outcome::Quoted).await;
    // Website: one won (3,000) then reopened: nothing won there.
    set(&website[0], won(3_000)).await;
    set(&website[0], Outcome::Open).await;
    // Spend: September for signs only; October for both (outside the report's range).
    store
        .set_spend(&org, &entry(1, 2, "2026-09", 600_000), "user:t")
        .await
        .unwrap();
    store
        .set_spend(&org, &entry(1, 1, "2026-10", 99_900), "user:t")
        .await
        .unwrap();
    let signs_pipeline = open_pipeline(&store, &org, &signs).await;
    let website_pipeline = open_pipeline(&store, &org, &website).await;

    // Whole days (the rollups) and an instant inside a day (the raw rows) agree.
    for (from, raw_rows) in [(sept, false), (sept, true), (sept + 1000, false)] {
        let filter = ReportFilter {
            from_ms: Some(from),
            to_ms: Some(oct),
            raw_rows,
            ..ReportFilter::default()
        };
        let report = Report::load(&store, &org, &filter).await.unwrap().unwrap();
        let row = |c: &str| {
            report
                .sources
                .iter()
                .find(|r| r.source_code == c)
                .unwrap()
                .clone()
        };
        let (s, w) = (row("02"), row("01"));
        let m = s.money;
        assert_eq!(
            (s.leads, m.won, m.revenue),
            (Credit::whole(6), Credit::whole(3), 3_200_000),
            "{from} {raw_rows}"
        );
        assert_eq!(m.close_rate, 0.5);
        assert_eq!(m.spend, Some(600_000));
        assert_eq!(m.cost_per_lead, Some(100_000));
        assert_eq!(m.cost_per_won, Some(200_000));
        assert_eq!(m.roas, Some(5.33));
        assert_eq!(s.pipeline_value, signs_pipeline);
        // Website: no spend in September, so no costs at all, and no division by zero.
        let m = w.money;
        assert_eq!(
            (w.leads, m.won, m.revenue),
            (Credit::whole(4), Credit::ZERO, 0)
        );
        assert_eq!(
            (m.spend, m.cost_per_lead, m.cost_per_won, m.roas),
            (None, None, None, None)
        );
        assert_eq!(w.pipeline_value, website_pipeline);
        let totals = report.totals();
        assert_eq!(
            (totals.money.won, totals.money.revenue),
            (Credit::whole(3), 3_200_000)
        );
        assert_eq!(totals.money.spend, Some(600_000));
        assert_eq!(totals.money.cost_per_lead, Some(60_000));
        let channel = report
            .channels
            .iter()
            .find(|c| c.channel_category.id() == "paid_social")
            .unwrap();
        assert_eq!(
            (channel.money.won, channel.money.spend),
            (Credit::whole(3), Some(600_000))
        );
    }
    // Half of September: half its spend; first touch credits the same leads here.
    let half = ReportFilter {
        from_ms: Some(sept),
        to_ms: Some(sept + 15 * 86_400_000),
        model: Model::FirstTouch,
        ..ReportFilter::default()
    };
    let report = Report::load(&store, &org, &half).await.unwrap().unwrap();
    let s = report
        .sources
        .iter()
        .find(|r| r.source_code == "02")
        .unwrap();
    assert_eq!(s.money.spend, Some(300_000));
    assert_eq!(
        (s.leads, s.money.won, s.money.revenue),
        (Credit::whole(6), Credit::whole(3), 3_200_000)
    );
}

/// The estimate midpoints of the leads not won or lost.
async fn open_pipeline(store: &Store, org: &OrgId, leads: &[LeadCreated]) -> u64 {
    let mut sum = 0;
    for l in leads {
        let r = store.lead(org, &l.lead_id).await.unwrap();
        if !r.outcome.is_closed() {
            sum += r.enrichment.unwrap().estimate.midpoint() as u64;
        }
    }
    sum
}

/// A report's spend is each month's amount spread evenly over its local days: a range ending
/// at midnight leaves that day out, a range inside one month takes its share of it, an empty
/// range takes nothing, and another widget's filter takes none of this one's.
async fn spend_in_a_range_is_each_months_share_of_its_days(db: TestDb) {
    use leadtrail::domain::lead_import::parse_time;
    use std::collections::BTreeMap;
    let store = store(&db).await;
    let org = org_with_yard_signs(&store).await;
    // 100 a day: September has 30 days, October 31.
    for (month, amount) in [("2026-09", 3_000), ("2026-10", 3_100)] {
        store
            .set_spend(&org, &entry(1, 2, month, amount), "user:a")
            .await
            .unwrap();
    }
    let utc = OrgTimeZone::utc();
    let at = |t: &str| Some(parse_time("at", t).unwrap());
    let cases = [
        (None, None, Some(6_100)),
        (
            at("2026-09-01T00:00:00Z"),
            at("2026-10-01T00:00:00Z"),
            Some(3_000),
        ),
        (
            at("2026-09-16T00:00:00Z"),
            at("2026-10-02T00:00:00Z"),
            Some(1_600),
        ),
        (at("2026-10-01T00:00:00Z"), None, Some(3_100)),
        (None, at("2026-10-01T00:00:00Z"), Some(3_000)),
        (
            at("2026-09-16T12:00:00Z"),
            at("2026-09-17T00:00:00Z"),
            Some(100),
        ),
        (at("2026-09-16T00:00:00Z"), at("2026-09-16T00:00:00Z"), None),
        (at("2026-09-17T00:00:00Z"), at("2026-09-16T00:00:00Z"), None),
    ];
    for (from, to, expected) in cases {
        let got = store
            .spend_in_range(&org, Some(PRIMARY), from, to, &utc)
            .await
            .unwrap();
        let expected: BTreeMap<(u32, u32), i64> =
            expected.map(|n| ((1, 2), n)).into_iter().collect();
        assert_eq!(got, expected, "from {from:?} to {to:?}");
    }
    assert!(
        store
            .spend_in_range(&org, Some(version(2)), None, None, &utc)
            .await
            .unwrap()
            .is_empty()
    );
}

on_both_backends!(
    outcomes_move_keep_their_history_and_emit_events,
    outcome_retries_and_other_tenants,
    spend_is_entered_and_imported_all_or_nothing,
    report_money_equals_hand_computed_figures,
    spend_in_a_range_is_each_months_share_of_its_days,
);
