//! The Leads tab: newest first, filtered, paged by keyset cursor; one lead expanded in place
//! with where it came from (frozen at arrival), its steps and its enrichment.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::page::{
    Chrome, PageError, Tab, encode, humanize, money, money_minor, refusal, render, see_other,
};
use super::session::{EditorForm, OwnerForm, Session, Submitted};
use crate::domain::attribution::AttributionNote;
use crate::domain::ids::LeadId;
use crate::domain::lead::LeadStatus;
use crate::domain::money::{major_units, parse_major_units};
use crate::domain::outcome::{ListedReason, LostReason, Outcome, OutcomeKind};
use crate::domain::source::SourceCode;
use crate::domain::time_zone::OrgTimeZone;
use crate::domain::user::Role;
use crate::domain::widget::WidgetVersion;
use crate::http::api::lead_export::{ExportFormat, export_response};
use crate::store::{Correction, LeadFilter, LeadRecord, OutcomeChange, StoreError};

const PAGE_SIZE: i64 = 25;

#[derive(Deserialize, Default)]
pub struct LeadsQuery {
    widget: Option<String>,
    source: Option<String>,
    status: Option<String>,
    outcome: Option<String>,
    from: Option<String>,
    to: Option<String>,
    after: Option<String>,
    open: Option<String>,
}

pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

pub struct Field {
    pub label: &'static str,
    pub value: String,
}

pub struct LeadRow {
    pub id: String,
    pub received: String,
    pub name: String,
    pub address: String,
    pub status: &'static str,
    pub status_label: String,
    pub estimate: String,
    pub score: String,
    pub source_pill: String,
    pub outcome: &'static str,
    pub outcome_label: String,
    pub open: bool,
    pub toggle_href: String,
    pub lead_source: Vec<Field>,
    pub first_touch: Vec<Field>,
    pub steps: Vec<(String, Vec<Field>)>,
    pub enrichment: Vec<Field>,
    pub attribution: Vec<Field>,
    pub corrections: Vec<Field>,
    /// Sources of the lead's widget a person may credit it to instead (empty unless open).
    pub correct_to: Vec<Choice>,
    pub correct_action: String,
    /// The outcome's changes, oldest first (empty unless open).
    pub outcome_history: Vec<Field>,
    /// The touches the lead's credit is split over: when, and through which source or
    /// channel (empty unless open).
    pub journey: Vec<(String, String)>,
    /// The outcome form, for editors (unless open, `None`).
    pub outcome_form: Option<OutcomeForm>,
    /// "Personal data erased …" once it was (open only).
    pub erased: Option<String>,
    /// Where an owner erases the lead's personal data (open, owners, not yet erased).
    pub erase_action: Option<String>,
}

/// What the outcome form needs: the choices with the lead's current one selected, and what a
/// won or lost lead carries, to show back.
pub struct OutcomeForm {
    pub action: String,
    pub outcomes: Vec<Choice>,
    pub value: String,
    pub reasons: Vec<Choice>,
    pub other_reason: String,
}

impl OutcomeForm {
    fn new(lead: &LeadRecord) -> Self {
        let current = lead.outcome.lost_reason();
        let listed = |r: ListedReason| current == Some(&LostReason::Listed(r));
        let mut reasons: Vec<Choice> = ListedReason::ALL
            .into_iter()
            .map(|r| Choice {
                value: r.id().to_owned(),
                label: r.label().to_owned(),
                selected: listed(r),
            })
            .collect();
        let other = match current {
            Some(LostReason::Other(text)) => text.clone(),
            _ => String::new(),
        };
        reasons.push(Choice {
            value: OTHER_REASON.to_owned(),
            label: "Other (say why)".to_owned(),
            selected: !other.is_empty(),
        });
        Self {
            action: format!("/app/leads/{}/outcome", lead.id),
            outcomes: OutcomeKind::ALL
                .into_iter()
                .map(|k| Choice {
                    value: k.id().to_owned(),
                    label: k.label().to_owned(),
                    selected: k == lead.outcome.kind(),
                })
                .collect(),
            value: lead.outcome.value().map(major_units).unwrap_or_default(),
            reasons,
            other_reason: other,
        }
    }
}

/// The form's choice for a lost reason in the business's own words.
const OTHER_REASON: &str = "other";

/// The outcome as the table shows it: `Won · $12,500`, `Lost · Price too high`.
fn outcome_label(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Won { value } => format!("Won · {}", money_minor(*value)),
        Outcome::Lost { reason } => format!("Lost · {}", reason.label()),
        other => other.kind().label().to_owned(),
    }
}

/// A lead's outcome changes, oldest first: "Quoted → Won · $12,500 · by … · when".
fn outcome_fields(history: &[OutcomeChange], tz: &OrgTimeZone) -> Vec<Field> {
    history
        .iter()
        .map(|c| {
            field(
                "Changed",
                format!(
                    "{} → {} · by {} · {}",
                    c.from.label(),
                    outcome_label(&c.to),
                    c.actor,
                    tz.format(c.created_at)
                ),
            )
        })
        .collect()
}

#[derive(Template)]
#[template(path = "leads.html")]
pub struct LeadsPage {
    pub chrome: Chrome,
    /// The organization's zone: times shown and date filters are in it.
    pub time_zone: String,
    pub widgets: Vec<Choice>,
    pub sources: Vec<Choice>,
    pub statuses: Vec<Choice>,
    pub outcomes: Vec<Choice>,
    pub from: String,
    pub to: String,
    pub rows: Vec<LeadRow>,
    pub filtered: bool,
    /// The current filters as a query string, for the export links.
    pub export_query: String,
    pub next_href: Option<String>,
    pub first_href: Option<String>,
}

/// The first instant of a `YYYY-MM-DD` date (plus `add_days`) in the organization's zone.
fn day_start_ms(tz: &OrgTimeZone, raw: &str, add_days: i64) -> Option<i64> {
    let date: jiff::civil::Date = raw.parse().ok()?;
    Some(tz.start_of(date.checked_add(jiff::Span::new().days(add_days)).ok()?))
}

fn yes_no(v: Option<bool>) -> String {
    match v {
        Some(true) => "Yes".into(),
        Some(false) => "No".into(),
        None => "—".into(),
    }
}

fn field(label: &'static str, value: impl Into<String>) -> Field {
    Field {
        label,
        value: value.into(),
    }
}

/// What an expanded lead shows, section by section.
#[derive(Default)]
pub struct Detail {
    pub lead_source: Vec<Field>,
    pub first_touch: Vec<Field>,
    pub steps: Vec<(String, Vec<Field>)>,
    pub enrichment: Vec<Field>,
    pub attribution: Vec<Field>,
}

/// Why a tracking parameter of the link could not be applied, in the user's words.
fn explain(note: AttributionNote) -> &'static str {
    match note {
        AttributionNote::UnknownWidget => {
            "The link named a widget this organization does not have; credited to the \
             embedding widget's Website source."
        }
        AttributionNote::UnknownSource => {
            "The link named a source this widget does not have; credited to its Website source."
        }
        AttributionNote::UnknownEmbeddingWidget => {
            "The page embedded a widget this organization does not have; credited to Primary."
        }
    }
}

/// How the lead arrived beyond its source: the page, the campaign tags and click ids a CRM
/// sends back to ad platforms, what the homeowner said, and any note on the link.
fn attribution_fields(lead: &LeadRecord) -> Vec<Field> {
    let mut out = vec![field("Entered through", humanize(lead.record_source.id()))];
    if let Some(note) = lead.attribution_note {
        out.push(field("Note", explain(note)));
    }
    if let Some(answer) = &lead.self_reported {
        let said = match &answer.other {
            Some(text) => format!("{}: {text}", answer.choice),
            None => answer.choice.clone(),
        };
        out.push(field("Heard about us from", said));
    }
    let t = &lead.attribution.last_touch;
    let u = &t.utm;
    let optional = [
        ("Landing page", &t.landing_page_url),
        ("Referrer", &t.referrer),
        ("utm_source", &u.utm_source),
        ("utm_medium", &u.utm_medium),
        ("utm_campaign", &u.utm_campaign),
        ("utm_term", &u.utm_term),
        ("utm_content", &u.utm_content),
        ("gclid", &u.gclid),
        ("gbraid", &u.gbraid),
        ("wbraid", &u.wbraid),
        ("fbclid", &u.fbclid),
        ("msclkid", &u.msclkid),
        ("ttclid", &u.ttclid),
        ("li_fat_id", &u.li_fat_id),
    ];
    out.extend(
        optional
            .into_iter()
            .filter_map(|(label, value)| value.as_ref().map(|v| field(label, v.clone()))),
    );
    out
}

/// A lead's corrections, oldest first, as "SRC-02 → SRC-04" with why, who and when.
fn correction_fields(corrections: &[Correction], tz: &OrgTimeZone) -> Vec<Field> {
    corrections
        .iter()
        .map(|c| {
            field(
                "Corrected",
                format!(
                    "{} → {} · {} · by {} · {}",
                    c.from_code.display_code(),
                    c.to_code.display_code(),
                    c.reason,
                    c.actor,
                    tz.format(c.created_at)
                ),
            )
        })
        .collect()
}

fn detail(lead: &LeadRecord) -> Detail {
    let mut lead_source = vec![
        field("Widget name", lead.widget_name.clone()),
        field("Widget version", lead.widget_version.to_string()),
        field("Source code", lead.source_code.display_code()),
        field("Source name at arrival", lead.source_name.clone()),
        field("Channel category", lead.source_category.display_name()),
    ];
    if let Some(c) = &lead.corrected {
        let code = SourceCode::parse(&c.source_code)
            .map_or(c.source_code.clone(), |code| code.display_code());
        lead_source.push(field(
            "Credited to (corrected)",
            format!("{code} · {}", c.source_label),
        ));
    }
    if let Some(channel) = lead.derived_channel {
        lead_source.push(field("Derived channel", humanize(channel.id())));
    }
    let first_touch = match &lead.first_touch {
        None => Vec::new(),
        Some(ft) => {
            let mut f = vec![
                field(
                    "Widget",
                    lead.first_touch_widget_version
                        .map_or_else(|| ft.v.clone().unwrap_or_default(), |v| v.to_string()),
                ),
                field(
                    "Source",
                    lead.first_touch_source_code.map_or_else(
                        || ft.s.clone().unwrap_or_default(),
                        SourceCode::display_code,
                    ),
                ),
            ];
            if let Some(at) = &ft.at {
                f.push(field("First seen", at.clone()));
            }
            if let Some(r) = &ft.referrer {
                f.push(field("Referrer", r.clone()));
            }
            f
        }
    };
    let a = &lead.address;
    let mut steps = vec![(
        "1 · Address".to_owned(),
        vec![
            field("Street", a.street.clone()),
            field("City", format!("{}, {} {}", a.city, a.state, a.postal_code)),
        ],
    )];
    if let Some(p) = &lead.project {
        steps.push((
            "2 · Project".to_owned(),
            vec![
                field("Roof type", humanize(&p.roof_type)),
                field("Material", humanize(&p.material)),
                field("Stories", p.stories.to_string()),
                field("Urgency", humanize(&p.urgency)),
                field(
                    "Roof age",
                    p.roof_age_years
                        .map_or("—".into(), |y| format!("{y} years")),
                ),
                field("Insurance claim", yes_no(p.insurance_claim)),
                field("Financing", yes_no(p.financing_interest)),
            ],
        ));
    }
    if let Some(p) = &lead.personal {
        steps.push((
            "3 · Contact details".to_owned(),
            vec![
                field("Name", format!("{} {}", p.first_name, p.last_name)),
                field("Email", p.email.clone()),
                field("Phone", p.phone.clone()),
                field("Owner-occupied", yes_no(Some(p.owner_occupied))),
            ],
        ));
    }
    if let Some(c) = &lead.contact {
        steps.push((
            "4 · Contact preference".to_owned(),
            vec![
                field("Method", humanize(&c.contact_method)),
                field("Time", humanize(&c.contact_time)),
            ],
        ));
    }
    let enrichment = match &lead.enrichment {
        None => Vec::new(),
        Some(e) => vec![
            field("Score", format!("{} / 100", e.score)),
            field(
                "Estimate",
                format!(
                    "{} – {}",
                    money(e.estimate.price_low.into()),
                    money(e.estimate.price_high.into())
                ),
            ),
            field("Roof area", format!("{} sq ft", e.estimate.roof_area_sqft)),
            field("Why", e.score_reasons.join("; ")),
            field("Roof age band", humanize(&e.insights.roof_age_band)),
            field("Rental property", yes_no(Some(e.insights.rental_property))),
        ],
    };
    Detail {
        lead_source,
        first_touch,
        steps,
        enrichment,
        attribution: attribution_fields(lead),
    }
}

/// The lead's touches as the expanded lead lists them: local time, and the source (with its
/// name today) or, for the Website source, the derived channel.
async fn journey_of(
    store: &crate::store::Store,
    org: &crate::domain::ids::OrgId,
    lead: &LeadRecord,
    tz: &OrgTimeZone,
) -> Result<Vec<(String, String)>, crate::store::StoreError> {
    let mut names: BTreeMap<(u32, u32), String> = BTreeMap::new();
    let mut widgets: Vec<u32> = lead.touches.iter().map(|t| t.key.widget).collect();
    widgets.sort_unstable();
    widgets.dedup();
    for w in widgets.into_iter().filter_map(WidgetVersion::new) {
        for (code, name) in store.source_labels(org, w).await? {
            names.insert((w.get(), code.get()), name);
        }
    }
    Ok(lead
        .touches
        .iter()
        .map(|t| {
            let code = SourceCode::new(t.key.source)
                .map_or_else(|| t.key.source.to_string(), SourceCode::display_code);
            let name = names
                .get(&(t.key.widget, t.key.source))
                .cloned()
                .unwrap_or_default();
            let through = match t.key.channel {
                Some(channel) => format!(
                    "{:02}/{code} {name} · {}",
                    t.key.widget,
                    humanize(channel.id())
                ),
                None => format!("{:02}/{code} {name}", t.key.widget),
            };
            (tz.format(t.at), through)
        })
        .collect())
}

/// The page's filters (days in the organization's zone), without paging.
fn filter_of(q: &LeadsQuery, tz: &OrgTimeZone) -> LeadFilter {
    LeadFilter {
        widget: q.widget.as_deref().and_then(WidgetVersion::parse),
        source: q.source.as_deref().and_then(SourceCode::parse),
        status: q.status.as_deref().and_then(LeadStatus::from_id),
        outcome: q.outcome.as_deref().and_then(OutcomeKind::from_id),
        from_ms: q.from.as_deref().and_then(|d| day_start_ms(tz, d, 0)),
        to_ms: q.to.as_deref().and_then(|d| day_start_ms(tz, d, 1)),
        after: None,
        limit: 0,
    }
}

/// Every lead the page's filters match, as a streamed CSV download.
pub async fn export_csv(
    State(state): State<crate::http::AppState>,
    session: Session,
    Query(q): Query<LeadsQuery>,
) -> Result<Response, PageError> {
    export(state, session, q, ExportFormat::Csv).await
}

/// Every lead the page's filters match, as streamed JSON Lines.
pub async fn export_jsonl(
    State(state): State<crate::http::AppState>,
    session: Session,
    Query(q): Query<LeadsQuery>,
) -> Result<Response, PageError> {
    export(state, session, q, ExportFormat::JsonLines).await
}

async fn export(
    state: crate::http::AppState,
    session: Session,
    q: LeadsQuery,
    format: ExportFormat,
) -> Result<Response, PageError> {
    let org = session.org();
    let tz = state.store.organization(org).await?.time_zone;
    let filter = filter_of(&q, &tz);
    Ok(export_response(
        state.store.clone(),
        org.clone(),
        filter,
        format,
    ))
}

pub async fn show(
    State(state): State<crate::http::AppState>,
    session: Session,
    Query(q): Query<LeadsQuery>,
) -> Result<Response, PageError> {
    let org = session.org();
    let organization = state.store.organization(org).await?;
    let tz = &organization.time_zone;
    let widgets = state.store.widgets(org).await?;
    let from = q.from.clone().unwrap_or_default();
    let to = q.to.clone().unwrap_or_default();
    let filter = LeadFilter {
        after: q.after.as_deref().and_then(|c| {
            let (at, id) = c.split_once('.')?;
            Some((at.parse::<i64>().ok()?, id.to_owned()))
        }),
        limit: PAGE_SIZE + 1,
        ..filter_of(&q, tz)
    };
    let widget = filter.widget;
    let status = filter.status;
    let outcome = filter.outcome;
    let source = filter.source;
    let mut leads = state.store.leads(org, &filter).await?;
    let more = leads.len() > PAGE_SIZE as usize;
    leads.truncate(PAGE_SIZE as usize);

    // The query string of the current filters, to carry into paging and expand links.
    let mut base = String::from("/app/leads?");
    for (k, v) in [
        ("widget", q.widget.as_deref()),
        ("source", q.source.as_deref()),
        ("status", q.status.as_deref()),
        ("outcome", q.outcome.as_deref()),
        ("from", q.from.as_deref()),
        ("to", q.to.as_deref()),
    ] {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            base.push_str(&format!("{k}={}&", encode(v)));
        }
    }
    let here = match &q.after {
        Some(a) => format!("{base}after={}&", encode(a)),
        None => base.clone(),
    };
    let sources = match widget {
        Some(w) => state.store.source_labels(org, w).await?,
        None => Vec::new(),
    };
    // Only the expanded lead needs its history and the sources it could be credited to.
    let mut corrections = Vec::new();
    let mut correct_to = Vec::new();
    let mut outcome_history = Vec::new();
    let mut outcome_form = None;
    let mut journey = Vec::new();
    if let Some(lead) = leads
        .iter()
        .find(|l| Some(l.id.as_str()) == q.open.as_deref())
    {
        journey = journey_of(&state.store, org, lead, tz).await?;
        corrections = correction_fields(&state.store.corrections(org, &lead.id).await?, tz);
        outcome_history = outcome_fields(&state.store.outcome_history(org, &lead.id).await?, tz);
        if session.user.role.can_edit() {
            outcome_form = Some(OutcomeForm::new(lead));
            let credited = lead
                .corrected
                .as_ref()
                .and_then(|c| SourceCode::parse(&c.source_code))
                .unwrap_or(lead.source_code);
            correct_to = state
                .store
                .source_labels(org, lead.widget_version)
                .await?
                .into_iter()
                .filter(|(code, _)| *code != credited)
                .map(|(code, name)| Choice {
                    value: code.to_string(),
                    label: format!("{} · {name}", code.display_code()),
                    selected: false,
                })
                .collect();
        }
    }
    let rows = leads
        .iter()
        .map(|l| {
            let open = q.open.as_deref() == Some(l.id.as_str());
            let Detail {
                lead_source,
                first_touch,
                steps,
                enrichment,
                attribution,
            } = if open { detail(l) } else { Detail::default() };
            LeadRow {
                id: l.id.to_string(),
                received: tz.format(l.created_at),
                name: match (&l.personal, l.erased_at) {
                    (_, Some(_)) => "(erased)".into(),
                    (Some(p), None) => format!("{} {}", p.first_name, p.last_name),
                    (None, None) => "—".into(),
                },
                address: if l.address.street.is_empty() {
                    l.address.city.clone()
                } else {
                    format!("{}, {}", l.address.street, l.address.city)
                },
                status: l.status.id(),
                status_label: format!("Step {} of 4", l.status.step()),
                estimate: l.enrichment.as_ref().map_or("—".into(), |e| {
                    format!(
                        "{} – {}",
                        money(e.estimate.price_low.into()),
                        money(e.estimate.price_high.into())
                    )
                }),
                score: l
                    .enrichment
                    .as_ref()
                    .map_or("—".into(), |e| e.score.to_string()),
                source_pill: match &l.corrected {
                    // The credited source; the arrival stays in the expanded lead.
                    Some(c) => format!(
                        "{} · {} (corrected)",
                        SourceCode::parse(&c.source_code)
                            .map_or(c.source_code.clone(), SourceCode::display_code),
                        c.source_label
                    ),
                    None => format!("{} · {}", l.source_code.display_code(), l.source_name),
                },
                outcome: l.outcome.kind().id(),
                outcome_label: outcome_label(&l.outcome),
                toggle_href: if open {
                    format!("{here}#lead-{}", l.id)
                } else {
                    format!("{here}open={}#lead-{}", l.id, l.id)
                },
                open,
                lead_source,
                first_touch,
                steps,
                enrichment,
                attribution,
                corrections: if open {
                    std::mem::take(&mut corrections)
                } else {
                    Vec::new()
                },
                correct_to: if open {
                    std::mem::take(&mut correct_to)
                } else {
                    Vec::new()
                },
                correct_action: format!("/app/leads/{}/source", l.id),
                outcome_history: if open {
                    std::mem::take(&mut outcome_history)
                } else {
                    Vec::new()
                },
                outcome_form: if open { outcome_form.take() } else { None },
                erased: l
                    .erased_at
                    .filter(|_| open)
                    .map(|at| format!("Personal data erased {}.", tz.format(at))),
                erase_action: (open && l.erased_at.is_none() && session.user.role == Role::Owner)
                    .then(|| format!("/app/leads/{}/erase", l.id)),
                journey: if open {
                    std::mem::take(&mut journey)
                } else {
                    Vec::new()
                },
            }
        })
        .collect();
    let next_href = more.then(|| {
        leads
            .last()
            .map(|l| format!("{base}after={}.{}", l.created_at, l.id))
    });
    let page = LeadsPage {
        time_zone: tz.name().to_owned(),
        chrome: Chrome::new(&session, organization.name, Tab::Leads),
        widgets: widgets
            .iter()
            .map(|w| Choice {
                value: w.version.to_string(),
                label: format!("{} (v{})", w.name, w.version),
                selected: Some(w.version) == widget,
            })
            .collect(),
        sources: sources
            .iter()
            .map(|(code, name)| Choice {
                value: code.to_string(),
                label: format!("{} · {name}", code.display_code()),
                selected: Some(*code) == source,
            })
            .collect(),
        statuses: LeadStatus::ALL
            .iter()
            .map(|s| Choice {
                value: s.id().to_owned(),
                label: format!("Step {} · {}", s.step(), humanize(s.id())),
                selected: Some(*s) == status,
            })
            .collect(),
        outcomes: OutcomeKind::ALL
            .iter()
            .map(|k| Choice {
                value: k.id().to_owned(),
                label: k.label().to_owned(),
                selected: Some(*k) == outcome,
            })
            .collect(),
        filtered: base != "/app/leads?",
        export_query: base
            .trim_start_matches("/app/leads?")
            .trim_end_matches('&')
            .to_owned(),
        from,
        to,
        rows,
        next_href: next_href.flatten(),
        first_href: q
            .after
            .is_some()
            .then(|| base.trim_end_matches('&').to_owned()),
    };
    render(&page)
}

/// An editor re-credits a lead to another source of its widget, with a reason. The arrival
/// snapshot stays as it was; the page comes back to the expanded lead.
pub async fn correct(
    State(state): State<crate::http::AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    EditorForm(Submitted { session, form }): EditorForm,
) -> Result<Response, PageError> {
    let id = LeadId::parse(&id).ok_or_else(PageError::not_found)?;
    let back = format!("/app/leads?open={id}#lead-{id}");
    let Some(code) = SourceCode::parse(form.text("source")) else {
        return Ok(see_other(&back, "Choose the source to credit the lead to."));
    };
    let actor = format!("user:{}", session.user.email);
    match state
        .store
        .correct_source(session.org(), &id, code, form.text("reason"), &actor)
        .await
    {
        Ok(_) => Ok(see_other(
            &back,
            &format!("Credited to {}; the arrival is kept.", code.display_code()),
        )),
        Err(StoreError::NotFound) => Err(PageError::not_found()),
        Err(e) => Ok(see_other(&back, &refusal(e)?)),
    }
}

/// An editor records what happened after the lead: the outcome, with the job's value when won
/// and the reason when lost. The page comes back to the expanded lead.
/// Erases the lead's personal data (owners only), on a homeowner's request.
pub async fn erase(
    State(state): State<crate::http::AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    OwnerForm(Submitted { session, .. }): OwnerForm,
) -> Result<Response, PageError> {
    let id = LeadId::parse(&id).ok_or_else(PageError::not_found)?;
    let back = format!("/app/leads?open={id}#lead-{id}");
    let actor = format!("user:{}", session.user.email);
    match state.store.erase_lead(session.org(), &id, &actor).await {
        Ok(_) => {
            tracing::info!(org = %session.org(), lead = %id, by = %actor, "lead personal data erased");
            Ok(see_other(&back, "Personal data erased."))
        }
        Err(StoreError::NotFound) => Err(PageError::not_found()),
        Err(e) => Ok(see_other(&back, &refusal(e)?)),
    }
}

pub async fn set_outcome(
    State(state): State<crate::http::AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    EditorForm(Submitted { session, form }): EditorForm,
) -> Result<Response, PageError> {
    let id = LeadId::parse(&id).ok_or_else(PageError::not_found)?;
    let back = format!("/app/leads?open={id}#lead-{id}");
    let kind = form.text("outcome");
    let parsed = (|| {
        let value = match kind {
            "won" => Some(parse_major_units("value", form.text("value"))?),
            _ => None,
        };
        let reason = match (kind, form.text("lost_reason")) {
            ("lost", OTHER_REASON) => Some(form.text("lost_other")),
            ("lost", listed) => Some(listed),
            _ => None,
        };
        Outcome::parse(kind, value, reason)
    })();
    let outcome = match parsed {
        Ok(outcome) => outcome,
        Err(e) => return Ok(see_other(&back, &e.message)),
    };
    let actor = format!("user:{}", session.user.email);
    match state
        .store
        .set_outcome(session.org(), &id, outcome.clone(), &actor, None)
        .await
    {
        Ok(_) => Ok(see_other(
            &back,
            &format!("Outcome: {}.", outcome_label(&outcome)),
        )),
        Err(StoreError::NotFound) => Err(PageError::not_found()),
        Err(e) => Ok(see_other(&back, &refusal(e)?)),
    }
}
