//! Who is signed in, and proof that a form came from our own page.
//!
//! The session cookie holds a random token; the database holds only its digest, so a leaked
//! table cannot be replayed as cookies. Each session has its own CSRF token, carried by every
//! form as `_csrf` and compared in constant time; a cross-site `Origin` is refused as well.

use std::net::IpAddr;

use axum::extract::{FromRequest, FromRequestParts, Multipart, Request};
use axum::http::header::{CONTENT_TYPE, COOKIE, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};

use super::page::PageError;
use crate::domain::ids::OrgId;
use crate::domain::keys::{api_key_digest, tokens_match};
use crate::domain::user::Role;
use crate::http::AppState;
use crate::store::{Membership, User};

pub const SESSION_COOKIE: &str = "lt_session";
/// Double-submit token for the login form, which has no session yet.
pub const LOGIN_CSRF_COOKIE: &str = "lt_login_csrf";
pub const SESSION_DAYS: i64 = 14;
/// Largest form body the dashboard accepts.
const FORM_LIMIT: usize = 64 * 1024;

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// `Set-Cookie` for a dashboard cookie. `Secure` when the operator says the service is reached
/// over https (`secure_cookies`), so plain-http local use still works; a request header that
/// anyone can send does not decide it.
pub fn set_cookie(secure: bool, name: &str, value: &str, max_age_s: i64) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// A signed-in user of one organization.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub csrf: String,
    pub token_digest: String,
    /// A one-line notice left by the previous form post, shown once.
    pub notice: Option<String>,
    /// Every organization the login belongs to (the switcher offers the others).
    pub organizations: Vec<Membership>,
}

impl Session {
    pub fn org(&self) -> &OrgId {
        &self.user.org_id
    }

    pub fn role(&self) -> Role {
        self.user.role
    }

    /// Refuses a change by a viewer: the server decides, whatever the page showed.
    pub fn require_editor(&self) -> Result<(), PageError> {
        if self.user.role.can_edit() {
            Ok(())
        } else {
            Err(PageError::forbidden(
                "Your role is Viewer: you can look at everything but change nothing.",
            ))
        }
    }

    pub fn require_owner(&self) -> Result<(), PageError> {
        if self.user.role.manages_team() {
            Ok(())
        } else {
            Err(PageError::forbidden("Only an owner can manage the team."))
        }
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let next = parts
            .uri
            .path_and_query()
            .map_or("/app", |p| p.as_str())
            .to_owned();
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(PageError::SignIn { next });
        };
        let token_digest = api_key_digest(token);
        match state.store.session(&token_digest).await? {
            Some(record) => Ok(Session {
                organizations: state.store.memberships(&record.user.id).await?,
                user: record.user,
                csrf: record.csrf_token,
                token_digest,
                notice: super::page::flash(&parts.headers),
            }),
            None => Err(PageError::SignIn { next }),
        }
    }
}

/// A form's fields, in order; repeated names (checkboxes) keep every value.
#[derive(Debug, Clone, Default)]
pub struct FormFields(Vec<(String, String)>);

impl FormFields {
    /// NUL characters are dropped: no browser sends one from a field a person typed in, and
    /// PostgreSQL cannot store them.
    pub fn parse(body: &[u8]) -> Self {
        Self(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.replace('\0', ""), v.replace('\0', "")))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find_map(|(k, v)| (k == name).then_some(v.as_str()))
    }

    /// Whether the form sent the field at all (even empty).
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The field's value, or empty when the form did not send it.
    pub fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or_default()
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn checked(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// A same-origin form post: `Origin` (when the browser sends one) must be this host.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'));
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

async fn read_form(req: Request) -> Result<(HeaderMap, FormFields), PageError> {
    let multipart = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("multipart/form-data"));
    if multipart {
        return read_multipart(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, FORM_LIMIT)
        .await
        .map_err(|_| too_large())?;
    Ok((parts.headers, FormFields::parse(&bytes)))
}

fn too_large() -> PageError {
    PageError::new(StatusCode::PAYLOAD_TOO_LARGE, "That form is too large.")
}

/// A form with a file (the lead import): every part is read as text, the file's content under
/// its field's name. How large it may be is the route's body limit (2 MB unless it says more).
async fn read_multipart(req: Request) -> Result<(HeaderMap, FormFields), PageError> {
    let headers = req.headers().clone();
    let unreadable = || PageError::new(StatusCode::BAD_REQUEST, "That form could not be read.");
    let mut multipart = Multipart::from_request(req, &())
        .await
        .map_err(|_| unreadable())?;
    let mut fields = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large()),
            Err(_) => return Err(unreadable()),
        };
        let name = field.name().unwrap_or_default().to_owned();
        if let Some(file) = field.file_name() {
            fields.push((format!("{name}_name"), file.replace('\0', "")));
        }
        let bytes = field.bytes().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                unreadable()
            }
        })?;
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
            PageError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "That file is not UTF-8 text: save it as \"CSV UTF-8\" and try again.",
            )
        })?;
        fields.push((name, text.replace('\0', "")));
    }
    Ok((headers, FormFields(fields)))
}

fn csrf_refused() -> PageError {
    PageError::new(
        StatusCode::FORBIDDEN,
        "This form did not come from a leadtrail page you opened (its security token is missing \
         or stale). Go back, reload the page and try again.",
    )
}

/// A form posted by a signed-in user from one of our pages.
pub struct Submitted {
    pub session: Session,
    pub form: FormFields,
}

impl FromRequest<AppState> for Submitted {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        if !same_origin(&parts.headers) {
            return Err(csrf_refused());
        }
        let (_, form) = read_form(Request::from_parts(parts, body)).await?;
        let given = form.get("_csrf").unwrap_or_default();
        if given.is_empty() || !tokens_match(given, &session.csrf) {
            return Err(csrf_refused());
        }
        Ok(Self { session, form })
    }
}

/// A form post by someone who may change things (an owner or a member). A viewer is refused
/// (403) before the handler runs: a mutating handler takes this, so it cannot forget the check.
pub struct EditorForm(pub Submitted);

impl FromRequest<AppState> for EditorForm {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let submitted = Submitted::from_request(req, state).await?;
        submitted.session.require_editor()?;
        Ok(Self(submitted))
    }
}

/// A form post by an owner (the team). Anyone else is refused (403) before the handler runs.
pub struct OwnerForm(pub Submitted);

impl FromRequest<AppState> for OwnerForm {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let submitted = Submitted::from_request(req, state).await?;
        submitted.session.require_owner()?;
        Ok(Self(submitted))
    }
}

/// A form posted without a session (login, accepting an invite): checked against the
/// double-submit cookie set when the page was shown.
pub struct AnonymousForm {
    pub form: FormFields,
    pub headers: HeaderMap,
    pub peer: Option<IpAddr>,
}

impl FromRequest<AppState> for AnonymousForm {
    type Rejection = PageError;

    async fn from_request(req: Request, _state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = crate::http::client_ip::of(req.extensions());
        if !same_origin(req.headers()) {
            return Err(csrf_refused());
        }
        let (headers, form) = read_form(req).await?;
        let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
        let given = form.get("_csrf").unwrap_or_default();
        if expected.is_empty() || !tokens_match(given, expected) {
            return Err(csrf_refused());
        }
        Ok(Self {
            form,
            headers,
            peer,
        })
    }
}
