//! Raw request data past an organization's retention: dropped from leads and visits, while
//! counts, attribution and touches stay; organizations without the setting keep theirs.

use leadtrail::domain::attribution::{Arrival, Utm};
use leadtrail::domain::ids::{LeadId, OrgId};
use leadtrail::domain::privacy::RetentionDays;
use leadtrail::domain::tier::Tier;
use leadtrail::store::{NewVisit, OrganizationPatch, RETENTION_BATCH, Store, now_ms};

use crate::common::TestDb;
use crate::common::leads::{arrival, create, personal, project, step};
use crate::on_both_backends;
use crate::{PRIMARY, code, org, store};
use leadtrail::domain::estimate::enrich;

const DAY: i64 = 86_400_000;

fn visit(org: &OrgId, visitor: &str, at: i64) -> NewVisit {
    NewVisit {
        org: org.clone(),
        arrival: Arrival {
            page_url: Some("https://acme.example/?gclid=abc".into()),
            referrer: Some("https://www.google.com/".into()),
            visitor_id: Some(visitor.to_owned()),
            ..Arrival::default()
        },
        at,
    }
}

/// A visitor with a visit 400 days ago and one 10 days ago, a lead of theirs from now and an
/// old lead (moved 400 days back). Returns (recent lead, old lead).
async fn history(store: &Store, org: &OrgId) -> (LeadId, LeadId) {
    let now = now_ms();
    store
        .insert_visits(&[
            visit(org, "v1", now - 400 * DAY),
            visit(org, "v1", now - 10 * DAY),
        ])
        .await
        .unwrap();
    let mut recent = arrival(org, Some(1), None, None);
    recent.arrival.visitor_id = Some("v1".into());
    let recent = create(store, recent).await.unwrap().lead_id;
    let mut old = arrival(org, Some(1), None, None);
    old.arrival.visitor_id = Some("v2".into());
    let old = create(store, old).await.unwrap().lead_id;
    store
        .backdate_leads(org, &[(old.clone(), now - 400 * DAY)])
        .await
        .unwrap();
    (recent, old)
}

/// Sets the organization's raw-data retention to 365 days.
async fn keep_raw_data_for_a_year(store: &Store, org: &OrgId) {
    store
        .update_organization(
            org,
            OrganizationPatch {
                raw_data_retention: Some(Some(RetentionDays::parse(365).unwrap())),
                ..OrganizationPatch::default()
            },
        )
        .await
        .unwrap();
}

async fn raw_data_past_retention_is_dropped_and_the_counts_stay(db: TestDb) {
    let store = store(&db).await;
    let (kept_org, _) = org(&store, Tier::Starter).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let (kept_recent, kept_old) = history(&store, &kept_org).await;
    let (recent, old) = history(&store, &org).await;
    keep_raw_data_for_a_year(&store, &org).await;
    let visits_before = store.visit_count(&org, PRIMARY, code(1)).await.unwrap();
    let touches_before = store.lead(&org, &recent).await.unwrap().touches;

    let dropped = store.drop_expired_raw_data().await.unwrap();
    // The old visit and the old lead: nothing else.
    assert_eq!(dropped, 2);
    let visits = store.visitor_visits(&org, "v1").await.unwrap();
    assert_eq!(visits.len(), 1, "only the recent visit keeps its visitor");
    assert_eq!(
        visits[0].page_url.as_deref(),
        Some("https://acme.example/?gclid=abc")
    );
    assert_eq!(store.lead_visitor(&org, &old).await.unwrap(), None);
    assert_eq!(
        store.lead(&org, &old).await.unwrap().raw_params,
        serde_json::json!({})
    );
    assert_eq!(
        store.lead_visitor(&org, &recent).await.unwrap().as_deref(),
        Some("v1")
    );
    assert_ne!(
        store.lead(&org, &recent).await.unwrap().raw_params,
        serde_json::json!({})
    );
    // Visits are still counted; the recent lead keeps its touches.
    assert_eq!(
        store.visit_count(&org, PRIMARY, code(1)).await.unwrap(),
        visits_before
    );
    assert_eq!(
        store.lead(&org, &recent).await.unwrap().touches,
        touches_before
    );
    // The organization without the setting keeps everything.
    assert_eq!(
        store.visitor_visits(&kept_org, "v1").await.unwrap().len(),
        2
    );
    assert_eq!(
        store
            .lead_visitor(&kept_org, &kept_old)
            .await
            .unwrap()
            .as_deref(),
        Some("v2")
    );
    assert_eq!(
        store
            .lead_visitor(&kept_org, &kept_recent)
            .await
            .unwrap()
            .as_deref(),
        Some("v1")
    );
    // A second sweep finds nothing left to drop.
    assert_eq!(store.drop_expired_raw_data().await.unwrap(), 0);
}

/// The sweep changes at most `RETENTION_BATCH` rows per statement and goes on until none are
/// left: a row past one whole batch is dropped by the same sweep.
async fn a_sweep_goes_on_past_one_statements_batch(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let count = usize::try_from(RETENTION_BATCH).unwrap() + 1;
    let old = now_ms() - 400 * DAY;
    let visits: Vec<NewVisit> = (0..count).map(|_| visit(&org, "v1", old)).collect();
    for chunk in visits.chunks(500) {
        store.insert_visits(chunk).await.unwrap();
    }
    keep_raw_data_for_a_year(&store, &org).await;
    assert_eq!(
        store.drop_expired_raw_data().await.unwrap(),
        u64::try_from(count).unwrap()
    );
    assert!(store.visitor_visits(&org, "v1").await.unwrap().is_empty());
}

/// A homeowner's request to see their data finds their leads of this organization by e-mail,
/// in any case and with spaces around it, newest first; a blank or malformed address is
/// refused, and another organization's lead with the same address stays out.
async fn a_homeowners_leads_are_found_by_email(db: TestDb) {
    let store = store(&db).await;
    let (rival, _) = org(&store, Tier::Starter).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let mut made = Vec::new();
    for o in [&org, &org, &rival] {
        let lead = create(&store, arrival(o, Some(1), None, None))
            .await
            .unwrap();
        step(&store, &lead, project(), None).await.unwrap();
        step(&store, &lead, personal(true), None).await.unwrap();
        made.push(lead.lead_id);
    }
    create(&store, arrival(&org, Some(1), None, None))
        .await
        .unwrap();
    let now = now_ms();
    store
        .backdate_leads(
            &org,
            &[
                (made[0].clone(), now - 2 * DAY),
                (made[1].clone(), now - DAY),
            ],
        )
        .await
        .unwrap();
    let found: Vec<LeadId> = store
        .leads_by_email(&org, "  ANN@Example.com ")
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(found, vec![made[1].clone(), made[0].clone()]);
    assert!(
        store
            .leads_by_email(&org, "bob@example.com")
            .await
            .unwrap()
            .is_empty()
    );
    for bad in ["", "   ", "ann.example.com"] {
        assert!(
            matches!(
                store.leads_by_email(&org, bad).await,
                Err(leadtrail::store::StoreError::Invalid(_))
            ),
            "{bad:?}"
        );
    }
}

/// An erasure removes the homeowner's own words in answer to "How did you hear about us?"
/// from the lead and from its events, and keeps the choice (the self-reported report reads it).
async fn an_erasure_removes_the_free_text_answer_and_keeps_the_choice(db: TestDb) {
    use leadtrail::domain::self_report::{SelfReportSetting, SelfReported};
    use leadtrail::domain::tier::TierLimits;
    use leadtrail::store::{CaptureCommand, CaptureReply, HeardAbout, StepUpdate, WidgetPatch};
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    store
        .update_widget(
            &org,
            PRIMARY,
            WidgetPatch {
                self_report: Some(SelfReportSetting::parse(true, &["Yard sign".into()]).unwrap()),
                ..WidgetPatch::default()
            },
            &TierLimits::default(),
        )
        .await
        .unwrap();
    let lead = create(&store, arrival(&org, Some(1), None, None))
        .await
        .unwrap();
    step(&store, &lead, project(), None).await.unwrap();
    let words = "Zeb Quill from church";
    let answered = store
        .apply_capture(&[CaptureCommand::Step(Box::new(StepUpdate {
            lead_id: lead.lead_id.clone(),
            capture_token: lead.capture_token.clone(),
            heard_about: Some(HeardAbout {
                choice: "Other".into(),
                other: Some(words.into()),
            }),
            step: personal(true),
            idempotency: None,
        }))])
        .await
        .unwrap();
    assert!(
        matches!(answered[..], [Ok(CaptureReply::Step(_))]),
        "{answered:?}"
    );
    let said = |other: Option<&str>| {
        Some(SelfReported {
            choice: "Other".into(),
            other: other.map(str::to_owned),
        })
    };
    let before = store.lead(&org, &lead.lead_id).await.unwrap();
    assert_eq!(before.self_reported, said(Some(words)));

    store
        .erase_lead(&org, &lead.lead_id, "user:owner@acme.example")
        .await
        .unwrap();
    let after = store.lead(&org, &lead.lead_id).await.unwrap();
    assert_eq!(after.self_reported, said(None));
    for event in store.lead_events(&org, &lead.lead_id).await.unwrap() {
        assert!(!event.payload.to_string().contains(words), "{event:?}");
    }
}

/// An erasure scrubs the lead's own attribution documents too: a landing page that carried
/// the homeowner's e-mail in its query string keeps its shape but not the address.
async fn an_erasure_scrubs_the_landing_page_kept_in_the_attribution(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let email = "ann@example.com";
    let mut new = arrival(&org, Some(1), None, None);
    new.arrival.page_url = Some(format!(
        "https://acme.example/quote?email={email}&utm_source=mail"
    ));
    let lead = create(&store, new).await.unwrap();
    step(&store, &lead, project(), None).await.unwrap();
    step(&store, &lead, personal(true), None).await.unwrap();
    let before = store.lead(&org, &lead.lead_id).await.unwrap();
    assert!(
        format!("{:?}", before.attribution).contains(email),
        "the landing page is kept: {before:?}"
    );
    store
        .erase_lead(&org, &lead.lead_id, "user:owner@acme.example")
        .await
        .unwrap();
    let after = store.lead(&org, &lead.lead_id).await.unwrap();
    assert!(!format!("{after:?}").contains(email), "{after:?}");
    for event in store.lead_events(&org, &lead.lead_id).await.unwrap() {
        assert!(!event.payload.to_string().contains(email), "{event:?}");
    }
}

/// A lead erased while its enrichment runs: the enrichment is still written (the lead's
/// estimate and score are not personal), and its events carry none of the erased data.
async fn an_enrichment_finishing_after_an_erasure_sends_no_personal_data(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let lead = create(&store, arrival(&org, Some(1), None, None))
        .await
        .unwrap();
    step(&store, &lead, project(), None).await.unwrap();
    step(&store, &lead, personal(false), None).await.unwrap();
    let jobs = store.claim_enrichment(10, 60_000).await.unwrap();
    assert_eq!(jobs.len(), 1);
    let erased = store
        .erase_lead(&org, &lead.lead_id, "user:owner@acme.example")
        .await
        .unwrap();
    assert!(erased.erased_now);
    let enrichment = enrich(&jobs[0].project, &jobs[0].personal);
    assert!(store.write_enrichment(&jobs[0], &enrichment).await.unwrap());
    let events = store.lead_events(&org, &lead.lead_id).await.unwrap();
    let enriched: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "lead.enriched" || e.event_type == "lead.rental_alert")
        .collect();
    assert_eq!(enriched.len(), 2, "{events:?}");
    let the_person = &jobs[0].personal;
    for e in enriched {
        let text = e.payload.to_string();
        for value in [
            &the_person.first_name,
            &the_person.last_name,
            &the_person.email,
            &the_person.phone,
        ] {
            assert!(!text.contains(value.as_str()), "{value} in {text}");
        }
    }
    let stored = store.lead(&org, &lead.lead_id).await.unwrap();
    assert_eq!(stored.enrichment.map(|e| e.score), Some(enrichment.score));
    assert!(stored.erased_at.is_some());
}

/// A visitor's visits come back with the tracking parameters each page had, and none for a page
/// without them (what a homeowner's data export shows).
async fn a_visitors_visits_keep_their_tracking_parameters(db: TestDb) {
    let store = store(&db).await;
    let (org, _) = org(&store, Tier::Starter).await;
    let now = now_ms();
    let tagged = Utm {
        utm_source: Some("google".into()),
        utm_medium: Some("cpc".into()),
        utm_campaign: Some("spring-roofs".into()),
        gclid: Some("abc".into()),
        ..Utm::default()
    };
    let mut first = visit(&org, "v1", now - 2 * DAY);
    first.arrival.utm = tagged.clone();
    let untagged = visit(&org, "v1", now - DAY);
    store.insert_visits(&[first, untagged]).await.unwrap();

    let visits = store.visitor_visits(&org, "v1").await.unwrap();
    let utms: Vec<_> = visits.iter().map(|v| v.utm.clone()).collect();
    assert_eq!(utms, [tagged, Utm::default()], "oldest first, each its own");
    assert!(
        store.visitor_visits(&org, "v2").await.unwrap().is_empty(),
        "another visitor has none"
    );
}

on_both_backends!(
    a_visitors_visits_keep_their_tracking_parameters,
    raw_data_past_retention_is_dropped_and_the_counts_stay,
    a_sweep_goes_on_past_one_statements_batch,
    a_homeowners_leads_are_found_by_email,
    an_erasure_removes_the_free_text_answer_and_keeps_the_choice,
    an_erasure_scrubs_the_landing_page_kept_in_the_attribution,
    an_enrichment_finishing_after_an_erasure_sends_no_personal_data,
);
