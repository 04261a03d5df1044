//! Lead import over the API: a CSV with the lead export's columns, checked in a dry run,
//! then written all or nothing.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::spend::{ImportRefused, refused_import};
use crate::domain::lead_import::parse_lead_import;
use crate::http::AppState;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiQuery, KeyAuth};
use crate::store::{ImportOptions, LeadImport, now_ms};

/// Largest import file: about 50,000 leads of the export's columns.
pub const IMPORT_BODY_LIMIT: usize = 32 * 1024 * 1024;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// `true`: check every line and write nothing (do this first).
    dry_run: Option<bool>,
    /// `true`: each imported lead sends the events a new lead would (address preview,
    /// enriched, contact requested). Off by default, so old leads do not flood your webhooks.
    events: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct LeadsImported {
    /// Leads written (in a dry run: leads that would be).
    imported: usize,
    dry_run: bool,
}

/// Import leads from CSV (`Content-Type: text/csv`) with the columns of
/// `GET /leads/export.csv`, in any order: `created_at` (the original arrival, RFC 3339 or
/// `YYYY-MM-DD`), `widget_version`, `source_code` (archived sources allowed), `street`, `city`,
/// `state` and `postal_code` are needed; steps, attribution, a corrected source, touches and
/// the outcome are read when present. Leads get record source `import`, a new id, the
/// source's current names, and the built-in estimate where the contact step is there. Every
/// line or none: each refused line is listed with its reason. Run with `dry_run=true` first
#[utoipa::path(post, path = "/leads/import", params(ImportQuery),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = LeadsImported), (status = 422, body = ImportRefused)))]
pub async fn import_leads(
    State(state): State<AppState>,
    key: KeyAuth,
    ApiQuery(q): ApiQuery<ImportQuery>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "the file is not UTF-8 text",
        )
    })?;
    let options = ImportOptions {
        dry_run: q.dry_run.unwrap_or(false),
        events: q.events.unwrap_or(false),
    };
    // Parsing a large file is CPU work: off the async threads.
    let text = text.to_owned();
    let file = tokio::task::spawn_blocking(move || parse_lead_import(&text, now_ms()))
        .await
        .map_err(|_| ApiError::internal("reading the import failed"))?;
    let done = state
        .store
        .import_leads(&key.org, &file, &key.actor(), options)
        .await?;
    Ok(match done {
        LeadImport::Imported { leads, dry_run } => {
            if !dry_run {
                tracing::info!(org = %key.org, leads, events = options.events, "leads imported");
                metrics::counter!("leads_created_total", "record_source" => "import")
                    .increment(u64::try_from(leads).unwrap_or(0));
            }
            Json(LeadsImported {
                imported: leads,
                dry_run,
            })
            .into_response()
        }
        LeadImport::Refused(lines) => refused_import("lead_import_refused", lines),
    })
}
