//! Importing leads from the Leads page: a CSV file checked first (every refused line listed),
//! then written all or nothing — the same rules as `POST /api/v1/leads/import`.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::page::{Chrome, PageError, Tab, render, render_status, see_other};
use super::session::{EditorForm, Session, Submitted};
use crate::domain::lead_import::{REQUIRED_COLUMNS, parse_lead_import};
use crate::domain::spend::RefusedLine;
use crate::http::AppState;
use crate::store::{ImportOptions, LeadImport, now_ms};

#[derive(Template)]
#[template(path = "lead_import.html")]
pub struct ImportPage {
    pub chrome: Chrome,
    pub required: String,
    /// The checked file, carried to the Import button so it need not be chosen again.
    pub checked_file: String,
    pub checked_name: String,
    /// How many leads the checked file holds, when every line can be imported.
    pub importable: Option<usize>,
    pub refused: Vec<RefusedLine>,
    pub events: bool,
}

impl ImportPage {
    fn new(session: &Session, org_name: String) -> Self {
        Self {
            chrome: Chrome::new(session, org_name, Tab::Leads),
            required: REQUIRED_COLUMNS.join(", "),
            checked_file: String::new(),
            checked_name: String::new(),
            importable: None,
            refused: Vec::new(),
            events: false,
        }
    }
}

pub async fn show(State(state): State<AppState>, session: Session) -> Result<Response, PageError> {
    let org = state.store.organization(session.org()).await?;
    render(&ImportPage::new(&session, org.name))
}

/// "Check file" (a dry run) or "Import" (every line or none).
pub async fn submit(
    State(state): State<AppState>,
    EditorForm(Submitted { session, form }): EditorForm,
) -> Result<Response, PageError> {
    let org = state.store.organization(session.org()).await?;
    let mut page = ImportPage::new(&session, org.name);
    // A newly chosen file wins over the one carried from a check.
    let (text, name) = match form.text("file") {
        "" => (form.text("checked_file"), form.text("checked_name")),
        file => (file, form.text("file_name")),
    };
    if text.trim().is_empty() {
        page.refused = vec![RefusedLine {
            line: 1,
            reason: "choose a CSV file first".into(),
        }];
        return render_status(StatusCode::UNPROCESSABLE_ENTITY, &page);
    }
    let options = ImportOptions {
        dry_run: form.text("action") != "import",
        events: form.checked("events"),
    };
    let owned = text.to_owned();
    let file = tokio::task::spawn_blocking(move || parse_lead_import(&owned, now_ms()))
        .await
        .map_err(|_| {
            PageError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Reading the file failed.",
            )
        })?;
    let actor = format!("user:{}", session.user.email);
    page.events = options.events;
    match state
        .store
        .import_leads(session.org(), &file, &actor, options)
        .await?
    {
        LeadImport::Imported {
            leads,
            dry_run: false,
        } => {
            tracing::info!(org = %session.org(), leads, by = %actor, "leads imported");
            Ok(see_other(
                "/app/leads",
                &format!("Imported {leads} lead(s)."),
            ))
        }
        LeadImport::Imported {
            leads,
            dry_run: true,
        } => {
            page.importable = Some(leads);
            page.checked_file = text.to_owned();
            page.checked_name = name.to_owned();
            render(&page)
        }
        LeadImport::Refused(lines) => {
            page.refused = lines;
            render_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
    }
}
