//! Logging in and out, and setting a password from a one-time invite link.

use std::sync::LazyLock;
use std::time::Instant;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::page::{PageError, render_status, see_other};
use super::session::{
    AnonymousForm, LOGIN_CSRF_COOKIE, SESSION_COOKIE, SESSION_DAYS, Session, Submitted, cookie,
    set_cookie,
};
use crate::domain::ids::OrgId;
use crate::domain::keys::{api_key_digest, new_secret_token};
use crate::domain::user::{hash_password, verify_password};
use crate::http::AppState;
use crate::store::{StoreError, User, now_ms};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    heading: String,
    intro: Option<String>,
    action: String,
    submit: &'static str,
    csrf: String,
    next: String,
    email: String,
    email_locked: bool,
    new_password: bool,
    /// Signed in already: the form only confirms joining (no e-mail or password fields).
    joining: bool,
    /// Where a person who already has a login logs in before using an invite link.
    login_first: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Only our own dashboard paths (and invite links, to join after logging in) are followed
/// after login, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n.starts_with("/app") || n.starts_with("/invite/"))
                && !n.contains("//")
                && !n.contains('\\') =>
        {
            n.to_owned()
        }
        _ => "/app/sources".to_owned(),
    }
}

/// A page with a form that posts without a session: the double-submit token is set (or kept)
/// as a cookie and echoed in the form.
fn anonymous_form(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    mut page: LoginPage,
) -> Result<Response, PageError> {
    let token = cookie(headers, LOGIN_CSRF_COOKIE)
        .filter(|t| t.len() >= 32)
        .map_or_else(new_secret_token, str::to_owned);
    page.csrf = token.clone();
    let mut response = render_status(status, &page)?;
    if let Ok(v) = HeaderValue::from_str(&set_cookie(
        state.config.secure_cookies,
        LOGIN_CSRF_COOKIE,
        &token,
        3600,
    )) {
        response.headers_mut().append(SET_COOKIE, v);
    }
    Ok(response)
}

fn login_page(next: String, email: String, error: Option<String>) -> LoginPage {
    LoginPage {
        heading: "Log in".into(),
        intro: None,
        action: "/login".into(),
        submit: "Log in",
        csrf: String::new(),
        next,
        email,
        email_locked: false,
        new_password: false,
        joining: false,
        login_first: None,
        error,
    }
}

pub async fn show_login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Result<Response, PageError> {
    let next = safe_next(q.next.as_deref());
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && state.store.session(&api_key_digest(token)).await?.is_some()
    {
        return Ok((StatusCode::SEE_OTHER, [(LOCATION, next)]).into_response());
    }
    anonymous_form(
        &state,
        &headers,
        StatusCode::OK,
        login_page(next, String::new(), None),
    )
}

/// Verifies against a real argon2 hash even for an unknown address, so the answer time does
/// not tell which addresses have accounts.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password("password", "not-a-real-password-0000").unwrap_or_default());

async fn password_matches(user: Option<&User>, password: String) -> bool {
    let hash = match user {
        Some(u) if u.has_password() => u.password_hash.clone(),
        _ => DUMMY_HASH.clone(),
    };
    let known = user.is_some_and(User::has_password);
    let verified = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    known && verified
}

/// Starts a session: a fresh token every time (no fixation), the login token cleared.
async fn start_session(state: &AppState, user: &User, next: String) -> Result<Response, PageError> {
    let token = new_secret_token();
    let max_age = SESSION_DAYS * 24 * 3600;
    state
        .store
        .create_session(
            &user.id,
            &user.org_id,
            &api_key_digest(&token),
            &new_secret_token(),
            now_ms() + max_age * 1000,
        )
        .await?;
    let mut response = (StatusCode::SEE_OTHER, [(LOCATION, next)]).into_response();
    for value in [
        set_cookie(state.config.secure_cookies, SESSION_COOKIE, &token, max_age),
        set_cookie(state.config.secure_cookies, LOGIN_CSRF_COOKIE, "", 0),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().append(SET_COOKIE, v);
        }
    }
    Ok(response)
}

pub async fn login(
    State(state): State<AppState>,
    AnonymousForm {
        form,
        headers,
        peer,
    }: AnonymousForm,
) -> Result<Response, PageError> {
    let email = form.text("email").trim().to_lowercase();
    let next = safe_next(form.get("next"));
    if let Err(wait) = state.login_limits.check(peer, &email, Instant::now()) {
        let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
        let error = format!("Too many attempts. Try again in {seconds} seconds.");
        let mut response = anonymous_form(
            &state,
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            login_page(next, email, Some(error)),
        )?;
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(seconds));
        return Ok(response);
    }
    let user = state.store.user_by_email(&email).await?;
    if password_matches(user.as_ref(), form.text("password").to_owned()).await
        && let Some(user) = user
    {
        state.login_limits.succeeded(peer, &email);
        return start_session(&state, &user, next).await;
    }
    state.login_limits.failed(peer, &email, Instant::now());
    anonymous_form(
        &state,
        &headers,
        StatusCode::UNAUTHORIZED,
        login_page(
            next,
            email,
            Some("That email and password do not match an account.".into()),
        ),
    )
}

pub async fn logout(
    State(state): State<AppState>,
    Submitted { session, .. }: Submitted,
) -> Result<Response, PageError> {
    state.store.delete_session(&session.token_digest).await?;
    let mut response = (StatusCode::SEE_OTHER, [(LOCATION, "/login")]).into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(
        state.config.secure_cookies,
        SESSION_COOKIE,
        "",
        0,
    )) {
        response.headers_mut().append(SET_COOKIE, v);
    }
    Ok(response)
}

fn invite_gone() -> PageError {
    PageError::new(
        StatusCode::NOT_FOUND,
        "This link has been used or has expired. Ask an owner of your organization for a new one.",
    )
}

fn invite_page(token: &str, invite: &crate::store::Invite, error: Option<String>) -> LoginPage {
    LoginPage {
        heading: format!("Join {}", invite.org_name),
        intro: Some(format!(
            "You are invited as {}. Choose a password of at least 10 characters.",
            invite.role.label()
        )),
        action: format!("/invite/{token}"),
        submit: "Set password and log in",
        csrf: String::new(),
        next: "/app/sources".into(),
        email: invite.email.clone(),
        email_locked: true,
        new_password: true,
        joining: false,
        login_first: Some(format!("/login?next=/invite/{token}")),
        error,
    }
}

/// The same link for someone signed in: one button joins the organization.
fn join_page(
    token: &str,
    invite: &crate::store::Invite,
    signed_in: &User,
    error: Option<String>,
) -> LoginPage {
    LoginPage {
        heading: format!("Join {}", invite.org_name),
        intro: Some(format!(
            "You are logged in as {}. Join {} as {}?",
            signed_in.email,
            invite.org_name,
            invite.role.label()
        )),
        action: format!("/invite/{token}"),
        submit: "Join",
        csrf: String::new(),
        next: "/app/sources".into(),
        email: String::new(),
        email_locked: true,
        new_password: false,
        joining: true,
        login_first: None,
        error,
    }
}

/// The signed-in session behind a request's cookie, if any.
async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(String, User)>, PageError> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let digest = api_key_digest(token);
    Ok(state
        .store
        .session(&digest)
        .await?
        .map(|s| (digest, s.user)))
}

pub async fn show_invite(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let invite = state
        .store
        .invite(&api_key_digest(&token))
        .await?
        .ok_or_else(invite_gone)?;
    let page = match signed_in(&state, &headers).await? {
        Some((_, user)) => join_page(&token, &invite, &user, None),
        None => invite_page(&token, &invite, None),
    };
    anonymous_form(&state, &headers, StatusCode::OK, page)
}

pub async fn accept_invite(
    State(state): State<AppState>,
    Path(token): Path<String>,
    AnonymousForm { form, headers, .. }: AnonymousForm,
) -> Result<Response, PageError> {
    let digest = api_key_digest(&token);
    let invite = state.store.invite(&digest).await?.ok_or_else(invite_gone)?;
    if let Some((session, user)) = signed_in(&state, &headers).await? {
        return join(&state, &headers, &token, &invite, &session, &user).await;
    }
    let password = form.text("password").to_owned();
    let hashed = tokio::task::spawn_blocking(move || hash_password("password", &password))
        .await
        .map_err(PageError::internal)?;
    let hash = match hashed {
        Ok(hash) => hash,
        Err(e) => {
            return anonymous_form(
                &state,
                &headers,
                StatusCode::UNPROCESSABLE_ENTITY,
                invite_page(&token, &invite, Some(e.message)),
            );
        }
    };
    let user = match state.store.accept_invite(&digest, &hash).await {
        Ok(user) => user,
        Err(StoreError::NotFound) => return Err(invite_gone()),
        Err(StoreError::Conflict(c)) => {
            return anonymous_form(
                &state,
                &headers,
                StatusCode::CONFLICT,
                invite_page(&token, &invite, Some(c.to_string())),
            );
        }
        Err(e) => return Err(e.into()),
    };
    start_session(&state, &user, "/app/sources".into()).await
}

/// A signed-in person uses a link meant for their own address: they join the organization,
/// and their session moves there.
async fn join(
    state: &AppState,
    headers: &HeaderMap,
    token: &str,
    invite: &crate::store::Invite,
    session: &str,
    user: &User,
) -> Result<Response, PageError> {
    match state
        .store
        .join_by_invite(&api_key_digest(token), &user.id)
        .await
    {
        Ok(member) => {
            state
                .store
                .switch_organization(session, &user.id, &member.org_id)
                .await?;
            Ok(see_other(
                "/app/sources",
                &format!("You joined {} as {}.", invite.org_name, member.role.label()),
            ))
        }
        Err(StoreError::NotFound) => Err(invite_gone()),
        Err(StoreError::Conflict(c)) => anonymous_form(
            state,
            headers,
            StatusCode::CONFLICT,
            join_page(token, invite, user, Some(c.to_string())),
        ),
        Err(e) => Err(e.into()),
    }
}

/// Moves the session to another of the login's organizations.
pub async fn switch_organization(
    State(state): State<AppState>,
    Submitted { session, form }: Submitted,
) -> Result<Response, PageError> {
    let org = OrgId::from_stored(form.text("organization").to_owned());
    match state
        .store
        .switch_organization(&session.token_digest, &session.user.id, &org)
        .await
    {
        Ok(()) => {
            let name = session
                .organizations
                .iter()
                .find(|m| m.org_id == org)
                .map_or_else(String::new, |m| m.org_name.clone());
            Ok(see_other(
                "/app/sources",
                &format!("You are working in {name}."),
            ))
        }
        Err(StoreError::NotFound) => Err(PageError::not_found()),
        Err(e) => Err(e.into()),
    }
}

/// `/app` itself: the first tab.
pub async fn home(_session: Session) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, "/app/sources")]).into_response()
}
