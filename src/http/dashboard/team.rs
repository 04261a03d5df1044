//! The Team tab: who can sign in, one-time invite links, access resets and removals (owners).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::page::{Chrome, PageError, Tab, render, render_status, see_other};
use super::session::{OwnerForm, Session, Submitted};
use crate::domain::keys::{api_key_digest, new_secret_token};
use crate::domain::user::{Email, Role};
use crate::http::AppState;
use crate::store::{StoreError, now_ms};

const INVITE_DAYS: i64 = 7;

pub struct Member {
    pub id: String,
    pub email: String,
    pub role: &'static str,
    pub active: bool,
    pub is_me: bool,
}

/// A link sent and not used yet.
pub struct Pending {
    pub email: String,
    pub role: &'static str,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "team.html")]
pub struct TeamPage {
    pub chrome: Chrome,
    pub members: Vec<Member>,
    /// Links not used yet; owners only (they carry no secret, but only owners act on them).
    pub pending: Vec<Pending>,
    pub link: Option<String>,
    pub link_email: String,
    pub error: Option<String>,
}

async fn page(
    state: &AppState,
    session: &Session,
    link: Option<(String, String)>,
    error: Option<String>,
) -> Result<TeamPage, PageError> {
    let organization = state.store.organization(session.org()).await?;
    let users = state.store.users(session.org()).await?;
    let pending = if session.role().manages_team() {
        state.store.pending_invites(session.org()).await?
    } else {
        Vec::new()
    };
    let (link, link_email) = match link {
        Some((l, e)) => (Some(l), e),
        None => (None, String::new()),
    };
    Ok(TeamPage {
        chrome: Chrome::new(session, organization.name.clone(), Tab::Team),
        members: users
            .into_iter()
            .map(|u| Member {
                active: u.has_password(),
                is_me: u.id == session.user.id,
                role: u.role.label(),
                id: u.id,
                email: u.email,
            })
            .collect(),
        pending: pending
            .into_iter()
            .map(|p| Pending {
                expires: organization.time_zone.format(p.expires_at),
                role: p.role.label(),
                email: p.email,
            })
            .collect(),
        link,
        link_email,
        error,
    })
}

pub async fn show(State(state): State<AppState>, session: Session) -> Result<Response, PageError> {
    render(&page(&state, &session, None, None).await?)
}

/// A one-time link: the token for the URL, and its digest and expiry for the store.
fn new_link(state: &AppState) -> (String, String, i64) {
    let token = new_secret_token();
    let expires = now_ms() + INVITE_DAYS * 24 * 3600 * 1000;
    (
        format!("{}/invite/{token}", state.config.public_base_url),
        api_key_digest(&token),
        expires,
    )
}

/// The link is shown in the answer to the post itself (never in a URL or a cookie).
pub async fn invite(
    State(state): State<AppState>,
    OwnerForm(Submitted { session, form }): OwnerForm,
) -> Result<Response, PageError> {
    let parsed = Email::parse("email", form.text("email"))
        .and_then(|e| Ok((e, Role::parse("role", form.text("role"))?)));
    let (email, role) = match parsed {
        Ok(ok) => ok,
        Err(e) => {
            let page = page(&state, &session, None, Some(e.message)).await?;
            return render_status(StatusCode::UNPROCESSABLE_ENTITY, &page);
        }
    };
    let (link, digest, expires) = new_link(&state);
    match state
        .store
        .create_invite(session.org(), email.as_str(), role, &digest, expires)
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict(c)) => {
            let page = page(&state, &session, None, Some(c.to_string())).await?;
            return render_status(StatusCode::CONFLICT, &page);
        }
        Err(e) => return Err(e.into()),
    }
    let link = (link, email.as_str().to_owned());
    render(&page(&state, &session, Some(link), None).await?)
}

pub async fn reset(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    OwnerForm(Submitted { session, .. }): OwnerForm,
) -> Result<Response, PageError> {
    if user_id == session.user.id {
        return Err(PageError::new(
            StatusCode::CONFLICT,
            "You cannot reset your own access from here.",
        ));
    }
    let (link, digest, expires) = new_link(&state);
    let user = state
        .store
        .reset_user_access(session.org(), &user_id, &digest, expires)
        .await?;
    let link = (link, user.email);
    render(&page(&state, &session, Some(link), None).await?)
}

pub async fn remove(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    OwnerForm(Submitted { session, .. }): OwnerForm,
) -> Result<Response, PageError> {
    if user_id == session.user.id {
        return Err(PageError::new(
            StatusCode::CONFLICT,
            "You cannot remove yourself.",
        ));
    }
    let user = state.store.remove_user(session.org(), &user_id).await?;
    Ok(see_other(
        "/app/team",
        &format!("Removed {}; their sessions have ended.", user.email),
    ))
}

/// Withdraws the unused link for an address; it stops working at once.
pub async fn revoke(
    State(state): State<AppState>,
    OwnerForm(Submitted { session, form }): OwnerForm,
) -> Result<Response, PageError> {
    let email = form.text("email").trim().to_lowercase();
    match state.store.revoke_invite(session.org(), &email).await {
        Ok(()) => Ok(see_other(
            "/app/team",
            &format!("Revoked the link for {email}; it no longer works."),
        )),
        Err(StoreError::NotFound) => Err(PageError::new(
            StatusCode::NOT_FOUND,
            "There is no unused link for that address.",
        )),
        Err(e) => Err(e.into()),
    }
}
