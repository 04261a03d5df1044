//! Multi-touch attribution: a lead's touches are its visitor's visits to the same organization
//! (within the lookback) and its arrival; every model's credit sums to exactly one lead; the
//! model reports kept in the rollups equal a recount from the leads' own touches, before and
//! after a change of lookback or half-life.

use leadtrail::domain::attribution::Arrival;
use std::collections::BTreeMap;

use crate::capture_rules::two_widgets;
use crate::common::TestDb;
use crate::common::leads::{arrival, contact, create, personal, project, step};
use crate::on_both_backends;
use crate::{PRIMARY, code, new_source, org, store, version};
use leadtrail::domain::attribution::DerivedChannel;
use leadtrail::domain::estimate::enrich;
use leadtrail::domain::ids::OrgId;
use leadtrail::domain::multi_touch::{
    Credit, CreditSettings, Model, TouchKey, TouchPoint, UNIT, credit,
};
use leadtrail::domain::outcome::Outcome;
use leadtrail::domain::tier::Tier;
use leadtrail::store::{
    CaptureCommand, CaptureReply, LeadCreated, LeadFilter, NewLead, NewVisit, RecountStep,
    ReportFilter, Store,
};

const DAY: i64 = 86_400_000;

fn visit(org: &OrgId, visitor: &str, s: Option<&str>, at: i64) -> NewVisit {
    NewVisit {
        org: org.clone(),
        arrival: Arrival {
            s: s.map(str::to_owned),
            page_url: Some("https://acme.example/roofs".into()),
            visitor_id: Some(visitor.to_owned()),
            ..Arrival::default()
        },
        at,
    }
}

fn lead_of(org: &OrgId, visitor: Option<&str>, s: &str) -> NewLead {
    let mut new = arrival(org, None, None, Some(s));
    new.arrival.visitor_id = visitor.map(str::to_owned);
    new
}

async fn with_sources(store: &Store, n: usize) -> OrgId {
    let (org, _) = org(store, Tier::Starter).await;
    for i in 0..n {
        store
            .create_source(&org, PRIMARY, new_source(&format!("Source {i}")))
            .await
            .unwrap();
    }
    org
}

fn model_filter(model: Model, raw_rows: bool) -> ReportFilter {
    ReportFilter {
        model,
        raw_rows,
        ..ReportFilter::default()
    }
}

/// Leads credited per (widget, source) under `model`, from the rollups and from the raw rows
/// (asserted equal), in credit units.
async fn credited(store: &Store, org: &OrgId, model: Model) -> BTreeMap<(u32, u32), i64> {
    let rolled = store
        .source_counts(org, &model_filter(model, false))
        .await
        .unwrap();
    let raw = store
        .source_counts(org, &model_filter(model, true))
        .await
        .unwrap();
    let leads = |m: &BTreeMap<(u32, u32), leadtrail::store::Counts>| -> BTreeMap<(u32, u32), i64> {
        m.iter()
            .filter(|(_, c)| c.leads != Credit::ZERO)
            .map(|(k, c)| (*k, c.leads.units()))
            .collect()
    };
    assert_eq!(
        leads(&rolled),
        leads(&raw),
        "{model:?}: rollups and raw rows differ"
    );
    leads(&rolled)
}

async fn recount_all(store: &Store) {
    for _ in 0..10_000 {
        if store.recount_credit_step(3).await.unwrap() == RecountStep::Idle {
            return;
        }
    }
    panic!("the recount never ended");
}

/// Yard sign (10 days ago), Facebook (5 days ago), an internal page view, a Google search
/// (untagged, 2 days ago), then the lead through the mailer: four touches.
async fn the_credit_of_one_journey_is_split_as_each_model_says(db: TestDb) {
    let store = store(&db).await;
    let org = with_sources(&store, 4).await;
    let now = leadtrail::store::now_ms();
    let mut search = visit(&org, "homeowner-1", None, now - 2 * DAY);
    search.arrival.referrer = Some("https://www.google.com/".into());
    let mut internal = visit(&org, "homeowner-1", None, now - 5 * DAY + 60_000);
    internal.arrival.referrer = Some("https://acme.example/".into());
    store
        .insert_visits(&[
            // Outside the 90-day lookback: kept on the lead, not credited.
            visit(&org, "homeowner-1", Some("05"), now - 100 * DAY),
            visit(&org, "homeowner-1", Some("02"), now - 10 * DAY),
            visit(&org, "homeowner-1", Some("03"), now - 5 * DAY),
            internal,
            search,
            // Someone else's journey.
            visit(&org, "homeowner-2", Some("03"), now - 3 * DAY),
        ])
        .await
        .unwrap();
    let lead = create(&store, lead_of(&org, Some("homeowner-1"), "04"))
        .await
        .unwrap();
    let record = store.lead(&org, &lead.lead_id).await.unwrap();
    let keys: Vec<(u32, Option<DerivedChannel>)> = record
        .touches
        .iter()
        .map(|t| (t.key.source, t.key.channel))
        .collect();
    assert_eq!(
        keys,
        vec![
            (5, None),
            (2, None),
            (3, None),
            (1, Some(DerivedChannel::OrganicSearch)),
            (4, None),
        ]
    );
    // Corrected to the source of the touch before the arrival: that touch and the arrival are
    // one, so under linear the journey is split over two (not three) touches.
    let org2 = with_sources(&store, 3).await;
    store
        .insert_visits(&[
            visit(&org2, "h", Some("02"), now - 2 * DAY),
            visit(&org2, "h", Some("03"), now - DAY),
        ])
        .await
        .unwrap();
    let corrected = create(&store, lead_of(&org2, Some("h"), "04"))
        .await
        .unwrap();
    store
        .correct_source(
            &org2,
            &corrected.lead_id,
            code(3),
            "caller said so",
            "user:test",
        )
        .await
        .unwrap();
    assert_eq!(
        credited(&store, &org2, Model::Linear).await,
        BTreeMap::from([((1, 2), 500_000), ((1, 3), 500_000)])
    );
    // A lead without a visitor id: one touch, its arrival.
    create(&store, lead_of(&org, None, "02")).await.unwrap();

    let linear = credited(&store, &org, Model::Linear).await;
    assert_eq!(
        linear,
        BTreeMap::from([
            ((1, 1), 250_000),
            ((1, 2), 250_000 + UNIT),
            ((1, 3), 250_000),
            ((1, 4), 250_000),
        ])
    );
    let position = credited(&store, &org, Model::PositionBased).await;
    assert_eq!(
        position,
        BTreeMap::from([
            ((1, 1), 100_000),
            ((1, 2), 400_000 + UNIT),
            ((1, 3), 100_000),
            ((1, 4), 400_000),
        ])
    );
    // Ages 10, 5, 2 and 0 days with a 7-day half-life: weights 2^(-10/7), 2^(-5/7), 2^(-2/7)
    // and 1, over their sum 2.801341: 0.132615, 0.217577, 0.292837, 0.356972.
    let decay = credited(&store, &org, Model::TimeDecay).await;
    let near = |key: (u32, u32), expected: f64| {
        let got = decay[&key] as f64 / UNIT as f64;
        assert!(
            (got - expected).abs() < 0.0001,
            "{key:?}: {got} vs {expected}"
        );
    };
    near((1, 2), 1.0 + 0.132615);
    near((1, 3), 0.217577);
    near((1, 1), 0.292837);
    near((1, 4), 0.356972);
    assert_eq!(decay.values().sum::<i64>(), 2 * UNIT);
    // Last and first touch are whole.
    assert_eq!(
        credited(&store, &org, Model::LastTouch).await,
        BTreeMap::from([((1, 2), UNIT), ((1, 4), UNIT)])
    );

    // A longer lookback reaches the yard sign of 100 days ago: five touches after the recount.
    store
        .update_credit_settings(&org, CreditSettings::new(120, 7).unwrap())
        .await
        .unwrap();
    let progress = store.credit_recount(&org).await.unwrap().unwrap();
    assert_eq!((progress.done, progress.total), (0, 2));
    recount_all(&store).await;
    assert_eq!(store.credit_recount(&org).await.unwrap(), None);
    assert_eq!(
        credited(&store, &org, Model::Linear).await,
        BTreeMap::from([
            ((1, 1), 200_000),
            ((1, 2), 200_000 + UNIT),
            ((1, 3), 200_000),
            ((1, 4), 200_000),
            ((1, 5), 200_000),
        ])
    );
}

/// One visitor, two leads: each lead is credited over the journey before it, so the visits
/// before the first lead count for both.
async fn a_visitor_with_two_leads_credits_each_over_its_own_journey(db: TestDb) {
    let store = store(&db).await;
    let org = with_sources(&store, 3).await;
    let now = leadtrail::store::now_ms();
    store
        .insert_visits(&[
            visit(&org, "twice", Some("02"), now - 3 * DAY),
            // The page view of the first lead's page.
            visit(&org, "twice", Some("03"), now - 1_000),
        ])
        .await
        .unwrap();
    let first = create(&store, lead_of(&org, Some("twice"), "03"))
        .await
        .unwrap();
    store
        .insert_visits(&[visit(&org, "twice", Some("04"), leadtrail::store::now_ms())])
        .await
        .unwrap();
    let second = create(&store, lead_of(&org, Some("twice"), "02"))
        .await
        .unwrap();
    let sources = |lead: &leadtrail::store::LeadRecord| -> Vec<u32> {
        lead.touches.iter().map(|t| t.key.source).collect()
    };
    let first = store.lead(&org, &first.lead_id).await.unwrap();
    let second = store.lead(&org, &second.lead_id).await.unwrap();
    assert_eq!(sources(&first), [2, 3]);
    assert_eq!(sources(&second), [2, 3, 4, 2]);
    // First lead: halves. Second: quarters, two of them the Facebook ad's.
    assert_eq!(
        credited(&store, &org, Model::Linear).await,
        BTreeMap::from([((1, 2), UNIT), ((1, 3), 750_000), ((1, 4), 250_000)])
    );
    // Position-based: 50/50; then 40 / 10 / 10 / 40.
    assert_eq!(
        credited(&store, &org, Model::PositionBased).await,
        BTreeMap::from([
            ((1, 2), 500_000 + 800_000),
            ((1, 3), 500_000 + 100_000),
            ((1, 4), 100_000)
        ])
    );
}

/// The same visitor id sent with another organization's key names nothing of this one.
async fn a_visitor_id_never_links_across_organizations(db: TestDb) {
    let store = store(&db).await;
    let ours = with_sources(&store, 3).await;
    let theirs = with_sources(&store, 3).await;
    let now = leadtrail::store::now_ms();
    store
        .insert_visits(&[
            visit(&ours, "shared-id", Some("02"), now - DAY),
            visit(&ours, "shared-id", Some("03"), now - DAY / 2),
        ])
        .await
        .unwrap();
    let lead = create(&store, lead_of(&theirs, Some("shared-id"), "04"))
        .await
        .unwrap();
    let record = store.lead(&theirs, &lead.lead_id).await.unwrap();
    assert_eq!(record.touches.len(), 1, "{:?}", record.touches);
    assert_eq!(
        credited(&store, &theirs, Model::Linear).await,
        BTreeMap::from([((1, 4), UNIT)])
    );
    assert!(credited(&store, &ours, Model::Linear).await.is_empty());
    // And another organization's lead is not ours to read.
    assert!(store.lead(&ours, &lead.lead_id).await.is_err());
}

/// A capture batch reads every visitor's visits at once: in one batch, each lead gets its own
/// visitor's journey (the most recent `VISITS_PER_LEAD` of a long one), a lead without a
/// visitor gets only its arrival, and the same visitor id under another organization names
/// only that organization's visits.
async fn one_batch_reads_each_visitors_own_journey(db: TestDb) {
    let store = store(&db).await;
    let ours = with_sources(&store, 3).await;
    let theirs = with_sources(&store, 3).await;
    let now = leadtrail::store::now_ms();
    let mut visits = vec![
        visit(&ours, "alice", Some("02"), now - 2 * DAY),
        visit(&ours, "alice", Some("03"), now - DAY),
        visit(&ours, "bob", Some("04"), now - DAY),
        visit(&theirs, "alice", Some("04"), now - DAY),
    ];
    // A long journey: 600 page views through 02 and 03 by turns, the oldest 100 of them
    // beyond the 500 a lead reads, the first of all through 04.
    visits.push(visit(&ours, "carol", Some("04"), now - 5 * DAY));
    for i in 1..600_i64 {
        let s = if i % 2 == 0 { "02" } else { "03" };
        visits.push(visit(&ours, "carol", Some(s), now - 4 * DAY + i * 60_000));
    }
    store.insert_visits(&visits).await.unwrap();
    let commands: Vec<CaptureCommand> = [
        lead_of(&ours, Some("alice"), "04"),
        lead_of(&ours, Some("bob"), "02"),
        lead_of(&ours, None, "03"),
        lead_of(&theirs, Some("alice"), "02"),
        lead_of(&ours, Some("carol"), "02"),
    ]
    .into_iter()
    .map(|new| CaptureCommand::CreateLead(Box::new(new)))
    .collect();
    let results = store.apply_capture(&commands).await.unwrap();
    let mut journeys = Vec::new();
    for (result, org) in results
        .into_iter()
        .zip([&ours, &ours, &ours, &theirs, &ours])
    {
        let Ok(CaptureReply::Created(created)) = result else {
            panic!("{result:?}");
        };
        let lead = store.lead(org, &created.lead_id).await.unwrap();
        journeys.push(
            lead.touches
                .iter()
                .map(|t| t.key.source)
                .collect::<Vec<u32>>(),
        );
    }
    assert_eq!(journeys[0], [2, 3, 4], "alice");
    assert_eq!(journeys[1], [4, 2], "bob");
    assert_eq!(journeys[2], [3], "no visitor");
    assert_eq!(journeys[3], [4, 2], "alice at the other organization");
    // Carol: the 500 most recent views alternate 02 / 03 (the first source of the long
    // journey, 04, is older than those and not read); runs through one source are one touch
    // each, and a lead keeps at most 50 touches (the first and the most recent).
    let carol = &journeys[4];
    assert!(!carol.contains(&4), "{carol:?}");
    assert_eq!(carol.len(), leadtrail::domain::multi_touch::MAX_TOUCHES);
    assert_eq!(carol.last(), Some(&2));
}

/// A small deterministic generator: a failing history is replayed from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Random journeys (tagged and untagged visits, internal page views, visitors with several
/// leads, leads without a visitor), steps, enrichment, won jobs, corrections; then: every
/// lead's credit sums to one under every model, and each model's report (rollups and raw
/// rows) equals a recount from the leads' touches made here, before and after a settings
/// change recounted in small chunks while leads keep arriving.
async fn model_reports_equal_a_recount_from_the_touches(db: TestDb) {
    let store = store(&db).await;
    let org = with_sources(&store, 4).await;
    let now = leadtrail::store::now_ms();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut visits = Vec::new();
    for i in 0..300 {
        let visitor = format!("v{}", rng.below(25));
        let s = match rng.below(6) {
            0 => None,
            n => Some(format!("{:02}", 1 + n.min(5))),
        };
        let mut v = visit(&org, &visitor, s.as_deref(), now - (300 - i) * DAY / 3);
        v.arrival.referrer = match rng.below(3) {
            0 => Some("https://www.bing.com/".into()),
            1 => Some("https://acme.example/".into()),
            _ => None,
        };
        visits.push(v);
    }
    store.insert_visits(&visits).await.unwrap();
    let mut leads: Vec<LeadCreated> = Vec::new();
    for i in 0..40 {
        let visitor = (rng.below(5) > 0).then(|| format!("v{}", rng.below(25)));
        let s = format!("{:02}", 1 + rng.below(5));
        leads.push(
            create(&store, lead_of(&org, visitor.as_deref(), &s))
                .await
                .unwrap(),
        );
        let lead = &leads[i];
        if rng.below(2) == 0 {
            step(&store, lead, project(), None).await.unwrap();
            step(&store, lead, personal(true), None).await.unwrap();
            if rng.below(2) == 0 {
                step(&store, lead, contact(), None).await.unwrap();
            }
        }
        if rng.below(5) == 0 {
            // Refused when the lead is already on it; either way the credit must add up.
            let _ = store
                .correct_source(&org, &lead.lead_id, code(2), "caller said so", "user:test")
                .await;
        }
    }
    for job in store.claim_enrichment(100, 60_000).await.unwrap() {
        store
            .write_enrichment(&job, &enrich(&job.project, &job.personal))
            .await
            .unwrap();
    }
    for lead in leads.iter().step_by(3) {
        let value = 100_001 + rng.below(900_000) as i64;
        store
            .set_outcome(
                &org,
                &lead.lead_id,
                Outcome::Won { value },
                "user:test",
                None,
            )
            .await
            .unwrap();
    }
    check_against_touches(&store, &org, CreditSettings::default()).await;

    // A shorter lookback and half-life, recounted three leads at a time while leads arrive.
    let settings = CreditSettings::new(30, 2).unwrap();
    store.update_credit_settings(&org, settings).await.unwrap();
    for round in 0.. {
        if round % 2 == 0 && round < 20 {
            let visitor = format!("v{}", rng.below(25));
            create(&store, lead_of(&org, Some(&visitor), "03"))
                .await
                .unwrap();
        }
        // Leads the recount has already counted (the oldest) and ones it has not yet reached
        // change meanwhile.
        if round % 3 == 1 && round < 30 {
            let lead = &leads[(round * 7) % leads.len()];
            let _ = store
                .set_outcome(
                    &org,
                    &lead.lead_id,
                    Outcome::Lost {
                        reason: leadtrail::domain::outcome::LostReason::parse("price").unwrap(),
                    },
                    "user:test",
                    None,
                )
                .await;
        }
        if store.recount_credit_step(3).await.unwrap() == RecountStep::Idle {
            break;
        }
        assert!(round < 1_000, "the recount never ended");
    }
    check_against_touches(&store, &org, settings).await;
    // A full rebuild (`leadtrail rollups rebuild`) gives the same.
    store.rebuild_rollups(Some(&org)).await.unwrap();
    check_against_touches(&store, &org, settings).await;
}

/// A rebuild counts the model rows lead by lead, in chunks of 5,000: the leads past the first
/// chunk are counted as well.
async fn a_rebuild_counts_every_lead_past_its_first_chunk(db: TestDb) {
    const LEADS: i64 = 5_001;
    let store = store(&db).await;
    let org = with_sources(&store, 1).await;
    let commands: Vec<_> = (0..LEADS)
        .map(|_| CaptureCommand::CreateLead(Box::new(lead_of(&org, None, "02"))))
        .collect();
    for result in store.apply_capture(&commands).await.unwrap() {
        assert!(matches!(result, Ok(CaptureReply::Created(_))), "{result:?}");
    }
    let every_lead = BTreeMap::from([((1, 2), LEADS * UNIT)]);
    assert_eq!(credited(&store, &org, Model::Linear).await, every_lead);
    store.rebuild_rollups(Some(&org)).await.unwrap();
    assert_eq!(
        credited(&store, &org, Model::Linear).await,
        every_lead,
        "after the rebuild"
    );
}

/// What a source is credited with under a model: credit units, and amounts split exactly.
#[derive(Debug, Default, PartialEq, Eq)]
struct Split {
    leads: i64,
    project: i64,
    personal: i64,
    contact: i64,
    enriched: i64,
    won: i64,
    revenue: i64,
    score: i64,
    pipeline: i64,
}

/// Every model's counters per source (the funnel, enriched, won, revenue, score, pipeline),
/// recounted from each lead's touches
/// with the domain's split, equal the reports; and each lead's credit sums to one.
async fn check_against_touches(store: &Store, org: &OrgId, settings: CreditSettings) {
    let records = store
        .leads(
            org,
            &LeadFilter {
                limit: 1_000,
                ..LeadFilter::default()
            },
        )
        .await
        .unwrap();
    for model in Model::MULTI_TOUCH {
        let mut expected: BTreeMap<(u32, u32), Split> = BTreeMap::new();
        // The Website's share per derived channel, as its report splits it.
        let mut website: BTreeMap<String, Split> = BTreeMap::new();
        for l in &records {
            let credited_source = l
                .corrected
                .as_ref()
                .map_or(l.source_code.get(), |c| c.source_code.parse().unwrap());
            let arrival = TouchPoint {
                at: l.created_at,
                key: TouchKey {
                    widget: l.widget_version.get(),
                    source: credited_source,
                    channel: if credited_source == 1 {
                        l.derived_channel
                    } else {
                        None
                    },
                },
            };
            let mut touches: Vec<TouchPoint> = l.touches[..l.touches.len() - 1]
                .iter()
                .filter(|t| t.at >= l.created_at - settings.lookback_ms())
                .copied()
                .collect();
            if touches.last().map(|t| t.key) == Some(arrival.key) {
                touches.pop();
            }
            touches.push(arrival);
            let shares = credit(model, &touches, settings.half_life_ms());
            assert_eq!(shares.iter().map(|s| s.1).sum::<i64>(), UNIT, "{model:?}");
            let won = matches!(l.outcome, Outcome::Won { .. });
            let step = i64::from(l.status.step());
            let (score, pipeline) = match &l.enrichment {
                Some(e) if l.outcome.is_closed() => (i64::from(e.score), 0),
                Some(e) => (i64::from(e.score), e.estimate.midpoint()),
                None => (0, 0),
            };
            let units: Vec<i64> = shares.iter().map(|s| s.1).collect();
            let split = |amount: i64| leadtrail::domain::multi_touch::apportion(amount, &units);
            let (revenue, score, pipeline) = (
                split(l.outcome.value().unwrap_or(0)),
                split(score),
                split(pipeline),
            );
            for (i, (key, units)) in shares.iter().enumerate() {
                let counted = |yes: bool| if yes { *units } else { 0 };
                let e = expected.entry((key.widget, key.source)).or_default();
                e.leads += units;
                e.project += counted(step >= 2);
                e.personal += counted(step >= 3);
                e.contact += counted(step >= 4);
                e.enriched += counted(l.enrichment.is_some());
                e.won += counted(won);
                e.revenue += revenue[i];
                e.score += score[i];
                e.pipeline += pipeline[i];
                if key.source == 1 {
                    let channel = key.channel.map_or("direct", |c| c.id()).to_owned();
                    let w = website.entry(channel).or_default();
                    w.leads += units;
                    w.contact += counted(step >= 4);
                    w.enriched += counted(l.enrichment.is_some());
                    w.won += counted(won);
                    w.revenue += revenue[i];
                    w.pipeline += pipeline[i];
                }
            }
        }
        check_website_channels(store, org, model, &website).await;
        for raw_rows in [false, true] {
            let counts = store
                .source_counts(org, &model_filter(model, raw_rows))
                .await
                .unwrap();
            let got: BTreeMap<(u32, u32), Split> = counts
                .iter()
                .filter(|(_, c)| c.leads != Credit::ZERO)
                .map(|(k, c)| {
                    let amount = |n: u64| i64::try_from(n).unwrap();
                    let split = Split {
                        leads: c.leads.units(),
                        project: c.reached_project.units(),
                        personal: c.reached_personal.units(),
                        contact: c.contact_requested.units(),
                        enriched: c.enriched.units(),
                        won: c.won.units(),
                        revenue: amount(c.revenue),
                        score: amount(c.score_sum),
                        pipeline: amount(c.pipeline_value),
                    };
                    (*k, split)
                })
                .collect();
            assert_eq!(got, expected, "{model:?} raw_rows={raw_rows}");
            let total: Credit = counts.values().map(|c| c.leads).sum();
            assert_eq!(total, Credit::whole(records.len() as u64), "{model:?}");
        }
    }
}

/// The Website's derived channels under `model` (from the rollups and from the raw rows): the
/// credit of its touches through each channel, with the amounts split as the sources' are.
async fn check_website_channels(
    store: &Store,
    org: &OrgId,
    model: Model,
    expected: &BTreeMap<String, Split>,
) {
    assert!(
        expected
            .values()
            .filter(|w| w.pipeline > 0 && w.revenue > 0)
            .count()
            > 1,
        "the history credits several channels with pipeline and revenue: {expected:?}"
    );
    for raw_rows in [false, true] {
        let counts = store
            .derived_channel_counts(org, &model_filter(model, raw_rows))
            .await
            .unwrap();
        let got: BTreeMap<String, Split> = counts
            .into_iter()
            .filter(|(_, c)| c.leads != Credit::ZERO)
            .map(|(channel, c)| {
                let amount = |n: u64| i64::try_from(n).unwrap();
                let split = Split {
                    leads: c.leads.units(),
                    contact: c.contact_requested.units(),
                    enriched: c.enriched.units(),
                    won: c.won.units(),
                    revenue: amount(c.revenue),
                    pipeline: amount(c.pipeline_value),
                    ..Split::default()
                };
                (channel, split)
            })
            .collect();
        assert_eq!(&got, expected, "{model:?} raw_rows={raw_rows}");
    }
}

/// A report filtered to one widget is the unfiltered report's rows of that widget, under every
/// multi-touch model, from the rollups and from the raw rows: a lead on one widget whose
/// journey passed through the other credits each widget with its own touches' share.
async fn a_widget_report_holds_only_that_widgets_touches(db: TestDb) {
    let store = store(&db).await;
    let org = two_widgets(&store).await;
    let now = leadtrail::store::now_ms();
    let through = |visitor: &str, v: Option<&str>, s: &str, at: i64| {
        let mut new = visit(&org, visitor, Some(s), at);
        new.arrival.v = v.map(str::to_owned);
        new
    };
    store
        .insert_visits(&[
            through("a", Some("02"), "02", now - 3 * DAY),
            through("b", None, "02", now - 2 * DAY),
        ])
        .await
        .unwrap();
    // Alice came through the second widget and became a lead on the first; Bob the other way
    // round; Carol, without a visitor id, only on the second.
    create(&store, lead_of(&org, Some("a"), "02"))
        .await
        .unwrap();
    let mut bob = arrival(&org, None, Some("02"), Some("03"));
    bob.arrival.visitor_id = Some("b".into());
    create(&store, bob).await.unwrap();
    create(&store, arrival(&org, None, Some("02"), Some("02")))
        .await
        .unwrap();
    for model in Model::MULTI_TOUCH {
        for raw_rows in [false, true] {
            let all = store
                .source_counts(&org, &model_filter(model, raw_rows))
                .await
                .unwrap();
            let widgets: Vec<u32> = all
                .iter()
                .filter(|(_, c)| c.leads != Credit::ZERO)
                .map(|(k, _)| k.0)
                .collect();
            assert!(
                widgets.contains(&1) && widgets.contains(&2),
                "{model:?} raw_rows={raw_rows}: {all:?}"
            );
            for widget in [1, 2] {
                let filter = ReportFilter {
                    widget: Some(version(widget)),
                    ..model_filter(model, raw_rows)
                };
                let got = store.source_counts(&org, &filter).await.unwrap();
                let expected: BTreeMap<_, _> = all
                    .iter()
                    .filter(|(k, _)| k.0 == widget)
                    .map(|(k, c)| (*k, *c))
                    .collect();
                assert_eq!(
                    got, expected,
                    "{model:?} raw_rows={raw_rows} widget={widget}"
                );
            }
        }
    }
}

on_both_backends!(
    the_credit_of_one_journey_is_split_as_each_model_says,
    a_visitor_id_never_links_across_organizations,
    one_batch_reads_each_visitors_own_journey,
    a_visitor_with_two_leads_credits_each_over_its_own_journey,
    model_reports_equal_a_recount_from_the_touches,
    a_widget_report_holds_only_that_widgets_touches,
    a_rebuild_counts_every_lead_past_its_first_chunk,
);
