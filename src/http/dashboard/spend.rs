//! Spend on the Lead Sources tab: a source's months in a slide-over (enter or change one), and
//! a CSV import of many months at once, all or nothing.

use axum::extract::{Path, State};
use axum::response::Response;

use super::page::{PageError, money_minor, refusal, see_other};
use super::session::{EditorForm, Submitted};
use super::sources::{PanelRequest, code, refused, sources_path, version};
use crate::domain::DomainError;
use crate::domain::ids::OrgId;
use crate::domain::money::{major_units, parse_major_units};
use crate::domain::source::SourceCode;
use crate::domain::spend::{Month, RefusedLine, SpendEntry, parse_amount, parse_import};
use crate::http::AppState;
use crate::store::{Source, SpendImport, StoreError};

/// How many of a source's months the slide-over lists, newest first.
const MONTHS_SHOWN: usize = 12;

/// What the spend slide-over was asked with (and, after a refusal, what was typed).
pub(super) struct SpendRequest {
    pub code: SourceCode,
    pub month: Option<String>,
    pub amount: Option<String>,
    pub error: Option<String>,
}

impl SpendRequest {
    pub fn blank(code: SourceCode) -> Self {
        Self {
            code,
            month: None,
            amount: None,
            error: None,
        }
    }
}

pub struct SpendMonth {
    pub month: String,
    pub amount: String,
}

pub struct SpendPanel {
    pub code: String,
    pub display_code: String,
    pub name: String,
    pub month: String,
    pub amount: String,
    pub error: Option<String>,
    pub months: Vec<SpendMonth>,
}

impl SpendPanel {
    /// The source's entered months, and the form on `this_month` (with its amount, if any).
    pub(super) async fn load(
        state: &AppState,
        org: &OrgId,
        source: &Source,
        this_month: Month,
        request: SpendRequest,
    ) -> Result<Self, PageError> {
        let mut rows: Vec<_> = state
            .store
            .spend(org, Some(source.widget_version), None, None)
            .await?
            .into_iter()
            .filter(|r| r.entry.source == source.code)
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.entry.month));
        let current = rows
            .iter()
            .find(|r| r.entry.month == this_month)
            .map(|r| major_units(r.entry.amount));
        Ok(Self {
            code: source.code.to_string(),
            display_code: source.code.display_code(),
            name: source.name.clone(),
            month: request.month.unwrap_or_else(|| this_month.to_string()),
            amount: request.amount.or(current).unwrap_or_default(),
            error: request.error,
            months: rows
                .iter()
                .take(MONTHS_SHOWN)
                .map(|r| SpendMonth {
                    month: r.entry.month.to_string(),
                    amount: money_minor(r.entry.amount),
                })
                .collect(),
        })
    }
}

/// What the import slide-over shows: the pasted file kept after a refusal, with its lines.
#[derive(Default)]
pub struct ImportPanel {
    pub text: String,
    pub refused: Vec<RefusedLine>,
}

/// An editor sets what a source cost in a month.
pub async fn save(
    State(state): State<AppState>,
    Path((widget, source)): Path<(String, String)>,
    EditorForm(Submitted { session, form }): EditorForm,
) -> Result<Response, PageError> {
    let (widget, code) = (version(&widget)?, code(&source)?);
    let (month, amount) = (form.text("month"), form.text("amount"));
    let entry = (|| -> Result<SpendEntry, DomainError> {
        Ok(SpendEntry {
            widget,
            source: code,
            month: Month::parse(month)?,
            amount: parse_amount(parse_major_units("amount", amount)?)?,
        })
    })();
    let actor = format!("user:{}", session.user.email);
    let result = match entry {
        Ok(entry) => state
            .store
            .set_spend(session.org(), &entry, &actor)
            .await
            .map(|_| entry),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(entry) => Ok(see_other(
            &sources_path(widget, false),
            &format!(
                "Spend for {} in {}: {}.",
                code.display_code(),
                entry.month,
                money_minor(entry.amount)
            ),
        )),
        Err(StoreError::NotFound) => Err(PageError::not_found()),
        Err(e) => {
            let request = SpendRequest {
                code,
                month: Some(month.to_owned()),
                amount: Some(amount.to_owned()),
                error: Some(refusal(e)?),
            };
            refused(&state, &session, widget, PanelRequest::Spend(request)).await
        }
    }
}

/// An editor imports many months from pasted CSV: all lines or none.
pub async fn import(
    State(state): State<AppState>,
    Path(widget): Path<String>,
    EditorForm(Submitted { session, form }): EditorForm,
) -> Result<Response, PageError> {
    let widget = version(&widget)?;
    let text = form.text("csv");
    let actor = format!("user:{}", session.user.email);
    match state
        .store
        .import_spend(session.org(), &parse_import(text), &actor)
        .await?
    {
        SpendImport::Imported(n) => Ok(see_other(
            &sources_path(widget, false),
            &format!("Imported {n} month(s) of spend."),
        )),
        SpendImport::Refused(lines) => {
            let request = ImportPanel {
                text: text.to_owned(),
                refused: lines,
            };
            refused(&state, &session, widget, PanelRequest::Import(request)).await
        }
    }
}
