//! Lead export: every lead that matches the Leads filters, as CSV or JSON Lines, streamed a
//! page at a time so memory stays flat however many leads an organization has.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream};

use super::leads::{LeadBody, LeadQuery};
use crate::domain::ids::OrgId;
use crate::http::AppState;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::extract::{ApiQuery, OrgAuth};
use crate::reports::neutralise;
use crate::store::{LeadFilter, LeadRecord, Store, rfc3339};

/// Leads read per query: big enough that a million leads take few round trips, small enough
/// that a page (and the chunk written from it) stays a few megabytes.
const PAGE: i64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    JsonLines,
}

impl ExportFormat {
    fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::JsonLines => "application/jsonl; charset=utf-8",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::JsonLines => "jsonl",
        }
    }
}

/// The CSV's columns. The same names are what `POST /leads/import` reads, so an export can be
/// imported again.
pub const CSV_COLUMNS: [&str; 62] = [
    "id",
    "created_at",
    "status",
    "record_source",
    "widget_version",
    "widget_name",
    "source_code",
    "source_name",
    "channel_category",
    "derived_channel",
    "attribution_note",
    "credited_source_code",
    "credited_source_name",
    "first_touch_widget_version",
    "first_touch_source_code",
    "landing_page_url",
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "gclid",
    "gbraid",
    "wbraid",
    "fbclid",
    "msclkid",
    "ttclid",
    "li_fat_id",
    "heard_about",
    "heard_about_other",
    "street",
    "city",
    "state",
    "postal_code",
    "country",
    "roof_type",
    "material",
    "stories",
    "pitch",
    "urgency",
    "roof_age_years",
    "insurance_claim",
    "financing_interest",
    "first_name",
    "last_name",
    "email",
    "phone",
    "owner_occupied",
    "home_sqft",
    "contact_method",
    "contact_time",
    "score",
    "estimate_low",
    "estimate_high",
    "enriched_at",
    "outcome",
    "outcome_value",
    "lost_reason",
    "outcome_changed_at",
    "erased_at",
    "touches",
];

fn text(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

fn shown<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// One lead as a CSV line (with its newline), every cell neutralised against formulas.
pub fn csv_line(lead: &LeadRecord) -> String {
    let t = &lead.attribution.last_touch;
    let u = &t.utm;
    let p = lead.project.as_ref();
    let person = lead.personal.as_ref();
    let e = lead.enrichment.as_ref();
    let cells: [String; CSV_COLUMNS.len()] = [
        lead.id.to_string(),
        rfc3339(lead.created_at),
        lead.status.id().to_owned(),
        lead.record_source.id().to_owned(),
        lead.widget_version.to_string(),
        lead.widget_name.clone(),
        lead.source_code.to_string(),
        lead.source_name.clone(),
        lead.source_category.id().to_owned(),
        shown(lead.derived_channel.map(|c| c.id())),
        shown(lead.attribution_note.map(|n| n.id())),
        shown(lead.corrected.as_ref().map(|c| &c.source_code)),
        shown(lead.corrected.as_ref().map(|c| &c.source_label)),
        shown(lead.first_touch_widget_version),
        shown(lead.first_touch_source_code),
        text(&t.landing_page_url),
        text(&t.referrer),
        text(&u.utm_source),
        text(&u.utm_medium),
        text(&u.utm_campaign),
        text(&u.utm_term),
        text(&u.utm_content),
        text(&u.gclid),
        text(&u.gbraid),
        text(&u.wbraid),
        text(&u.fbclid),
        text(&u.msclkid),
        text(&u.ttclid),
        text(&u.li_fat_id),
        shown(lead.self_reported.as_ref().map(|s| &s.choice)),
        shown(lead.self_reported.as_ref().and_then(|s| s.other.as_ref())),
        lead.address.street.clone(),
        lead.address.city.clone(),
        lead.address.state.clone(),
        lead.address.postal_code.clone(),
        lead.address.country.clone(),
        shown(p.map(|p| &p.roof_type)),
        shown(p.map(|p| &p.material)),
        shown(p.map(|p| p.stories)),
        shown(p.map(|p| &p.pitch)),
        shown(p.map(|p| &p.urgency)),
        shown(p.and_then(|p| p.roof_age_years)),
        shown(p.and_then(|p| p.insurance_claim)),
        shown(p.and_then(|p| p.financing_interest)),
        shown(person.map(|p| &p.first_name)),
        shown(person.map(|p| &p.last_name)),
        shown(person.map(|p| &p.email)),
        shown(person.map(|p| &p.phone)),
        shown(person.map(|p| p.owner_occupied)),
        shown(person.and_then(|p| p.home_sqft)),
        shown(lead.contact.as_ref().map(|c| &c.contact_method)),
        shown(lead.contact.as_ref().map(|c| &c.contact_time)),
        shown(e.map(|e| e.score)),
        shown(e.map(|e| e.estimate.price_low)),
        shown(e.map(|e| e.estimate.price_high)),
        shown(lead.enriched_at.map(rfc3339)),
        lead.outcome.kind().id().to_owned(),
        shown(lead.outcome.value()),
        shown(lead.outcome.lost_reason().map(|r| r.as_str().to_owned())),
        shown(lead.outcome_changed_at.map(rfc3339)),
        shown(lead.erased_at.map(rfc3339)),
        serde_json::to_string(&lead.touches).unwrap_or_default(),
    ];
    let mut line = String::with_capacity(512);
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&neutralise(cell));
    }
    line.push('\n');
    line
}

/// One lead as a JSON Lines line: the same object `GET /leads/{id}` answers with.
fn json_line(lead: LeadRecord) -> Result<String, serde_json::Error> {
    let mut line = serde_json::to_string(&LeadBody::from(lead))?;
    line.push('\n');
    Ok(line)
}

/// Where the stream is: the next page starts after `after`; `None` once done.
struct Cursor {
    after: Option<(i64, String)>,
    header: bool,
}

/// The export as a stream of chunks, one per page of leads, newest first (the Leads page's
/// order). A database error after the first chunk ends the stream with an error, so the
/// client sees a broken transfer rather than a file that looks complete.
pub fn export_stream(
    store: Store,
    org: OrgId,
    filter: LeadFilter,
    format: ExportFormat,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let start = Some(Cursor {
        after: None,
        header: format == ExportFormat::Csv,
    });
    stream::try_unfold(start, move |state| {
        let (store, org, filter) = (store.clone(), org.clone(), filter.clone());
        async move {
            let Some(cursor) = state else {
                return Ok(None);
            };
            let page = LeadFilter {
                after: cursor.after,
                limit: PAGE,
                ..filter
            };
            let leads = store.leads(&org, &page).await.map_err(|e| {
                tracing::error!(error = %e, org = %org, "lead export stopped");
                std::io::Error::other(e.to_string())
            })?;
            let mut chunk = String::new();
            if cursor.header {
                chunk.push_str(&CSV_COLUMNS.join(","));
                chunk.push('\n');
            }
            let next = (leads.len() == usize::try_from(PAGE).unwrap_or(usize::MAX))
                .then(|| leads.last().map(|l| (l.created_at, l.id.to_string())))
                .flatten();
            for lead in leads {
                match format {
                    ExportFormat::Csv => chunk.push_str(&csv_line(&lead)),
                    ExportFormat::JsonLines => {
                        chunk.push_str(&json_line(lead).map_err(std::io::Error::other)?);
                    }
                }
            }
            let state = next.map(|after| Cursor {
                after: Some(after),
                header: false,
            });
            Ok(Some((Bytes::from(chunk), state)))
        }
    })
}

/// The streamed export as an attachment named after the organization's day.
pub fn export_response(
    store: Store,
    org: OrgId,
    filter: LeadFilter,
    format: ExportFormat,
) -> Response {
    let day = rfc3339(crate::store::now_ms());
    let day = day.get(..10).unwrap_or("leads");
    let name = format!("leads-{day}.{}", format.extension());
    (
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(export_stream(store, org, filter, format)),
    )
        .into_response()
}

/// The API's export: the Leads filters, without paging.
fn export(
    state: &AppState,
    org: OrgId,
    q: &LeadQuery,
    format: ExportFormat,
) -> ApiResult<Response> {
    q.refuse_paging()?;
    Ok(export_response(
        state.store.clone(),
        org,
        q.export_filter()?,
        format,
    ))
}

/// Every lead matching the filters as CSV: the snapshot, attribution, steps, enrichment,
/// outcome; cells that could run as formulas are neutralised. Streamed
#[utoipa::path(get, path = "/leads/export.csv", params(LeadQuery),
    responses((status = 200, content_type = "text/csv"), (status = 400, body = ErrorBody)))]
pub async fn export_csv(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    ApiQuery(q): ApiQuery<LeadQuery>,
) -> ApiResult<Response> {
    export(&state, org, &q, ExportFormat::Csv)
}

/// Every lead matching the filters as JSON Lines: one `GET /leads/{id}` object per line.
/// Streamed
#[utoipa::path(get, path = "/leads/export.jsonl", params(LeadQuery),
    responses((status = 200, content_type = "application/jsonl"), (status = 400, body = ErrorBody)))]
pub async fn export_jsonl(
    State(state): State<AppState>,
    OrgAuth(org): OrgAuth,
    ApiQuery(q): ApiQuery<LeadQuery>,
) -> ApiResult<Response> {
    export(&state, org, &q, ExportFormat::JsonLines)
}
