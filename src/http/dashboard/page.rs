//! Rendering pages, the frame every page shares, and errors shown as pages.

use askama::Template;
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::session::Session;
use crate::domain::DomainError;
use crate::store::StoreError;

/// The dashboard's tabs, in navigation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Sources,
    Leads,
    Reports,
    Webhooks,
    Widgets,
    Settings,
    Team,
}

impl Tab {
    pub const ALL: [Tab; 7] = [
        Tab::Sources,
        Tab::Leads,
        Tab::Reports,
        Tab::Webhooks,
        Tab::Widgets,
        Tab::Settings,
        Tab::Team,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Sources => "Lead Sources",
            Self::Leads => "Leads",
            Self::Reports => "Reports",
            Self::Webhooks => "Webhooks",
            Self::Widgets => "Widgets",
            Self::Settings => "Settings",
            Self::Team => "Team",
        }
    }

    pub fn href(self) -> &'static str {
        match self {
            Self::Sources => "/app/sources",
            Self::Leads => "/app/leads",
            Self::Reports => "/app/reports",
            Self::Webhooks => "/app/webhooks",
            Self::Widgets => "/app/widgets",
            Self::Settings => "/app/settings",
            Self::Team => "/app/team",
        }
    }
}

/// What the shared layout shows: navigation, who is signed in, the logout form's token, and a
/// one-line notice after a change.
pub struct Chrome {
    pub tab: Tab,
    pub org_name: String,
    pub email: String,
    pub role_label: &'static str,
    pub can_edit: bool,
    pub is_owner: bool,
    pub csrf: String,
    pub notice: Option<String>,
    pub tabs: [Tab; 7],
    /// The login's other organizations, to switch to.
    pub elsewhere: Vec<(String, String)>,
}

impl Chrome {
    pub fn new(session: &Session, org_name: String, tab: Tab) -> Self {
        Self {
            tab,
            org_name,
            email: session.user.email.clone(),
            role_label: session.role().label(),
            can_edit: session.role().can_edit(),
            is_owner: session.role().manages_team(),
            csrf: session.csrf.clone(),
            notice: session.notice.clone(),
            tabs: Tab::ALL,
            elsewhere: session
                .organizations
                .iter()
                .filter(|m| &m.org_id != session.org())
                .map(|m| (m.org_id.to_string(), m.org_name.clone()))
                .collect(),
        }
    }
}

impl Chrome {
    pub fn is_current(&self, tab: &Tab) -> bool {
        *tab == self.tab
    }
}

pub fn render(template: &impl Template) -> Result<Response, PageError> {
    template
        .render()
        .map(|html| Html(html).into_response())
        .map_err(PageError::internal)
}

pub fn render_status(status: StatusCode, template: &impl Template) -> Result<Response, PageError> {
    let mut response = render(template)?;
    *response.status_mut() = status;
    Ok(response)
}

/// After a successful form post: back to a page (303, so a reload does not post again). The
/// one-line notice rides in a short-lived cookie rather than the URL, so nobody can craft a link
/// that makes the dashboard say something it did not.
pub fn see_other(path: &str, notice: &str) -> Response {
    let mut response = Redirect::to(path).into_response();
    let cookie = format!(
        "{FLASH_COOKIE}={}; Path=/app; HttpOnly; SameSite=Lax; Max-Age=60",
        encode(notice)
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

pub const FLASH_COOKIE: &str = "lt_flash";

/// Reads a notice left by `see_other`.
pub fn flash(headers: &HeaderMap) -> Option<String> {
    let raw = super::session::cookie(headers, FLASH_COOKIE)?;
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|s| s.chars().take(300).collect())
        .filter(|s: &String| !s.is_empty())
}

/// Clears the notice once a page has shown it.
pub async fn clear_flash(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let had_flash = super::session::cookie(request.headers(), FLASH_COOKIE).is_some();
    let mut response = next.run(request).await;
    if had_flash && response.status() == StatusCode::OK {
        response.headers_mut().append(
            SET_COOKIE,
            HeaderValue::from_static("lt_flash=; Path=/app; HttpOnly; SameSite=Lax; Max-Age=0"),
        );
    }
    response
}

pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
}

#[derive(Debug)]
pub enum PageError {
    /// Not signed in: go to the login page and come back afterwards.
    SignIn {
        next: String,
    },
    Status {
        status: StatusCode,
        message: String,
    },
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Status {
            status,
            message: message.into(),
        }
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "There is nothing here, or it belongs to another organization.",
        )
    }

    pub fn forbidden(message: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "dashboard page failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong on our side; it has been logged.",
        )
    }
}

/// A refusal the user can fix (a rule or a bad value) as the sentence to show beside the form;
/// anything else becomes an error page.
pub fn refusal(err: StoreError) -> Result<String, PageError> {
    match err {
        StoreError::Invalid(d) => Ok(d.message),
        StoreError::Conflict(c) => Ok(c.to_string()),
        other => Err(other.into()),
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::not_found(),
            StoreError::Invalid(d) => d.into(),
            StoreError::Conflict(c) => Self::new(StatusCode::CONFLICT, c.to_string()),
            other => Self::internal(other),
        }
    }
}

impl From<DomainError> for PageError {
    fn from(e: DomainError) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, e.message)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn { next } => {
                let location = format!("/login?next={}", encode(&next));
                (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response()
            }
            Self::Status { status, message } => {
                let page = ErrorPage {
                    status: status.as_u16(),
                    title: status.canonical_reason().unwrap_or("Error"),
                    message: &message,
                };
                match page.render() {
                    Ok(html) => (status, Html(html)).into_response(),
                    Err(_) => (status, message).into_response(),
                }
            }
        }
    }
}

/// `within_1_month` → `Within 1 month`: stored ids shown as words.
pub fn humanize(id: &str) -> String {
    let spaced = id.replace('_', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Whole dollars with thousands separators: `$14,200`.
/// Minor units (cents) as `$12,500`, or `$12,500.50` when not whole.
pub fn money_minor(n: i64) -> String {
    let whole = money(u64::try_from(n / 100).unwrap_or(0));
    match n % 100 {
        0 => whole,
        cents => format!("{whole}.{:02}", cents.abs()),
    }
}

pub fn money(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    format!("${out}")
}
